//! The incremental stream decoder, fed in chunks whose size comes from the first input byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::{Key, Keyring, StreamDecoder, StreamOpenConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let ring = Keyring::new(vec![Key::new(&[0u8; 16]).unwrap()]).unwrap();
    for keyring in [None, Some(ring)] {
        for expect_label_header in [true, false] {
            let cfg = StreamOpenConfig {
                keyring: keyring.clone(),
                expect_label_header,
                gossip_verify_incoming: false,
                ..StreamOpenConfig::default()
            };
            let mut dec = StreamDecoder::new(cfg);
            for c in data.chunks(chunk) {
                dec.push(c);
                match dec.poll() {
                    Ok(None) => {}
                    _ => break,
                }
            }
            let _ = dec.finish();
        }
    }
});

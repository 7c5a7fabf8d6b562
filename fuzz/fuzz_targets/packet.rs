//! The whole packet receive pipeline (label, decryption, CRC, compound, compress, messages),
//! with and without keys, with incoming verification on and off.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::{open_packet, Key, Keyring, OpenConfig};

fuzz_target!(|data: &[u8]| {
    let ring = Keyring::new(vec![Key::new(&[0u8; 16]).unwrap()]).unwrap();
    for keyring in [None, Some(&ring)] {
        for gossip_verify_incoming in [true, false] {
            for label in ["", "L1"] {
                let cfg = OpenConfig { label, keyring, gossip_verify_incoming, ..OpenConfig::default() };
                if let Ok(p) = open_packet(data, &cfg) {
                    // Whatever decodes must re-encode.
                    let _ = p.payload.encode();
                }
            }
        }
    }
});

//! The decode-tree builder behind `memberlist decode`, on packets and streams.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::inspect::{inspect_packet, inspect_stream, InspectOptions};
use memberlist_proto::wire::{Key, Keyring};

fuzz_target!(|data: &[u8]| {
    let plain = InspectOptions::default();
    let keyed = InspectOptions {
        keyring: Some(Keyring::new(vec![Key::new(&[0u8; 16]).unwrap()]).unwrap()),
        ..InspectOptions::default()
    };
    for opts in [&plain, &keyed] {
        let _ = inspect_packet(data, opts).to_json();
        let _ = inspect_stream(data, opts).to_json();
    }
});

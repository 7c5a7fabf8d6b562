//! The compound splitter and the recursive payload decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::compound::decode_compound;
use memberlist_proto::wire::{Limits, Payload};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = decode_compound(data) {
        assert!(c.parts.len() + c.truncated == c.lengths.len());
    }
    let limits = Limits { max_decompressed_bytes: 1 << 20, ..Limits::default() };
    let _ = Payload::decode(data, &limits);
});

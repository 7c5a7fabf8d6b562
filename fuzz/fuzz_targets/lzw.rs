//! The LZW decoder on arbitrary input, and compress/decompress round trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::lzw;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = lzw::decompress(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    let c = lzw::compress(data);
    assert_eq!(lzw::decompress(&c, data.len()).unwrap(), data);
});

//! The snappy decoder (compress type 1, Grafana's fork) on arbitrary input within a limit, and
//! compress/decompress round trips through the compress wrapper.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::compress::{compress_message_with, decompress, Compression};
use memberlist_proto::wire::Compress;

fuzz_target!(|data: &[u8]| {
    let c = Compress { algo: 1, buf: data.to_vec() };
    if let Ok(out) = decompress(&c, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    if !data.is_empty() {
        let wrapped = compress_message_with(data, Compression::Snappy);
        let mut r = memberlist_proto::wire::msgpack::Reader::new(&wrapped[1..]);
        let (_, out) = memberlist_proto::wire::compress::decompress_body(&mut r, data.len()).unwrap();
        assert_eq!(out, data);
    }
});

//! One plaintext message body decoder (type byte + msgpack); a decoded message must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(&m));
    }
});

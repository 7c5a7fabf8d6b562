//! The label header parser and checker.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::label::{check_label, split_label};

fuzz_target!(|data: &[u8]| {
    if let Ok((label, rest)) = split_label(data) {
        assert!(label.len() + rest.len() <= data.len());
    }
    let _ = check_label(data, "L1", false);
    let _ = check_label(data, "L1", true);
});

//! AES-GCM blob decryption with a two-key ring, any AAD.
#![no_main]
use libfuzzer_sys::fuzz_target;
use memberlist_proto::wire::security::decrypt;
use memberlist_proto::wire::{Key, Keyring};

fuzz_target!(|data: &[u8]| {
    let ring = Keyring::new(vec![Key::new(&[1u8; 32]).unwrap(), Key::new(&[0u8; 16]).unwrap()]).unwrap();
    let (aad, blob) = data.split_at(data.len().min(4));
    let _ = decrypt(&ring, blob, aad);
});

//! AES-GCM encryption of packets and stream frames, as Go memberlist's `security.go`.
//!
//! An encrypted blob is `[version: u8][nonce: 12 bytes][ciphertext][tag: 16 bytes]`.
//! Version 0 PKCS#7-pads the plaintext to a multiple of 16 bytes (always 1–16 bytes of padding)
//! and is used by nodes speaking protocol version 1; version 1 has no padding. The key is 16, 24
//! or 32 bytes (AES-128/192/256). The additional data is the label for packets, and the 5-byte
//! stream frame header followed by the label for streams.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;

use super::error::DecodeError;
use super::keyring::Keyring;

/// Size of the random nonce.
pub const NONCE_SIZE: usize = 12;
/// Size of the GCM tag.
pub const TAG_SIZE: usize = 16;
/// Block size used for version 0 padding.
pub const BLOCK_SIZE: usize = 16;

/// The encryption format versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionVersion {
    /// PKCS#7 padding (protocol version 1 senders).
    V0 = 0,
    /// No padding.
    V1 = 1,
}

impl EncryptionVersion {
    /// The version a node speaking `protocol_version` sends: 0 for protocol 1, else 1.
    pub fn for_protocol(protocol_version: u8) -> Self {
        if protocol_version == 1 {
            EncryptionVersion::V0
        } else {
            EncryptionVersion::V1
        }
    }

    /// The most bytes encryption adds to a message: 45 for version 0, 29 for version 1.
    pub fn overhead(self) -> usize {
        match self {
            EncryptionVersion::V0 => 1 + NONCE_SIZE + BLOCK_SIZE + TAG_SIZE,
            EncryptionVersion::V1 => 1 + NONCE_SIZE + TAG_SIZE,
        }
    }

    /// Length of the blob for a plaintext of `len` bytes.
    pub fn encrypted_len(self, len: usize) -> usize {
        match self {
            EncryptionVersion::V0 => 1 + NONCE_SIZE + len + (BLOCK_SIZE - len % BLOCK_SIZE) + TAG_SIZE,
            EncryptionVersion::V1 => 1 + NONCE_SIZE + len + TAG_SIZE,
        }
    }
}

type Aes192Gcm = AesGcm<Aes192, U12>;
type Aes128Gcm = AesGcm<Aes128, U12>;
type Aes256Gcm = AesGcm<Aes256, U12>;

fn seal_with<C: KeyInit + AeadInOut>(key: &[u8], nonce: &[u8; NONCE_SIZE], aad: &[u8], buf: &mut Vec<u8>) -> bool {
    let Ok(cipher) = C::new_from_slice(key) else { return false };
    let Ok(nonce) = Nonce::<C>::try_from(&nonce[..]) else { return false };
    cipher.encrypt_in_place(&nonce, aad, buf).is_ok()
}

fn open_with<C: KeyInit + AeadInOut>(key: &[u8], nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> bool {
    let Ok(cipher) = C::new_from_slice(key) else { return false };
    let Ok(nonce) = Nonce::<C>::try_from(nonce) else { return false };
    cipher.decrypt_in_place(&nonce, aad, buf).is_ok()
}

/// Encrypts `msg` with `key` (16, 24 or 32 bytes, checked by [`Keyring`]) into a blob.
pub fn encrypt(version: EncryptionVersion, key: &[u8], nonce: [u8; NONCE_SIZE], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(version.encrypted_len(msg.len()));
    buf.extend_from_slice(msg);
    if version == EncryptionVersion::V0 {
        let pad = BLOCK_SIZE - msg.len() % BLOCK_SIZE;
        // `pad` is 1..=16.
        buf.resize(msg.len() + pad, pad as u8);
    }
    let sealed = match key.len() {
        16 => seal_with::<Aes128Gcm>(key, &nonce, aad, &mut buf),
        24 => seal_with::<Aes192Gcm>(key, &nonce, aad, &mut buf),
        _ => seal_with::<Aes256Gcm>(key, &nonce, aad, &mut buf),
    };
    debug_assert!(sealed, "keys are validated by the keyring");
    let mut out = Vec::with_capacity(1 + NONCE_SIZE + buf.len());
    out.push(version as u8);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out
}

/// What decryption found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext, padding removed.
    pub plaintext: Vec<u8>,
    /// Index in the keyring of the key that worked (0 = primary).
    pub key_index: usize,
    /// The blob's encryption version.
    pub version: EncryptionVersion,
    /// The nonce.
    pub nonce: [u8; NONCE_SIZE],
    /// The GCM tag.
    pub tag: [u8; TAG_SIZE],
}

/// Decrypts a blob, trying every key of `keyring` in order (primary first).
pub fn decrypt(keyring: &Keyring, blob: &[u8], aad: &[u8]) -> Result<Decrypted, DecodeError> {
    let (&v, rest) = blob.split_first().ok_or(DecodeError::EncryptedTooShort(0))?;
    let version = match v {
        0 => EncryptionVersion::V0,
        1 => EncryptionVersion::V1,
        other => return Err(DecodeError::UnsupportedEncryptionVersion(other)),
    };
    if blob.len() < version.encrypted_len(0) {
        return Err(DecodeError::EncryptedTooShort(blob.len()));
    }
    let (nonce, sealed) = rest.split_at(NONCE_SIZE);
    let nonce: [u8; NONCE_SIZE] = nonce.try_into().map_err(|_| DecodeError::EncryptedTooShort(blob.len()))?;
    let tag: [u8; TAG_SIZE] = sealed
        .get(sealed.len().saturating_sub(TAG_SIZE)..)
        .and_then(|t| t.try_into().ok())
        .ok_or(DecodeError::EncryptedTooShort(blob.len()))?;
    for (key_index, key) in keyring.keys().enumerate() {
        let mut buf = sealed.to_vec();
        let k = key.as_bytes();
        let ok = match k.len() {
            16 => open_with::<Aes128Gcm>(k, &nonce, aad, &mut buf),
            24 => open_with::<Aes192Gcm>(k, &nonce, aad, &mut buf),
            _ => open_with::<Aes256Gcm>(k, &nonce, aad, &mut buf),
        };
        if ok {
            if version == EncryptionVersion::V0 {
                unpad(&mut buf)?;
            }
            return Ok(Decrypted { plaintext: buf, key_index, version, nonce, tag });
        }
    }
    Err(DecodeError::NoKeyDecrypts)
}

/// Removes PKCS#7 padding, checking it (Go trusts the last byte; the data is authenticated
/// anyway, so a bad pad only comes from a broken sender).
fn unpad(buf: &mut Vec<u8>) -> Result<(), DecodeError> {
    let pad = usize::from(*buf.last().ok_or(DecodeError::BadPadding)?);
    if pad == 0 || pad > BLOCK_SIZE || pad > buf.len() {
        return Err(DecodeError::BadPadding);
    }
    let start = buf.len() - pad;
    if buf.get(start..).is_some_and(|p| p.iter().all(|&b| usize::from(b) == pad)) {
        buf.truncate(start);
        Ok(())
    } else {
        Err(DecodeError::BadPadding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::keyring::Key;

    fn ring(keys: &[&[u8]]) -> Keyring {
        Keyring::new(keys.iter().map(|k| Key::new(k).unwrap()).collect()).unwrap()
    }

    #[test]
    fn lengths_match_go() {
        let key = [7u8; 16];
        let msg = b"this is a plain text message";
        let aad = b"random data";
        for (v, want) in [(EncryptionVersion::V0, 61), (EncryptionVersion::V1, 57)] {
            let blob = encrypt(v, &key, [1; 12], msg, aad);
            assert_eq!(blob.len(), want);
            assert_eq!(blob.len(), v.encrypted_len(msg.len()));
            let d = decrypt(&ring(&[&key]), &blob, aad).unwrap();
            assert_eq!(d.plaintext, msg);
            assert_eq!(d.version, v);
            assert!(decrypt(&ring(&[&key]), &blob, b"other").is_err());
        }
    }

    #[test]
    fn every_key_size_and_secondary_keys() {
        for size in [16, 24, 32] {
            let k1 = vec![1u8; size];
            let k2 = vec![2u8; size];
            let blob = encrypt(EncryptionVersion::V1, &k2, [3; 12], b"hi", b"");
            let d = decrypt(&ring(&[&k1, &k2]), &blob, b"").unwrap();
            assert_eq!((d.plaintext.as_slice(), d.key_index), (&b"hi"[..], 1));
            assert_eq!(decrypt(&ring(&[&k1]), &blob, b""), Err(DecodeError::NoKeyDecrypts));
        }
    }

    #[test]
    fn pkcs7_covers_every_length() {
        let key = [9u8; 32];
        for len in 0..=255usize {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let blob = encrypt(EncryptionVersion::V0, &key, [0; 12], &msg, b"");
            assert_eq!(decrypt(&ring(&[&key]), &blob, b"").unwrap().plaintext, msg);
        }
    }

    #[test]
    fn short_or_unknown_blobs_are_errors() {
        let r = ring(&[&[0u8; 16]]);
        assert_eq!(decrypt(&r, &[], b""), Err(DecodeError::EncryptedTooShort(0)));
        assert_eq!(decrypt(&r, &[1; 28], b""), Err(DecodeError::EncryptedTooShort(28)));
        assert_eq!(decrypt(&r, &[0; 44], b""), Err(DecodeError::EncryptedTooShort(44)));
        assert_eq!(decrypt(&r, &[2; 60], b""), Err(DecodeError::UnsupportedEncryptionVersion(2)));
    }
}

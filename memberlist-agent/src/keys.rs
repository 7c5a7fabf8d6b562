//! Keys on the command line: base64 (as `consul keygen` prints them) or hex.

use anyhow::{bail, Context, Result};
use base64::Engine;
use memberlist_proto::wire::Key;

/// Parses a 16, 24 or 32-byte key given as hex (32, 48 or 64 hex digits) or base64.
pub fn parse_key(s: &str) -> Result<Key> {
    let s = s.trim();
    let is_hex = matches!(s.len(), 32 | 48 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if is_hex {
        hex::decode(s).context("key is not valid hex")?
    } else {
        base64::engine::general_purpose::STANDARD.decode(s).context("key is neither hex nor base64")?
    };
    match Key::new(&bytes) {
        Ok(k) => Ok(k),
        Err(e) => bail!("{e} (got {} bytes from {s:?})", bytes.len()),
    }
}

/// A new random AES-256 key, base64-encoded.
pub fn keygen() -> Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_keys() {
        let hex_key = parse_key("000102030405060708090a0b0c0d0e0f").unwrap();
        let b64_key = parse_key("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        assert_eq!(hex_key, b64_key);
        assert!(parse_key("AAEC").is_err());
        assert!(parse_key("not a key!").is_err());
        let k = keygen().unwrap();
        assert_eq!(parse_key(&k).unwrap().as_bytes().len(), 32);
        assert_ne!(k, keygen().unwrap());
    }
}

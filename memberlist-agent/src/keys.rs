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

/// Keys from a file, one per line (base64 or hex; blank lines and `#` comments skipped), the
/// first being the primary: how a Kubernetes Secret or a root-only file hands them over,
/// without putting them on a command line that `ps` shows.
pub fn read_key_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key file {}", path.display()))?;
    let keys: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
    for (n, k) in keys.iter().enumerate() {
        parse_key(k).with_context(|| format!("{} holds a bad key on key line {}", path.display(), n + 1))?;
    }
    if keys.is_empty() {
        bail!("the key file {} holds no key", path.display());
    }
    Ok(keys)
}

/// A secret read from a file, trimmed (a token from a Kubernetes Secret).
pub fn read_secret_file(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret)
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

    #[test]
    fn key_files() {
        let dir = std::env::temp_dir().join(format!("memberlist-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        let primary = keygen().unwrap();
        std::fs::write(&path, format!("# rotated 2026-12\n{primary}\n\n000102030405060708090a0b0c0d0e0f\n")).unwrap();
        let keys = read_key_file(&path).unwrap();
        assert_eq!(keys, [primary, "000102030405060708090a0b0c0d0e0f".to_owned()]);
        std::fs::write(&path, "AAEC\n").unwrap();
        assert!(format!("{:#}", read_key_file(&path).unwrap_err()).contains("bad key on key line 1"));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(read_key_file(&path).unwrap_err().to_string().contains("holds no key"));
        assert!(read_key_file(&dir.join("missing")).is_err());
        std::fs::write(&path, "  s3cret \n").unwrap();
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

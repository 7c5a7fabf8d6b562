//! The keyring: the primary key encrypts, every key is tried in order to decrypt.
//!
//! Same rules as Go's `Keyring`: keys are 16, 24 or 32 bytes; adding a key that is already there
//! does nothing; the first key added to an empty ring becomes primary; only an installed key can
//! be made primary; the primary key cannot be removed.

use thiserror::Error;

/// A validated AES key of 16, 24 or 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Key(AES-{})", self.0.len() * 8)
    }
}

/// Keyring errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A key whose length is not 16, 24 or 32 bytes.
    #[error("key size must be 16, 24 or 32 bytes, got {0}")]
    BadKeySize(usize),
    /// `use_key` of a key that is not installed.
    #[error("requested key is not in the keyring")]
    NotInstalled,
    /// `remove_key` of the primary key.
    #[error("removing the primary key is not allowed")]
    RemovePrimary,
    /// A keyring needs at least one key.
    #[error("a keyring needs at least one key")]
    Empty,
    /// A key operation on a node that runs without encryption.
    #[error("this node runs without encryption: start it with a keyring to install or use keys")]
    NoKeyring,
}

impl Key {
    /// Validates the length of `bytes`.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyringError> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Key(bytes.to_vec())),
            n => Err(KeyringError::BadKeySize(n)),
        }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An ordered set of keys whose first key is the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    primary: Key,
    secondary: Vec<Key>,
}

impl Keyring {
    /// A keyring whose primary is the first of `keys`; duplicates are dropped.
    pub fn new(keys: Vec<Key>) -> Result<Self, KeyringError> {
        let mut keys = keys.into_iter();
        let primary = keys.next().ok_or(KeyringError::Empty)?;
        Ok(Keyring::with_primary(primary, keys.collect()))
    }

    /// A keyring with `primary` first, then the other `keys`.
    pub fn with_primary(primary: Key, keys: Vec<Key>) -> Self {
        let mut ring = Keyring { primary, secondary: Vec::with_capacity(keys.len()) };
        for k in keys {
            ring.add_key(k);
        }
        ring
    }

    /// Installs a key; a no-op if it is already installed.
    pub fn add_key(&mut self, key: Key) {
        if !self.contains(&key) {
            self.secondary.push(key);
        }
    }

    /// Whether `key` is installed.
    pub fn contains(&self, key: &Key) -> bool {
        self.keys().any(|k| k == key)
    }

    /// Makes an installed key the primary; the old primary stays installed right after it.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        if &self.primary == key {
            return Ok(());
        }
        let i = self.secondary.iter().position(|k| k == key).ok_or(KeyringError::NotInstalled)?;
        let new_primary = self.secondary.remove(i);
        let old = std::mem::replace(&mut self.primary, new_primary);
        self.secondary.insert(0, old);
        Ok(())
    }

    /// Removes a key other than the primary; removing a key that is not installed does nothing
    /// and succeeds, as in Go.
    pub fn remove_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        if &self.primary == key {
            return Err(KeyringError::RemovePrimary);
        }
        self.secondary.retain(|k| k != key);
        Ok(())
    }

    /// All keys, primary first: the order in which decryption tries them.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.primary).chain(self.secondary.iter())
    }

    /// The key used to encrypt.
    pub fn primary(&self) -> &Key {
        &self.primary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> Key {
        Key::new(&[b; 16]).unwrap()
    }

    #[test]
    fn go_rules() {
        assert_eq!(Key::new(&[0; 15]), Err(KeyringError::BadKeySize(15)));
        assert!(Key::new(&[0; 24]).is_ok() && Key::new(&[0; 32]).is_ok());
        assert_eq!(Keyring::new(vec![]), Err(KeyringError::Empty));
        let mut r = Keyring::new(vec![k(1), k(2), k(1)]).unwrap();
        assert_eq!(r.keys().count(), 2);
        assert_eq!(r.primary(), &k(1));
        assert_eq!(r.remove_key(&k(1)), Err(KeyringError::RemovePrimary));
        assert_eq!(r.use_key(&k(3)), Err(KeyringError::NotInstalled));
        r.add_key(k(3));
        r.use_key(&k(3)).unwrap();
        assert_eq!(r.keys().cloned().collect::<Vec<_>>(), vec![k(3), k(1), k(2)]);
        r.remove_key(&k(1)).unwrap();
        assert_eq!(r.keys().cloned().collect::<Vec<_>>(), vec![k(3), k(2)]);
        assert_eq!(r.remove_key(&k(9)), Ok(()), "an unknown key: nothing to do, as in Go");
        assert_eq!(r.keys().count(), 2);
        assert_eq!(format!("{:?}", k(1)), "Key(AES-128)");
    }
}

//! The `hasCrc` wrapper: `[12][crc32-IEEE of the rest, u32 big endian][message]`.
//!
//! Senders add it for peers whose protocol max is at least 5. Receivers recognise it only as the
//! outermost layer after decryption, never inside a compound or a compressed payload.

use super::error::{DecodeError, EncodeError};
use super::messages::MessageType;

/// Bytes the wrapper adds.
pub const CRC_OVERHEAD: usize = 5;

/// Wraps `msg` with its CRC.
pub fn add_crc(msg: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if msg.is_empty() {
        return Err(EncodeError::Empty);
    }
    let mut out = Vec::with_capacity(CRC_OVERHEAD + msg.len());
    out.push(MessageType::HasCrc as u8);
    out.extend_from_slice(&crc32fast::hash(msg).to_be_bytes());
    out.extend_from_slice(msg);
    Ok(out)
}

/// A packet's CRC layer as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcCheck {
    /// The CRC the packet carries.
    pub expected: u32,
    /// The CRC of the bytes that follow it.
    pub actual: u32,
}

impl CrcCheck {
    /// Whether the two agree.
    pub fn ok(&self) -> bool {
        self.expected == self.actual
    }
}

/// If `buf` starts with a hasCrc header (type 12 and at least 5 bytes, as Go checks), returns the
/// check and the wrapped bytes. Otherwise returns `None`.
pub fn split_crc(buf: &[u8]) -> Option<(CrcCheck, &[u8])> {
    match buf {
        [12, a, b, c, d, rest @ ..] => {
            Some((CrcCheck { expected: u32::from_be_bytes([*a, *b, *c, *d]), actual: crc32fast::hash(rest) }, rest))
        }
        _ => None,
    }
}

/// Strips and verifies a hasCrc header if present; a mismatch is an error.
pub fn strip_crc(buf: &[u8]) -> Result<&[u8], DecodeError> {
    match split_crc(buf) {
        Some((check, rest)) if check.ok() => Ok(rest),
        Some((check, _)) => Err(DecodeError::CrcMismatch { expected: check.expected, actual: check.actual }),
        None => Ok(buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_example() {
        assert_eq!(add_crc(&[3, 3, 3, 3]).unwrap(), vec![0x0c, 0x83, 0x93, 0xcc, 0xd2, 3, 3, 3, 3]);
        assert_eq!(add_crc(&[8, 0x68, 0x69]).unwrap(), vec![0x0c, 0x68, 0x18, 0xb0, 0xf9, 8, 0x68, 0x69]);
        assert_eq!(strip_crc(&[0x0c, 0x83, 0x93, 0xcc, 0xd2, 3, 3, 3, 3]).unwrap(), &[3, 3, 3, 3]);
        assert!(matches!(strip_crc(&[0x0c, 0, 0, 0, 0, 3]), Err(DecodeError::CrcMismatch { .. })));
        // Four bytes starting with 12 are not a CRC header (Go needs at least 5).
        assert_eq!(strip_crc(&[12, 1, 2, 3]).unwrap(), &[12, 1, 2, 3]);
    }
}

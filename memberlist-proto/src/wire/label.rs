//! The label header `[0xF4][len: u8][label]`, outermost on packets and at the start of a dialed
//! stream. It keeps clusters that share a network apart: a node drops input whose label is not
//! its own (no header counts as the empty label). With encryption the label is also the GCM
//! additional data, so a wrong label cannot decrypt either.

use super::error::{DecodeError, EncodeError};
use super::messages::MessageType;

/// Longest label allowed.
pub const LABEL_MAX_SIZE: usize = 255;

/// Bytes a label header adds: 0 without a label, else `2 + len`.
pub fn label_overhead(label: &str) -> usize {
    if label.is_empty() {
        0
    } else {
        2 + label.len()
    }
}

/// Checks a label's length.
pub fn validate_label(label: &str) -> Result<(), EncodeError> {
    if label.len() > LABEL_MAX_SIZE {
        Err(EncodeError::LabelTooLong(label.len()))
    } else {
        Ok(())
    }
}

/// Appends the label header for `label` to `out` (nothing for an empty label).
pub fn write_label_header(out: &mut Vec<u8>, label: &str) -> Result<(), EncodeError> {
    validate_label(label)?;
    if !label.is_empty() {
        out.push(MessageType::HasLabel as u8);
        // validate_label keeps the length within a u8.
        out.push(u8::try_from(label.len()).map_err(|_| EncodeError::LabelTooLong(label.len()))?);
        out.extend_from_slice(label.as_bytes());
    }
    Ok(())
}

/// Prefixes `packet` with the label header (Go's `AddLabelHeaderToPacket`).
pub fn add_label_header(packet: &[u8], label: &str) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(label_overhead(label) + packet.len());
    write_label_header(&mut out, label)?;
    out.extend_from_slice(packet);
    Ok(out)
}

/// Splits a label header off `buf` if it starts with one (Go's `RemoveLabelHeaderFromPacket`).
/// Returns the label bytes (empty when there is no header) and the rest. A header with length 0,
/// or one longer than the buffer, is an error.
pub fn split_label(buf: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    match buf {
        [0xF4, rest @ ..] => {
            let (&len, rest) = rest.split_first().ok_or(DecodeError::Truncated { what: "label length" })?;
            if len == 0 {
                return Err(DecodeError::EmptyLabel);
            }
            if rest.len() < usize::from(len) {
                return Err(DecodeError::Truncated { what: "label" });
            }
            Ok(rest.split_at(usize::from(len)))
        }
        _ => Ok((&[], buf)),
    }
}

/// Applies Go's inbound label rule. With `skip_check` set, a label on the input is an error and
/// the configured label is assumed; otherwise the input's label (empty without a header) must be
/// exactly `expected`. Returns the label that applies (used as encryption AAD) and the rest.
pub fn check_label<'a>(buf: &'a [u8], expected: &str, skip_check: bool) -> Result<(Vec<u8>, &'a [u8]), DecodeError> {
    let (found, rest) = split_label(buf)?;
    if skip_check {
        if !found.is_empty() {
            return Err(DecodeError::UnexpectedLabel(String::from_utf8_lossy(found).into_owned()));
        }
        return Ok((expected.as_bytes().to_vec(), rest));
    }
    if found != expected.as_bytes() {
        return Err(DecodeError::LabelMismatch {
            expected: expected.to_owned(),
            found: String::from_utf8_lossy(found).into_owned(),
        });
    }
    Ok((found.to_vec(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_go() {
        assert_eq!(add_label_header(b"something", "foo").unwrap(), b"\xf4\x03foosomething".to_vec());
        assert_eq!(add_label_header(b"x", "").unwrap(), b"x".to_vec());
        assert_eq!(add_label_header(b"x", &"a".repeat(256)), Err(EncodeError::LabelTooLong(256)));
        assert!(add_label_header(b"x", &"a".repeat(255)).is_ok());
        assert_eq!(label_overhead("foo"), 5);
    }

    #[test]
    fn split_and_check() {
        assert_eq!(split_label(b"\xf4\x03foox").unwrap(), (&b"foo"[..], &b"x"[..]));
        assert_eq!(split_label(b"\xf4\x00x"), Err(DecodeError::EmptyLabel));
        assert!(split_label(b"\xf4\x05fo").unwrap_err().is_truncated());
        assert!(split_label(b"\xf4").unwrap_err().is_truncated());
        assert!(check_label(b"\xf4\x03foox", "bar", false).is_err());
        assert!(check_label(b"x", "bar", false).is_err());
        assert_eq!(check_label(b"x", "", false).unwrap().1, b"x");
        assert_eq!(check_label(b"x", "bar", true).unwrap(), (b"bar".to_vec(), &b"x"[..]));
        assert!(check_label(b"\xf4\x03barx", "bar", true).is_err());
    }
}

//! Compound messages: several messages in one packet.
//!
//! Layout: `[7][n: u8][len_1: u16 BE] … [len_n: u16 BE][part_1] … [part_n]`. Each part is a
//! complete message with its own type byte. A count byte limits a compound to 255 parts; longer
//! lists are split into several compounds. When the parts run past the end of the buffer, the
//! complete ones are kept and the rest are counted as truncated, as Go does.

use super::error::{DecodeError, EncodeError};
use super::messages::MessageType;

/// Most parts one compound can hold.
pub const MAX_PARTS: usize = 255;
/// Bytes a compound adds before its parts: the type byte and the count byte.
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// Bytes a compound adds per part: its u16 length.
pub const COMPOUND_OVERHEAD: usize = 2;

/// Builds one compound message from at most [`MAX_PARTS`] parts.
pub fn encode_compound(parts: &[&[u8]]) -> Result<Vec<u8>, EncodeError> {
    let count = u8::try_from(parts.len()).map_err(|_| EncodeError::PartTooLarge(parts.len()))?;
    let body: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(COMPOUND_HEADER_OVERHEAD + COMPOUND_OVERHEAD * parts.len() + body);
    out.push(MessageType::Compound as u8);
    out.push(count);
    for p in parts {
        if p.is_empty() {
            return Err(EncodeError::Empty);
        }
        let len = u16::try_from(p.len()).map_err(|_| EncodeError::PartTooLarge(p.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Builds as many compounds as needed for `parts`, 255 parts each (Go's `makeCompoundMessages`).
pub fn encode_compounds(parts: &[&[u8]]) -> Result<Vec<Vec<u8>>, EncodeError> {
    parts.chunks(MAX_PARTS).map(encode_compound).collect()
}

/// The parts of a compound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundParts<'a> {
    /// The declared length of every part, in order.
    pub lengths: Vec<u16>,
    /// The parts that were complete.
    pub parts: Vec<&'a [u8]>,
    /// How many declared parts did not fit in the buffer.
    pub truncated: usize,
}

/// Splits a compound body (the bytes after the type byte).
pub fn decode_compound(body: &[u8]) -> Result<CompoundParts<'_>, DecodeError> {
    let (&count, rest) = body.split_first().ok_or(DecodeError::Truncated { what: "compound length byte" })?;
    let count = usize::from(count);
    let table_len = count * 2;
    if rest.len() < table_len {
        return Err(DecodeError::CompoundLengths);
    }
    let (table, mut data) = rest.split_at(table_len);
    let lengths: Vec<u16> = table
        .chunks_exact(2)
        .map(|c| match c {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => 0,
        })
        .collect();
    let mut parts = Vec::with_capacity(count);
    let mut truncated = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let len = usize::from(len);
        if data.len() < len {
            truncated = count - i;
            break;
        }
        let (part, tail) = data.split_at(len);
        parts.push(part);
        data = tail;
    }
    Ok(CompoundParts { lengths, parts, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{Message, Ping};

    #[test]
    fn three_pings_round_trip_and_truncate_like_go() {
        let ping = Message::Ping(Ping { seq_no: 100, ..Default::default() }).encode();
        assert_eq!(ping.len(), 15);
        let c = encode_compound(&[&ping, &ping, &ping]).unwrap();
        assert_eq!(c.len(), 3 * 15 + 3 * 2 + 2);
        let d = decode_compound(&c[1..]).unwrap();
        assert_eq!(d.parts.len(), 3);
        assert_eq!(d.truncated, 0);
        // Go's test: keep 37 bytes after the type byte -> two parts, one truncated.
        let d = decode_compound(&c[1..38]).unwrap();
        assert_eq!((d.parts.len(), d.truncated), (2, 1));
        assert_eq!(decode_compound(&[0x80]), Err(DecodeError::CompoundLengths));
    }

    #[test]
    fn long_lists_split_into_255_part_compounds() {
        let ping = Message::Ping(Ping::default()).encode();
        let parts: Vec<&[u8]> = (0..600).map(|_| ping.as_slice()).collect();
        let cs = encode_compounds(&parts).unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs.iter().map(|c| usize::from(c[1])).collect::<Vec<_>>(), vec![255, 255, 90]);
    }

    #[test]
    fn empty_parts_are_never_sent() {
        assert_eq!(encode_compound(&[b"".as_slice()]), Err(EncodeError::Empty));
    }
}

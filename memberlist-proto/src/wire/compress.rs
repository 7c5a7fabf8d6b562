//! The compress wrapper: `[9]` followed by msgpack `compress{Algo, Buf}`, where `Buf` is the
//! whole inner message, type byte included, compressed with the algorithm `Algo` names:
//!
//! | `Algo` | algorithm | who writes it |
//! | --- | --- | --- |
//! | 0 | Go's LZW (LSB order, 8-bit literals) | HashiCorp memberlist, and Grafana's fork by default |
//! | 1 | snappy, raw block format (no framing) | Grafana's fork (dskit: Mimir, Loki, Tempo) with `CompressionAlgorithm: snappy` |
//!
//! Receivers decode both, whatever they send, as the fork does. Packets are compressed only
//! when that makes them strictly smaller; streams are always compressed when compression is on.
//! Decompression is limited in size — for snappy the length the block claims is checked
//! before anything is allocated — and an empty result is an error (it crashes old Go peers, so
//! it is never produced either).

use super::error::DecodeError;
use super::lzw;
use super::messages::{Compress, MessageType};
use super::msgpack::Reader;

/// Go's LZW.
pub const LZW_ALGORITHM: u8 = 0;
/// Snappy, raw block format (Grafana's memberlist fork).
pub const SNAPPY_ALGORITHM: u8 = 1;

/// The algorithm a node compresses with (Grafana's fork's `Config.CompressionAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// LZW, understood by every memberlist.
    #[default]
    Lzw,
    /// Snappy: only nodes of Grafana's fork (and memberlist-rs) decode it.
    Snappy,
}

impl Compression {
    /// The `Algo` number on the wire.
    pub fn algo(self) -> u8 {
        match self {
            Compression::Lzw => LZW_ALGORITHM,
            Compression::Snappy => SNAPPY_ALGORITHM,
        }
    }

    /// Compresses `msg` with this algorithm.
    pub fn compress(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Compression::Lzw => lzw::compress(msg),
            // Encoding into a vector cannot fail except for inputs over 4 GiB, far beyond
            // every limit; an empty block then fails to decode on the receiving side.
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(msg).unwrap_or_default(),
        }
    }
}

/// Compresses a whole message into an LZW compress message.
pub fn compress_message(msg: &[u8]) -> Vec<u8> {
    compress_message_with(msg, Compression::Lzw)
}

/// Compresses a whole message into a compress message with `algorithm`.
pub fn compress_message_with(msg: &[u8], algorithm: Compression) -> Vec<u8> {
    let c = Compress { algo: algorithm.algo(), buf: algorithm.compress(msg) };
    let mut out = Vec::with_capacity(c.buf.len() + 16);
    out.push(MessageType::Compress as u8);
    c.encode_into(&mut out);
    out
}

/// Compresses `msg` only if the result is strictly smaller, as Go does for packets.
pub fn compress_if_smaller(msg: Vec<u8>) -> Vec<u8> {
    compress_if_smaller_with(msg, Compression::Lzw)
}

/// [`compress_if_smaller`] with `algorithm`.
pub fn compress_if_smaller_with(msg: Vec<u8>, algorithm: Compression) -> Vec<u8> {
    let c = compress_message_with(&msg, algorithm);
    if c.len() < msg.len() {
        c
    } else {
        msg
    }
}

/// Reads a compress body (after the type byte) and decompresses it within `limit` bytes.
/// Returns the compress struct and the decompressed message.
pub fn decompress_body(r: &mut Reader<'_>, limit: usize) -> Result<(Compress, Vec<u8>), DecodeError> {
    let c = Compress::decode(r)?;
    let out = decompress(&c, limit)?;
    Ok((c, out))
}

/// Decompresses an already decoded compress struct within `limit` bytes.
pub fn decompress(c: &Compress, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let out = match c.algo {
        LZW_ALGORITHM => lzw::decompress(&c.buf, limit)?,
        SNAPPY_ALGORITHM => snappy_decompress(&c.buf, limit)?,
        other => return Err(DecodeError::UnknownCompression(other)),
    };
    if out.is_empty() {
        return Err(DecodeError::EmptyDecompressed);
    }
    Ok(out)
}

/// A raw snappy block, refused before allocating when it claims more than `limit` bytes.
fn snappy_decompress(block: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let claimed = snap::raw::decompress_len(block).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if claimed > limit {
        let value = i64::try_from(claimed).unwrap_or(i64::MAX);
        return Err(DecodeError::LimitExceeded { what: "snappy-decompressed message", value, limit: limit as u64 });
    }
    snap::raw::Decoder::new().decompress_vec(block).map_err(|e| DecodeError::Snappy(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let msg = [b"\x08".as_slice(), &b"hello ".repeat(40)].concat();
        let c = compress_message(&msg);
        assert_eq!(c[0], 9);
        let (_, out) = decompress_body(&mut Reader::new(&c[1..]), 1000).unwrap();
        assert_eq!(out, msg);
        assert!(compress_if_smaller(msg.clone()).len() < msg.len());
        // Tiny messages stay as they are.
        assert_eq!(compress_if_smaller(b"\x08hi".to_vec()), b"\x08hi".to_vec());
        let bad = Compress { algo: 2, buf: vec![] };
        assert_eq!(decompress(&bad, 10), Err(DecodeError::UnknownCompression(2)));
        let empty = Compress { algo: 0, buf: lzw::compress(b"") };
        assert_eq!(decompress(&empty, 10), Err(DecodeError::EmptyDecompressed));
    }

    #[test]
    fn snappy_round_trip_limits_and_hostile_blocks() {
        let msg = [b"\x08".as_slice(), &b"snappy ".repeat(50)].concat();
        let c = compress_message_with(&msg, Compression::Snappy);
        let (cm, out) = decompress_body(&mut Reader::new(&c[1..]), 10_000).unwrap();
        assert_eq!((cm.algo, out), (SNAPPY_ALGORITHM, msg.clone()));
        // The claimed length is checked against the limit before anything is allocated.
        let err = decompress(&cm, 100).unwrap_err();
        assert!(matches!(err, DecodeError::LimitExceeded { value: 351, .. }), "{err:?}");
        // A block claiming 4 GiB in five bytes, garbage, a truncated block, an empty message.
        let huge = Compress { algo: 1, buf: vec![0xff, 0xff, 0xff, 0xff, 0x0f] };
        assert!(matches!(decompress(&huge, 1 << 20), Err(DecodeError::LimitExceeded { .. })));
        for buf in [vec![0x80], vec![0x05, 0x00], vec![0x10, 0xf0, 0xff, 0xff, 0xff]] {
            assert!(decompress(&Compress { algo: 1, buf }, 1000).is_err());
        }
        let empty = Compress { algo: 1, buf: Compression::Snappy.compress(b"") };
        assert_eq!(decompress(&empty, 10), Err(DecodeError::EmptyDecompressed));
        assert!(compress_if_smaller_with(msg.clone(), Compression::Snappy).len() < msg.len());
    }
}

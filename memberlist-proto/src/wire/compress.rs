//! The compress wrapper: `[9]` followed by msgpack `compress{Algo: 0, Buf: LZW(message)}`. The
//! LZW input is the whole inner message, type byte included.
//!
//! Packets are compressed only when that makes them strictly smaller; streams are always
//! compressed when compression is on. Decompression is limited in size, and an empty result is
//! an error (it crashes old Go peers, so it is never produced either).

use super::error::DecodeError;
use super::lzw;
use super::messages::{Compress, MessageType};
use super::msgpack::Reader;

/// The only algorithm defined: LZW.
pub const LZW_ALGORITHM: u8 = 0;

/// Compresses a whole message into a compress message.
pub fn compress_message(msg: &[u8]) -> Vec<u8> {
    let c = Compress { algo: LZW_ALGORITHM, buf: lzw::compress(msg) };
    let mut out = Vec::with_capacity(c.buf.len() + 16);
    out.push(MessageType::Compress as u8);
    c.encode_into(&mut out);
    out
}

/// Compresses `msg` only if the result is strictly smaller, as Go does for packets.
pub fn compress_if_smaller(msg: Vec<u8>) -> Vec<u8> {
    let c = compress_message(&msg);
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
    if c.algo != LZW_ALGORITHM {
        return Err(DecodeError::UnknownCompression(c.algo));
    }
    let out = lzw::decompress(&c.buf, limit)?;
    if out.is_empty() {
        return Err(DecodeError::EmptyDecompressed);
    }
    Ok(out)
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
        let bad = Compress { algo: 1, buf: vec![] };
        assert_eq!(decompress(&bad, 10), Err(DecodeError::UnknownCompression(1)));
        let empty = Compress { algo: 0, buf: lzw::compress(b"") };
        assert_eq!(decompress(&empty, 10), Err(DecodeError::EmptyDecompressed));
    }
}

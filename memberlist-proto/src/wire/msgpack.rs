//! The msgpack dialect Go memberlist speaks.
//!
//! Go memberlist encodes every message body with a zero-valued `codec.MsgpackHandle` from
//! hashicorp/go-msgpack. That handle writes:
//!
//! * structs as maps whose keys are the Go field names, in byte-wise sorted order, with
//!   `omitempty` fields left out when they are zero;
//! * strings **and** byte slices in the old "raw" family: fixstr (`0xa0 | len`) below 32 bytes,
//!   str16 (`0xda`) below 65 536 bytes, str32 (`0xdb`) beyond — never str8 (`0xd9`) or bin;
//! * a nil byte slice as nil (`0xc0`);
//! * unsigned integers at their minimal width;
//! * Go `int` values above 127 either unsigned (`0xcc`/`0xcd`/`0xce`, go-msgpack 0.5, memberlist up
//!   to v0.5.0) or signed (`0xd1`/`0xd2`/`0xd3`, go-msgpack v2, memberlist v0.5.1 and later).
//!
//! The [`Writer`] emits exactly that. The [`Reader`] is as lenient as Go's decoder: str8 and bin
//! are accepted wherever bytes or strings are expected, nil reads as empty, integers of any width
//! and signedness are accepted when the value fits the field, and unknown keys are skipped.
//! The primitives (markers, integer and map headers) come from the `rmp` crate; the struct
//! mapping lives in [`super::messages`].

use rmp::Marker;

use super::error::DecodeError;

/// How a Go `int` field above 127 is written. Both forms are always accepted when reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntEncoding {
    /// go-msgpack v2 (memberlist ≥ v0.5.1): `0xd1` int16, `0xd2` int32, `0xd3` int64.
    #[default]
    Signed,
    /// go-msgpack 0.5 (memberlist ≤ v0.5.0, Debian's 0.2.2): `0xcc` u8, `0xcd` u16, `0xce` u32.
    Unsigned,
}

/// Deepest nesting of arrays and maps the reader will skip over inside an unknown field.
pub const MAX_SKIP_DEPTH: usize = 32;

/// Writes Go-dialect msgpack into a byte vector. Writing to a `Vec` cannot fail.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// A map header for `len` entries (fixmap, map16 or map32).
    pub fn map_len(&mut self, len: u32) {
        // Writing into a Vec never fails.
        let _ = rmp::encode::write_map_len(self.out, len);
    }

    /// A raw-family string header: fixstr, str16 or str32 — never str8.
    fn raw_len(&mut self, len: usize) {
        if len < 32 {
            // `len < 32` so the cast cannot truncate.
            self.out.push(0xa0 | len as u8);
        } else if let Ok(len16) = u16::try_from(len) {
            self.out.push(0xda);
            self.out.extend_from_slice(&len16.to_be_bytes());
        } else {
            // Callers never pass more than u32::MAX bytes: every wire limit is far below it.
            let len32 = u32::try_from(len).unwrap_or(u32::MAX);
            self.out.push(0xdb);
            self.out.extend_from_slice(&len32.to_be_bytes());
        }
    }

    /// A Go `string`.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A Go `[]byte` that is not nil.
    pub fn bytes(&mut self, b: &[u8]) {
        self.raw_len(b.len());
        self.out.extend_from_slice(b);
    }

    /// A Go `[]byte` that may be nil: `None` is written as msgpack nil.
    pub fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bytes(b),
            None => self.nil(),
        }
    }

    /// A Go `[]byte` where an empty slice stands for nil (addresses, targets).
    pub fn bytes_or_nil(&mut self, b: &[u8]) {
        if b.is_empty() {
            self.nil()
        } else {
            self.bytes(b)
        }
    }

    /// msgpack nil.
    pub fn nil(&mut self) {
        let _ = rmp::encode::write_nil(self.out);
    }

    /// A bool.
    pub fn bool(&mut self, v: bool) {
        let _ = rmp::encode::write_bool(self.out, v);
    }

    /// An unsigned Go integer at minimal width.
    pub fn uint(&mut self, v: u64) {
        let _ = rmp::encode::write_uint(self.out, v);
    }

    /// A signed Go `int`, with positive values above 127 written per `style`.
    pub fn int(&mut self, v: i64, style: IntEncoding) {
        match style {
            IntEncoding::Unsigned => {
                let _ = rmp::encode::write_sint(self.out, v);
            }
            IntEncoding::Signed if v > 127 => {
                if let Ok(v16) = i16::try_from(v) {
                    let _ = rmp::encode::write_i16(self.out, v16);
                } else if let Ok(v32) = i32::try_from(v) {
                    let _ = rmp::encode::write_i32(self.out, v32);
                } else {
                    let _ = rmp::encode::write_i64(self.out, v);
                }
            }
            IntEncoding::Signed => {
                let _ = rmp::encode::write_sint(self.out, v);
            }
        }
    }

    /// A map key (a Go field name).
    pub fn key(&mut self, k: &str) {
        self.str(k);
    }
}

/// Reads Go-dialect msgpack from a byte slice, leniently.
///
/// Every read checks the remaining length first; running out of input is
/// [`DecodeError::Truncated`], which the incremental stream decoder treats as "wait for more".
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, starting at its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not yet consumed.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// The next `n` raw bytes (data that follows a msgpack header without framing of its own).
    pub fn raw(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.take(n, what)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated { what })?;
        let slice = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated { what })?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated { what })?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        self.take(N, what)?.try_into().map_err(|_| DecodeError::Truncated { what })
    }

    fn be_u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_be_bytes)
    }

    fn be_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn be_u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_be_bytes)
    }

    fn marker(&mut self, what: &'static str) -> Result<Marker, DecodeError> {
        Ok(Marker::from_u8(self.byte(what)?))
    }

    /// The entry count of a map header. nil reads as an empty map, as in Go.
    pub fn map_len(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        match self.marker(what)? {
            Marker::FixMap(n) => Ok(u32::from(n)),
            Marker::Map16 => Ok(u32::from(self.be_u16(what)?)),
            Marker::Map32 => self.be_u32(what),
            Marker::Null => Ok(0),
            m => Err(Self::wrong_type(m, what, "a map")),
        }
    }

    fn wrong_type(m: Marker, what: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::WrongType { field: what, expected, found: m.to_u8() }
    }

    /// If the next value is an array, consumes its header and returns its length.
    pub fn array_len_if_array(&mut self, what: &'static str) -> Result<Option<u32>, DecodeError> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Err(DecodeError::Truncated { what });
        };
        let n = match Marker::from_u8(b) {
            Marker::FixArray(n) => {
                self.pos += 1;
                u32::from(n)
            }
            Marker::Array16 => {
                self.pos += 1;
                u32::from(self.be_u16(what)?)
            }
            Marker::Array32 => {
                self.pos += 1;
                self.be_u32(what)?
            }
            _ => return Ok(None),
        };
        Ok(Some(n))
    }

    /// A byte string: any of fixstr, str8, str16, str32, bin8, bin16, bin32, or nil (empty).
    /// Returns `None` for nil so that callers can keep Go's nil / empty distinction.
    pub fn opt_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        let at = self.pos;
        let len = match self.marker(what)? {
            Marker::Null => return Ok(None),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => usize::from(self.byte(what)?),
            Marker::Str16 | Marker::Bin16 => usize::from(self.be_u16(what)?),
            Marker::Str32 | Marker::Bin32 => self.be_u32(what)? as usize,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                // go-msgpack v2 also accepts an array of small integers for a []byte.
                self.pos = at;
                return self.byte_array(what).map(Some);
            }
            m => return Err(Self::wrong_type(m, what, "a string or bytes")),
        };
        self.take(len, what).map(Some)
    }

    fn byte_array(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        // An array form cannot be borrowed as a slice; it is accepted only when every element is
        // a positive fixint, which is then exactly its byte value: we re-read the elements.
        let n = match self.marker(what)? {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => usize::from(self.be_u16(what)?),
            Marker::Array32 => self.be_u32(what)? as usize,
            m => return Err(Self::wrong_type(m, what, "an array")),
        };
        let start = self.pos;
        let elems = self.take(n, what)?;
        if elems.iter().all(|b| *b < 0x80) {
            Ok(self.buf.get(start..start + n).unwrap_or_default())
        } else {
            Err(DecodeError::WrongType { field: what, expected: "an array of small bytes", found: 0x90 })
        }
    }

    /// A byte string where nil reads as empty.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        Ok(self.opt_bytes(what)?.unwrap_or_default())
    }

    /// A UTF-8 string (Go `string`); nil reads as "".
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8 { field: what })
    }

    /// A bool; nil reads as false.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.marker(what)? {
            Marker::True => Ok(true),
            Marker::False | Marker::Null => Ok(false),
            m => Err(Self::wrong_type(m, what, "a bool")),
        }
    }

    /// Any msgpack integer, as i128 so that every u64 and i64 fits; nil reads as 0.
    fn integer(&mut self, what: &'static str) -> Result<i128, DecodeError> {
        Ok(match self.marker(what)? {
            Marker::FixPos(v) => i128::from(v),
            Marker::FixNeg(v) => i128::from(v),
            Marker::Null => 0,
            Marker::U8 => i128::from(self.byte(what)?),
            Marker::U16 => i128::from(self.be_u16(what)?),
            Marker::U32 => i128::from(self.be_u32(what)?),
            Marker::U64 => i128::from(self.be_u64(what)?),
            Marker::I8 => i128::from(self.byte(what)? as i8),
            Marker::I16 => i128::from(self.be_u16(what)? as i16),
            Marker::I32 => i128::from(self.be_u32(what)? as i32),
            Marker::I64 => i128::from(self.be_u64(what)? as i64),
            m => return Err(Self::wrong_type(m, what, "an integer")),
        })
    }

    /// An integer that must fit `T`, whatever its encoded width or signedness.
    pub fn int<T: TryFrom<i128>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        let v = self.integer(what)?;
        T::try_from(v).map_err(|_| DecodeError::IntegerOutOfRange { field: what })
    }

    /// Skips one value of any type, nested at most [`MAX_SKIP_DEPTH`] deep.
    pub fn skip(&mut self, what: &'static str) -> Result<(), DecodeError> {
        self.skip_depth(what, 0)
    }

    fn skip_depth(&mut self, what: &'static str, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_SKIP_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let (items, fixed): (u64, usize) = match self.marker(what)? {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, 0),
            Marker::U8 | Marker::I8 => (0, 1),
            Marker::U16 | Marker::I16 => (0, 2),
            Marker::U32 | Marker::I32 | Marker::F32 => (0, 4),
            Marker::U64 | Marker::I64 | Marker::F64 => (0, 8),
            Marker::FixStr(n) => (0, usize::from(n)),
            Marker::Str8 | Marker::Bin8 => (0, usize::from(self.byte(what)?)),
            Marker::Str16 | Marker::Bin16 => (0, usize::from(self.be_u16(what)?)),
            Marker::Str32 | Marker::Bin32 => (0, self.be_u32(what)? as usize),
            Marker::FixArray(n) => (u64::from(n), 0),
            Marker::Array16 => (u64::from(self.be_u16(what)?), 0),
            Marker::Array32 => (u64::from(self.be_u32(what)?), 0),
            Marker::FixMap(n) => (2 * u64::from(n), 0),
            Marker::Map16 => (2 * u64::from(self.be_u16(what)?), 0),
            Marker::Map32 => (2 * u64::from(self.be_u32(what)?), 0),
            Marker::FixExt1 => (0, 2),
            Marker::FixExt2 => (0, 3),
            Marker::FixExt4 => (0, 5),
            Marker::FixExt8 => (0, 9),
            Marker::FixExt16 => (0, 17),
            Marker::Ext8 => (0, usize::from(self.byte(what)?) + 1),
            Marker::Ext16 => (0, usize::from(self.be_u16(what)?) + 1),
            Marker::Ext32 => (0, self.be_u32(what)? as usize + 1),
            Marker::Reserved => {
                return Err(DecodeError::WrongType { field: what, expected: "a msgpack value", found: 0xc1 })
            }
        };
        self.take(fixed, what)?;
        for _ in 0..items {
            // Every element takes at least one byte, so a huge count fails on truncation quickly.
            self.skip_depth(what, depth + 1)?;
        }
        Ok(())
    }
}

/// Visits the fields of a Go struct, handing each field name and the reader positioned at its
/// value to `field`, which returns `Ok(false)` for names it does not know (their values are then
/// skipped). Structs normally arrive as maps keyed by field name, in any order; like Go's decoder
/// this also accepts the array form, whose elements are the fields in Go's declaration order
/// (`declared`).
pub fn read_struct<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    declared: &[&'static [u8]],
    mut field: impl FnMut(&[u8], &mut Reader<'a>) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    if let Some(n) = r.array_len_if_array(what)? {
        for i in 0..n as usize {
            let known = match declared.get(i) {
                Some(name) => field(name, r)?,
                None => false,
            };
            if !known {
                r.skip(what)?;
            }
        }
        return Ok(());
    }
    let n = r.map_len(what)?;
    for _ in 0..n {
        let key = r.bytes(what)?;
        if !field(key, r)? {
            r.skip(what)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut Writer::new(&mut v));
        v
    }

    #[test]
    fn strings_use_the_raw_family_only() {
        assert_eq!(enc(|w| w.str("abc"))[0], 0xa3);
        let s32 = "x".repeat(32);
        assert_eq!(&enc(|w| w.str(&s32))[..3], &[0xda, 0x00, 0x20]);
        let big = vec![7u8; 70_000];
        assert_eq!(&enc(|w| w.bytes(&big))[..5], &[0xdb, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(enc(|w| w.opt_bytes(None)), vec![0xc0]);
        assert_eq!(enc(|w| w.opt_bytes(Some(&[]))), vec![0xa0]);
    }

    #[test]
    fn ints_follow_both_go_codecs() {
        assert_eq!(enc(|w| w.int(200, IntEncoding::Signed)), vec![0xd1, 0x00, 0xc8]);
        assert_eq!(enc(|w| w.int(200, IntEncoding::Unsigned)), vec![0xcc, 0xc8]);
        assert_eq!(enc(|w| w.int(70_000, IntEncoding::Signed)), vec![0xd2, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|w| w.int(70_000, IntEncoding::Unsigned)), vec![0xce, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|w| w.int(5, IntEncoding::Signed)), vec![5]);
        assert_eq!(enc(|w| w.int(-1, IntEncoding::Signed)), vec![0xff]);
        assert_eq!(enc(|w| w.uint(7946)), vec![0xcd, 0x1f, 0x0a]);
        assert_eq!(enc(|w| w.uint(127)), vec![0x7f]);
        assert_eq!(enc(|w| w.uint(128)), vec![0xcc, 0x80]);
    }

    #[test]
    fn reader_is_lenient_like_go() {
        // str8 and bin8 are accepted for bytes and strings.
        assert_eq!(Reader::new(&[0xd9, 2, b'h', b'i']).string("s").unwrap(), "hi");
        assert_eq!(Reader::new(&[0xc4, 1, 9]).bytes("b").unwrap(), &[9]);
        // nil reads as empty / zero / false.
        assert_eq!(Reader::new(&[0xc0]).string("s").unwrap(), "");
        assert_eq!(Reader::new(&[0xc0]).int::<u32>("i").unwrap(), 0);
        assert!(!Reader::new(&[0xc0]).bool("b").unwrap());
        // Any width that fits.
        assert_eq!(Reader::new(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 9]).int::<u16>("i").unwrap(), 9);
        assert_eq!(Reader::new(&[0xd1, 0, 0xc8]).int::<u32>("i").unwrap(), 200);
        assert!(matches!(Reader::new(&[0xce, 0, 1, 0, 0]).int::<u16>("i"), Err(DecodeError::IntegerOutOfRange { .. })));
        assert!(matches!(Reader::new(&[0xff]).int::<u32>("i"), Err(DecodeError::IntegerOutOfRange { .. })));
        // Array of small ints as []byte (go-msgpack v2).
        assert_eq!(Reader::new(&[0x92, 1, 2]).bytes("b").unwrap(), &[1, 2]);
    }

    #[test]
    fn skip_handles_nesting_and_truncation() {
        let mut r = Reader::new(&[0x82, 0xa1, b'a', 0x91, 0x01, 0xa1, b'b', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x05]);
        r.skip("x").unwrap();
        assert_eq!(r.rest(), &[0x05]);
        assert!(matches!(Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff]).skip("x"), Err(DecodeError::Truncated { .. })));
        assert!(matches!(Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip("x"), Err(DecodeError::Truncated { .. })));
        let deep = vec![0x91u8; 100];
        assert!(matches!(Reader::new(&deep).skip("x"), Err(DecodeError::TooDeep)));
    }
}

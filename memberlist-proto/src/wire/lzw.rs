//! LZW as Go's `compress/lzw` writes and reads it with `LSB` bit order and literal width 8
//! (the GIF variant), which is what memberlist's compress messages carry.
//!
//! Codes 0–255 are literals, 256 is *clear*, 257 is *end of data*, and new table entries start
//! at 258. Codes are packed least-significant bit first. The code width starts at 9 bits and
//! grows by one as soon as the next code to assign reaches `1 << width`, up to 12 bits. The
//! encoder starts every stream with a clear code, emits a clear code and resets its table when
//! the next code would be 4095, and always ends with the end code followed by zero padding bits.
//! The decoder refuses a stream that ends without the end code, and any code above the next one
//! to be assigned.

use std::cell::RefCell;

use super::error::DecodeError;

const LIT_WIDTH: u32 = 8;
const CLEAR: u16 = 1 << LIT_WIDTH;
const EOF: u16 = CLEAR + 1;
const MAX_WIDTH: u32 = 12;
/// The encoder resets once the next code reaches this value (Go's `maxCode`).
const MAX_CODE: u16 = (1 << MAX_WIDTH) - 1;

struct BitWriter {
    out: Vec<u8>,
    bits: u32,
    n_bits: u32,
}

impl BitWriter {
    fn write(&mut self, code: u16, width: u32) {
        self.bits |= u32::from(code) << self.n_bits;
        self.n_bits += width;
        while self.n_bits >= 8 {
            // Only the low byte is kept on purpose.
            self.out.push((self.bits & 0xff) as u8);
            self.bits >>= 8;
            self.n_bits -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n_bits > 0 {
            self.out.push((self.bits & 0xff) as u8);
        }
        self.out
    }
}

/// The encoder's string table: an open-addressing hash table from (prefix code, next byte) to
/// code. A slot holds `key << 12 | code` with `key = prefix << 8 | byte` (20 bits); 0 is empty
/// (codes start at 258). The table is sized to the input — at least twice the number of codes
/// the input can create — so that a packet of 1 KiB works in an 8 KiB table that stays in the
/// L1 cache, and a reset clears only that much.
struct Table {
    slots: Vec<u32>,
    mask: usize,
}

/// Enough slots for the 4096 codes of a full table at half load.
const MAX_SLOTS: usize = 8192;
thread_local! {
    /// One table per thread, reused across packets.
    static TABLE: RefCell<Option<Table>> = const { RefCell::new(None) };
    /// The decoder's table, reused the same way (entries are always written before they are
    /// read, so it needs no clearing).
    static DECODER: RefCell<Option<Box<DecoderTables>>> = const { RefCell::new(None) };
}

/// Where each code's expansion sits in the output: every multi-byte entry is the previous
/// code's expansion plus the first byte of the code that followed it, and those bytes are
/// already contiguous in the output, so an entry is just an offset and a length.
struct DecoderTables {
    start: [u32; 4096],
    len: [u16; 4096],
}

impl Table {
    fn new() -> Self {
        Table { slots: vec![0; MAX_SLOTS], mask: MAX_SLOTS - 1 }
    }

    /// Sizes the table for `input_len` bytes and forgets every string.
    fn prepare(&mut self, input_len: usize) {
        let slots = (input_len.min(4096) * 2).next_power_of_two().clamp(512, MAX_SLOTS);
        self.mask = slots - 1;
        self.clear();
    }

    /// Forgets every string.
    fn clear(&mut self) {
        if let Some(used) = self.slots.get_mut(..=self.mask) {
            used.fill(0);
        }
    }

    /// Fibonacci hashing of the 20-bit key, then linear probing.
    fn home(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9e37_79b1) >> 16) as usize & self.mask
    }

    #[allow(clippy::indexing_slicing)] // indices are masked to the table size
    fn find(&self, prefix: u16, byte: u8) -> Option<u16> {
        let key = u32::from(prefix) << 8 | u32::from(byte);
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if slot >> 12 == key {
                return Some((slot & 0xfff) as u16);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[allow(clippy::indexing_slicing)] // indices are masked to the table size
    fn insert(&mut self, prefix: u16, byte: u8, code: u16) {
        let key = u32::from(prefix) << 8 | u32::from(byte);
        let mut i = self.home(key);
        // Fewer codes than half the slots are ever live, so a free slot is always found.
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = key << 12 | u32::from(code & 0xfff);
    }
}

/// Compresses `data` exactly as Go's `lzw.NewWriter(w, lzw.LSB, 8)` does.
pub fn compress(data: &[u8]) -> Vec<u8> {
    TABLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let table = slot.get_or_insert_with(Table::new);
        table.prepare(data.len());
        compress_with(data, table)
    })
}

fn compress_with(data: &[u8], table: &mut Table) -> Vec<u8> {
    let mut w = BitWriter { out: Vec::with_capacity(data.len() / 2 + 4), bits: 0, n_bits: 0 };
    let mut width = LIT_WIDTH + 1;
    // `hi` is the last assigned code; `overflow` the value at which the width grows.
    let mut hi = EOF;
    let mut overflow: u16 = 1 << (LIT_WIDTH + 1);

    w.write(CLEAR, width);
    let Some((&first, rest)) = data.split_first() else {
        w.write(EOF, width);
        return w.finish();
    };
    let mut code = u16::from(first);
    for &byte in rest {
        if let Some(next) = table.find(code, byte) {
            code = next;
            continue;
        }
        w.write(code, width);
        let prefix_code = code;
        code = u16::from(byte);
        hi += 1;
        if hi == overflow {
            width += 1;
            overflow <<= 1;
        }
        if hi == MAX_CODE {
            w.write(CLEAR, width);
            width = LIT_WIDTH + 1;
            hi = EOF;
            overflow = 1 << (LIT_WIDTH + 1);
            table.clear();
            continue;
        }
        table.insert(prefix_code, byte, hi);
    }
    w.write(code, width);
    hi += 1;
    if hi == overflow {
        width += 1;
    }
    if hi == MAX_CODE {
        // Go emits the reset clear code even right before the end code.
        w.write(CLEAR, width);
        width = LIT_WIDTH + 1;
    }
    w.write(EOF, width);
    w.finish()
}

/// Decompresses Go `lzw` (LSB, literal width 8) data, producing at most `limit` bytes.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let tables = slot.get_or_insert_with(|| Box::new(DecoderTables { start: [0; 4096], len: [0; 4096] }));
        decompress_with(data, limit, tables)
    })
}

fn decompress_with(data: &[u8], limit: usize, t: &mut DecoderTables) -> Result<Vec<u8>, DecodeError> {
    let too_big = |size: usize| DecodeError::LimitExceeded {
        what: "decompressed size",
        value: i64::try_from(size).unwrap_or(i64::MAX),
        limit: limit as u64,
    };
    let bad = || DecodeError::Lzw("invalid code");
    let mut out: Vec<u8> = Vec::with_capacity(data.len().saturating_mul(3).min(limit));
    let mut width = LIT_WIDTH + 1;
    let mut hi = EOF; // next code to assign, minus one until the first code after a clear
    let mut overflow: u16 = 1 << width;
    // The previous code's expansion: where it starts in `out` and how long it is.
    let mut last: Option<(usize, usize)> = None;
    let mut bits: u32 = 0;
    let mut n_bits: u32 = 0;
    let mut input = data.iter();

    loop {
        while n_bits < width {
            let Some(&b) = input.next() else {
                return Err(DecodeError::Lzw("unexpected end of data (no end code)"));
            };
            bits |= u32::from(b) << n_bits;
            n_bits += 8;
        }
        let code = (bits & ((1 << width) - 1)) as u16;
        bits >>= width;
        n_bits -= width;

        if code == CLEAR {
            width = LIT_WIDTH + 1;
            hi = EOF;
            overflow = 1 << width;
            last = None;
            continue;
        }
        if code == EOF {
            return Ok(out);
        }
        if code > hi {
            return Err(bad());
        }
        let pos = out.len();
        if code < CLEAR {
            if pos + 1 > limit {
                return Err(too_big(pos + 1));
            }
            out.push(code as u8);
        } else if code == hi {
            // Not in the table yet (KwKwK): the previous expansion plus its own first byte.
            let (p, l) = last.ok_or_else(bad)?;
            if pos + l + 1 > limit {
                return Err(too_big(pos + l + 1));
            }
            out.extend_from_within(p..p + l);
            let first = *out.get(p).ok_or_else(bad)?;
            out.push(first);
        } else {
            let i = usize::from(code);
            let (p, l) = (*t.start.get(i).ok_or_else(bad)? as usize, usize::from(*t.len.get(i).ok_or_else(bad)?));
            if p + l > pos {
                return Err(bad());
            }
            if pos + l > limit {
                return Err(too_big(pos + l));
            }
            out.extend_from_within(p..p + l);
        }
        if let Some((p, l)) = last {
            // The new entry: the previous expansion and the first byte of this one, which
            // directly follows it in `out`.
            let i = usize::from(hi);
            if let (Some(s), Some(n)) = (t.start.get_mut(i), t.len.get_mut(i)) {
                *s = u32::try_from(p).map_err(|_| too_big(p))?;
                *n = u16::try_from(l + 1).map_err(|_| bad())?;
            }
        }
        last = Some((pos, out.len() - pos));
        hi += 1;
        if hi >= overflow {
            if width == MAX_WIDTH {
                last = None;
                hi -= 1;
            } else {
                width += 1;
                overflow = 1 << width;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_output() {
        assert_eq!(compress(b""), vec![0x00, 0x03, 0x02]);
        assert_eq!(compress(b"hello"), vec![0x00, 0xd1, 0x94, 0x61, 0xc3, 0xe6, 0x4d, 0x40]);
        assert_eq!(decompress(&[0x00, 0xd1, 0x94, 0x61, 0xc3, 0xe6, 0x4d, 0x40], 100).unwrap(), b"hello");
    }

    #[test]
    fn round_trips_through_table_resets() {
        // Enough varied input to pass 4095 codes several times.
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push(if i % 3 == 0 { (x >> 16) as u8 } else { b'a' + (x >> 28) as u8 });
        }
        let c = compress(&data);
        assert_eq!(decompress(&c, data.len()).unwrap(), data);
        assert!(matches!(decompress(&c, data.len() - 1), Err(DecodeError::LimitExceeded { .. })));
    }

    /// Expansions shorter and longer than the 16-byte block copy, at every output size from
    /// empty to a few KiB, and at the exact limit.
    #[test]
    fn round_trips_short_and_long_expansions() {
        let mut x: u32 = 7;
        for len in (0..300).chain([1000, 4095, 4096, 4097, 9000]) {
            for kind in 0..3 {
                let data: Vec<u8> = (0..len)
                    .map(|i| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        match kind {
                            0 => (x >> 24) as u8,                  // nearly incompressible
                            1 => b'a' + (x >> 30) as u8,           // short matches
                            _ => (i % 37) as u8 | (i / 512) as u8, // long runs of one pattern
                        }
                    })
                    .collect();
                let c = compress(&data);
                assert_eq!(decompress(&c, data.len()).unwrap(), data, "len {len} kind {kind}");
                if !data.is_empty() {
                    assert!(decompress(&c, data.len() - 1).is_err(), "len {len} kind {kind}");
                }
            }
        }
    }

    /// Every truncation and every single-byte change of a real stream decodes or fails
    /// cleanly, and never returns more than the limit.
    #[test]
    fn damaged_streams_fail_cleanly() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 23 + i / 300) as u8).collect();
        let c = compress(&data);
        for cut in 0..c.len() {
            let _ = decompress(&c[..cut], 4000);
        }
        for i in 0..c.len() {
            for flip in [1u8, 0x10, 0xff] {
                let mut d = c.clone();
                d[i] ^= flip;
                if let Ok(out) = decompress(&d, 2100) {
                    assert!(out.len() <= 2100);
                }
            }
        }
    }

    #[test]
    fn rejects_bad_streams() {
        // No end code.
        let c = compress(b"hello");
        assert!(decompress(&c[..c.len() - 2], 100).is_err());
        // A code above the next one to be assigned: clear, then 300.
        assert_eq!(decompress(&[0x00, 0x59, 0x02], 100), Err(DecodeError::Lzw("invalid code")));
    }
}

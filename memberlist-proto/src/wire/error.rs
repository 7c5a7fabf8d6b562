//! Errors of the wire codec. Every way input can be wrong has its own variant; none of them is
//! a panic, and none leaves any state changed: decoding is a pure function of its input.

use thiserror::Error;

/// Why bytes from the network could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of `what`. On a stream this means "wait for more bytes".
    #[error("truncated input while reading {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A message with no type byte at all.
    #[error("empty message: missing message type byte")]
    Empty,
    /// A type byte that is not a memberlist message type.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// A known message type where it is not allowed (for example a push/pull inside a packet).
    #[error("message type {found} is not allowed {context}")]
    UnexpectedMessageType {
        /// The type byte found.
        found: u8,
        /// Where it was found.
        context: &'static str,
    },
    /// A msgpack value of the wrong kind for a field.
    #[error("field {field}: expected {expected}, found msgpack marker 0x{found:02x}")]
    WrongType {
        /// The Go field (or structure) being read.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The msgpack marker byte found.
        found: u8,
    },
    /// An integer that does not fit its field.
    #[error("field {field}: integer out of range")]
    IntegerOutOfRange {
        /// The Go field.
        field: &'static str,
    },
    /// A string field holding bytes that are not UTF-8.
    #[error("field {field}: not valid UTF-8")]
    InvalidUtf8 {
        /// The Go field.
        field: &'static str,
    },
    /// Unknown fields nested deeper than the reader is willing to skip.
    #[error("msgpack value nested too deeply")]
    TooDeep,
    /// A protocol version array with fewer than six bytes.
    #[error("Vsn has {0} bytes; six are required")]
    ShortVsn(usize),
    /// An address field that is neither 4 nor 16 bytes long.
    #[error("field {field}: an IP address must be 4 or 16 bytes, got {len}")]
    BadAddress {
        /// The Go field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A compound message whose length table is longer than the message.
    #[error("compound message: truncated len slice")]
    CompoundLengths,
    /// A compress message naming an algorithm other than LZW (0).
    #[error("unknown compression algorithm {0}")]
    UnknownCompression(u8),
    /// LZW data that is not valid.
    #[error("lzw: {0}")]
    Lzw(&'static str),
    /// A snappy block that is not valid.
    #[error("snappy: {0}")]
    Snappy(String),
    /// A decompressed payload of no bytes.
    #[error("decompressed payload is empty")]
    EmptyDecompressed,
    /// The CRC of a hasCrc packet does not match its contents.
    #[error("CRC mismatch: packet says {expected:08x}, contents give {actual:08x}")]
    CrcMismatch {
        /// The CRC carried by the packet.
        expected: u32,
        /// The CRC of the bytes received.
        actual: u32,
    },
    /// A label header with a zero length.
    #[error("label header cannot be empty when present")]
    EmptyLabel,
    /// A label that is not the one this node is configured with.
    #[error("label mismatch: expected {expected:?}, got {found:?}")]
    LabelMismatch {
        /// This node's label.
        expected: String,
        /// The label on the input ("" when it carried none).
        found: String,
    },
    /// A label on the input while the node skips label checks (Go treats that as an error).
    #[error("unexpected label header {0:?}: labels are not checked on this node")]
    UnexpectedLabel(String),
    /// An encrypted payload shorter than its fixed overhead.
    #[error("encrypted payload too short: {0} bytes")]
    EncryptedTooShort(usize),
    /// An encryption version other than 0 or 1.
    #[error("unsupported encryption version {0}")]
    UnsupportedEncryptionVersion(u8),
    /// PKCS#7 padding that is not valid (version 0 only).
    #[error("invalid PKCS7 padding")]
    BadPadding,
    /// No key of the keyring authenticates the payload.
    #[error("no installed keys could decrypt the message")]
    NoKeyDecrypts,
    /// An encrypted stream arrived at a node without keys.
    #[error("remote state is encrypted and encryption is not configured")]
    EncryptionNotConfigured,
    /// A plaintext stream arrived at a node that requires encryption.
    #[error("encryption is configured but remote state is not encrypted")]
    NotEncrypted,
    /// A length or count from the wire above its configured limit.
    #[error("{what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// What was limited.
        what: &'static str,
        /// The value found (negative values from Go `int` fields are reported as they are).
        value: i64,
        /// The limit.
        limit: u64,
    },
}

impl DecodeError {
    /// Whether this error only means that more input is needed.
    pub fn is_truncated(&self) -> bool {
        matches!(self, DecodeError::Truncated { .. })
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A label longer than 255 bytes.
    #[error("label is {0} bytes, the maximum is 255")]
    LabelTooLong(usize),
    /// A compound part longer than a u16 length can say.
    #[error("compound part of {0} bytes does not fit a u16 length")]
    PartTooLarge(usize),
    /// A message longer than a stream frame's u32 length can say.
    #[error("message of {0} bytes is too large to frame")]
    TooLarge(usize),
    /// Empty messages crash old Go peers and are never sent.
    #[error("refusing to send an empty message")]
    Empty,
}

//! Receive-side limits. Every count or length read from the wire is checked against these before
//! anything is allocated from it. The defaults are Go memberlist's (HEAD, 2026 hardening).

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most node states a push/pull may declare (Go: 1 048 576).
    pub max_push_state_nodes: u32,
    /// Most user-state bytes a push/pull may declare (Go: 20 MiB).
    pub max_push_state_bytes: u32,
    /// Longest user message on a stream (Go: 20 MiB).
    pub max_user_msg_bytes: u32,
    /// Most bytes an LZW payload of a stream may decompress to (Go: 40 MiB).
    pub max_decompressed_bytes: usize,
    /// Most bytes an LZW payload of a datagram may decompress to. Go applies its 40 MiB stream
    /// limit here too, which lets one 40 KB datagram cost the receiver 40 MB of decompression;
    /// real datagrams decompress to a few KiB, so 1 MiB bounds that amplification.
    pub max_packet_decompressed_bytes: usize,
    /// Longest encrypted stream frame (Go: 20 MiB).
    pub max_encrypted_stream_bytes: u32,
    /// Most bytes a plaintext stream message may occupy in total. Go has no such limit; it
    /// bounds what a slow or hostile dialer can make us buffer.
    pub max_stream_bytes: usize,
}

/// Go's `maxPushStateNodes`.
pub const MAX_PUSH_STATE_NODES: u32 = 1 << 20;
/// Go's `maxPushStateBytes`.
pub const MAX_PUSH_STATE_BYTES: u32 = 20 * 1024 * 1024;
/// Go's `maxUserMsgBytes`.
pub const MAX_USER_MSG_BYTES: u32 = 20 * 1024 * 1024;
/// Go's `maxDecompressedBytes`.
pub const MAX_DECOMPRESSED_BYTES: usize = 40 * 1024 * 1024;
/// Go's limit on an encrypted stream frame.
pub const MAX_ENCRYPTED_STREAM_BYTES: u32 = 20 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_push_state_nodes: MAX_PUSH_STATE_NODES,
            max_push_state_bytes: MAX_PUSH_STATE_BYTES,
            max_user_msg_bytes: MAX_USER_MSG_BYTES,
            max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
            max_packet_decompressed_bytes: 1024 * 1024,
            max_encrypted_stream_bytes: MAX_ENCRYPTED_STREAM_BYTES,
            max_stream_bytes: 64 * 1024 * 1024,
        }
    }
}

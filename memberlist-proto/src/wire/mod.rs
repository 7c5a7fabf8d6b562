#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

//! The wire codec: every packet and stream exactly as Go memberlist writes and reads them.
//!
//! One module per layer, outermost first:
//!
//! | module | layer |
//! | --- | --- |
//! | [`label`] | `[0xF4][len][label]` header |
//! | [`security`], [`keyring`] | AES-GCM, encryption versions 0 and 1, key rotation |
//! | [`crc`] | `[12][crc32]` wrapper |
//! | [`compress`], [`lzw`] | `[9]` compress wrapper and Go's LZW |
//! | [`compound`] | `[7]` several messages in one packet |
//! | [`messages`], [`msgpack`] | message bodies in Go's msgpack dialect |
//! | [`packet`], [`stream`] | the send and receive pipelines |
//! | [`limits`] | receive-side limits |
//! | [`inspect`] | a JSON decode tree of any packet or stream, for tools and golden tests |

pub mod compound;
pub mod compress;
pub mod crc;
pub mod error;
pub mod inspect;
pub mod keyring;
pub mod label;
pub mod limits;
pub mod lzw;
pub mod message_type;
pub mod messages;
pub mod msgpack;
pub mod packet;
pub mod security;
pub mod stream;

pub use compound::COMPOUND_OVERHEAD;
pub use compress::Compression;
pub use error::{DecodeError, EncodeError};
pub use keyring::{Key, Keyring, KeyringError};
pub use limits::Limits;
pub use messages::{
    AckResp, Alive, AliveRef, Compress, Dead, ErrResp, IndirectPingReq, Message, MessageType, NackResp, Ping,
    PushNodeState, PushPullHeader, Suspect, UserMsgHeader,
};
pub use msgpack::IntEncoding;
pub use packet::{
    assemble_gossip, assemble_with_piggyback, crc_for_peer, open_packet, open_packet_parts, seal_packet,
    with_piggyback, OpenConfig, OpenedPacket, PacketParts, Payload, SealConfig,
};
pub use security::EncryptionVersion;
pub use stream::{
    seal_stream, PushPull, StreamCompression, StreamDecoder, StreamEncryption, StreamFrame, StreamMessage,
    StreamOpenConfig, StreamSealConfig,
};

//! # memberlist-proto
//!
//! The sans-IO core of memberlist-rs, a Rust implementation of HashiCorp's Go
//! [memberlist](https://github.com/hashicorp/memberlist) that is byte-compatible on the wire.
//!
//! This crate never touches a socket, a clock or a global random number generator: bytes, the
//! current time and randomness come in as arguments, and bytes to send come out. That keeps it
//! deterministic, so the simulator can replay a run byte for byte, and easy to drive from any
//! runtime.
//!
//! The [`wire`] module is the codec: every packet and stream layer Go memberlist uses — message
//! bodies in Go's msgpack dialect, compound messages, CRC, LZW compression, AES-GCM encryption
//! with a keyring, labels and TCP stream framing — with the limits Go applies to hostile input.
//!
//! ```
//! use memberlist_proto::wire::{self, Message, Ping, Payload};
//!
//! // A ping as Go memberlist sends it, then the receive pipeline on those bytes.
//! let ping = Message::Ping(Ping { seq_no: 7, node: "b".into(), ..Default::default() });
//! let mut rng = rand_chacha_stub::Zero;
//! let packet = wire::seal_packet(ping.encode(), false, &wire::SealConfig::default(), &mut rng).unwrap();
//! let opened = wire::open_packet(&packet, &wire::OpenConfig::default()).unwrap();
//! assert_eq!(opened.payload, Payload::Message(ping));
//! # mod rand_chacha_stub {
//! #     pub struct Zero;
//! #     impl rand_core::TryRng for Zero {
//! #         type Error = core::convert::Infallible;
//! #         fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(0) }
//! #         fn try_next_u64(&mut self) -> Result<u64, Self::Error> { Ok(0) }
//! #         fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { d.fill(0); Ok(()) }
//! #     }
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod endpoint;
pub mod event;
pub mod node;
pub mod serf_tags;
pub mod state;
pub mod time;
pub mod wire;

pub use config::{Cidr, Config, ConfigError, NodePredicate};
pub use endpoint::{Endpoint, Hooks, StreamAction, StreamId, Transmit};
pub use event::{Event, JoinId, Member};
pub use node::{NodeState, Vsn};
pub use state::broadcast::BroadcastId;
pub use state::stats::{Sample, Stats};
pub use time::Instant;
pub use wire::EncryptionVersion;

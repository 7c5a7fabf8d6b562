//! # memberlist
//!
//! Gossip-based cluster membership and failure detection for tokio applications,
//! wire-compatible with HashiCorp's Go memberlist: a Rust node can join a Go cluster (Consul,
//! Serf, Nomad, Mimir/Loki rings, …) and behave as one of its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), memberlist::Error> {
//! use memberlist::{Memberlist, Options};
//! use std::time::Duration;
//!
//! let node = Memberlist::create(Options::lan("node-a").bind("0.0.0.0:7946".parse().unwrap())).await?;
//! node.join(&["10.0.0.2:7946".parse().unwrap()]).await?;
//! let mut events = node.events()?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! node.leave(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! The protocol itself lives in the sans-IO crate [`memberlist_proto`]; this crate adds sockets,
//! timers and an async API on top.

mod delegate;
mod metrics;
mod node;
mod options;

pub use delegate::Delegate;
pub use memberlist_proto::state::broadcast::TransmitLimitedQueue;
pub use memberlist_proto::{self as proto, wire, Config, Event, Hooks, Member, NodeState};
pub use node::{Events, Memberlist};
pub use options::Options;

/// Errors of the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] memberlist_proto::ConfigError),
    /// The node has shut down.
    #[error("the node has shut down")]
    Shutdown,
    /// No seed could be reached.
    #[error("join failed: {0}")]
    JoinFailed(String),
    /// Waiting for a broadcast to go out took too long.
    #[error("timed out")]
    Timeout,
    /// A keyring operation was refused.
    #[error(transparent)]
    Keyring(#[from] memberlist_proto::wire::KeyringError),
    /// A ping got no answer within the probe timeout.
    #[error("no response from node {0}")]
    NoPingResponse(String),
}

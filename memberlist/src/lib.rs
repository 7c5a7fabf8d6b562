//! # memberlist
//!
//! Gossip-based cluster membership and failure detection for tokio applications,
//! wire-compatible with HashiCorp's Go memberlist: a Rust node can join a Go cluster (Consul,
//! Serf, Nomad, Mimir/Loki rings, …) and behave as one of its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), memberlist::Error> {
//! use memberlist::{Event, Memberlist, NodeState, Options};
//! use std::time::Duration;
//!
//! // Two nodes on loopback; port 0 lets the kernel pick (UDP and TCP share it). A deployment
//! // uses `Options::lan`, which binds 0.0.0.0:7946 and advertises the host's private IP.
//! let a = Memberlist::create(Options::local("node-a")).await?;
//! let b = Memberlist::create(Options::local("node-b")).await?;
//! let mut events = a.events()?;
//! assert_eq!(b.join(&[a.advertise_addr()]).await?, 1);
//!
//! // node-a hears node-b join, with its real state.
//! loop {
//!     if let Some(Event::NodeJoined(m)) = events.recv().await {
//!         if m.name == "node-b" {
//!             assert_eq!(m.state, NodeState::Alive);
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(a.num_members(), 2);
//! b.send_reliable(a.advertise_addr(), b"hello".to_vec()).await?; // returns once written
//!
//! // A graceful leave is seen as left, not dead.
//! b.leave(Duration::from_secs(2)).await?;
//! loop {
//!     if let Some(Event::NodeLeft(m)) = events.recv().await {
//!         assert_eq!((m.name.as_str(), m.state), ("node-b", NodeState::Left));
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//!
//! The protocol itself lives in the sans-IO crate [`memberlist_proto`]; this crate adds sockets,
//! timers and an async API on top.

#![warn(missing_docs)]

mod advertise;
mod broadcast;
mod delegate;
mod driver;
mod dskit;
mod faults;
mod handoff;
mod member_view;
mod metrics;
mod node;
mod options;
mod seeds;
mod tcp_only;
mod tls;
mod transport;

pub use advertise::{final_advertise_addr, host_interfaces, private_ip, AdvertiseError, HostInterfaces, InterfaceAddr};
pub use broadcast::{Broadcast, BroadcastQueue, SimpleBroadcast};
pub use delegate::Delegate;
pub use dskit::{parse_connection as parse_dskit_connection, DskitConfig, DskitConnection, DskitStats, DskitTransport};
pub use faults::{Faults, FaultyTransport};
pub use member_view::StateCounts;
pub use memberlist_proto::state::broadcast::TransmitLimitedQueue;
pub use memberlist_proto::{self as proto, serf_tags, wire, Config, Event, Hooks, Member, NodeState};
pub use node::{Events, Memberlist};
pub use options::{Options, GO_BIND_PORT};
pub use tcp_only::TcpOnlyTransport;
pub use tls::{DskitTls, TlsFiles};
pub use transport::{BoxConn, BoxFuture, Conn, MemoryNetwork, MemoryTransport, NetTransport, Transport};

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
    /// No address to advertise could be chosen (Go's "no private IP address found, and
    /// explicit IP not provided").
    #[error(transparent)]
    Advertise(#[from] AdvertiseError),
    /// A ping got no answer within the probe timeout.
    #[error("no response from node {0}")]
    NoPingResponse(String),
}

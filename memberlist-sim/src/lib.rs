//! # memberlist-sim
//!
//! A seeded, deterministic simulator of many [`memberlist_proto::Endpoint`]s on a virtual
//! network and a virtual clock. Nothing sleeps and nothing runs concurrently: a run is a pure
//! function of its seed and its scenario, and prints a trace hash anyone can use to check a
//! replay. Every datagram and stream goes through the real wire codec.
//!
//! * [`sim`] — the engine: event queue, nodes, faults (crash, pause, slow, restart);
//! * [`network`] — latency, jitter, loss (uniform, per-node ingress and egress), partitions;
//! * [`scenario`] — built-in and JSON scenarios;
//! * [`record`] — trace hash, timeline, measurements;
//! * [`summary`] — the report a run prints;
//! * [`watch`] — invariants checked while a run goes;
//! * [`search`] — randomized fault search over seeds;
//! * [`churn`] — rolling restarts with address reuse, graceful leaves under load.

pub mod churn;
pub mod network;
mod node;
pub mod record;
pub mod scenario;
pub mod search;
pub mod sim;
pub mod summary;
pub mod watch;

pub use network::NetworkModel;
pub use scenario::{Scenario, Step};
pub use sim::Sim;

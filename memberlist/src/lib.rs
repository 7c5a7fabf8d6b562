//! # memberlist
//!
//! The tokio driver and public async API of memberlist-rs: UDP and TCP sockets, timers, delegate
//! traits, on top of the sans-IO [`memberlist_proto`] core. This crate is being built (see the
//! project's issue on the tokio driver); today it re-exports the wire codec so that applications
//! can already decode and encode Go memberlist traffic.

pub use memberlist_proto::wire;

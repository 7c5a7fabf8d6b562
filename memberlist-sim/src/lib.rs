//! # memberlist-sim
//!
//! A seeded, deterministic simulator of many [`memberlist_proto`] nodes on a virtual network and
//! a virtual clock. This crate is being built (see the project's issue on the simulator); it has
//! no simulation yet.

//! The protocol state machine, one concern per module.
//!
//! | module | concern |
//! | --- | --- |
//! | [`members`] | the table of nodes in probe order |
//! | `rules` | what alive, suspect and dead messages do; refutation; merging |
//! | `probe` | the probe cycle, indirect probes, TCP fallback, acks and nacks |
//! | `gossip` | gossip rounds and the sharing of packet space |
//! | `pushpull` | push/pull, join, streams |
//! | [`app_state`] | the application's share of a push/pull, off the protocol's thread |
//! | [`suspicion`] | suspicion timeouts with confirmations |
//! | [`awareness`] | Lifeguard local health |
//! | [`broadcast`] | the transmit-limited broadcast queue |
//! | [`fixed_log`] | integer logarithms for the timeout formulas |
//! | [`name_hash`] | the keyed hash of the name indexes |
//! | [`stats`] | counters |

pub mod app_state;
pub mod awareness;
pub mod broadcast;
pub mod fixed_log;
mod gossip;
pub mod members;
pub mod name_hash;
pub(crate) mod probe;
pub(crate) mod pushpull;
mod receive;
mod rules;
pub mod stats;
pub mod suspicion;

pub use pushpull::push_pull_scale;

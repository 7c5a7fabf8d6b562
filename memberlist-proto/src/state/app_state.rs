//! The application's share of a push/pull, run off the protocol's thread when the driver asks.
//!
//! Go runs a push/pull on the stream's own goroutine: `LocalState` is called while the reply is
//! written and `MergeRemoteState` after the peer's table is merged, so an application with a
//! large state (dskit rings hold megabytes) never delays probes and acks. With
//! [`Hooks::defers_state`](crate::Hooks::defers_state) the core does the same through its
//! driver: instead of calling the hooks it hands out
//!
//! - [`StreamAction::WriteState`]: the push/pull to write, without the application's state; the
//!   driver asks the application for it on the stream's task and seals the whole message with
//!   [`StateToSend::seal`] (encoding, compression and encryption exactly as the core would);
//! - [`StreamAction::MergeState`]: the peer's application state, after its node table has been
//!   checked and merged; on a stream this node dialed the push/pull (and a join waiting for it)
//!   completes only when the driver reports [`Endpoint::handle_state_merged`], as Go's
//!   `pushPullNode` returns only after `MergeRemoteState`.
//!
//! The sealing randomness (AES-GCM nonces) is drawn from the endpoint's seeded generator when
//! the action is produced, so a seeded run stays reproducible.

use std::net::SocketAddr;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::endpoint::{StreamAction, StreamId};
use crate::event::JoinId;
use crate::time::Instant;
use crate::wire::{
    seal_stream, Compression, EncodeError, IntEncoding, Keyring, PushPull, StreamMessage, StreamSealConfig,
};
use crate::{EncryptionVersion, Endpoint};

/// A push/pull waiting for the application's state, with everything needed to seal it as the
/// core would have: the connection's label, compression, the primary key at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateToSend {
    msg: PushPull,
    dialer: bool,
    label: String,
    int_encoding: IntEncoding,
    enable_compression: bool,
    algorithm: Compression,
    keyring: Option<Keyring>,
    encryption_version: EncryptionVersion,
    rng: ChaCha8Rng,
}

impl StateToSend {
    /// Whether this push/pull is part of a join (the argument Go passes to `LocalState`).
    pub fn join(&self) -> bool {
        self.msg.join
    }

    /// How many node states the message carries.
    pub fn nodes(&self) -> usize {
        self.msg.nodes.len()
    }

    /// The bytes to write: the push/pull with `user_state` added, encoded, compressed and
    /// encrypted as configured, with the label header first when this node dialed.
    pub fn seal(mut self, user_state: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
        self.msg.user_state = user_state;
        let encoded = StreamMessage::PushPull(self.msg).encode(self.int_encoding);
        let cfg = StreamSealConfig {
            label: &self.label,
            enable_compression: self.enable_compression,
            algorithm: self.algorithm,
            keyring: self.keyring.as_ref(),
            encryption_version: self.encryption_version,
        };
        seal_stream(&encoded, self.dialer, &cfg, &mut self.rng)
    }
}

/// An outgoing push/pull whose reply's node table is merged and whose application state is
/// with the driver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AwaitingMerge {
    pub peer: SocketAddr,
    pub join: bool,
    pub join_id: Option<JoinId>,
    /// When the push/pull was dialed.
    pub started: Instant,
}

impl Endpoint {
    /// The action that writes `msg` on stream `id`: sealed here, or — a push/pull while the
    /// driver runs the application's state — handed to the driver to complete and seal.
    pub(crate) fn stream_write(
        &mut self,
        id: StreamId,
        msg: StreamMessage,
        dialer: bool,
        label: &str,
    ) -> Option<StreamAction> {
        match msg {
            StreamMessage::PushPull(p) if self.hooks.defers_state() => {
                let outgoing = self.cfg.keyring.as_ref().filter(|_| self.cfg.gossip_verify_outgoing);
                let state = StateToSend {
                    msg: p,
                    dialer,
                    label: label.to_owned(),
                    int_encoding: self.cfg.int_encoding,
                    enable_compression: self.cfg.enable_compression,
                    algorithm: self.cfg.compression_algorithm,
                    keyring: outgoing.cloned(),
                    encryption_version: EncryptionVersion::for_protocol(self.cfg.protocol_version),
                    rng: ChaCha8Rng::seed_from_u64(self.rng.next_u64()),
                };
                Some(StreamAction::WriteState { id, state: Box::new(state) })
            }
            msg => self.seal_stream_message(&msg, dialer, label).map(|bytes| StreamAction::Write { id, bytes }),
        }
    }

    /// The driver wrote a push/pull it completed with [`StateToSend::seal`]: count its bytes.
    pub fn record_stream_bytes_sent(&mut self, bytes: usize) {
        self.stats.stream_bytes_sent += bytes as u64;
    }

    /// The application has merged the state handed out with [`StreamAction::MergeState`] on a
    /// stream this node dialed: the push/pull, and a join waiting for it, complete now.
    pub fn handle_state_merged(&mut self, id: StreamId, now: Instant) {
        if let Some(w) = self.awaiting_merge.remove(&id) {
            self.push_pull_done(w.peer, w.join, w.join_id, Ok(()), now - w.started);
        }
    }

    /// Queues `action` for stream `id` ahead of the close that `on_frame` already queued for it.
    pub(crate) fn push_before_close(&mut self, id: StreamId, action: StreamAction) {
        if self.stream_actions.back() == Some(&StreamAction::Close { id }) {
            self.stream_actions.pop_back();
            self.stream_actions.push_back(action);
            self.stream_actions.push_back(StreamAction::Close { id });
        } else {
            self.stream_actions.push_back(action);
        }
    }
}

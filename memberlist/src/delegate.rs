//! Delegates: Go memberlist's callback interfaces as one Rust trait with default methods.
//!
//! `local_state` and `merge_remote_state` run on the task of the push/pull's stream, on a
//! blocking thread, as Go runs them on the stream's goroutine: a large or slow application state
//! never delays probes. Callbacks that the protocol needs an answer from at once
//! (`notify_merge`, `notify_alive`, `ack_payload`, `get_broadcasts`) run on the node's task and
//! should return quickly (a [`BroadcastQueue`](crate::BroadcastQueue) answers in time
//! logarithmic in its length per message taken);
//! notifications (`notify_join`, `notify_leave`, `notify_update`, `notify_msg`,
//! `notify_conflict`, `notify_ping_complete`) run on a task of their own, in order. No lock of
//! the node is held during any of them, and any of them may call back into the node: reading
//! members never waits for the node task, and commands are queued (Go #23).

use std::sync::Arc;
use std::time::Duration;

use memberlist_proto::{Event, Hooks, Member};

/// Application callbacks. Every method has a default that does nothing.
pub trait Delegate: Send + Sync + 'static {
    /// This node's metadata, at most `limit` bytes (Go's `NodeMeta`): asked when the node starts
    /// (replacing [`Options::meta`](crate::Options::meta)) and by
    /// [`Memberlist::update_node`](crate::Memberlist::update_node). `None` keeps the options'
    /// metadata at start and means empty metadata on update; longer than `limit` is an error.
    fn node_meta(&self, _limit: usize) -> Option<Vec<u8>> {
        None
    }
    /// Application data from a peer, sent with `broadcast`, `send_best_effort` or
    /// `send_reliable` (Go's `NotifyMsg`).
    fn notify_msg(&self, _from: std::net::SocketAddr, _msg: &[u8]) {}
    /// Broadcasts to piggyback on the next packet (Go's `GetBroadcasts`); a
    /// [`TransmitLimitedQueue`](memberlist_proto::state::broadcast::TransmitLimitedQueue) is the
    /// ready-made way to keep them.
    fn get_broadcasts(&self, _overhead: usize, _limit: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Whether `get_broadcasts` has anything (lets the node reserve packet space for it).
    fn has_broadcasts(&self) -> bool {
        false
    }
    /// State to send in a push/pull (Go's `LocalState`).
    fn local_state(&self, _join: bool) -> Vec<u8> {
        Vec::new()
    }
    /// A peer's state from a push/pull (Go's `MergeRemoteState`).
    fn merge_remote_state(&self, _state: &[u8], _join: bool) {}
    /// A node joined or came back (Go's `NotifyJoin`), with its real state.
    fn notify_join(&self, _node: &Member) {}
    /// A node failed (`state == Dead`) or left (`state == Left`) (Go's `NotifyLeave`).
    fn notify_leave(&self, _node: &Member) {}
    /// A node's metadata changed (Go's `NotifyUpdate`).
    fn notify_update(&self, _node: &Member) {}
    /// Another address claims a known name (Go's `NotifyConflict`).
    fn notify_conflict(&self, _existing: &Member, _other: &Member) {}
    /// Before a join merges a peer's table; an error refuses the join, and the other side is
    /// told (Go's `NotifyMerge`, improved per Go #132).
    fn notify_merge(&self, _peers: &[Member]) -> Result<(), String> {
        Ok(())
    }
    /// Before an alive message is applied; an error drops it (Go's `NotifyAlive`).
    fn notify_alive(&self, _peer: &Member) -> Result<(), String> {
        Ok(())
    }
    /// Payload for acks to direct probes (Go's `AckPayload`).
    fn ack_payload(&self) -> Option<Vec<u8>> {
        None
    }
    /// A direct probe succeeded (Go's `NotifyPingComplete`).
    fn notify_ping_complete(&self, _node: &Member, _rtt: Duration, _payload: &[u8]) {}
}

/// The hooks of a node without a delegate or hooks of its own: no application state, which the
/// driver still writes as Go does (so push/pulls are sealed and measured on the streams' tasks),
/// and no broadcasts (so an idle node skips empty gossip rounds).
pub(crate) struct NoApplication;

impl Hooks for NoApplication {
    fn broadcasts_possible(&self) -> bool {
        false
    }
    fn defers_state(&self) -> bool {
        true
    }
}

/// The synchronous part of a delegate, as the core's hooks.
pub(crate) struct DelegateHooks(pub Arc<dyn Delegate>);

impl Hooks for DelegateHooks {
    fn local_state(&mut self, join: bool) -> Vec<u8> {
        self.0.local_state(join)
    }
    fn merge_remote_state(&mut self, state: &[u8], join: bool) {
        self.0.merge_remote_state(state, join)
    }
    fn notify_merge(&mut self, peers: &[Member]) -> Result<(), String> {
        self.0.notify_merge(peers)
    }
    fn notify_alive(&mut self, peer: &Member) -> Result<(), String> {
        self.0.notify_alive(peer)
    }
    fn ack_payload(&mut self) -> Option<Vec<u8>> {
        self.0.ack_payload()
    }
    fn has_broadcasts(&self) -> bool {
        self.0.has_broadcasts()
    }
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.0.get_broadcasts(overhead, limit)
    }
    /// `local_state` and `merge_remote_state` run on the stream's task (see `driver`).
    fn defers_state(&self) -> bool {
        true
    }
}

/// Hands one event to the delegate's notification methods.
pub(crate) fn dispatch(d: &dyn Delegate, e: &Event) {
    match e {
        Event::NodeJoined(m) => d.notify_join(m),
        Event::NodeLeft(m) => d.notify_leave(m),
        Event::NodeUpdated(m) => d.notify_update(m),
        Event::UserMessage { from, data } => d.notify_msg(*from, data),
        Event::Conflict { existing, other } => d.notify_conflict(existing, other),
        Event::PingComplete { node, rtt, payload } => d.notify_ping_complete(node, *rtt, payload),
        _ => {}
    }
}

/// A shared delegate is a delegate, so the application can keep a handle on its own state.
impl<D: Delegate + ?Sized> Delegate for Arc<D> {
    fn node_meta(&self, limit: usize) -> Option<Vec<u8>> {
        (**self).node_meta(limit)
    }
    fn notify_msg(&self, from: std::net::SocketAddr, msg: &[u8]) {
        (**self).notify_msg(from, msg)
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        (**self).get_broadcasts(overhead, limit)
    }
    fn has_broadcasts(&self) -> bool {
        (**self).has_broadcasts()
    }
    fn local_state(&self, join: bool) -> Vec<u8> {
        (**self).local_state(join)
    }
    fn merge_remote_state(&self, state: &[u8], join: bool) {
        (**self).merge_remote_state(state, join)
    }
    fn notify_join(&self, node: &Member) {
        (**self).notify_join(node)
    }
    fn notify_leave(&self, node: &Member) {
        (**self).notify_leave(node)
    }
    fn notify_update(&self, node: &Member) {
        (**self).notify_update(node)
    }
    fn notify_conflict(&self, existing: &Member, other: &Member) {
        (**self).notify_conflict(existing, other)
    }
    fn notify_merge(&self, peers: &[Member]) -> Result<(), String> {
        (**self).notify_merge(peers)
    }
    fn notify_alive(&self, peer: &Member) -> Result<(), String> {
        (**self).notify_alive(peer)
    }
    fn ack_payload(&self) -> Option<Vec<u8>> {
        (**self).ack_payload()
    }
    fn notify_ping_complete(&self, node: &Member, rtt: Duration, payload: &[u8]) {
        (**self).notify_ping_complete(node, rtt, payload)
    }
}

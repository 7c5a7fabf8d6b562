//! Streams: push/pull state exchange (periodic anti-entropy and join), the TCP fallback ping,
//! reliable user messages, and everything that arrives on accepted connections.
//!
//! A push/pull sends this node's whole table (dead, left and itself included) and the
//! application's state, and receives the peer's. Before merging, protocol versions are checked
//! across both tables, and for a join the application may veto the merge. Unlike Go, the node
//! that accepts a push/pull runs these checks *before* answering and answers a rejection with
//! an error message, so the joining side learns that its join was refused (Go #132).
//!
//! Periodic push/pull runs every `push_pull_interval`, scaled with the cluster size:
//! `interval · (⌈log2 n − log2 32⌉ + 1)` above 32 nodes (2× up to 64, 3× up to 128, …).

use std::net::SocketAddr;
use std::time::Duration;

use crate::endpoint::{StreamAction, StreamId};
use crate::event::{Event, JoinId, Member};
use crate::node::NodeState;
use crate::state::app_state::AwaitingMerge;
use crate::state::stats::Sample;
use crate::time::Instant;
use crate::wire::{
    seal_stream, AckResp, ErrResp, Ping, PushNodeState, PushPull, StreamDecoder, StreamFrame, StreamMessage,
    StreamOpenConfig, StreamSealConfig,
};
use crate::{EncryptionVersion, Endpoint};

/// Clusters up to this size use the configured push/pull interval as it is.
const PUSH_PULL_SCALE_THRESHOLD: usize = 32;
/// Go's `maxPushPullRequests`: concurrent incoming push/pulls served.
const MAX_PUSH_PULL_REQUESTS: usize = 128;

/// Go's `pushPullScale`: `interval` up to 32 nodes, else `interval · (⌈log2 n⌉ − 5 + 1)`.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    // ⌈log2 n⌉ for n ≥ 2 is the bit length of n − 1.
    let ceil_log2 = usize::BITS - (n - 1).leading_zeros();
    interval * (ceil_log2 - 5 + 1)
}

/// What a stream is for.
#[derive(Debug)]
pub(crate) enum StreamKind {
    PushPullOut { join: bool, join_id: Option<JoinId>, started: Instant },
    TcpPing { seq_no: u32 },
    Incoming,
}

/// A stream in progress.
#[derive(Debug)]
pub(crate) struct Stream {
    pub deadline: Instant,
    pub peer: SocketAddr,
    pub kind: StreamKind,
    pub decoder: StreamDecoder,
    /// Bytes received so far.
    pub received: usize,
}

/// A join waiting for its seeds.
#[derive(Debug, Default)]
pub(crate) struct JoinProgress {
    pending: usize,
    contacted: usize,
    errors: Vec<(SocketAddr, String)>,
}

impl Endpoint {
    pub(crate) fn seal_stream_message(&mut self, msg: &StreamMessage, dialer: bool, label: &str) -> Option<Vec<u8>> {
        let encoded = msg.encode(self.cfg.int_encoding);
        let sealed = {
            let cfg = stream_seal_config(&self.cfg, label);
            seal_stream(&encoded, dialer, &cfg, &mut self.rng)
        };
        match sealed {
            Ok(b) => {
                self.stats.stream_bytes_sent += b.len() as u64;
                Some(b)
            }
            Err(e) => {
                tracing::warn!(node = %self.cfg.name, error = %e, "cannot seal stream message");
                None
            }
        }
    }

    fn decoder(&self, accepted: bool) -> StreamDecoder {
        StreamDecoder::new(StreamOpenConfig {
            label: self.cfg.label.clone(),
            expect_label_header: accepted,
            skip_inbound_label_check: self.cfg.skip_inbound_label_check,
            keyring: self.cfg.keyring.clone(),
            gossip_verify_incoming: self.cfg.gossip_verify_incoming,
            limits: self.cfg.limits,
        })
    }

    /// Opens a stream to `to`, writes `msg` on it, and tracks it as `kind`.
    fn open_stream(&mut self, to: SocketAddr, msg: StreamMessage, kind: StreamKind, deadline: Instant) -> StreamId {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let label = self.cfg.label.clone();
        let write = self.stream_write(id, msg, true, &label);
        self.stream_actions.push_back(StreamAction::Connect { id, to, deadline });
        if let Some(write) = write {
            self.stream_actions.push_back(write);
        }
        let decoder = self.decoder(false);
        self.streams.insert(id, Stream { deadline, peer: to, kind, decoder, received: 0 });
        id
    }

    /// Our table and application state as a push/pull message.
    fn local_state(&mut self, join: bool) -> StreamMessage {
        let nodes = self
            .members
            .iter()
            .map(|e| PushNodeState {
                name: e.name.to_string(),
                addr: e.addr.to_vec(),
                port: e.port,
                meta: e.meta.clone(),
                incarnation: e.incarnation,
                state: e.state.code(),
                vsn: e.vsn,
            })
            .collect();
        // With the state deferred, the driver adds it on the stream's task (`app_state`).
        let user_state = if self.hooks.defers_state() { Vec::new() } else { self.hooks.local_state(join) };
        StreamMessage::PushPull(PushPull { join, nodes, user_state })
    }

    fn start_push_pull(&mut self, to: SocketAddr, join: bool, join_id: Option<JoinId>, now: Instant) {
        self.stats.push_pulls += 1;
        let msg = self.local_state(join);
        let deadline = now + self.cfg.tcp_timeout;
        self.open_stream(to, msg, StreamKind::PushPullOut { join, join_id, started: now }, deadline);
    }

    /// Joins a cluster through `seeds`: a push/pull with `join` set to each of them. The result
    /// comes as [`Event::JoinCompleted`]. After a [`leave`](Self::leave), this also brings the
    /// node back with a new incarnation (Go cannot, #140).
    pub fn join(&mut self, seeds: &[SocketAddr], now: Instant) -> JoinId {
        self.realign_idle_gossip(now);
        let id = self.next_join_id;
        self.next_join_id += 1;
        if self.left {
            self.left = false;
            self.set_alive(now, None);
        }
        for s in seeds {
            if !self.seeds.contains(s) {
                self.seeds.push(*s);
            }
        }
        self.joins.insert(id, JoinProgress { pending: seeds.len(), ..JoinProgress::default() });
        for s in seeds {
            self.start_push_pull(*s, true, Some(id), now);
        }
        self.finish_join_if_done(id);
        id
    }

    fn finish_join_if_done(&mut self, id: JoinId) {
        if self.joins.get(&id).is_some_and(|j| j.pending == 0) {
            if let Some(j) = self.joins.remove(&id) {
                self.events.push_back(Event::JoinCompleted { join: id, contacted: j.contacted, errors: j.errors });
            }
        }
    }

    fn join_result(&mut self, id: Option<JoinId>, peer: SocketAddr, result: Result<(), String>) {
        let Some(id) = id else { return };
        if let Some(j) = self.joins.get_mut(&id) {
            j.pending = j.pending.saturating_sub(1);
            match result {
                Ok(()) => j.contacted += 1,
                Err(e) => j.errors.push((peer, e)),
            }
        }
        self.finish_join_if_done(id);
    }

    /// Periodic anti-entropy with one random alive node.
    pub(crate) fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.cfg.name.clone();
        let picked = self.members.k_random(1, &mut self.rng, |e| *e.name == *me || e.state != NodeState::Alive);
        if let Some(node) = picked.first() {
            self.start_push_pull(node.socket_addr(), false, None, now);
        }
    }

    /// Replaces the seeds that automatic re-join picks from (the addresses a driver found when
    /// it resolved its seed names again; [`join`](Self::join) adds to them too).
    pub fn set_seeds(&mut self, seeds: &[SocketAddr]) {
        self.seeds.clear();
        for s in seeds {
            if !self.seeds.contains(s) {
                self.seeds.push(*s);
            }
        }
    }

    /// Runs an automatic re-join round now (when `auto_rejoin_interval` is set), for a driver
    /// that has just resolved its seeds again. The endpoint's own re-join timer restarts at one
    /// and a half intervals, so it only fires when the driver stops calling this.
    pub fn rejoin_now(&mut self, now: Instant) {
        let Some(interval) = self.cfg.auto_rejoin_interval else { return };
        self.realign_idle_gossip(now);
        self.next_rejoin = Some(now + interval + interval / 2);
        self.auto_rejoin(now);
    }

    /// Exchanges state with one seed or reaped member that is not an alive member now, so that
    /// partitioned halves find each other again.
    pub(crate) fn auto_rejoin(&mut self, now: Instant) {
        let alive: Vec<SocketAddr> =
            self.members.iter().filter(|e| e.state == NodeState::Alive).map(|e| e.socket_addr()).collect();
        let candidates: Vec<SocketAddr> = self
            .seeds
            .iter()
            .chain(self.reaped.iter())
            .copied()
            .filter(|a| *a != self.advertise && !alive.contains(a))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let pick = crate::state::members::random_offset(&mut self.rng, candidates.len());
        if let Some(to) = candidates.get(pick).copied() {
            self.start_push_pull(to, false, None, now);
        }
    }

    /// Opens the TCP fallback ping of a probe.
    pub(crate) fn open_tcp_ping(&mut self, to: SocketAddr, ping: Ping, deadline: Instant, _now: Instant) -> StreamId {
        let seq_no = ping.seq_no;
        self.open_stream(to, StreamMessage::Ping(ping), StreamKind::TcpPing { seq_no }, deadline)
    }

    /// Sends application data on a stream of its own (Go's `SendReliable`).
    pub fn send_reliable(&mut self, to: SocketAddr, data: &[u8], now: Instant) -> StreamId {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let label = self.cfg.label.clone();
        let bytes = self.seal_stream_message(&StreamMessage::User(data.to_vec()), true, &label);
        self.stream_actions.push_back(StreamAction::Connect { id, to, deadline: now + self.cfg.tcp_timeout });
        if let Some(bytes) = bytes {
            self.stream_actions.push_back(StreamAction::Write { id, bytes });
        }
        self.stream_actions.push_back(StreamAction::Close { id });
        id
    }

    /// A peer connected to us; returns the id to report its bytes under.
    pub fn handle_stream_accepted(&mut self, peer: SocketAddr, now: Instant) -> StreamId {
        self.stats.streams_accepted += 1;
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let decoder = self.decoder(true);
        self.streams.insert(
            id,
            Stream { deadline: now + self.cfg.tcp_timeout, peer, kind: StreamKind::Incoming, decoder, received: 0 },
        );
        id
    }

    /// Bytes arrived on a stream.
    pub fn handle_stream_data(&mut self, id: StreamId, bytes: &[u8], now: Instant) {
        self.realign_idle_gossip(now);
        let Some(stream) = self.streams.get_mut(&id) else { return };
        stream.decoder.push(bytes);
        stream.received += bytes.len();
        match stream.decoder.poll() {
            Ok(None) => {}
            Ok(Some(frame)) => self.on_frame(id, frame, now),
            Err(e) => self.on_stream_decode_error(id, e.to_string(), Some(e), now),
        }
    }

    /// The peer closed its side of a stream.
    pub fn handle_stream_closed(&mut self, id: StreamId, now: Instant) {
        self.realign_idle_gossip(now);
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let nothing_sent = stream.decoder.buffered() == 0;
        match stream.decoder.finish() {
            Ok(frame) => self.on_frame(id, frame, now),
            Err(_) if nothing_sent && matches!(stream.kind, StreamKind::Incoming) => self.close_stream(id),
            Err(e) => self.on_stream_decode_error(id, format!("connection closed early: {e}"), None, now),
        }
    }

    /// A stream failed: it could not connect, broke, or the driver gave up on it.
    pub fn handle_stream_error(&mut self, id: StreamId, reason: &str, now: Instant) {
        self.realign_idle_gossip(now);
        self.fail_stream(id, reason.to_owned(), now);
    }

    pub(crate) fn run_stream_timers(&mut self, now: Instant) {
        let due: Vec<StreamId> = self.streams.iter().filter(|(_, s)| s.deadline <= now).map(|(i, _)| *i).collect();
        for id in due {
            self.fail_stream(id, "i/o timeout".into(), now);
        }
    }

    /// Forgets a stream whose result no longer matters.
    pub(crate) fn abandon_stream(&mut self, id: StreamId) {
        self.close_stream(id);
    }

    fn close_stream(&mut self, id: StreamId) {
        if self.streams.remove(&id).is_some() {
            self.stream_actions.push_back(StreamAction::Close { id });
        }
    }

    fn on_stream_decode_error(
        &mut self,
        id: StreamId,
        reason: String,
        err: Option<crate::wire::DecodeError>,
        now: Instant,
    ) {
        if let Some(e) = &err {
            self.stats.count_drop(e);
        }
        let incoming = self.streams.get(&id).filter(|s| matches!(s.kind, StreamKind::Incoming)).map(|s| s.peer);
        if let Some(peer) = incoming {
            // Go logs these at ERR ("discarding stream with unacceptable label", ...): a stream
            // is a join or a push/pull, rare enough to name every refusal.
            tracing::warn!(node = %self.cfg.name, %peer, %reason, "refused a stream from {peer}: {reason}");
            // Tell the dialer what went wrong, as Go does for stream read errors.
            let label = self.cfg.label.clone();
            let reply = StreamMessage::Err(ErrResp { error: reason });
            if let Some(bytes) = self.seal_stream_message(&reply, false, &label) {
                self.stream_actions.push_back(StreamAction::Write { id, bytes });
            }
            self.close_stream(id);
        } else {
            self.fail_stream(id, reason, now);
        }
    }

    fn fail_stream(&mut self, id: StreamId, reason: String, now: Instant) {
        let Some(stream) = self.streams.remove(&id) else { return };
        self.stream_actions.push_back(StreamAction::Close { id });
        match stream.kind {
            StreamKind::PushPullOut { join, join_id, started } => {
                self.push_pull_done(stream.peer, join, join_id, Err(reason), now - started);
            }
            StreamKind::TcpPing { .. } => self.tcp_ping_result(id, false),
            StreamKind::Incoming => {}
        }
    }

    fn on_frame(&mut self, id: StreamId, frame: StreamFrame, now: Instant) {
        let Some(stream) = self.streams.remove(&id) else { return };
        self.stream_actions.push_back(StreamAction::Close { id });
        let peer = stream.peer;
        if matches!(frame.message, StreamMessage::PushPull(_)) {
            self.samples.record(Sample::RemoteStateSize(stream.received));
        }
        match (stream.kind, frame.message) {
            (StreamKind::PushPullOut { join, join_id, started }, StreamMessage::PushPull(p)) => {
                match self.merge_remote(p, join, now) {
                    Ok(Some(state)) => {
                        // Done once the application has merged it (`handle_state_merged`).
                        self.awaiting_merge.insert(id, AwaitingMerge { peer, join, join_id, started });
                        self.push_before_close(id, StreamAction::MergeState { id, state, join });
                    }
                    Ok(None) => self.push_pull_done(peer, join, join_id, Ok(()), now - started),
                    Err(e) => self.push_pull_done(peer, join, join_id, Err(e), now - started),
                }
            }
            (StreamKind::PushPullOut { join, join_id, started }, other) => {
                let reason = match other {
                    StreamMessage::Err(e) => format!("remote error: {}", e.error),
                    m => format!("unexpected message type {} in push/pull reply", m.message_type() as u8),
                };
                self.push_pull_done(peer, join, join_id, Err(reason), now - started);
            }
            (StreamKind::TcpPing { seq_no }, StreamMessage::Ack(a)) => {
                self.tcp_ping_result(id, a.seq_no == seq_no);
            }
            (StreamKind::TcpPing { .. }, _) => self.tcp_ping_result(id, false),
            (StreamKind::Incoming, msg) => self.serve_incoming(id, peer, frame.label, msg, now),
        }
    }

    /// Records the end of an outgoing push/pull that took `took`.
    pub(crate) fn push_pull_done(
        &mut self,
        peer: SocketAddr,
        join: bool,
        join_id: Option<JoinId>,
        result: Result<(), String>,
        took: Duration,
    ) {
        self.samples.record(Sample::PushPull(took));
        if let Err(e) = &result {
            self.stats.push_pull_failures += 1;
            if !join {
                self.events.push_back(Event::PushPullFailed { peer, error: e.clone() });
            }
        }
        self.join_result(join_id, peer, result);
    }

    /// Answers what a peer sent on a connection it opened.
    fn serve_incoming(&mut self, id: StreamId, peer: SocketAddr, label: Vec<u8>, msg: StreamMessage, now: Instant) {
        let label = String::from_utf8_lossy(&label).into_owned();
        let reply = match msg {
            StreamMessage::PushPull(p) => {
                let busy = self
                    .streams
                    .values()
                    .filter(|s| matches!(s.kind, StreamKind::Incoming) && s.decoder.buffered() > 0)
                    .count();
                if busy + 1 >= MAX_PUSH_PULL_REQUESTS {
                    tracing::warn!(node = %self.cfg.name, "too many pending push/pull requests");
                    return;
                }
                match self.check_merge(&p, p.join) {
                    Err(e) => {
                        // Go logs "Failed push/pull merge" here; the dialer gets the reason.
                        self.stats.push_pull_rejected += 1;
                        let kind = if p.join { "join" } else { "push/pull" };
                        tracing::warn!(node = %self.cfg.name, %peer, reason = %e, "rejected {kind} from {peer}: {e}");
                        Some(StreamMessage::Err(ErrResp { error: e }))
                    }
                    Ok(()) => {
                        let join = p.join;
                        let reply = self.local_state(join);
                        if let Some(write) = self.stream_write(id, reply, false, &label) {
                            self.push_before_close(id, write);
                        }
                        if let Some(state) = self.apply_merge(p, join, now) {
                            self.push_before_close(id, StreamAction::MergeState { id, state, join });
                        }
                        None
                    }
                }
            }
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.cfg.name {
                    self.stats.dropped_wrong_node += 1;
                    None
                } else {
                    Some(StreamMessage::Ack(AckResp { seq_no: p.seq_no, payload: None }))
                }
            }
            StreamMessage::User(data) => {
                if !data.is_empty() {
                    self.events.push_back(Event::UserMessage { from: peer, data });
                }
                None
            }
            StreamMessage::Ack(_) | StreamMessage::Err(_) => {
                self.stats.dropped_unexpected += 1;
                None
            }
        };
        if let Some(reply) = reply {
            if let Some(write) = self.stream_write(id, reply, false, &label) {
                self.push_before_close(id, write);
            }
        }
    }

    /// Version check and, for a join, the application's veto.
    fn check_merge(&mut self, p: &PushPull, join: bool) -> Result<(), String> {
        self.verify_protocol(&p.nodes)?;
        if join {
            let peers: Vec<Member> = p.nodes.iter().filter_map(member_of_state).collect();
            self.hooks.notify_merge(&peers)?;
        }
        Ok(())
    }

    /// Merges the peer's table, then gives the application its state — or, when the driver
    /// runs the application's state, returns that state for the driver to merge.
    fn apply_merge(&mut self, p: PushPull, join: bool, now: Instant) -> Option<Vec<u8>> {
        self.merge_state(p.nodes, now);
        if p.user_state.is_empty() {
            return None;
        }
        if self.hooks.defers_state() {
            return Some(p.user_state);
        }
        self.hooks.merge_remote_state(&p.user_state, join);
        None
    }

    /// Checks and merges a peer's push/pull reply (Go's `mergeRemoteState`); `Some` is the
    /// application state left for the driver to merge.
    fn merge_remote(&mut self, p: PushPull, join: bool, now: Instant) -> Result<Option<Vec<u8>>, String> {
        if let Err(e) = self.check_merge(&p, join) {
            self.stats.push_pull_rejected += 1;
            tracing::warn!(node = %self.cfg.name, reason = %e, "rejected the push/pull reply: {e}");
            return Err(e);
        }
        Ok(self.apply_merge(p, join, now))
    }
}

/// How streams are sealed; `label` is the connection's (ours when dialing, the one read from the
/// connection when answering).
fn stream_seal_config<'a>(cfg: &'a crate::Config, label: &'a str) -> StreamSealConfig<'a> {
    StreamSealConfig {
        label,
        enable_compression: cfg.enable_compression,
        algorithm: cfg.compression_algorithm,
        keyring: cfg.keyring.as_ref().filter(|_| cfg.gossip_verify_outgoing),
        encryption_version: EncryptionVersion::for_protocol(cfg.protocol_version),
    }
}

fn member_of_state(n: &PushNodeState) -> Option<Member> {
    Some(Member {
        name: n.name.clone(),
        addr: crate::state::members::ip_from_bytes(&n.addr)?,
        port: n.port,
        meta: n.meta.clone().unwrap_or_default(),
        state: NodeState::from_code(n.state)?,
        incarnation: n.incarnation,
        vsn: n.vsn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_push_pull_scale() {
        let s = Duration::from_secs(1);
        for (n, want) in [(1, 1), (32, 1), (33, 2), (64, 2), (65, 3), (128, 3), (129, 4), (1000, 6), (10_000, 10)] {
            assert_eq!(push_pull_scale(s, n), want * s, "n = {n}");
        }
    }
}

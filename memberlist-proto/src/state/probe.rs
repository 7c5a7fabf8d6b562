//! Failure detection: the probe cycle, indirect probes through relays, the TCP fallback, and
//! the answers to other nodes' probes.
//!
//! Every `probe_interval` one node is probed, walking the table in its (shuffled) order:
//!
//! 1. a ping goes straight to the node — with a suspect message in the same packet when the node
//!    is already suspect (Lifeguard's "buddy system": it learns it is suspected and can refute);
//! 2. without an ack after `probe_timeout`, `indirect_checks` random alive nodes are asked to
//!    ping it for us (and to answer with a nack if they cannot reach it, for nodes speaking
//!    protocol ≥ 4), and a TCP ping is tried if the node speaks protocol ≥ 3;
//! 3. without an ack by the end of the probe (`probe_interval · (health + 1)` after the ping),
//!    the node becomes suspect, unless the TCP ping reached it.
//!
//! Health (awareness) improves by one on every successful probe and worsens by the number of
//! missing nacks (or by one without nack-capable relays) on every failed one.

use std::net::SocketAddr;
use std::time::Duration;

use crate::endpoint::{next_after, StreamId};
use crate::event::{Event, Member};
use crate::node::NodeState;
use crate::state::members::{ip_from_bytes, ip_to_bytes, NodeEntry};
use crate::state::stats::Sample;
use crate::time::Instant;
use crate::wire::{AckResp, IndirectPingReq, Message, NackResp, Ping, Suspect};
use crate::Endpoint;

/// Outcome of the TCP fallback of the current probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpFallback {
    NotTried,
    Pending(StreamId),
    Contacted,
    Failed,
}

/// The probe in progress.
#[derive(Debug, Clone)]
pub(crate) struct ActiveProbe {
    pub seq_no: u32,
    pub node: NodeEntry,
    pub sent: Instant,
    pub direct_deadline: Instant,
    pub end: Instant,
    pub indirect_sent: bool,
    pub expected_nacks: usize,
    pub nacks: usize,
    pub tcp: TcpFallback,
}

/// The probe cycle's position.
#[derive(Debug, Clone)]
pub(crate) struct ProbeState {
    pub next_tick: Instant,
    pub index: usize,
    pub active: Option<ActiveProbe>,
    /// A tick came while a probe was running: start the next probe as soon as it ends (Go's
    /// ticker keeps one tick buffered).
    pub tick_pending: bool,
}

impl ProbeState {
    pub fn new(first_tick: Instant) -> Self {
        ProbeState { next_tick: first_tick, index: 0, active: None, tick_pending: false }
    }

    /// The next deadline of the probe in progress.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.active.as_ref().map(|p| if p.indirect_sent { p.end } else { p.direct_deadline })
    }
}

/// What to do when an ack with a given sequence number arrives, other than for our own probe.
#[derive(Debug, Clone)]
pub(crate) enum AckKind {
    /// We relay for `requester`'s indirect probe with sequence number `seq_no`.
    Relay { seq_no: u32, requester: SocketAddr, nack: bool },
    /// An application `ping` sent at `sent`.
    UserPing { sent: Instant },
}

/// A pending ack.
#[derive(Debug, Clone)]
pub(crate) struct AckHandler {
    pub deadline: Instant,
    pub kind: AckKind,
}

fn socket(addr: &[u8], port: u16) -> Option<SocketAddr> {
    ip_from_bytes(addr).map(|ip| SocketAddr::new(ip, port))
}

impl Endpoint {
    /// A ping for `node` carrying our reply address.
    pub(crate) fn ping_message(&self, seq_no: u32, node: &str) -> Ping {
        Ping {
            seq_no,
            node: node.to_owned(),
            source_addr: ip_to_bytes(self.advertise.ip()),
            source_port: self.advertise.port(),
            source_node: self.cfg.name.clone(),
        }
    }

    /// The probe ticker fired.
    pub(crate) fn probe_tick(&mut self, now: Instant) {
        self.probe.next_tick = next_after(self.probe.next_tick, self.cfg.probe_interval, now);
        if self.probe.active.is_some() {
            self.probe.tick_pending = true;
            return;
        }
        self.probe_next(now);
    }

    /// Picks the next node in probe order and probes it (Go's `probe`).
    fn probe_next(&mut self, now: Instant) {
        let mut checked = 0;
        loop {
            if checked >= self.members.len() {
                return;
            }
            if self.probe.index >= self.members.len() {
                self.reset_nodes(now);
                self.probe.index = 0;
                checked += 1;
                continue;
            }
            let Some(node) = self.members.at(self.probe.index).cloned() else { return };
            self.probe.index += 1;
            if *node.name == *self.cfg.name || node.dead_or_left() {
                checked += 1;
                continue;
            }
            self.probe_node(node, now);
            return;
        }
    }

    /// Reaps old dead and left nodes and reshuffles the probe order.
    fn reset_nodes(&mut self, now: Instant) {
        let reaped = self.members.reap_and_shuffle(now, self.cfg.gossip_to_the_dead_time, &mut self.rng);
        for e in reaped {
            self.suspicions.remove(&*e.name);
            if self.cfg.auto_rejoin_interval.is_some() {
                let addr = e.socket_addr();
                self.reaped.retain(|a| *a != addr);
                self.reaped.push_back(addr);
                if self.reaped.len() > crate::endpoint::REAPED_MEMORY {
                    self.reaped.pop_front();
                }
            }
        }
    }

    fn probe_node(&mut self, node: NodeEntry, now: Instant) {
        let probe_interval = self.awareness.scale(self.cfg.probe_interval);
        if probe_interval > self.cfg.probe_interval {
            self.stats.degraded_probe += 1;
        }
        let seq_no = self.next_seq_no();
        let ping = self.ping_message(seq_no, &node.name);
        let to = node.socket_addr();
        if node.state == NodeState::Alive || !self.cfg.buddy_system {
            self.send_msg(to, Message::Ping(ping).encode(), now);
        } else {
            let suspect =
                Suspect { incarnation: node.incarnation, node: node.name.to_string(), from: self.cfg.name.clone() };
            let parts = [Message::Ping(ping).encode(), Message::Suspect(suspect).encode()];
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            if let Ok(compound) = crate::wire::compound::encode_compound(&refs) {
                let crc = crate::wire::crc_for_peer(Some(node.vsn.pmax));
                self.send_packet(to, compound, crc);
            }
        }
        self.stats.probes += 1;
        self.probe.active = Some(ActiveProbe {
            seq_no,
            node,
            sent: now,
            direct_deadline: now + self.cfg.probe_timeout,
            end: now + probe_interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            tcp: TcpFallback::NotTried,
        });
    }

    /// Advances the probe in progress past its deadlines.
    pub(crate) fn run_probe_timers(&mut self, now: Instant) {
        let Some(p) = &self.probe.active else { return };
        if !p.indirect_sent && p.direct_deadline <= now {
            self.start_indirect_probe(now);
        }
        if self.probe.active.as_ref().is_some_and(|p| p.end <= now) {
            self.finish_failed_probe(now);
        }
    }

    fn start_indirect_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.active.as_mut() else { return };
        p.indirect_sent = true;
        let (seq_no, node, sent, end) = (p.seq_no, p.node.clone(), p.sent, p.end);
        let me = self.cfg.name.clone();
        let peers = self.members.k_random(self.cfg.indirect_checks, &mut self.rng, |e| {
            *e.name == *me || e.name == node.name || e.state != NodeState::Alive
        });
        let mut expected_nacks = 0;
        for peer in &peers {
            let nack = self.cfg.request_nacks && peer.vsn.pmax >= 4;
            expected_nacks += usize::from(nack);
            let req = IndirectPingReq {
                seq_no,
                target: node.addr.to_vec(),
                port: node.port,
                node: node.name.to_string(),
                nack,
                source_addr: ip_to_bytes(self.advertise.ip()),
                source_port: self.advertise.port(),
                source_node: me.clone(),
            };
            self.send_msg(peer.socket_addr(), Message::IndirectPing(req).encode(), now);
        }
        let tcp = if self.cfg.tcp_pings_allowed(&node.name) && node.vsn.pmax >= 3 {
            let ping = self.ping_message(seq_no, &node.name);
            let id = self.open_tcp_ping(node.socket_addr(), ping, end.max(sent), now);
            TcpFallback::Pending(id)
        } else {
            TcpFallback::NotTried
        };
        if let Some(p) = self.probe.active.as_mut() {
            p.expected_nacks = expected_nacks;
            p.tcp = tcp;
        }
    }

    /// The probe ended without an ack.
    fn finish_failed_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.active.take() else { return };
        if let TcpFallback::Pending(id) = p.tcp {
            self.abandon_stream(id);
        }
        self.samples.record(Sample::Probe(now - p.sent));
        if p.tcp == TcpFallback::Contacted {
            self.events.push_back(Event::TcpFallbackSucceeded { node: p.node.name.to_string() });
            self.awareness_delta(-1);
        } else {
            let delta = if p.expected_nacks > 0 { p.expected_nacks.saturating_sub(p.nacks) } else { 1 };
            self.awareness_delta(i64::try_from(delta).unwrap_or(i64::MAX));
            self.stats.probes_failed += 1;
            let s =
                Suspect { incarnation: p.node.incarnation, node: p.node.name.to_string(), from: self.cfg.name.clone() };
            self.suspect_node(s, now);
        }
        self.after_probe(now);
    }

    fn after_probe(&mut self, now: Instant) {
        if std::mem::take(&mut self.probe.tick_pending) {
            self.probe_next(now);
        }
    }

    pub(crate) fn awareness_delta(&mut self, delta: i64) {
        if self.awareness.apply_delta(delta) {
            self.stats.health_changes += 1;
        }
    }

    /// The TCP fallback ping of the current probe finished.
    pub(crate) fn tcp_ping_result(&mut self, id: StreamId, contacted: bool) {
        if let Some(p) = self.probe.active.as_mut().filter(|p| p.tcp == TcpFallback::Pending(id)) {
            p.tcp = if contacted { TcpFallback::Contacted } else { TcpFallback::Failed };
        }
    }

    /// Someone probes us.
    pub(crate) fn handle_ping(&mut self, from: SocketAddr, p: Ping, now: Instant) {
        if !p.node.is_empty() && p.node != self.cfg.name {
            self.stats.dropped_wrong_node += 1;
            return;
        }
        let ack = AckResp { seq_no: p.seq_no, payload: self.hooks.ack_payload() };
        let to = if p.source_port > 0 { socket(&p.source_addr, p.source_port).unwrap_or(from) } else { from };
        self.send_msg(to, Message::Ack(ack).encode(), now);
    }

    /// Someone asks us to probe a node for them.
    pub(crate) fn handle_indirect_ping(&mut self, from: SocketAddr, ind: IndirectPingReq, now: Instant) {
        let port = if self.cfg.protocol_version < 2 || ind.port == 0 { self.advertise.port() } else { ind.port };
        let Some(target) = socket(&ind.target, port) else { return };
        let requester =
            if ind.source_port > 0 { socket(&ind.source_addr, ind.source_port).unwrap_or(from) } else { from };
        let local_seq = self.next_seq_no();
        let ping = self.ping_message(local_seq, &ind.node);
        self.ack_handlers.insert(
            local_seq,
            AckHandler {
                deadline: now + self.cfg.probe_timeout,
                kind: AckKind::Relay { seq_no: ind.seq_no, requester, nack: ind.nack },
            },
        );
        self.send_msg(target, Message::Ping(ping).encode(), now);
    }

    /// An ack arrived.
    pub(crate) fn handle_ack(&mut self, ack: AckResp, now: Instant) {
        if self.probe.active.as_ref().is_some_and(|p| p.seq_no == ack.seq_no) {
            let Some(p) = self.probe.active.take() else { return };
            if let TcpFallback::Pending(id) = p.tcp {
                self.abandon_stream(id);
            }
            self.samples.record(Sample::Probe(now - p.sent));
            self.awareness_delta(-1);
            if !p.indirect_sent {
                self.events.push_back(Event::PingComplete {
                    node: Member::from(&p.node),
                    rtt: now - p.sent,
                    payload: ack.payload.unwrap_or_default(),
                });
            }
            self.after_probe(now);
            return;
        }
        match self.ack_handlers.remove(&ack.seq_no).map(|h| h.kind) {
            Some(AckKind::Relay { seq_no, requester, .. }) => {
                let fwd = AckResp { seq_no, payload: None };
                self.send_msg(requester, Message::Ack(fwd).encode(), now);
            }
            Some(AckKind::UserPing { sent }) => {
                self.events.push_back(Event::PingResult { seq_no: ack.seq_no, rtt: Some(now - sent) });
            }
            None => self.stats.dropped_unexpected += 1,
        }
    }

    /// A nack arrived.
    pub(crate) fn handle_nack(&mut self, nack: NackResp) {
        match self.probe.active.as_mut() {
            Some(p) if p.seq_no == nack.seq_no => p.nacks += 1,
            _ => self.stats.dropped_unexpected += 1,
        }
    }

    /// Expires relay handlers (sending the nacks that were asked for) and application pings.
    pub(crate) fn run_ack_timers(&mut self, now: Instant) {
        let due: Vec<u32> = self.ack_handlers.iter().filter(|(_, h)| h.deadline <= now).map(|(s, _)| *s).collect();
        for seq in due {
            match self.ack_handlers.remove(&seq).map(|h| h.kind) {
                Some(AckKind::Relay { seq_no, requester, nack: true }) => {
                    self.send_msg(requester, Message::Nack(NackResp { seq_no }).encode(), now);
                }
                Some(AckKind::UserPing { .. }) => {
                    self.events.push_back(Event::PingResult { seq_no: seq, rtt: None });
                }
                _ => {}
            }
        }
    }

    /// The probe interval currently in force: `probe_interval · (health + 1)`.
    pub fn scaled_probe_interval(&self) -> Duration {
        self.awareness.scale(self.cfg.probe_interval)
    }
}

//! The rules that change the members table: what an alive, a suspect or a dead message does,
//! refutation, push/pull merging, and protocol version checks. They follow Go's `state.go`:
//!
//! * **alive** about another node is accepted when its incarnation is higher than the known
//!   one (a new node always, unless its address is not allowed); about a known name at another
//!   address only when the old entry left, or died more than `DeadNodeReclaimTime` ago —
//!   otherwise it is a conflict. Alive about this node with a lower incarnation is ignored; with
//!   an equal one and the same meta and versions too; anything else is refuted.
//! * **suspect** needs an incarnation at least the known one. A node already under suspicion
//!   gains a confirmation instead (re-gossiped only when new). Only alive nodes become suspect;
//!   a suspicion of this node is refuted.
//! * **dead** needs an incarnation at least the known one; it clears any suspicion. `From ==
//!   Node` means the node left. Death of this node is refuted unless we are leaving.
//! * **refute**: a new incarnation above the accusation, a broadcast alive, and awareness + 1.
//! * **merge**: remote alive entries are alives; left entries are leaves; dead and suspect
//!   entries only make us suspect the node, so it gets the chance to refute.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::event::{Event, Member};
use crate::node::{NodeState, Vsn};
use crate::state::members::{ip_from_bytes, NodeEntry};
use crate::state::suspicion::{suspicion_timeout, Suspicion};
use crate::time::Instant;
use crate::wire::{Alive, Dead, Message, PushNodeState, Suspect};
use crate::Endpoint;

use super::broadcast::BroadcastId;

fn member_of_alive(a: &Alive) -> Member {
    Member {
        name: a.node.clone(),
        addr: ip_from_bytes(&a.addr).unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        port: a.port,
        meta: a.meta.clone().unwrap_or_default(),
        state: NodeState::Alive,
        incarnation: a.incarnation,
        vsn: a.vsn,
    }
}

/// Whether `key` was recorded in `log` less than `interval` before `now`.
fn recently<K: Ord + ?Sized, Q: Ord + std::borrow::Borrow<K>>(
    log: &BTreeMap<Q, Instant>,
    key: &K,
    now: Instant,
    interval: Duration,
) -> bool {
    log.get(key).is_some_and(|t| now - *t < interval)
}

/// Records `key` at `now` in `log`; once the log outgrows twice the table (`members`), entries
/// older than `interval` are dropped, so it stays bounded.
fn remember<Q: Ord>(log: &mut BTreeMap<Q, Instant>, key: Q, now: Instant, interval: Duration, members: usize) {
    if log.len() > 2 * members + 16 {
        log.retain(|_, t| now - *t < interval);
    }
    log.insert(key, now);
}

impl Endpoint {
    /// Applies an alive message. `bootstrap` is set for this node's own announcements;
    /// `notify` is reported when the resulting broadcast finishes.
    pub(crate) fn alive_node(&mut self, a: Alive, notify: Option<BroadcastId>, bootstrap: bool, now: Instant) {
        let is_local = a.node == self.cfg.name;
        // After a leave, alive messages about ourselves would make us rejoin: ignore them.
        if self.left && is_local {
            return;
        }
        // Reject broken version ranges (Go #178).
        if a.vsn.pmin == 0 || a.vsn.pmax == 0 || a.vsn.pmin > a.vsn.pmax {
            self.stats.dropped_bad_vsn += 1;
            return;
        }
        let Some(ip) = ip_from_bytes(&a.addr) else { return };
        // Fast path for the commonest message of all, gossip repeating what we already know:
        // a known node at its known address with no newer incarnation changes nothing below.
        if !is_local && self.drop_known_alive(&a.node, a.incarnation, &a.addr, a.port, now) {
            return;
        }
        let name = a.node.clone();
        let mut updates_node = false;
        match self.members.get(&a.node) {
            None => {
                if !self.cfg.ip_allowed(ip) {
                    self.stats.dropped_not_allowed += 1;
                    return;
                }
                if !self.alive_allowed_by_hooks(&a) {
                    return;
                }
                // A new node enters as dead with incarnation 0, then the rules below apply.
                let entry = NodeEntry {
                    name: a.node.as_str().into(),
                    addr: a.addr.as_slice().into(),
                    port: a.port,
                    meta: a.meta.clone(),
                    vsn: a.vsn,
                    incarnation: 0,
                    state: NodeState::Dead,
                    state_change: now,
                };
                self.members.insert(entry, &mut self.rng);
            }
            Some(existing) if *existing.addr != *a.addr || existing.port != a.port => {
                if !self.cfg.ip_allowed(ip) {
                    self.stats.dropped_not_allowed += 1;
                    return;
                }
                let reclaim = !self.cfg.dead_node_reclaim_time.is_zero()
                    && now - existing.state_change > self.cfg.dead_node_reclaim_time;
                if existing.state == NodeState::Left || (existing.state == NodeState::Dead && reclaim) {
                    updates_node = true;
                } else {
                    let existing = Member::from(existing);
                    self.events.push_back(Event::Conflict { existing, other: member_of_alive(&a) });
                    return;
                }
            }
            Some(_) => {}
        }
        let Some(state) = self.members.get(&a.node) else { return };
        if a.incarnation <= state.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < state.incarnation && is_local {
            return;
        }
        // The application sees the alives that would change something (a new node was
        // checked before it entered the table). Go also shows it stale ones, which it then drops.
        if state.incarnation > 0 && !self.alive_allowed_by_hooks(&a) {
            return;
        }
        let Some(state) = self.members.get(&a.node) else { return };
        self.suspicions.remove(&a.node);
        let old_state = state.state;
        let old_meta = state.meta.clone();
        if !bootstrap && is_local {
            if a.incarnation == state.incarnation && a.meta == state.meta && a.vsn == state.vsn {
                return;
            }
            self.refute(a.incarnation);
        } else {
            self.broadcast(&name, Message::Alive(a.clone()), notify);
            let Some(state) = self.members.get_mut(&name) else { return };
            state.vsn = a.vsn;
            state.incarnation = a.incarnation;
            state.meta = a.meta;
            state.addr = a.addr.into();
            state.port = a.port;
            if state.state != NodeState::Alive {
                state.state = NodeState::Alive;
                state.state_change = now;
            }
        }
        self.stats.msg_alive += 1;
        let Some(state) = self.members.get(&name) else { return };
        if matches!(old_state, NodeState::Dead | NodeState::Left) {
            self.events.push_back(Event::NodeJoined(Member::from(state)));
        } else if old_meta != state.meta {
            self.events.push_back(Event::NodeUpdated(Member::from(state)));
        }
    }

    /// For an alive about another node: whether it repeats what the table holds — the node known
    /// at that address and port at an incarnation at least as high — and so changes nothing.
    /// Then it is dropped, and if the table holds the node dead or suspect, the node is told so
    /// (`tell_the_accused`).
    pub(crate) fn drop_known_alive(
        &mut self,
        node: &str,
        incarnation: u32,
        addr: &[u8],
        port: u16,
        now: Instant,
    ) -> bool {
        let Some(known) = self.members.get(node) else { return false };
        if incarnation > known.incarnation || *known.addr != *addr || known.port != port {
            return false;
        }
        if known.state != NodeState::Alive {
            self.tell_the_accused(node, now);
        }
        true
    }

    /// Asks the application whether to accept an alive message (Go's `AliveDelegate`).
    fn alive_allowed_by_hooks(&mut self, a: &Alive) -> bool {
        match self.hooks.notify_alive(&member_of_alive(a)) {
            Ok(()) => true,
            Err(reason) => {
                tracing::debug!(node = %self.cfg.name, peer = %a.node, %reason, "alive vetoed");
                false
            }
        }
    }

    /// Applies a suspect message.
    pub(crate) fn suspect_node(&mut self, s: Suspect, now: Instant) {
        let Some(state) = self.members.get(&s.node) else { return };
        if s.incarnation < state.incarnation {
            return;
        }
        if let Some(timer) = self.suspicions.get_mut(&s.node) {
            if timer.confirm(&s.from, now) {
                let node = s.node.clone();
                self.broadcast(&node, Message::Suspect(s), None);
            }
            return;
        }
        if state.state != NodeState::Alive {
            return;
        }
        if s.node == self.cfg.name {
            self.refute(s.incarnation);
            return;
        }
        let node = s.node.clone();
        let (from, incarnation) = (s.from.clone(), s.incarnation);
        self.broadcast(&node, Message::Suspect(s), None);
        self.stats.msg_suspect += 1;
        let Some(state) = self.members.get_mut(&node) else { return };
        state.incarnation = incarnation;
        state.state = NodeState::Suspect;
        state.state_change = now;
        let member = Member::from(&*state);
        // k confirmations are expected so that the nominal timeout is reached two probe
        // intervals short of `suspicion_mult`; none when there are not enough other nodes
        // (n − 2 excludes this node and the suspect).
        let n = self.members.len();
        let mut k = self.cfg.suspicion_mult.saturating_sub(2);
        if n.saturating_sub(2) < k {
            k = 0;
        }
        let min = suspicion_timeout(self.cfg.suspicion_mult, n, self.cfg.probe_interval);
        let max = min * u32::try_from(self.cfg.suspicion_max_timeout_mult).unwrap_or(u32::MAX);
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        self.suspicions.insert(node, Suspicion::new(&from, k, min, max, now));
        self.events.push_back(Event::NodeSuspected(member));
    }

    /// Turns suspicions whose time is up into deaths.
    pub(crate) fn run_suspicion_timers(&mut self, now: Instant) {
        let due: Vec<String> =
            self.suspicions.iter().filter(|(_, s)| s.deadline() <= now).map(|(n, _)| n.clone()).collect();
        for node in due {
            let Some(s) = self.suspicions.remove(&node) else { continue };
            let Some(state) = self.members.get(&node) else { continue };
            // Only if nothing changed since the suspicion started.
            if state.state != NodeState::Suspect || state.state_change != s.started() {
                continue;
            }
            if s.k() > 0 && s.confirmations() < s.k() {
                self.stats.degraded_timeout += 1;
            }
            let d = Dead { incarnation: state.incarnation, node: state.name.to_string(), from: self.cfg.name.clone() };
            self.dead_node(d, now);
        }
    }

    /// Applies a dead message.
    pub(crate) fn dead_node(&mut self, d: Dead, now: Instant) {
        self.dead_node_notify(d, None, now);
    }

    pub(crate) fn dead_node_notify(&mut self, d: Dead, notify: Option<BroadcastId>, now: Instant) {
        let Some(state) = self.members.get(&d.node) else { return };
        if d.incarnation < state.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        let Some(state) = self.members.get_mut(&d.node) else { return };
        if state.dead_or_left() {
            // Go drops this without raising the stored incarnation, so a delayed alive between
            // the two incarnations would bring the node back (alive@1, dead@1, dead@10, then
            // alive@2). A dead message at a higher incarnation says the node got that far: keep
            // it, and only an alive above it revives the node. Nothing is sent (as in Go); a
            // push/pull now carries the higher incarnation, which Go peers apply as usual.
            if d.incarnation > state.incarnation {
                state.incarnation = d.incarnation;
            }
            return;
        }
        if d.node == self.cfg.name && !self.left {
            self.refute(d.incarnation);
            return;
        }
        let node = d.node.clone();
        let (incarnation, left) = (d.incarnation, d.is_leave());
        self.broadcast(&node, Message::Dead(d), notify);
        self.stats.msg_dead += 1;
        let Some(state) = self.members.get_mut(&node) else { return };
        state.incarnation = incarnation;
        state.state = if left { NodeState::Left } else { NodeState::Dead };
        state.state_change = now;
        self.events.push_back(Event::NodeLeft(Member::from(&*state)));
    }

    /// Sends `name` the accusation this node holds against it — a dead or suspect message at
    /// the stored incarnation, straight to its address — when it announced itself at or below
    /// that incarnation (see `Config::tell_the_accused`). Once per probe interval per member.
    pub(crate) fn tell_the_accused(&mut self, name: &str, now: Instant) {
        if !self.cfg.tell_the_accused {
            return;
        }
        let Some(entry) = self.members.get(name) else { return };
        if recently(&self.told, name, now, self.cfg.probe_interval) {
            return;
        }
        let Some(ip) = ip_from_bytes(&entry.addr) else { return };
        let to = std::net::SocketAddr::new(ip, entry.port);
        let (incarnation, node, from) = (entry.incarnation, name.to_owned(), self.cfg.name.clone());
        let msg = match entry.state {
            NodeState::Alive => return,
            NodeState::Suspect => Message::Suspect(Suspect { incarnation, node, from }),
            NodeState::Dead | NodeState::Left => Message::Dead(Dead { incarnation, node, from }),
        };
        let pmax = entry.vsn.pmax;
        remember(&mut self.told, name.to_owned(), now, self.cfg.probe_interval, self.members.len());
        self.stats.accusations_told += 1;
        self.send_packet(to, msg.encode(), crate::wire::crc_for_peer(Some(pmax)));
    }

    /// Sends this node's current alive straight to `from`, which passed on an accusation against
    /// it below its current incarnation: a node that missed the refutation keeps gossiping the
    /// stale suspicion, and without an answer it declares this node dead when its own timer
    /// runs out (seen by the fault search: one observer in 33 missed a refutation for the whole
    /// 36 s of its suspicion). Go ignores such messages. Part of `Config::tell_the_accused`;
    /// once per probe interval per sender.
    pub(crate) fn answer_stale_accusation(&mut self, from: std::net::SocketAddr, now: Instant) {
        if !self.cfg.tell_the_accused {
            return;
        }
        if recently(&self.answered, &from, now, self.cfg.probe_interval) {
            return;
        }
        let Some(a) = self.own_alive() else { return };
        remember(&mut self.answered, from, now, self.cfg.probe_interval, self.members.len());
        self.stats.accusations_answered += 1;
        let pmax = self.members.iter().find(|e| ip_from_bytes(&e.addr) == Some(from.ip()) && e.port == from.port());
        let crc = crate::wire::crc_for_peer(pmax.map(|e| e.vsn.pmax));
        self.send_packet(from, Message::Alive(a).encode(), crc);
    }

    /// This node's alive message as its table entry stands.
    fn own_alive(&self) -> Option<Alive> {
        let me = self.members.get(&self.cfg.name)?;
        Some(Alive {
            incarnation: me.incarnation,
            node: me.name.to_string(),
            addr: me.addr.to_vec(),
            port: me.port,
            meta: me.meta.clone(),
            vsn: me.vsn,
        })
    }

    /// Answers an accusation against this node: an incarnation above `accused_inc`, broadcast
    /// in an alive message, and one step worse health.
    pub(crate) fn refute(&mut self, accused_inc: u32) {
        let mut inc = self.next_incarnation();
        if accused_inc >= inc {
            self.incarnation = accused_inc.wrapping_add(1);
            inc = self.incarnation;
        }
        if self.awareness.apply_delta(1) {
            self.stats.health_changes += 1;
        }
        self.stats.refutes += 1;
        let Some(me) = self.members.get_mut(&self.cfg.name) else { return };
        me.incarnation = inc;
        let Some(a) = self.own_alive() else { return };
        // Go queues refutations under the IP string rather than the name; the key only decides
        // what replaces what, so the node name (which alive messages about us also use) is used.
        // Ahead of other gossip: after a restart and join, the queue holds an alive for every
        // member, and a refutation behind them all can come too late (see the queue).
        let name = a.node.clone();
        self.broadcast_urgent(&name, Message::Alive(a));
    }

    /// Merges a remote node table (Go's `mergeState`).
    pub(crate) fn merge_state(&mut self, remote: Vec<PushNodeState>, now: Instant) {
        for r in remote {
            match NodeState::from_code(r.state) {
                Some(NodeState::Alive) => {
                    let port =
                        if self.cfg.protocol_version < 2 || r.port == 0 { self.advertise.port() } else { r.port };
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port,
                        meta: r.meta,
                        vsn: r.vsn,
                    };
                    self.alive_node(a, None, false, now);
                }
                Some(NodeState::Left) => {
                    let d = Dead { incarnation: r.incarnation, node: r.name.clone(), from: r.name };
                    self.dead_node(d, now);
                }
                Some(NodeState::Dead) | Some(NodeState::Suspect) => {
                    let s = Suspect { incarnation: r.incarnation, node: r.name, from: self.cfg.name.clone() };
                    self.suspect_node(s, now);
                }
                None => {}
            }
        }
    }

    /// Checks that every node, remote and local, speaks versions the whole cluster understands
    /// (Go's `verifyProtocol`): the current protocol and delegate versions of every node must lie
    /// within [highest minimum, lowest maximum] over the alive nodes.
    pub(crate) fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<(), String> {
        let alive_remote = remote.iter().filter(|r| r.state == NodeState::Alive.code()).map(|r| r.vsn);
        let alive_local = self.members.iter().filter(|e| e.state == NodeState::Alive).map(|e| e.vsn);
        let (mut maxpmin, mut minpmax, mut maxdmin, mut mindmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        for v in alive_remote.chain(alive_local) {
            maxpmin = maxpmin.max(v.pmin);
            minpmax = minpmax.min(v.pmax);
            maxdmin = maxdmin.max(v.dmin);
            mindmax = mindmax.min(v.dmax);
        }
        let check = |name: &str, v: Vsn| {
            if v.pcur < maxpmin || v.pcur > minpmax {
                return Err(format!(
                    "Node '{name}' protocol version ({}) is incompatible: [{maxpmin}, {minpmax}]",
                    v.pcur
                ));
            }
            if v.dcur < maxdmin || v.dcur > mindmax {
                return Err(format!(
                    "Node '{name}' delegate protocol version ({}) is incompatible: [{maxdmin}, {mindmax}]",
                    v.dcur
                ));
            }
            Ok(())
        };
        for r in remote {
            check(&r.name, r.vsn)?;
        }
        for e in self.members.iter() {
            check(&e.name, e.vsn)?;
        }
        Ok(())
    }

    /// The minimum suspicion timeout for the current cluster size (for tests and tools).
    pub fn suspicion_timeout_now(&self) -> Duration {
        suspicion_timeout(self.cfg.suspicion_mult, self.members.len(), self.cfg.probe_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::members::Members;
    use crate::Config;

    fn vsn6(v: [u8; 6]) -> Vsn {
        Vsn::from_slice(&v).unwrap_or_default()
    }

    fn check(local: &[[u8; 6]], remote: &[[u8; 6]]) -> bool {
        let addr = "10.0.0.1:7946".parse().unwrap();
        let mut ep = Endpoint::new(Config::lan("me"), addr, None, Box::new(()), 1, Instant::ZERO).unwrap();
        let mut members = Members::new();
        for (i, v) in local.iter().enumerate() {
            let entry = NodeEntry {
                name: format!("local{i}").into(),
                addr: vec![10, 0, 1, i as u8].into(),
                port: 7946,
                meta: None,
                vsn: vsn6(*v),
                incarnation: 1,
                state: NodeState::Alive,
                state_change: Instant::ZERO,
            };
            members.insert(entry, &mut ep.rng);
        }
        ep.members = members;
        let remote: Vec<PushNodeState> = remote
            .iter()
            .enumerate()
            .map(|(i, v)| PushNodeState {
                name: format!("remote{i}"),
                addr: vec![10, 0, 2, i as u8],
                port: 7946,
                meta: None,
                incarnation: 1,
                state: 0,
                vsn: vsn6(*v),
            })
            .collect();
        ep.verify_protocol(&remote).is_ok()
    }

    /// A join's burst (an event and a queued alive per member) leaves no room behind once the
    /// application has taken the events and gossip has sent the alives.
    #[test]
    fn a_join_burst_leaves_no_room_behind() {
        let addr = "10.0.0.1:7946".parse().unwrap();
        let mut ep = Endpoint::new(Config::lan("me"), addr, None, Box::new(()), 1, Instant::ZERO).unwrap();
        while ep.poll_event().is_some() {} // this node's own join
        let queued_before = ep.broadcasts.len();
        for i in 0..1000u32 {
            let a = Alive {
                incarnation: 1,
                node: format!("n{i}"),
                addr: vec![10, 1, (i >> 8) as u8, i as u8],
                port: 7946,
                meta: None,
                vsn: Vsn::new(2, 0, 0, 0),
            };
            ep.alive_node(a, None, false, Instant::ZERO);
        }
        assert!(ep.events.capacity() >= 1000);
        let mut joined = 0;
        while let Some(e) = ep.poll_event() {
            joined += usize::from(matches!(e, Event::NodeJoined(_)));
        }
        assert_eq!(joined, 1000);
        assert!(ep.events.capacity() <= 2 * crate::endpoint::OUTPUT_ROOM_KEPT);
        assert_eq!(ep.broadcasts.len(), queued_before + 1000);
    }

    #[test]
    fn go_verify_protocol_table() {
        // (A nodes, B nodes, compatible) as [min, max, cur], from Go's TestVerifyProtocol.
        type Case = (&'static [[u8; 3]], &'static [[u8; 3]], bool);
        let cases: [Case; 5] = [
            (&[[0, 0, 0]], &[[0, 0, 0]], true),
            (&[[0, 0, 0]], &[[0, 1, 0]], true),
            (&[[0, 0, 0]], &[[1, 1, 1]], false),
            (&[[0, 1, 0], [0, 2, 1]], &[[1, 3, 1]], false),
            (&[[0, 3, 2], [0, 2, 0]], &[[0, 2, 1], [0, 5, 0]], true),
        ];
        for (a, b, want) in cases {
            let core = |n: &[[u8; 3]]| n.iter().map(|v| [v[0], v[1], v[2], 0, 0, 0]).collect::<Vec<_>>();
            let app = |n: &[[u8; 3]]| n.iter().map(|v| [0, 0, 0, v[0], v[1], v[2]]).collect::<Vec<_>>();
            assert_eq!(check(&core(a), &core(b)), want, "core {a:?} {b:?}");
            assert_eq!(check(&core(b), &core(a)), want, "core {b:?} {a:?}");
            assert_eq!(check(&app(a), &app(b)), want, "app {a:?} {b:?}");
            assert_eq!(check(&app(b), &app(a)), want, "app {b:?} {a:?}");
        }
    }
}

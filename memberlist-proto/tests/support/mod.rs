//! A small in-memory network for multi-node tests: a manual clock, a fixed one-way latency,
//! datagrams and streams delivered in order, and switches to cut links or crash nodes.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use memberlist_proto::{Config, Endpoint, Event, Hooks, Instant, Member, NodeState, StreamAction, StreamId};

#[derive(Debug)]
enum Delivery {
    Packet { to: usize, from: SocketAddr, bytes: Vec<u8> },
    StreamData { to: usize, id: StreamId, bytes: Vec<u8> },
    StreamClosed { to: usize, id: StreamId },
    StreamFailed { to: usize, id: StreamId },
}

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<Option<Endpoint>>,
    pub addrs: Vec<SocketAddr>,
    pub latency: Duration,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    deliveries: HashMap<usize, Delivery>,
    next_seq: u64,
    /// (node, stream) → (peer node, peer stream)
    links: HashMap<(usize, StreamId), (usize, StreamId)>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(usize, usize)>,
    /// Directed links that drop datagrams only (streams still work): (from, to).
    pub udp_cut: BTreeSet<(usize, usize)>,
    pub events: Vec<(Instant, usize, Event)>,
    pub packets_delivered: u64,
    /// Application states handed out with `StreamAction::MergeState`: (node, state, join).
    pub deferred_merges: Vec<(usize, String, bool)>,
}

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1)), 7946)
}

pub fn name(i: usize) -> String {
    format!("node-{i}")
}

impl Net {
    pub fn new() -> Self {
        Net {
            now: Instant::from_nanos(1_000_000_000),
            nodes: Vec::new(),
            addrs: Vec::new(),
            latency: Duration::from_millis(1),
            queue: BinaryHeap::new(),
            deliveries: HashMap::new(),
            next_seq: 0,
            links: HashMap::new(),
            cut: BTreeSet::new(),
            udp_cut: BTreeSet::new(),
            events: Vec::new(),
            deferred_merges: Vec::new(),
            packets_delivered: 0,
        }
    }

    /// Adds a node with `cfg` (its name is overwritten with `node-i`).
    pub fn add(&mut self, mut cfg: Config, hooks: Box<dyn Hooks>, meta: Option<Vec<u8>>) -> usize {
        let i = self.nodes.len();
        cfg.name = name(i);
        let ep = Endpoint::new(cfg, addr(i), meta, hooks, 1000 + i as u64, self.now).unwrap();
        self.nodes.push(Some(ep));
        self.addrs.push(addr(i));
        self.drain(i);
        i
    }

    pub fn node(&mut self, i: usize) -> &mut Endpoint {
        self.nodes[i].as_mut().expect("node is running")
    }

    pub fn index_of(&self, a: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|x| *x == a)
    }

    /// Stops a node for good, as kill -9 would.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Cuts (or heals) both directions between `a` and every node in `others`.
    pub fn isolate(&mut self, a: usize, cut: bool) {
        for b in 0..self.nodes.len() {
            if b != a {
                for pair in [(a, b), (b, a)] {
                    if cut {
                        self.cut.insert(pair);
                    } else {
                        self.cut.remove(&pair);
                    }
                }
            }
        }
    }

    /// Splits the nodes into groups that cannot reach each other (or heals everything with an
    /// empty list).
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.cut.clear();
        for (gi, g) in groups.iter().enumerate() {
            for (hi, h) in groups.iter().enumerate() {
                if gi != hi {
                    for &a in g {
                        for &b in h {
                            self.cut.insert((a, b));
                        }
                    }
                }
            }
        }
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.next_seq += 1;
        let id = self.next_seq as usize;
        self.deliveries.insert(id, d);
        self.queue.push(Reverse((at, self.next_seq, id)));
    }

    fn blocked(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Drains everything node `i` wants done.
    pub fn drain(&mut self, i: usize) {
        loop {
            let Some(ep) = self.nodes[i].as_mut() else { return };
            let mut progressed = false;
            let mut transmits = Vec::new();
            while let Some(t) = ep.poll_transmit() {
                transmits.push(t);
            }
            for t in transmits {
                progressed = true;
                if let Some(to) = self.addrs.iter().position(|a| *a == t.to) {
                    if !self.cut.contains(&(i, to)) && !self.udp_cut.contains(&(i, to)) {
                        let at = self.now + self.latency;
                        let from = self.addrs[i];
                        self.schedule(at, Delivery::Packet { to, from, bytes: t.bytes });
                    }
                }
            }
            let ep = self.nodes[i].as_mut().unwrap();
            let mut actions = Vec::new();
            while let Some(a) = ep.poll_stream() {
                actions.push(a);
            }
            let mut events = Vec::new();
            while let Some(e) = ep.poll_event() {
                events.push(e);
            }
            for e in events {
                self.events.push((self.now, i, e));
            }
            for a in actions {
                progressed = true;
                self.stream_action(i, a);
            }
            if !progressed {
                return;
            }
        }
    }

    fn stream_action(&mut self, i: usize, a: StreamAction) {
        let at = self.now + self.latency;
        match a {
            StreamAction::Connect { id, to, .. } => {
                let target = self.index_of(to);
                match target {
                    Some(t) if self.nodes[t].is_some() && !self.blocked(i, t) && !self.blocked(t, i) => {
                        let from = self.addrs[i];
                        let now = self.now;
                        let peer_id = self.nodes[t].as_mut().unwrap().handle_stream_accepted(from, now);
                        self.links.insert((i, id), (t, peer_id));
                        self.links.insert((t, peer_id), (i, id));
                    }
                    _ => self.schedule(at, Delivery::StreamFailed { to: i, id }),
                }
            }
            StreamAction::Write { id, bytes } => {
                if let Some(&(peer, peer_id)) = self.links.get(&(i, id)) {
                    self.schedule(at, Delivery::StreamData { to: peer, id: peer_id, bytes });
                }
            }
            // A driver that runs the application's state itself: every node's state is
            // `deferred-state-of-<name>`, merges are recorded.
            StreamAction::WriteState { id, state } => {
                let me = self.nodes[i].as_ref().map(|n| n.name().to_owned()).unwrap_or_default();
                if let Ok(bytes) = state.seal(format!("deferred-state-of-{me}").into_bytes()) {
                    self.stream_action(i, StreamAction::Write { id, bytes });
                }
            }
            StreamAction::MergeState { id, state, join } => {
                self.deferred_merges.push((i, String::from_utf8_lossy(&state).into_owned(), join));
                if let Some(n) = self.nodes[i].as_mut() {
                    n.handle_state_merged(id, self.now);
                }
            }
            StreamAction::Close { id } => {
                if let Some((peer, peer_id)) = self.links.remove(&(i, id)) {
                    self.schedule(at, Delivery::StreamClosed { to: peer, id: peer_id });
                }
            }
        }
    }

    fn next_time(&self) -> Option<Instant> {
        let mut next = self.queue.peek().map(|Reverse((t, _, _))| *t);
        for ep in self.nodes.iter().flatten() {
            if let Some(t) = ep.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Runs the network until `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.next_time() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            while let Some(Reverse((at, _, id))) = self.queue.peek().copied() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                let d = self.deliveries.remove(&id).unwrap();
                self.deliver(d);
            }
            for i in 0..self.nodes.len() {
                let now = self.now;
                if let Some(ep) = self.nodes[i].as_mut() {
                    if ep.poll_timeout().is_some_and(|t| t <= now) {
                        ep.handle_timeout(now);
                    }
                }
                self.drain(i);
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        let to = match &d {
            Delivery::Packet { to, .. }
            | Delivery::StreamData { to, .. }
            | Delivery::StreamClosed { to, .. }
            | Delivery::StreamFailed { to, .. } => *to,
        };
        let Some(ep) = self.nodes[to].as_mut() else { return };
        match d {
            Delivery::Packet { from, bytes, .. } => {
                self.packets_delivered += 1;
                ep.handle_packet(from, &bytes, now)
            }
            Delivery::StreamData { id, bytes, .. } => ep.handle_stream_data(id, &bytes, now),
            Delivery::StreamClosed { id, .. } => ep.handle_stream_closed(id, now),
            Delivery::StreamFailed { id, .. } => ep.handle_stream_error(id, "connection refused", now),
        }
        self.drain(to);
    }

    /// Joins node `i` through node `seed`.
    pub fn join(&mut self, i: usize, seed: usize) {
        let now = self.now;
        let seed_addr = self.addrs[seed];
        self.node(i).join(&[seed_addr], now);
        self.drain(i);
    }

    /// The state node `observer` holds for node `subject`.
    pub fn state(&self, observer: usize, subject: usize) -> Option<NodeState> {
        self.nodes[observer].as_ref()?.member(&name(subject)).map(|m| m.state)
    }

    pub fn member(&self, observer: usize, subject: usize) -> Option<Member> {
        self.nodes[observer].as_ref()?.member(&name(subject))
    }

    /// Whether every running node sees every running node alive.
    pub fn converged(&self) -> bool {
        let running: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some()).collect();
        running.iter().all(|&o| running.iter().all(|&s| self.state(o, s) == Some(NodeState::Alive)))
    }
}

//! The discrete-event engine: many `memberlist_proto::Endpoint`s, one virtual clock, one event
//! queue, one network RNG.
//!
//! Everything that happens is an item in a priority queue ordered by (time, sequence number):
//! datagram and stream deliveries, node wake-ups for protocol timers, delayed processing of
//! slow nodes. Items at the same time run in the order they were scheduled. Nodes never run
//! concurrently, so a run is a pure function of the seed and the scenario.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use memberlist_proto::state::members::{ip_to_bytes, NodeEntry};
use memberlist_proto::{Config, Endpoint, Event, Instant, StreamAction, StreamId};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::network::NetworkModel;
use crate::record::{CrashRecord, Recorder};

/// SplitMix64, to derive independent seeds from one.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The address of node `i`: 10.0.0.1, 10.0.0.2, … port 7946.
pub fn node_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a00_0000u32 + 1 + i as u32);
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// The name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

#[derive(Debug)]
enum Item {
    Packet {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    StreamData {
        to: usize,
        gen: u32,
        id: StreamId,
        bytes: Vec<u8>,
    },
    StreamClosed {
        to: usize,
        gen: u32,
        id: StreamId,
    },
    StreamFailed {
        to: usize,
        gen: u32,
        id: StreamId,
    },
    Wake {
        node: usize,
        gen: u32,
    },
    /// An item a slow node has already spent its processing time on.
    Ready(Box<Item>),
}

impl Item {
    fn target(&self) -> usize {
        match self {
            Item::Packet { to, .. }
            | Item::StreamData { to, .. }
            | Item::StreamClosed { to, .. }
            | Item::StreamFailed { to, .. } => *to,
            Item::Wake { node, .. } => *node,
            Item::Ready(inner) => inner.target(),
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    item: Item,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One simulated node.
struct SimNode {
    ep: Option<Endpoint>,
    cfg: Config,
    gen: u32,
    wake_at: Option<Instant>,
    paused_until: Option<Instant>,
    /// During the pause only what the node receives waits; its timers keep firing (the
    /// Lifeguard paper's "slow message processing"). Otherwise timers wait too (a stopped
    /// process).
    timers_run: bool,
    backlog: VecDeque<Item>,
    /// Extra processing time per datagram (the "slow" fault).
    cost: Duration,
    /// Was ever paused or slowed: its false deaths are not counted against healthy nodes.
    anomalous: bool,
    busy_until: Instant,
}

/// One end of a simulated stream: (node, its generation, its stream id).
type StreamEnd = (usize, u32, StreamId);

/// The simulator.
pub struct Sim {
    now: Instant,
    /// Nodes with a pause in force, so that resuming does not scan every node on every event.
    paused: std::collections::BTreeSet<usize>,
    seed: u64,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    /// The network model; change it between `run_*` calls.
    pub net: NetworkModel,
    net_rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// Open streams, both directions: (node, generation, id) → (peer, its generation, its id,
    /// when the connection handshake completed).
    links: HashMap<StreamEnd, (usize, u32, StreamId, Instant)>,
    /// Everything measured so far.
    pub rec: Recorder,
    /// Events seen, kept when `keep_events` is set (for tests).
    pub events: Vec<(Instant, usize, Event)>,
    /// Whether to keep every event in `events`.
    pub keep_events: bool,
    next_sample: Instant,
}

impl Sim {
    /// An empty simulation with `seed`.
    pub fn new(seed: u64, net: NetworkModel) -> Self {
        Sim {
            now: Instant::from_nanos(1_000_000_000),
            paused: std::collections::BTreeSet::new(),
            seed,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            net,
            net_rng: ChaCha8Rng::seed_from_u64(splitmix64(seed)),
            queue: BinaryHeap::new(),
            seq: 0,
            links: HashMap::new(),
            rec: Recorder::default(),
            events: Vec::new(),
            keep_events: false,
            next_sample: Instant::from_nanos(1_000_000_000),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s endpoint, if it is running.
    pub fn endpoint(&self, i: usize) -> Option<&Endpoint> {
        self.nodes.get(i).and_then(|n| n.ep.as_ref())
    }

    /// Whether node `i` is running (not crashed).
    pub fn running(&self, i: usize) -> bool {
        self.endpoint(i).is_some()
    }

    /// Indices of running nodes.
    pub fn running_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.running(*i)).collect()
    }

    /// Adds and starts a node with `cfg` (its name becomes `node-i`).
    pub fn add_node(&mut self, cfg: Config) -> usize {
        let i = self.nodes.len();
        self.net.ensure(i);
        self.by_addr.insert(node_addr(i), i);
        self.nodes.push(SimNode {
            ep: None,
            cfg,
            gen: 0,
            wake_at: None,
            paused_until: None,
            timers_run: false,
            backlog: VecDeque::new(),
            cost: Duration::ZERO,
            anomalous: false,
            busy_until: Instant::ZERO,
        });
        self.start(i);
        i
    }

    fn start(&mut self, i: usize) {
        if let Some(view) = self.rec.live_view.get_mut(i) {
            *view = 0;
        }
        let node = &mut self.nodes[i];
        node.gen += 1;
        let mut cfg = node.cfg.clone();
        cfg.name = node_name(i);
        let seed = splitmix64(self.seed ^ (i as u64) << 20 ^ u64::from(node.gen) << 52);
        node.ep = Some(Endpoint::new(cfg, node_addr(i), None, Box::new(()), seed, self.now).expect("valid config"));
        node.wake_at = None;
        node.paused_until = None;
        node.backlog.clear();
        self.paused.remove(&i);
        self.after_input(i);
    }

    /// Gives every running node every other running node as an alive member at incarnation 1,
    /// silently (no join traffic, no events): a converged cluster from the start, for runs whose
    /// subject is not the bootstrap. `config` supplies the version ranges.
    pub fn assume_converged(&mut self, config: &Config) {
        let now = self.now;
        let running = self.running_nodes();
        let vsn = config.vsn();
        // One allocation per name, shared by every table.
        let members: Vec<NodeEntry> = running
            .iter()
            .map(|&i| {
                let addr = node_addr(i);
                NodeEntry {
                    name: node_name(i).into(),
                    addr: ip_to_bytes(addr.ip()).into(),
                    port: addr.port(),
                    meta: None,
                    vsn,
                    incarnation: 1,
                    state: memberlist_proto::NodeState::Alive,
                    state_change: now,
                }
            })
            .collect();
        let n = running.len() as i64;
        for &i in &running {
            if let Some(ep) = self.nodes[i].ep.as_mut() {
                ep.assume_entries(members.iter().cloned());
            }
            if let Some(v) = self.rec.live_view.get_mut(i) {
                *v = n;
            }
            self.after_input(i);
        }
    }

    /// Makes node `i` join through `seeds`.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let now = self.now;
        let addrs: Vec<SocketAddr> = seeds.iter().map(|s| node_addr(*s)).collect();
        if let Some(ep) = self.nodes[i].ep.as_mut() {
            ep.join(&addrs, now);
        }
        self.after_input(i);
    }

    /// Node `i` changes its metadata: an alive with a higher incarnation that every node
    /// re-gossips, the update whose spread [`Recorder::receipts`] watches.
    pub fn update_meta(&mut self, i: usize, meta: Vec<u8>) {
        let now = self.now;
        if let Some(ep) = self.nodes[i].ep.as_mut() {
            let _ = ep.update_meta(Some(meta), now);
        }
        self.after_input(i);
    }

    /// Node `i` leaves gracefully.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        if let Some(ep) = self.nodes[i].ep.as_mut() {
            ep.leave(now);
        }
        self.after_input(i);
    }

    /// Node `i` stops for good, as after kill -9.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].ep = None;
        self.nodes[i].backlog.clear();
        self.rec.crashes.insert(i, CrashRecord { at: Some(self.now), ..CrashRecord::default() });
    }

    /// Node `i` (crashed or not) starts again under the same name and joins through `seeds`.
    /// Its crash record is dropped (it is no longer a crash to detect) and it counts as
    /// anomalous from now on: suspicions of its old life still in flight are not false alarms
    /// about a healthy member.
    pub fn restart(&mut self, i: usize, seeds: &[usize]) {
        self.rec.crashes.remove(&i);
        self.nodes[i].anomalous = true;
        self.start(i);
        self.join(i, seeds);
    }

    /// Node `i` processes nothing for `d`: datagrams and stream bytes queue up, timers wait
    /// (a stopped process: SIGSTOP, a long GC pause).
    pub fn pause(&mut self, i: usize, d: Duration) {
        self.hold(i, d, false);
    }

    /// Node `i` processes nothing it receives for `d` — datagrams and stream bytes queue up —
    /// while its timers keep firing and it keeps sending: the slow message processing of the
    /// Lifeguard paper, where a member's probes time out because it cannot read the acks.
    pub fn stall_input(&mut self, i: usize, d: Duration) {
        self.hold(i, d, true);
    }

    fn hold(&mut self, i: usize, d: Duration, timers_run: bool) {
        let node = &mut self.nodes[i];
        let until = self.now + d;
        node.paused_until = Some(node.paused_until.map_or(until, |t| t.max(until)));
        node.timers_run = timers_run;
        node.anomalous = true;
        self.paused.insert(i);
    }

    /// Everything node `i` receives costs it `cost` of processing time (zero to heal).
    pub fn set_slow(&mut self, i: usize, cost: Duration) {
        self.nodes[i].cost = cost;
        self.nodes[i].anomalous |= !cost.is_zero();
    }

    /// Whether node `i` was never paused nor slowed.
    pub fn healthy(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| !n.anomalous)
    }

    fn schedule(&mut self, at: Instant, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, item }));
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.resume_due(until);
            let Some(Reverse(next)) = self.queue.peek() else { break };
            if next.at > until {
                break;
            }
            let Some(Reverse(s)) = self.queue.pop() else { break };
            self.now = self.now.max(s.at);
            self.sample_awareness();
            self.dispatch(s.item);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `done` holds (checked every `step`) or `limit` passes; returns whether it held.
    pub fn run_while_not(&mut self, limit: Duration, step: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            let next = (self.now + step).min(end);
            self.run_until(next);
        }
        done(self)
    }

    fn sample_awareness(&mut self) {
        if self.now < self.next_sample {
            return;
        }
        self.next_sample = self.now + Duration::from_secs(1);
        let scores: Vec<u32> = self.nodes.iter().filter_map(|n| n.ep.as_ref()).map(Endpoint::health_score).collect();
        if scores.is_empty() {
            return;
        }
        let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64;
        let max = scores.iter().copied().max().unwrap_or(0);
        self.rec.awareness.push((self.now, mean, max));
    }

    /// Resumes paused nodes whose pause ends by `until`, in index order.
    fn resume_due(&mut self, until: Instant) {
        let next_item = self.queue.peek().map(|Reverse(s)| s.at).unwrap_or(until);
        let horizon = next_item.min(until);
        let due: Vec<(usize, Instant)> = self
            .paused
            .iter()
            .filter_map(|&i| self.nodes[i].paused_until.filter(|t| *t <= horizon).map(|t| (i, t)))
            .collect();
        for (i, t) in due {
            self.now = self.now.max(t);
            self.nodes[i].paused_until = None;
            self.paused.remove(&i);
            // Like a process coming back from a stall: its overdue timers fire before it gets
            // to the datagrams that queued up meanwhile, so its probes time out although their
            // acks are waiting (the failure Lifeguard is designed for).
            if !self.nodes[i].timers_run {
                let now = self.now;
                if let Some(ep) = self.nodes[i].ep.as_mut() {
                    ep.handle_timeout(now);
                }
                self.after_input(i);
            }
            let backlog: Vec<Item> = self.nodes[i].backlog.drain(..).collect();
            for item in backlog {
                self.dispatch(item);
            }
        }
    }

    fn dispatch(&mut self, item: Item) {
        let (item, paid) = match item {
            Item::Ready(inner) => (*inner, true),
            other => (other, false),
        };
        let to = item.target();
        let Some(node) = self.nodes.get_mut(to) else { return };
        if node.ep.is_none() {
            return;
        }
        match &item {
            _ if node.paused_until.is_none() => {}
            // The wake-up is not lost: the resume runs the overdue timers and schedules the
            // next wake-up, which must not be held back by this one.
            Item::Wake { .. } if !node.timers_run => {
                node.wake_at = None;
                return;
            }
            Item::Wake { .. } => {}
            _ => {
                node.backlog.push_back(item);
                return;
            }
        }
        let now = self.now;
        // A slow node spends `cost` on everything it receives (datagrams and stream traffic):
        // what arrives while it is busy waits its turn.
        if !paid && !matches!(item, Item::Wake { .. }) && !node.cost.is_zero() {
            if node.busy_until > now {
                let at = node.busy_until;
                node.busy_until = at + node.cost;
                self.schedule(at, Item::Ready(Box::new(item)));
                return;
            }
            node.busy_until = now + node.cost;
        }
        let gen = node.gen;
        let Some(ep) = node.ep.as_mut() else { return };
        match item {
            Item::Packet { from, bytes, .. } => {
                self.rec.packet(now, from, to, &bytes);
                ep.handle_packet(node_addr(from), &bytes, now);
            }
            Item::StreamData { gen: g, id, bytes, .. } if g == gen => ep.handle_stream_data(id, &bytes, now),
            Item::StreamClosed { gen: g, id, .. } if g == gen => ep.handle_stream_closed(id, now),
            Item::StreamFailed { gen: g, id, .. } if g == gen => ep.handle_stream_error(id, "connection refused", now),
            Item::Wake { gen: g, .. } if g == gen => {
                node.wake_at = None;
                ep.handle_timeout(now);
            }
            Item::Ready(_) => unreachable!("unwrapped above"),
            _ => return,
        }
        self.after_input(to);
    }

    /// Collects everything node `i` wants done, then schedules its next wake-up.
    fn after_input(&mut self, i: usize) {
        loop {
            let mut progressed = false;
            let now = self.now;
            let gen = self.nodes[i].gen;
            let mut transmits = Vec::new();
            let mut actions = Vec::new();
            let mut events = Vec::new();
            {
                let Some(ep) = self.nodes[i].ep.as_mut() else { return };
                while let Some(t) = ep.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(a) = ep.poll_stream() {
                    actions.push(a);
                }
                while let Some(e) = ep.poll_event() {
                    events.push(e);
                }
            }
            for t in transmits {
                progressed = true;
                let Some(&to) = self.by_addr.get(&t.to) else { continue };
                match self.net.datagram(i, to, &mut self.net_rng) {
                    Some(latency) => self.schedule(now + latency, Item::Packet { to, from: i, bytes: t.bytes }),
                    None => self.rec.lost += 1,
                }
            }
            for a in actions {
                progressed = true;
                self.stream_action(i, gen, a);
            }
            for e in events {
                self.record_event(i, &e);
                if self.keep_events {
                    self.events.push((now, i, e));
                }
            }
            if !progressed {
                break;
            }
        }
        let next = self.nodes[i].ep.as_ref().and_then(Endpoint::poll_timeout);
        if let Some(t) = next {
            let node = &mut self.nodes[i];
            if node.wake_at.is_none_or(|w| t < w) {
                node.wake_at = Some(t);
                let gen = node.gen;
                self.schedule(t.max(self.now), Item::Wake { node: i, gen });
            }
        }
    }

    fn record_event(&mut self, observer: usize, e: &Event) {
        let now = self.now;
        let index_of = |name: &str| name.strip_prefix("node-").and_then(|n| n.parse::<usize>().ok());
        let nodes = &self.nodes;
        let is_running = |i: usize| nodes.get(i).is_some_and(|n| n.ep.is_some());
        let healthy = |i: usize| nodes.get(i).is_some_and(|n| !n.anomalous);
        self.rec.event(now, observer, e, index_of, is_running, healthy);
        // Once every running node has declared a crashed node dead, its detection is complete.
        if let Event::NodeLeft(m) = e {
            if let Some(s) = index_of(&m.name) {
                let live = self.nodes.iter().filter(|n| n.ep.is_some()).count();
                if let Some(c) = self.rec.crashes.get_mut(&s) {
                    if c.all_dead.is_none() && c.dead_at >= live {
                        c.all_dead = Some(now);
                    }
                }
            }
        }
    }

    fn stream_action(&mut self, i: usize, gen: u32, a: StreamAction) {
        let at = self.now + self.net.stream_latency();
        match a {
            StreamAction::Connect { id, to, .. } => {
                let target = self.by_addr.get(&to).copied();
                match target {
                    Some(t) if self.nodes[t].ep.is_some() && self.net.reachable(i, t) && self.net.reachable(t, i) => {
                        let now = self.now;
                        // A lost SYN or SYN-ACK costs retransmission timeouts before any data.
                        let ready = now + self.net.handshake_delay(i, t, &mut self.net_rng);
                        let from = node_addr(i);
                        let tgen = self.nodes[t].gen;
                        let Some(ep) = self.nodes[t].ep.as_mut() else { return };
                        let peer_id = ep.handle_stream_accepted(from, now);
                        self.links.insert((i, gen, id), (t, tgen, peer_id, ready));
                        self.links.insert((t, tgen, peer_id), (i, gen, id, ready));
                        self.after_input(t);
                    }
                    _ => self.schedule(at, Item::StreamFailed { to: i, gen, id }),
                }
            }
            StreamAction::Write { id, bytes } => {
                if let Some(&(peer, pgen, pid, ready)) = self.links.get(&(i, gen, id)) {
                    let at = at.max(ready + self.net.stream_latency());
                    self.schedule(at, Item::StreamData { to: peer, gen: pgen, id: pid, bytes });
                }
            }
            // The simulated nodes keep no application state: the core only hands these out to a
            // driver that asked for them, and they are completed here as that driver would.
            StreamAction::WriteState { id, state } => {
                if let Ok(bytes) = state.seal(Vec::new()) {
                    self.stream_action(i, gen, StreamAction::Write { id, bytes });
                }
            }
            StreamAction::MergeState { id, .. } => {
                let now = self.now;
                if let Some(ep) = self.nodes[i].ep.as_mut() {
                    ep.handle_state_merged(id, now);
                }
            }
            StreamAction::Close { id } => {
                if let Some((peer, pgen, pid, ready)) = self.links.remove(&(i, gen, id)) {
                    let at = at.max(ready + self.net.stream_latency());
                    self.schedule(at, Item::StreamClosed { to: peer, gen: pgen, id: pid });
                }
            }
        }
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> u64 {
        self.rec.hash.value()
    }

    /// Whether every running node counts exactly the running nodes as live members.
    pub fn converged(&self) -> bool {
        let running = self.running_nodes();
        let n = running.len() as i64;
        running.iter().all(|&i| self.rec.live_view.get(i).copied() == Some(n))
            && running.iter().all(|&i| self.endpoint(i).is_some_and(|ep| ep.num_members() == running.len()))
    }

    /// Cheap convergence check from the event counts only.
    pub fn converged_by_events(&self) -> bool {
        let running = self.running_nodes();
        let n = running.len() as i64;
        running.iter().all(|&i| self.rec.live_view.get(i).copied() == Some(n))
    }

    /// Sum of the endpoints' datagram counters: (packets, bytes) sent.
    pub fn sent_totals(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .filter_map(|n| n.ep.as_ref())
            .map(|ep| (ep.stats().packets_sent, ep.stats().bytes_sent))
            .fold((0, 0), |(p, b), (p2, b2)| (p + p2, b + b2))
    }
}

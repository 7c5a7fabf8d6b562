//! The discrete-event engine: many `memberlist_proto::Endpoint`s on one virtual clock.
//!
//! Time advances in conservative windows. A window starts at the earliest pending item `T` and
//! ends at `T + L`, where `L` is the network model's minimum latency: nothing a node sends
//! during the window can reach another node before the window ends, so the nodes with items
//! in the window are independent of each other and run in any order, on any number of threads
//! ([`node`](crate::node) holds what one node does). Their outputs are then merged in node
//! order — deliveries into the targets' queues, measurements into the recorder sorted by
//! (time, node) — so a run is a pure function of the seed and the scenario, identical with one
//! thread or several.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use memberlist_proto::state::members::{ip_to_bytes, NodeEntry};
use memberlist_proto::{Config, Endpoint, Event, Instant};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::network::NetworkModel;
use crate::node::{Ctx, Item, Rec, Scheduled, SimNode};
use crate::record::{CrashRecord, Recorder};
use crate::watch::Watch;

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

/// The name of node `i` (its first life; see [`Sim::replace`]).
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// The node whose address a member name belongs to: `node-i` and `node-i-g` (a member that
/// [`Sim::replace`] put on node `i`'s address) are both `i`.
pub fn slot_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("node-")?;
    rest.split('-').next()?.parse().ok()
}

/// Below this many pending items a window runs on the calling thread alone: handing nodes to
/// another thread costs more than it saves.
const PARALLEL_MIN_ITEMS: usize = 6;

/// What the nodes of a window read and nobody changes while windows run.
struct Shared {
    net: NetworkModel,
    by_addr: HashMap<SocketAddr, usize>,
    up: Arc<Vec<Option<u32>>>,
}

impl Shared {
    fn ctx(&self, window: u64) -> Ctx<'_> {
        Ctx { net: &self.net, by_addr: &self.by_addr, up: &self.up, window }
    }
}

/// A window's nodes, for every thread to take from: each thread claims the next unclaimed
/// node (heaviest first) until none is left, so the threads finish within one node of each
/// other whatever the nodes cost.
struct Work {
    nodes: Vec<Mutex<Option<Box<SimNode>>>>,
    next: AtomicUsize,
    end: Instant,
    window: u64,
}

impl Work {
    fn run(&self, shared: &Shared) {
        let ctx = shared.ctx(self.window);
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.nodes.get(k) else { break };
            let mut guard = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(node) = guard.as_mut() {
                node.run_window(self.end, &ctx);
            }
        }
    }
}

/// The worker threads of one `run_until` call.
struct Workers<'a> {
    jobs: Vec<mpsc::Sender<Arc<Work>>>,
    done: &'a mpsc::Receiver<()>,
}

/// The simulator.
pub struct Sim {
    now: Instant,
    seed: u64,
    /// Every node ever added, by index; a node is taken out only while a window runs it.
    nodes: Vec<Option<Box<SimNode>>>,
    /// Per node: its generation while it runs, `None` while it is crashed (shared with the
    /// windows' threads while they run, changed only between windows).
    up: Arc<Vec<Option<u32>>>,
    live: usize,
    by_addr: HashMap<SocketAddr, usize>,
    /// The network model; change it between `run_*` calls.
    pub net: NetworkModel,
    /// (time, node) for every pending item, possibly repeated; the earliest says where the next
    /// window starts and which nodes it concerns.
    agenda: BinaryHeap<Reverse<(Instant, usize)>>,
    window: u64,
    merge_seq: u64,
    threads: usize,
    /// Messages decoded by endpoints that have since crashed or restarted.
    retired_messages: u64,
    /// Everything measured so far.
    pub rec: Recorder,
    /// Events seen, kept when `keep_events` is set (for tests).
    pub events: Vec<(Instant, usize, Event)>,
    /// Whether to keep every event in `events`.
    pub keep_events: bool,
    /// Invariants checked as the run goes, when turned on with [`Sim::enable_watch`].
    pub watch: Option<Watch>,
    next_sample: Instant,
}

impl Sim {
    /// An empty simulation with `seed`, running on one thread.
    pub fn new(seed: u64, net: NetworkModel) -> Self {
        Sim {
            now: Instant::from_nanos(1_000_000_000),
            seed,
            nodes: Vec::new(),
            up: Arc::new(Vec::new()),
            live: 0,
            by_addr: HashMap::new(),
            net,
            agenda: BinaryHeap::new(),
            window: 0,
            merge_seq: 0,
            threads: 1,
            retired_messages: 0,
            rec: Recorder::default(),
            events: Vec::new(),
            keep_events: false,
            watch: None,
            next_sample: Instant::from_nanos(1_000_000_000),
        }
    }

    /// Runs windows on `n` threads (at least 1). The results do not depend on it.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Checks the [`Watch`]'s invariants from now on.
    /// `reap_after` is the nodes' `gossip_to_the_dead_time`.
    pub fn enable_watch(&mut self, reap_after: Duration) {
        self.watch.get_or_insert_with(|| Watch::new(reap_after));
        for n in self.nodes.iter_mut().flatten() {
            n.keep_bytes = true;
        }
    }

    /// Node `i`'s generation: how many times it was started.
    pub fn generation(&self, i: usize) -> u32 {
        self.node(i).map_or(0, |n| n.gen)
    }

    /// Counts node `i` as faulted (as a pause or a restart does): its false deaths, and those
    /// it declares, are not held against healthy nodes.
    pub fn mark_faulted(&mut self, i: usize) {
        self.node_mut(i).anomalous = true;
    }

    /// The number of threads windows run on.
    pub fn threads(&self) -> usize {
        self.threads
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

    fn node(&self, i: usize) -> Option<&SimNode> {
        self.nodes.get(i).and_then(|n| n.as_deref())
    }

    fn node_mut(&mut self, i: usize) -> &mut SimNode {
        self.nodes[i].as_deref_mut().expect("nodes are in place between windows")
    }

    /// Node `i`'s endpoint, if it is running.
    pub fn endpoint(&self, i: usize) -> Option<&Endpoint> {
        self.node(i).and_then(|n| n.ep.as_ref())
    }

    /// Whether node `i` is running (not crashed).
    pub fn running(&self, i: usize) -> bool {
        self.up.get(i).is_some_and(Option::is_some)
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
        let rng = ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ 0x6e65_7477_0000_0000 ^ (i as u64) << 20));
        let mut node = SimNode::new(i, cfg, rng);
        node.keep_bytes = self.watch.is_some();
        self.nodes.push(Some(Box::new(node)));
        Arc::make_mut(&mut self.up).push(None);
        self.start(i);
        i
    }

    fn start(&mut self, i: usize) {
        if let Some(view) = self.rec.live_view.get_mut(i) {
            *view = 0;
        }
        if let Some(w) = self.watch.as_mut() {
            w.forget_observer(i);
        }
        let (seed, now) = (self.seed, self.now);
        let node = self.node_mut(i);
        let retired = node.ep.take().map_or(0, |ep| ep.stats().messages_received);
        node.gen += 1;
        let mut cfg = node.cfg.clone();
        cfg.name = node.name.clone();
        let ep_seed = splitmix64(seed ^ (i as u64) << 20 ^ u64::from(node.gen) << 52);
        node.ep = Some(Endpoint::new(cfg, node_addr(i), None, Box::new(()), ep_seed, now).expect("valid config"));
        node.wake_at = None;
        node.paused_until = None;
        node.backlog.clear();
        node.reset_streams();
        let gen = node.gen;
        self.retired_messages += retired;
        if self.up[i].is_none() {
            self.live += 1;
        }
        Arc::make_mut(&mut self.up)[i] = Some(gen);
        self.with_node(i, |node, now, ctx| node.after_input(now, ctx));
    }

    /// Runs `f` on node `i` outside any window (a scenario's action), then merges what it
    /// produced.
    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut SimNode, Instant, &Ctx<'_>)) {
        let mut node = self.nodes[i].take().expect("nodes are in place between windows");
        let ctx = Ctx { net: &self.net, by_addr: &self.by_addr, up: &self.up, window: self.window };
        f(&mut node, self.now, &ctx);
        self.nodes[i] = Some(node);
        let end = self.now;
        self.merge(&[i], end);
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
        // N tables of N entries: the tables fill on every thread (each is its node's own). Each
        // thread clones the names once, so that no two threads bump the same reference counts.
        let chunk = self.nodes.len().div_ceil(self.threads).max(1);
        std::thread::scope(|s| {
            for part in self.nodes.chunks_mut(chunk) {
                let members: Vec<NodeEntry> =
                    members.iter().map(|e| NodeEntry { name: e.name.as_ref().into(), ..e.clone() }).collect();
                s.spawn(move || {
                    for ep in part.iter_mut().filter_map(|n| n.as_mut()?.ep.as_mut()) {
                        ep.assume_entries(members.iter().cloned());
                    }
                    drop(members);
                });
            }
        });
        for &i in &running {
            if let Some(v) = self.rec.live_view.get_mut(i) {
                *v = n;
            }
            self.with_node(i, |node, now, ctx| node.after_input(now, ctx));
        }
    }

    /// Runs `f` on node `i`'s endpoint, if it is running, then collects what it produced.
    fn act(&mut self, i: usize, f: impl FnOnce(&mut Endpoint, Instant)) {
        self.with_node(i, |node, now, ctx| {
            if let Some(ep) = node.ep.as_mut() {
                f(ep, now);
            }
            node.after_input(now, ctx);
        });
    }

    /// Makes node `i` join through `seeds`.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|s| node_addr(*s)).collect();
        self.act(i, |ep, now| {
            ep.join(&addrs, now);
        });
    }

    /// Node `i` changes its metadata: an alive with a higher incarnation that every node
    /// re-gossips, the update whose spread [`Recorder::receipts`] watches.
    pub fn update_meta(&mut self, i: usize, meta: Vec<u8>) {
        self.act(i, |ep, now| {
            let _ = ep.update_meta(Some(meta), now);
        });
    }

    /// Node `i` leaves gracefully; the broadcast to wait for before it stops (see
    /// [`LeaveWatch`](crate::record::LeaveWatch)), if it was running.
    pub fn leave(&mut self, i: usize) -> Option<memberlist_proto::BroadcastId> {
        let mut id = None;
        self.act(i, |ep, now| id = Some(ep.leave(now)));
        id
    }

    /// Node `i` queues application data for gossip (Go's delegate broadcasts, as Serf's).
    pub fn queue_user_broadcast(&mut self, i: usize, data: &[u8]) {
        self.act(i, |ep, _| ep.queue_broadcast(data, None));
    }

    /// Node `i` stops for good, as after kill -9.
    pub fn crash(&mut self, i: usize) {
        let node = self.node_mut(i);
        let retired = node.ep.take().map_or(0, |ep| ep.stats().messages_received);
        node.backlog.clear();
        self.retired_messages += retired;
        if Arc::make_mut(&mut self.up)[i].take().is_some() {
            self.live -= 1;
        }
        self.rec.crashes.insert(i, CrashRecord { at: Some(self.now), ..CrashRecord::default() });
    }

    /// Node `i` (crashed or not) starts again under the same name and joins through `seeds`.
    /// Its crash record is dropped (it is no longer a crash to detect) and it counts as
    /// anomalous from now on: suspicions of its old life still in flight are not false alarms
    /// about a healthy member.
    pub fn restart(&mut self, i: usize, seeds: &[usize]) {
        self.rec.crashes.remove(&i);
        self.node_mut(i).anomalous = true;
        self.start(i);
        self.join(i, seeds);
    }

    /// A new member on node `i`'s address (crashed or not: it is stopped first): fresh state
    /// under a new name, `node-i-g` for its `g`-th life, joining through `seeds` — a Kubernetes
    /// pod that got the address of a pod gone before it. The old name is left for the cluster to
    /// declare dead and reap; the node counts as anomalous, as after [`restart`](Self::restart).
    pub fn replace(&mut self, i: usize, seeds: &[usize]) -> String {
        if self.running(i) {
            self.crash(i);
        }
        self.rec.crashes.remove(&i);
        let node = self.node_mut(i);
        node.anomalous = true;
        node.name = format!("node-{i}-{}", node.gen + 1);
        let name = node.name.clone();
        self.start(i);
        self.join(i, seeds);
        name
    }

    /// The name node `i` runs under now (or ran under last).
    pub fn name_of(&self, i: usize) -> String {
        self.node(i).map_or_else(|| node_name(i), |n| n.name.clone())
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
        let until = self.now + d;
        let window = self.window;
        let node = self.node_mut(i);
        let until = node.paused_until.map_or(until, |t| t.max(until));
        node.paused_until = Some(until);
        node.timers_run = timers_run;
        node.anomalous = true;
        node.push_local(until, Item::Resume, window);
        self.agenda.push(Reverse((until, i)));
    }

    /// Everything node `i` receives costs it `cost` of processing time (zero to heal).
    pub fn set_slow(&mut self, i: usize, cost: Duration) {
        let node = self.node_mut(i);
        node.cost = cost;
        node.anomalous |= !cost.is_zero();
    }

    /// Whether node `i` was never paused nor slowed.
    pub fn healthy(&self, i: usize) -> bool {
        self.node(i).is_some_and(|n| !n.anomalous)
    }

    /// Runs until virtual time `until` (items at `until` included).
    pub fn run_until(&mut self, until: Instant) {
        // What the windows only read moves out of `self` for the duration, so that worker
        // threads can borrow it while the merge changes the rest.
        let shared = Shared {
            net: std::mem::replace(&mut self.net, NetworkModel::lan(0)),
            by_addr: std::mem::take(&mut self.by_addr),
            up: Arc::clone(&self.up),
        };
        if self.threads > 1 {
            let (done_tx, done) = mpsc::channel::<()>();
            std::thread::scope(|s| {
                let mut jobs = Vec::new();
                for _ in 1..self.threads {
                    let (tx, rx) = mpsc::channel::<Arc<Work>>();
                    let done_tx = done_tx.clone();
                    let shared = &shared;
                    s.spawn(move || {
                        while let Ok(work) = recv_spinning(&rx) {
                            work.run(shared);
                            drop(work);
                            if done_tx.send(()).is_err() {
                                break;
                            }
                        }
                    });
                    jobs.push(tx);
                }
                self.windows(until, &shared, Some(&Workers { jobs, done: &done }));
            });
        } else {
            self.windows(until, &shared, None);
        }
        self.net = shared.net;
        self.by_addr = shared.by_addr;
        self.now = self.now.max(until);
    }

    fn windows(&mut self, until: Instant, shared: &Shared, workers: Option<&Workers<'_>>) {
        let limit = until + Duration::from_nanos(1);
        let width = shared.net.latency.max(Duration::from_nanos(1));
        let mut active = Vec::new();
        while let Some(&Reverse((start, _))) = self.agenda.peek() {
            if start > until {
                break;
            }
            self.now = self.now.max(start);
            self.sample_awareness();
            let end = (start + width).min(limit);
            self.window += 1;
            active.clear();
            while let Some(&Reverse((at, i))) = self.agenda.peek() {
                if at >= end {
                    break;
                }
                self.agenda.pop();
                let window = self.window;
                let node = self.node_mut(i);
                if node.picked_in != Some(window) {
                    node.picked_in = Some(window);
                    active.push(i);
                }
            }
            active.sort_unstable();
            self.run_window(&active, end, shared, workers);
            self.merge(&active, end);
        }
    }

    /// Runs the nodes of one window, on every thread when there is enough to share.
    fn run_window(&mut self, active: &[usize], end: Instant, shared: &Shared, workers: Option<&Workers<'_>>) {
        if let Some(w) = workers.filter(|_| active.len() > 1) {
            let costs: Vec<(usize, usize)> =
                active.iter().map(|&i| (self.node_mut(i).pending_before(end), i)).collect();
            if costs.iter().map(|c| c.0).sum::<usize>() >= PARALLEL_MIN_ITEMS {
                return self.share_window(costs, end, shared, w);
            }
        }
        let ctx = shared.ctx(self.window);
        for &i in active {
            self.node_mut(i).run_window(end, &ctx);
        }
    }

    /// Runs a window's nodes on every thread; `costs` are (pending items, node).
    fn share_window(&mut self, mut costs: Vec<(usize, usize)>, end: Instant, shared: &Shared, workers: &Workers<'_>) {
        costs.sort_unstable_by(|a, b| b.cmp(a));
        let nodes = costs.iter().map(|&(_, i)| Mutex::new(self.nodes[i].take())).collect();
        let work = Arc::new(Work { nodes, next: AtomicUsize::new(0), end, window: self.window });
        let sent = workers.jobs.iter().filter(|tx| tx.send(Arc::clone(&work)).is_ok()).count();
        work.run(shared);
        for _ in 0..sent {
            recv_spinning(workers.done).expect("a worker thread panicked");
        }
        let work = Arc::try_unwrap(work).ok().expect("the workers are done with the window");
        for slot in work.nodes {
            let node = slot.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).expect("node in place");
            let i = node.index;
            self.nodes[i] = Some(node);
        }
    }

    /// Merges what the nodes in `active` (in index order) produced: deliveries go into their
    /// targets' queues, no earlier than `end`; measurements go to the recorder in (time, node)
    /// order.
    fn merge(&mut self, active: &[usize], end: Instant) {
        let mut records: Vec<(Instant, usize, usize, Rec)> = Vec::new();
        let class = 2 * self.window + 1;
        for &i in active {
            let node = self.node_mut(i);
            let mut out = std::mem::take(&mut node.out);
            let log = std::mem::take(&mut node.log);
            if let Some(t) = node.next_at() {
                self.agenda.push(Reverse((t, i)));
            }
            for o in out.drain(..) {
                let at = o.at.max(end);
                self.merge_seq += 1;
                let seq = (class, self.merge_seq);
                if let Some(target) = self.nodes.get_mut(o.to).and_then(|n| n.as_deref_mut()) {
                    target.inbox.push(Reverse(Scheduled { at, seq, item: o.item }));
                    self.agenda.push(Reverse((at, o.to)));
                }
            }
            self.node_mut(i).out = out;
            records.extend(log.into_iter().enumerate().map(|(k, r)| (rec_time(&r), i, k, r)));
        }
        records.sort_by_key(|r| (r.0, r.1, r.2));
        for (at, i, _, r) in records {
            match r {
                Rec::Packet { from, len, digest, bytes, .. } => {
                    self.rec.packet(at, from, i, len, digest);
                    if let (Some(w), Some(b)) = (self.watch.as_mut(), bytes) {
                        w.packet(i, &b);
                    }
                }
                Rec::Lost => self.rec.lost += 1,
                Rec::Timer { .. } => {
                    if let Some(w) = self.watch.as_mut() {
                        w.timers(i);
                    }
                }
                Rec::Event { event, .. } => {
                    if let Some(w) = self.watch.as_mut() {
                        w.event(at, i, &event);
                    }
                    self.record_event(at, i, &event);
                    if self.keep_events {
                        self.events.push((at, i, event));
                    }
                }
            }
        }
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
        let scores: Vec<u32> =
            self.nodes.iter().filter_map(|n| n.as_ref()?.ep.as_ref()).map(Endpoint::health_score).collect();
        if scores.is_empty() {
            return;
        }
        let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64;
        let max = scores.iter().copied().max().unwrap_or(0);
        self.rec.awareness.push((self.now, mean, max));
    }

    fn record_event(&mut self, now: Instant, observer: usize, e: &Event) {
        let nodes = &self.nodes;
        // A member name is the node's only while that node runs under it: news about a name
        // whose address a new member took is about nobody running.
        let index_of = |name: &str| {
            slot_of(name).filter(|&i| nodes.get(i).and_then(|n| n.as_deref()).is_none_or(|n| n.name == name))
        };
        let up = &self.up;
        let is_running = |i: usize| up.get(i).is_some_and(Option::is_some);
        let healthy = |i: usize| nodes.get(i).and_then(|n| n.as_deref()).is_some_and(|n| !n.anomalous);
        self.rec.event(now, observer, e, index_of, is_running, healthy);
        // Once every running node has declared a crashed node dead, its detection is complete.
        if let Event::NodeLeft(m) = e {
            if let Some(s) = slot_of(&m.name) {
                if let Some(c) = self.rec.crashes.get_mut(&s) {
                    if c.all_dead.is_none() && c.dead_at >= self.live {
                        c.all_dead = Some(now);
                    }
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

    fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.nodes.iter().filter_map(|n| n.as_ref()?.ep.as_ref())
    }

    /// Sum of the endpoints' datagram counters: (packets, bytes) sent.
    pub fn sent_totals(&self) -> (u64, u64) {
        self.endpoints()
            .map(|ep| (ep.stats().packets_sent, ep.stats().bytes_sent))
            .fold((0, 0), |(p, b), (p2, b2)| (p + p2, b + b2))
    }

    /// Messages decoded from datagrams so far, by every endpoint that ever ran.
    pub fn messages_decoded(&self) -> u64 {
        self.retired_messages + self.endpoints().map(|ep| ep.stats().messages_received).sum::<u64>()
    }
}

/// How long a thread waiting for the next window (or for a worker's share) polls before it
/// sleeps: windows follow each other within microseconds, and waking a sleeping thread costs
/// more than that. Wall-clock time here decides only when to sleep, never what is computed.
const SPIN: std::time::Duration = std::time::Duration::from_micros(100);

fn recv_spinning<T>(rx: &mpsc::Receiver<T>) -> Result<T, mpsc::RecvError> {
    let start = std::time::Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 && start.elapsed() > SPIN {
            return rx.recv();
        }
        // Yielding rather than spinning on the spot: when more threads want the cores than
        // there are (tests in parallel), the one with work gets to run.
        std::thread::yield_now();
    }
}

fn rec_time(r: &Rec) -> Instant {
    match r {
        Rec::Packet { at, .. } | Rec::Event { at, .. } | Rec::Timer { at } => *at,
        Rec::Lost => Instant::ZERO,
    }
}

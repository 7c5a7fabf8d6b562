//! One simulated node and what it does inside a time window.
//!
//! A node owns everything it touches while it runs: its endpoint, its queue of pending items
//! (deliveries addressed to it and its own wake-ups), the random generator that decides the
//! fate of the datagrams it sends, its ends of the open streams, and two output lists — items for
//! other nodes and records for the measurements. It reads only what nobody changes during a
//! window (the network model, the address book, which nodes are up). So the nodes of one window
//! can run in any order, on any thread, and the engine merges their outputs afterwards in node
//! order: the result is the same for one thread or many.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use memberlist_proto::{Config, Endpoint, Event, Instant, StreamAction, StreamId};
use rand_chacha::ChaCha8Rng;

use crate::network::NetworkModel;
use crate::record::digest;
use crate::sim::node_addr;

/// A stream is known by its initiator: (node, generation, the initiator's stream id).
pub(crate) type ConnKey = (usize, u32, StreamId);

/// How the receiver of a stream item finds its end of the stream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamRef {
    /// The receiver opened the stream: its own id.
    Initiator(StreamId),
    /// The receiver accepted the stream: the initiator's key, mapped to the accepted id.
    Acceptor(ConnKey),
}

/// Something that happens to a node at a given time.
#[derive(Debug)]
pub(crate) enum Item {
    Packet {
        from: usize,
        bytes: Vec<u8>,
    },
    /// A connection from `conn`'s node reaches this node (generation `gen`); its handshake
    /// completed at `ready`.
    Accept {
        conn: ConnKey,
        gen: u32,
        ready: Instant,
    },
    StreamData {
        gen: u32,
        end: StreamRef,
        bytes: Vec<u8>,
    },
    StreamClosed {
        gen: u32,
        end: StreamRef,
    },
    StreamFailed {
        gen: u32,
        id: StreamId,
    },
    Wake {
        gen: u32,
    },
    /// A pause may end now.
    Resume,
    /// An item a slow node has already spent its processing time on.
    Ready(Box<Item>),
}

/// Order of items at the same time: by `(class, counter)`. Items a node schedules for itself
/// during window `w` are `(2w, its own counter)`; items delivered by the merge after window `w`
/// are `(2w + 1, the merge's counter)`. Both counters restart every window, and both are
/// independent of how the window's nodes were spread over threads.
pub(crate) type Seq = (u64, u64);

#[derive(Debug)]
pub(crate) struct Scheduled {
    pub at: Instant,
    pub seq: Seq,
    pub item: Item,
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

/// An item for another node, produced during a window.
pub(crate) struct Out {
    pub to: usize,
    pub at: Instant,
    pub item: Item,
}

/// A measurement produced during a window, applied to the recorder by the merge.
pub(crate) enum Rec {
    /// A datagram processed; its bytes when the engine watches invariants.
    Packet {
        at: Instant,
        from: usize,
        len: usize,
        digest: u64,
        bytes: Option<Vec<u8>>,
    },
    Lost,
    Event {
        at: Instant,
        event: Event,
    },
    /// The node's timers ran (logged for the engine's watch only): what follows is not the
    /// doing of the datagram before.
    Timer {
        at: Instant,
    },
}

/// What nobody changes while a window runs.
pub(crate) struct Ctx<'a> {
    pub net: &'a NetworkModel,
    pub by_addr: &'a HashMap<SocketAddr, usize>,
    /// Per node: its generation while it is running.
    pub up: &'a [Option<u32>],
    /// The window being run, for [`Seq`].
    pub window: u64,
}

/// This node's end of an open stream.
struct Link {
    peer: usize,
    peer_gen: u32,
    peer_end: StreamRef,
    /// When the connection handshake completed (nothing arrives before).
    ready: Instant,
    /// On the accepting side, the key the initiator's items carry.
    accepted_as: Option<ConnKey>,
}

/// One simulated node.
pub(crate) struct SimNode {
    pub index: usize,
    /// The name of its current life: `node-i`, or `node-i-g` once [`Sim::replace`] gave the
    /// address to a new member.
    ///
    /// [`Sim::replace`]: crate::Sim::replace
    pub name: String,
    pub ep: Option<Endpoint>,
    pub cfg: Config,
    pub gen: u32,
    pub wake_at: Option<Instant>,
    pub paused_until: Option<Instant>,
    /// During the pause only what the node receives waits; its timers keep firing (the
    /// Lifeguard paper's "slow message processing"). Otherwise timers wait too (a stopped
    /// process).
    pub timers_run: bool,
    pub backlog: VecDeque<Item>,
    /// Extra processing time per datagram (the "slow" fault).
    pub cost: Duration,
    /// Was ever paused or slowed: its false deaths are not counted against healthy nodes.
    pub anomalous: bool,
    pub busy_until: Instant,
    /// Pending items, earliest first.
    pub inbox: BinaryHeap<Reverse<Scheduled>>,
    /// Decides the fate of the datagrams and connections this node sends.
    pub rng: ChaCha8Rng,
    links: HashMap<StreamId, Link>,
    accepted: HashMap<ConnKey, StreamId>,
    pub out: Vec<Out>,
    pub log: Vec<Rec>,
    /// The window of the last item this node scheduled for itself, and its counter in it.
    local_seq: (u64, u64),
    /// The last window this node was picked for.
    pub picked_in: Option<u64>,
    /// Keep the bytes of processed datagrams in the log (for the engine's watch).
    pub keep_bytes: bool,
}

impl SimNode {
    pub fn new(index: usize, cfg: Config, rng: ChaCha8Rng) -> Self {
        SimNode {
            index,
            name: crate::sim::node_name(index),
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
            inbox: BinaryHeap::new(),
            rng,
            links: HashMap::new(),
            accepted: HashMap::new(),
            out: Vec::new(),
            log: Vec::new(),
            local_seq: (0, 0),
            picked_in: None,
            keep_bytes: false,
        }
    }

    /// Forgets the streams of a previous life.
    pub fn reset_streams(&mut self) {
        self.links.clear();
        self.accepted.clear();
    }

    /// Time of the earliest pending item.
    pub fn next_at(&self) -> Option<Instant> {
        self.inbox.peek().map(|Reverse(s)| s.at)
    }

    /// Number of pending items before `end` (an estimate of a window's work).
    pub fn pending_before(&self, end: Instant) -> usize {
        self.inbox.iter().filter(|Reverse(s)| s.at < end).count()
    }

    /// Schedules an item for this node itself.
    pub fn push_local(&mut self, at: Instant, item: Item, window: u64) {
        let class = 2 * window;
        if self.local_seq.0 != class {
            self.local_seq = (class, 0);
        }
        self.local_seq.1 += 1;
        self.inbox.push(Reverse(Scheduled { at, seq: self.local_seq, item }));
    }

    /// Runs every pending item before `end`, in order.
    pub fn run_window(&mut self, end: Instant, ctx: &Ctx<'_>) {
        while self.next_at().is_some_and(|t| t < end) {
            let Some(Reverse(s)) = self.inbox.pop() else { break };
            self.dispatch(s.item, s.at, ctx);
        }
    }

    fn dispatch(&mut self, item: Item, now: Instant, ctx: &Ctx<'_>) {
        let (item, paid) = match item {
            Item::Ready(inner) => (*inner, true),
            other => (other, false),
        };
        if self.ep.is_none() {
            self.refuse(&item, now, ctx);
            return;
        }
        if let Item::Resume = item {
            self.resume(now, ctx);
            return;
        }
        match &item {
            _ if self.paused_until.is_none() => {}
            // The wake-up is not lost: the resume runs the overdue timers and schedules the
            // next wake-up, which must not be held back by this one.
            Item::Wake { .. } if !self.timers_run => {
                self.wake_at = None;
                return;
            }
            Item::Wake { .. } => {}
            _ => {
                self.backlog.push_back(item);
                return;
            }
        }
        // A slow node spends `cost` on everything it receives (datagrams and stream traffic):
        // what arrives while it is busy waits its turn.
        if !paid && !matches!(item, Item::Wake { .. }) && !self.cost.is_zero() {
            if self.busy_until > now {
                let at = self.busy_until;
                self.busy_until = at + self.cost;
                self.push_local(at, Item::Ready(Box::new(item)), ctx.window);
                return;
            }
            self.busy_until = now + self.cost;
        }
        let gen = self.gen;
        let Some(ep) = self.ep.as_mut() else { return };
        match item {
            Item::Packet { from, bytes } => {
                let (len, digest) = (bytes.len(), digest(&bytes));
                ep.handle_packet(node_addr(from), &bytes, now);
                let bytes = self.keep_bytes.then_some(bytes);
                self.log.push(Rec::Packet { at: now, from, len, digest, bytes });
            }
            Item::Accept { conn, gen: g, ready } if g == gen => {
                let id = ep.handle_stream_accepted(node_addr(conn.0), now);
                self.accepted.insert(conn, id);
                let link = Link {
                    peer: conn.0,
                    peer_gen: conn.1,
                    peer_end: StreamRef::Initiator(conn.2),
                    ready,
                    accepted_as: Some(conn),
                };
                self.links.insert(id, link);
            }
            Item::Accept { conn, .. } => {
                self.refuse_connection(conn, now, ctx);
                return;
            }
            Item::StreamData { gen: g, end, bytes } if g == gen => {
                if let Some(id) = resolve(&self.accepted, end) {
                    ep.handle_stream_data(id, &bytes, now);
                }
            }
            Item::StreamClosed { gen: g, end } if g == gen => {
                if let Some(id) = resolve(&self.accepted, end) {
                    ep.handle_stream_closed(id, now);
                }
            }
            Item::StreamFailed { gen: g, id } if g == gen => ep.handle_stream_error(id, "connection refused", now),
            Item::Wake { gen: g } if g == gen => {
                if self.keep_bytes {
                    self.log.push(Rec::Timer { at: now });
                }
                self.wake_at = None;
                ep.handle_timeout(now);
            }
            Item::Ready(_) | Item::Resume => unreachable!("unwrapped above"),
            _ => return,
        }
        self.after_input(now, ctx);
    }

    /// A crashed node refuses connections (the initiator learns it one latency later) and
    /// drops everything else.
    fn refuse(&mut self, item: &Item, now: Instant, ctx: &Ctx<'_>) {
        if let Item::Accept { conn, .. } = item {
            self.refuse_connection(*conn, now, ctx);
        }
    }

    /// Tells the initiator of `conn`, one latency later, that the connection was refused.
    fn refuse_connection(&mut self, conn: ConnKey, now: Instant, ctx: &Ctx<'_>) {
        let at = now + ctx.net.stream_latency();
        self.out.push(Out { to: conn.0, at, item: Item::StreamFailed { gen: conn.1, id: conn.2 } });
    }

    /// Ends a pause that is due: like a process coming back from a stall, its overdue timers
    /// fire before it gets to the items that queued up meanwhile, so its probes time out
    /// although their acks are waiting (the failure Lifeguard is designed for).
    fn resume(&mut self, now: Instant, ctx: &Ctx<'_>) {
        if self.paused_until.is_none_or(|t| t > now) {
            return;
        }
        self.paused_until = None;
        if !self.timers_run {
            if let Some(ep) = self.ep.as_mut() {
                ep.handle_timeout(now);
            }
            self.after_input(now, ctx);
        }
        let backlog: Vec<Item> = self.backlog.drain(..).collect();
        for item in backlog {
            self.dispatch(item, now, ctx);
        }
    }

    /// Collects everything the endpoint wants done, then schedules its next wake-up.
    pub fn after_input(&mut self, now: Instant, ctx: &Ctx<'_>) {
        let me = self.index;
        loop {
            let mut progressed = false;
            let Some(ep) = self.ep.as_mut() else { return };
            while let Some(t) = ep.poll_transmit() {
                progressed = true;
                let Some(&to) = ctx.by_addr.get(&t.to) else { continue };
                match ctx.net.datagram(me, to, &mut self.rng) {
                    Some(latency) => {
                        self.out.push(Out { to, at: now + latency, item: Item::Packet { from: me, bytes: t.bytes } })
                    }
                    None => self.log.push(Rec::Lost),
                }
            }
            let mut actions = Vec::new();
            while let Some(a) = ep.poll_stream() {
                actions.push(a);
            }
            while let Some(e) = ep.poll_event() {
                self.log.push(Rec::Event { at: now, event: e });
            }
            for a in actions {
                progressed = true;
                self.stream_action(a, now, ctx);
            }
            if !progressed {
                break;
            }
        }
        let next = self.ep.as_ref().and_then(Endpoint::poll_timeout);
        if let Some(t) = next {
            if self.wake_at.is_none_or(|w| t < w) {
                self.wake_at = Some(t);
                let gen = self.gen;
                self.push_local(t.max(now), Item::Wake { gen }, ctx.window);
            }
        }
    }

    fn stream_action(&mut self, a: StreamAction, now: Instant, ctx: &Ctx<'_>) {
        let me = self.index;
        let gen = self.gen;
        let latency = ctx.net.stream_latency();
        match a {
            StreamAction::Connect { id, to, .. } => {
                let target = ctx.by_addr.get(&to).copied();
                let up = target.and_then(|t| ctx.up.get(t).copied().flatten().map(|g| (t, g)));
                match up {
                    Some((t, tgen)) if ctx.net.reachable(me, t) && ctx.net.reachable(t, me) => {
                        // A lost SYN or SYN-ACK costs retransmission timeouts before any data.
                        let ready = now + ctx.net.handshake_delay(me, t, &mut self.rng);
                        let conn = (me, gen, id);
                        let link = Link {
                            peer: t,
                            peer_gen: tgen,
                            peer_end: StreamRef::Acceptor(conn),
                            ready,
                            accepted_as: None,
                        };
                        self.links.insert(id, link);
                        self.out.push(Out {
                            to: t,
                            at: ready + latency,
                            item: Item::Accept { conn, gen: tgen, ready },
                        });
                    }
                    _ => self.push_local(now + latency, Item::StreamFailed { gen, id }, ctx.window),
                }
            }
            StreamAction::Write { id, bytes } => {
                if let Some(l) = self.links.get(&id) {
                    let at = (now + latency).max(l.ready + latency);
                    let item = Item::StreamData { gen: l.peer_gen, end: l.peer_end, bytes };
                    self.out.push(Out { to: l.peer, at, item });
                }
            }
            // The simulated nodes keep no application state: the core only hands these out to a
            // driver that asked for them, and they are completed here as that driver would.
            StreamAction::WriteState { id, state } => {
                if let Ok(bytes) = state.seal(Vec::new()) {
                    self.stream_action(StreamAction::Write { id, bytes }, now, ctx);
                }
            }
            StreamAction::MergeState { id, .. } => {
                if let Some(ep) = self.ep.as_mut() {
                    ep.handle_state_merged(id, now);
                }
            }
            StreamAction::Close { id } => {
                if let Some(l) = self.links.remove(&id) {
                    if let Some(key) = l.accepted_as {
                        self.accepted.remove(&key);
                    }
                    let at = (now + latency).max(l.ready + latency);
                    self.out.push(Out {
                        to: l.peer,
                        at,
                        item: Item::StreamClosed { gen: l.peer_gen, end: l.peer_end },
                    });
                }
            }
        }
    }
}

fn resolve(accepted: &HashMap<ConnKey, StreamId>, end: StreamRef) -> Option<StreamId> {
    match end {
        StreamRef::Initiator(id) => Some(id),
        StreamRef::Acceptor(key) => accepted.get(&key).copied(),
    }
}

//! The sans-IO face of a memberlist node.
//!
//! An [`Endpoint`] is one node's whole protocol state. The driver feeds it what happens —
//! datagrams ([`handle_packet`](Endpoint::handle_packet)), stream bytes and stream ends, and the
//! passing of time ([`handle_timeout`](Endpoint::handle_timeout)) — and drains what it wants
//! done: datagrams to send ([`poll_transmit`](Endpoint::poll_transmit)), streams to open, write
//! and close ([`poll_stream`](Endpoint::poll_stream)), events ([`poll_event`](Endpoint::poll_event)),
//! and when to wake it next ([`poll_timeout`](Endpoint::poll_timeout)). Every input carries
//! `now`; randomness comes from a seed. Nothing here reads a clock, opens a socket or spawns a
//! thread, so the same inputs always give the same outputs.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::config::{Config, ConfigError};
use crate::event::{Event, JoinId, Member};
use crate::node::NodeState;
use crate::state::app_state::StateToSend;
use crate::state::awareness::Awareness;
use crate::state::broadcast::{BroadcastId, QueuedMsg, TransmitLimitedQueue};
use crate::state::members::{ip_to_bytes, Members};
use crate::state::probe::{AckHandler, ProbeState};
use crate::state::pushpull::{JoinProgress, Stream};
use crate::state::stats::Stats;
use crate::state::suspicion::Suspicion;
use crate::time::Instant;
use crate::wire::{
    crc_for_peer, seal_packet, with_piggyback, EncryptionVersion, Message, PacketParts, SealConfig, COMPOUND_OVERHEAD,
};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The datagram, all layers applied.
    pub bytes: Vec<u8>,
}

/// Identifies a stream (TCP connection) for the life of the endpoint.
pub type StreamId = u64;

/// Something to do with a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamAction {
    /// Open a connection to `to`; give up (and report [`Endpoint::handle_stream_error`]) at
    /// `deadline`.
    Connect {
        /// The stream.
        id: StreamId,
        /// The peer.
        to: SocketAddr,
        /// When to give up on the whole exchange.
        deadline: Instant,
    },
    /// Write these bytes (after the connection is established).
    Write {
        /// The stream.
        id: StreamId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the connection once everything written has been sent.
    Close {
        /// The stream.
        id: StreamId,
    },
    /// Write a push/pull after adding the application's state to it (only with
    /// [`Hooks::defers_state`]): ask the application for `local_state(state.join())`, then write
    /// [`StateToSend::seal`]'s bytes. See [`crate::state::app_state`].
    WriteState {
        /// The stream.
        id: StreamId,
        /// The message to complete.
        state: Box<StateToSend>,
    },
    /// Give the peer's application state to the application's `merge_remote_state` (only with
    /// [`Hooks::defers_state`]); on a stream this node dialed, report
    /// [`Endpoint::handle_state_merged`] afterwards.
    MergeState {
        /// The stream.
        id: StreamId,
        /// The peer's application state (never empty).
        state: Vec<u8>,
        /// Whether the push/pull was a join.
        join: bool,
    },
}

/// Application callbacks the protocol needs an answer from at once. All methods have defaults,
/// so `()` is a valid implementation.
pub trait Hooks: Send {
    /// The application state to send in a push/pull (Go's `Delegate.LocalState`).
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        Vec::new()
    }
    /// Application state received in a push/pull, when not empty (Go's `MergeRemoteState`).
    fn merge_remote_state(&mut self, _state: &[u8], _join: bool) {}
    /// Before a join merges the remote table; an error cancels the merge (Go's `MergeDelegate`).
    fn notify_merge(&mut self, _peers: &[Member]) -> Result<(), String> {
        Ok(())
    }
    /// Before an alive message is applied; an error drops it (Go's `AliveDelegate`).
    fn notify_alive(&mut self, _peer: &Member) -> Result<(), String> {
        Ok(())
    }
    /// Payload of acks to direct pings (Go's `PingDelegate.AckPayload`); `None` is sent as nil.
    fn ack_payload(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// Whether [`get_broadcasts`](Hooks::get_broadcasts) has something to send, so that the
    /// core keeps the application's share of packet space for it.
    fn has_broadcasts(&self) -> bool {
        false
    }
    /// Whether this application ever supplies broadcasts through
    /// [`get_broadcasts`](Hooks::get_broadcasts). While it might, the node runs every gossip round
    /// to ask, as Go does; when it never does (the `()` hooks), a node with empty queues skips
    /// the empty rounds instead of waking five times a second for nothing.
    fn broadcasts_possible(&self) -> bool {
        true
    }
    /// Application broadcasts for one packet (Go's `Delegate.GetBroadcasts`): each costs
    /// `overhead` bytes plus its length, all together within `limit`. The core frames each as a
    /// user message.
    fn get_broadcasts(&mut self, _overhead: usize, _limit: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Whether the driver runs the application's push/pull state itself, off the protocol's
    /// thread, as Go does on the stream's goroutine: then the core never calls
    /// [`local_state`](Hooks::local_state) or [`merge_remote_state`](Hooks::merge_remote_state)
    /// and hands out [`StreamAction::WriteState`] and [`StreamAction::MergeState`] instead.
    fn defers_state(&self) -> bool {
        false
    }
}

impl Hooks for () {
    fn broadcasts_possible(&self) -> bool {
        false
    }
}

/// One memberlist node's protocol state.
pub struct Endpoint {
    pub(crate) cfg: Config,
    pub(crate) hooks: Box<dyn Hooks>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) advertise: SocketAddr,
    pub(crate) meta: Option<Vec<u8>>,
    pub(crate) members: Members,
    pub(crate) suspicions: BTreeMap<String, Suspicion>,
    pub(crate) awareness: Awareness,
    pub(crate) broadcasts: TransmitLimitedQueue,
    pub(crate) user_broadcasts: TransmitLimitedQueue,
    /// The messages of the datagram being received (buffers reused from one to the next).
    pub(crate) rx_parts: PacketParts,
    pub(crate) seq_no: u32,
    pub(crate) incarnation: u32,
    pub(crate) left: bool,
    pub(crate) probe: ProbeState,
    pub(crate) ack_handlers: BTreeMap<u32, AckHandler>,
    pub(crate) streams: BTreeMap<StreamId, Stream>,
    pub(crate) next_stream_id: StreamId,
    pub(crate) joins: BTreeMap<JoinId, JoinProgress>,
    /// Outgoing push/pulls whose application state the driver is merging.
    pub(crate) awaiting_merge: BTreeMap<StreamId, crate::state::app_state::AwaitingMerge>,
    pub(crate) next_join_id: JoinId,
    pub(crate) next_broadcast_id: BroadcastId,
    pub(crate) next_gossip: Option<Instant>,
    pub(crate) next_push_pull: Option<Instant>,
    /// Whether the random stagger before the first push/pull timer has passed: as in Go's
    /// `pushPullTrigger`, the first periodic push/pull comes one (scaled) interval after it.
    pub(crate) push_pull_staggered: bool,
    pub(crate) next_rejoin: Option<Instant>,
    pub(crate) seeds: Vec<SocketAddr>,
    /// Members told of the accusation against them, and when (see `Config::tell_the_accused`).
    pub(crate) told: BTreeMap<String, Instant>,
    /// Senders of stale accusations against this node answered with its alive, and when.
    pub(crate) answered: BTreeMap<SocketAddr, Instant>,
    pub(crate) reaped: VecDeque<SocketAddr>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) stream_actions: VecDeque<StreamAction>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
    pub(crate) samples: crate::state::stats::Samples,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.cfg.name)
            .field("advertise", &self.advertise)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// How many reaped addresses are remembered for automatic re-join.
pub(crate) const REAPED_MEMORY: usize = 64;

impl Endpoint {
    /// Starts a node that others reach at `advertise`, with metadata `meta`, at time `now`.
    /// Like Go's `Create`, it enters its own table as alive with incarnation 1 and queues the
    /// news. `seed` makes every random choice reproducible.
    pub fn new(
        cfg: Config,
        advertise: SocketAddr,
        meta: Option<Vec<u8>>,
        hooks: Box<dyn Hooks>,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if meta.as_ref().is_some_and(|m| m.len() > cfg.meta_max_size) {
            return Err(ConfigError {
                field: "meta",
                reason: format!("metadata is longer than meta_max_size ({})", cfg.meta_max_size),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The name indexes' hash key, derived from the seed without drawing from `rng`.
        let hash_seed = seed.rotate_left(17) ^ 0x6d65_6d62_6572_6c69;
        // Each ticker starts after a random stagger in [0, interval), as Go's triggerFunc.
        let stagger = |rng: &mut ChaCha8Rng, d: Duration| {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
            now + Duration::from_nanos(rng.next_u64() % ns)
        };
        let next_probe = stagger(&mut rng, cfg.probe_interval);
        let next_gossip =
            (!cfg.gossip_interval.is_zero() && cfg.gossip_nodes > 0).then(|| stagger(&mut rng, cfg.gossip_interval));
        let next_push_pull = (!cfg.push_pull_interval.is_zero()).then(|| stagger(&mut rng, cfg.push_pull_interval));
        let next_rejoin = cfg.auto_rejoin_interval.map(|d| now + d);
        let mut ep = Endpoint {
            awareness: Awareness::new(cfg.awareness_max_multiplier),
            broadcasts: TransmitLimitedQueue::with_hash_seed(cfg.retransmit_mult, hash_seed),
            user_broadcasts: TransmitLimitedQueue::with_hash_seed(cfg.retransmit_mult, hash_seed),
            cfg,
            hooks,
            rng,
            advertise,
            meta,
            members: Members::with_hash_seed(hash_seed),
            suspicions: BTreeMap::new(),
            seq_no: 0,
            incarnation: 0,
            left: false,
            probe: ProbeState::new(next_probe),
            ack_handlers: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_stream_id: 1,
            joins: BTreeMap::new(),
            awaiting_merge: BTreeMap::new(),
            next_join_id: 1,
            next_broadcast_id: 1,
            next_gossip,
            next_push_pull,
            push_pull_staggered: false,
            next_rejoin,
            seeds: Vec::new(),
            told: BTreeMap::new(),
            answered: BTreeMap::new(),
            reaped: VecDeque::new(),
            transmits: VecDeque::new(),
            stream_actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            rx_parts: PacketParts::default(),
            samples: Default::default(),
        };
        ep.set_alive(now, None);
        Ok(ep)
    }

    /// Announces this node as alive with a new incarnation (Go's `setAlive` and `UpdateNode`).
    pub(crate) fn set_alive(&mut self, now: Instant, notify: Option<BroadcastId>) {
        let alive = crate::wire::Alive {
            incarnation: self.next_incarnation(),
            node: self.cfg.name.clone(),
            addr: ip_to_bytes(self.advertise.ip()),
            port: self.advertise.port(),
            meta: self.meta.clone(),
            vsn: self.cfg.vsn(),
        };
        self.alive_node(alive, notify, true, now);
    }

    pub(crate) fn next_incarnation(&mut self) -> u32 {
        self.incarnation = self.incarnation.wrapping_add(1);
        self.incarnation
    }

    pub(crate) fn next_seq_no(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    pub(crate) fn new_broadcast_id(&mut self) -> BroadcastId {
        let id = self.next_broadcast_id;
        self.next_broadcast_id += 1;
        id
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// A message a driver already took out of a datagram from `from` — through
    /// [`open_packet`](crate::wire::open_packet) with this node's label, keys and limits, and
    /// after checking `from` against `cidrs_allowed` — for example on another thread, to keep
    /// decoding off the protocol task. [`handle_packet`](Self::handle_packet) does all of that
    /// itself.
    pub fn handle_message(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        self.stats.messages_received += 1;
        self.realign_idle_gossip(now);
        match msg {
            Message::Ping(p) => self.handle_ping(from, p, now),
            Message::IndirectPing(p) => self.handle_indirect_ping(from, p, now),
            Message::Ack(a) => self.handle_ack(a, now),
            Message::Nack(n) => self.handle_nack(n),
            Message::Alive(mut a) => {
                // Protocol 1 carried no port, and a zero port means the same: use ours.
                if self.cfg.protocol_version < 2 || a.port == 0 {
                    a.port = self.advertise.port();
                }
                self.alive_node(a, None, false, now)
            }
            Message::Suspect(s) => {
                if s.node == self.cfg.name && s.incarnation < self.incarnation {
                    self.answer_stale_accusation(from, now);
                }
                self.suspect_node(s, now)
            }
            Message::Dead(d) => {
                if d.node == self.cfg.name && d.incarnation < self.incarnation && !self.left {
                    self.answer_stale_accusation(from, now);
                }
                self.dead_node(d, now)
            }
            Message::User(data) => self.events.push_back(Event::UserMessage { from, data }),
            Message::Err(_) => self.stats.dropped_unexpected += 1,
        }
    }

    /// Counts a datagram of `bytes` bytes received by a driver that decodes it itself.
    pub fn record_received(&mut self, bytes: usize) {
        self.stats.packets_received += 1;
        self.stats.bytes_received += bytes as u64;
    }

    /// Counts input a driver dropped, under its reason.
    pub fn record_dropped(&mut self, e: &crate::wire::DecodeError) {
        self.stats.count_drop(e);
    }

    /// Counts a received compressed packet by its algorithm (`Algo` 0 LZW, 1 snappy).
    pub fn record_compressed(&mut self, algo: u8) {
        match algo {
            crate::wire::compress::LZW_ALGORITHM => self.stats.compressed_lzw_received += 1,
            crate::wire::compress::SNAPPY_ALGORITHM => self.stats.compressed_snappy_received += 1,
            _ => {}
        }
    }

    /// Counts a datagram a driver dropped because its source is outside `cidrs_allowed`.
    pub fn record_not_allowed(&mut self) {
        self.stats.dropped_not_allowed += 1;
    }

    /// Counts a message a driver dropped because its hand-off queue was full.
    pub fn record_handoff_drop(&mut self) {
        self.stats.dropped_handoff += 1;
    }

    /// Time has passed: run whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.realign_idle_gossip(now);
        self.run_probe_timers(now);
        self.run_ack_timers(now);
        self.run_suspicion_timers(now);
        self.run_stream_timers(now);
        if self.probe.next_tick <= now {
            self.probe_tick(now);
        }
        if let Some(t) = self.next_gossip.filter(|t| *t <= now) {
            self.next_gossip = Some(next_after(t, self.cfg.gossip_interval, now));
            self.gossip(now);
        }
        if let Some(t) = self.next_push_pull.filter(|t| *t <= now) {
            let interval = crate::state::pushpull::push_pull_scale(self.cfg.push_pull_interval, self.members.len());
            self.next_push_pull = Some(next_after(t, interval, now));
            if std::mem::replace(&mut self.push_pull_staggered, true) {
                self.periodic_push_pull(now);
            }
        }
        if let (Some(t), Some(interval)) = (self.next_rejoin, self.cfg.auto_rejoin_interval) {
            if t <= now {
                self.next_rejoin = Some(next_after(t, interval, now));
                self.auto_rejoin(now);
            }
        }
        self.collect_finished_broadcasts();
    }

    // ---- outputs -----------------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        pop_or_shrink(&mut self.transmits)
    }

    /// The next stream action.
    pub fn poll_stream(&mut self) -> Option<StreamAction> {
        pop_or_shrink(&mut self.stream_actions)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.collect_finished_broadcasts();
        pop_or_shrink(&mut self.events)
    }

    /// The next probe or push/pull duration or push/pull size, for metrics (the last
    /// [`SAMPLES_KEPT`](crate::state::stats::SAMPLES_KEPT) are kept).
    pub fn poll_sample(&mut self) -> Option<crate::Sample> {
        self.samples.pop()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = Some(self.probe.next_tick);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        // A gossip round with nothing to send sends nothing: skip waking for it (inputs realign
        // the deadline to the tick grid before they queue anything, see realign_idle_gossip).
        if self.gossip_pending() {
            consider(self.next_gossip);
        }
        consider(self.next_push_pull);
        consider(self.next_rejoin);
        consider(self.probe.next_deadline());
        consider(self.ack_handlers.values().map(|h| h.deadline).min());
        consider(self.suspicions.values().map(Suspicion::deadline).min());
        consider(self.streams.values().map(|s| s.deadline).min());
        next
    }

    /// While rounds are skipped, the gossip deadline stays where the last round was; every
    /// input that can queue news (messages, timers, stream data, join, leave, meta) first moves it to the next tick of the same 200 ms grid after `now`, so the
    /// news waits for the tick as it would under Go's ticker (and arrivals within one tick share
    /// one round).
    pub(crate) fn realign_idle_gossip(&mut self, now: Instant) {
        if let Some(t) = self.next_gossip.filter(|t| *t < now) {
            if !self.gossip_pending() {
                self.next_gossip = Some(next_after(t, self.cfg.gossip_interval, now));
            }
        }
    }

    /// Whether a gossip round could have something to send.
    fn gossip_pending(&self) -> bool {
        !self.broadcasts.is_empty() || !self.user_broadcasts.is_empty() || self.hooks.broadcasts_possible()
    }

    // ---- queries -----------------------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every known member, alive or not, as owned snapshots in table order.
    pub fn members(&self) -> Vec<Member> {
        self.members.iter().map(Member::from).collect()
    }

    /// Members that are alive or suspect (Go's `Members`).
    pub fn live_members(&self) -> Vec<Member> {
        self.members.iter().filter(|e| !e.dead_or_left()).map(Member::from).collect()
    }

    /// Puts `members` into the table as they are, silently: no events, no broadcasts, no
    /// traffic. A real node learns its members by joining; this is for simulators and tests that
    /// start from an already converged cluster. Names already in the table, and this node's own,
    /// are skipped; the table is then shuffled (a fresh probe order).
    pub fn assume_members(&mut self, members: impl IntoIterator<Item = Member>, now: Instant) {
        self.assume_entries(members.into_iter().map(|m| crate::state::members::NodeEntry {
            addr: ip_to_bytes(m.addr).into(),
            port: m.port,
            meta: if m.meta.is_empty() { None } else { Some(m.meta) },
            vsn: m.vsn,
            incarnation: m.incarnation,
            state: m.state,
            state_change: now,
            name: m.name.into(),
        }));
    }

    /// [`assume_members`](Self::assume_members) for table entries built by the caller, who can
    /// share one allocation of each name between many nodes' tables (a simulator of thousands
    /// of nodes saves a name allocation per entry).
    pub fn assume_entries(&mut self, entries: impl IntoIterator<Item = crate::state::members::NodeEntry>) {
        let entries = entries.into_iter();
        self.members.reserve(entries.size_hint().0);
        let me = self.cfg.name.clone();
        self.members.extend_shuffled(entries.filter(|e| *e.name != *me), &mut self.rng);
    }

    /// How many members are alive or suspect (Go's `NumMembers`).
    pub fn num_members(&self) -> usize {
        self.members.iter().filter(|e| !e.dead_or_left()).count()
    }

    /// From now on, remembers which members change, for
    /// [`take_member_changes`](Self::take_member_changes). Off by default (nothing is kept).
    pub fn track_member_changes(&mut self) {
        self.members.track_changes();
    }

    /// Every member added, changed or reaped since the last call, once each, as the table now
    /// holds it (`None`: reaped). Applied to a copy of [`members`](Self::members) taken when
    /// tracking started, it keeps the copy holding what the table holds (in its own order) at the cost
    /// of the changes alone. Empty unless [`track_member_changes`](Self::track_member_changes)
    /// was called.
    pub fn take_member_changes(&mut self) -> Vec<(std::sync::Arc<str>, Option<Member>)> {
        let mut names = self.members.take_changes();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| (n.clone(), self.member(&n))).collect()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members.get(name).map(Member::from)
    }

    /// This node as the table holds it (Go's `LocalNode`).
    pub fn local_member(&self) -> Option<Member> {
        self.member(&self.cfg.name)
    }

    /// The Lifeguard health score: 0 is healthy (Go's `GetHealthScore`).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Broadcasts waiting in the system and the application queues.
    pub fn queued_broadcasts(&self) -> (usize, usize) {
        (self.broadcasts.len(), self.user_broadcasts.len())
    }

    /// Whether [`leave`](Self::leave) was called (and no join since).
    pub fn has_left(&self) -> bool {
        self.left
    }

    // ---- commands ----------------------------------------------------------------------------

    /// Leaves the cluster: broadcasts our own death with `From` = us, which peers record as
    /// left. Returns the broadcast whose [`Event::BroadcastDone`] says the news went out (at
    /// once when no other node is alive). Unlike Go, a later [`join`](Self::join) re-joins.
    pub fn leave(&mut self, now: Instant) -> BroadcastId {
        self.realign_idle_gossip(now);
        let id = self.new_broadcast_id();
        if !self.left {
            self.left = true;
            if let Some(me) = self.members.get(&self.cfg.name) {
                let d = crate::wire::Dead {
                    incarnation: me.incarnation,
                    node: me.name.to_string(),
                    from: me.name.to_string(),
                };
                self.dead_node_notify(d, Some(id), now);
            }
        }
        if !self.any_other_alive() {
            self.events.push_back(Event::BroadcastDone(id));
        }
        id
    }

    /// Replaces this node's metadata and announces it with a new incarnation (Go's
    /// `UpdateNode`). Returns the broadcast to wait for, as for [`leave`](Self::leave).
    pub fn update_meta(&mut self, meta: Option<Vec<u8>>, now: Instant) -> Result<BroadcastId, ConfigError> {
        self.realign_idle_gossip(now);
        if meta.as_ref().is_some_and(|m| m.len() > self.cfg.meta_max_size) {
            return Err(ConfigError {
                field: "meta",
                reason: format!("metadata is longer than meta_max_size ({})", self.cfg.meta_max_size),
            });
        }
        self.meta = meta;
        let id = self.new_broadcast_id();
        self.set_alive(now, Some(id));
        if !self.any_other_alive() {
            self.events.push_back(Event::BroadcastDone(id));
        }
        Ok(id)
    }

    /// Installs an encryption key (accepted for decryption at once; Go's `Keyring.AddKey`). On a
    /// node without encryption this starts a keyring with it as the primary key.
    ///
    /// A node started without a keyring refuses ([`KeyringError::NoKeyring`]): installing a key
    /// would otherwise turn encryption on by surprise and cut the node off from its plaintext
    /// peers (Go's plaintext node has no keyring to add to).
    ///
    /// [`KeyringError::NoKeyring`]: crate::wire::KeyringError::NoKeyring
    pub fn install_key(&mut self, key: crate::wire::Key) -> Result<(), crate::wire::KeyringError> {
        self.cfg.keyring.as_mut().ok_or(crate::wire::KeyringError::NoKeyring)?.add_key(key);
        Ok(())
    }

    /// Makes an installed key the one used to encrypt (Go's `Keyring.UseKey`).
    pub fn use_key(&mut self, key: &crate::wire::Key) -> Result<(), crate::wire::KeyringError> {
        self.cfg.keyring.as_mut().ok_or(crate::wire::KeyringError::NoKeyring)?.use_key(key)
    }

    /// Removes a key other than the primary (Go's `Keyring.RemoveKey`).
    pub fn remove_key(&mut self, key: &crate::wire::Key) -> Result<(), crate::wire::KeyringError> {
        self.cfg.keyring.as_mut().ok_or(crate::wire::KeyringError::NoKeyring)?.remove_key(key)
    }

    /// Queues application data to be gossiped to every node. With a `name`, it replaces data
    /// queued earlier under the same name.
    pub fn queue_broadcast(&mut self, data: &[u8], name: Option<String>) {
        let mut msg = Vec::with_capacity(data.len() + 1);
        msg.push(crate::wire::MessageType::User as u8);
        msg.extend_from_slice(data);
        self.user_broadcasts.queue(msg, name, None);
    }

    /// Sends application data to `to` in one datagram, no piggyback (Go's `SendBestEffort`).
    /// The CRC is added when `to` is a known node speaking protocol 5.
    pub fn send_best_effort(&mut self, to: SocketAddr, data: &[u8]) {
        let mut msg = Vec::with_capacity(data.len() + 1);
        msg.push(crate::wire::MessageType::User as u8);
        msg.extend_from_slice(data);
        let pmax = self.members.iter().find(|e| e.socket_addr() == to).map(|e| e.vsn.pmax);
        self.send_packet(to, msg, crc_for_peer(pmax));
    }

    /// Sends a ping to `addr` expecting node `name` to answer (Go's `Ping`); the answer comes as
    /// [`Event::PingResult`] with the returned sequence number.
    pub fn ping(&mut self, name: &str, addr: SocketAddr, now: Instant) -> u32 {
        let seq_no = self.next_seq_no();
        let ping = self.ping_message(seq_no, name);
        self.ack_handlers.insert(
            seq_no,
            AckHandler {
                deadline: now + self.cfg.probe_timeout,
                kind: crate::state::probe::AckKind::UserPing { sent: now },
            },
        );
        self.send_msg(addr, Message::Ping(ping).encode(), now);
        seq_no
    }

    // ---- sending -----------------------------------------------------------------------------

    pub(crate) fn seal_config(&self) -> SealConfig<'_> {
        seal_config_of(&self.cfg)
    }

    /// Seals and queues one datagram.
    pub(crate) fn send_packet(&mut self, to: SocketAddr, body: Vec<u8>, with_crc: bool) {
        let sealed = {
            let cfg = seal_config_of(&self.cfg);
            seal_packet(body, with_crc, &cfg, &mut self.rng)
        };
        match sealed {
            Ok(bytes) => {
                self.stats.packets_sent += 1;
                self.stats.bytes_sent += bytes.len() as u64;
                self.transmits.push_back(Transmit { to, bytes });
            }
            Err(e) => tracing::warn!(node = %self.cfg.name, error = %e, "cannot send packet"),
        }
    }

    /// Sends `msg` with gossip piggybacked (Go's `sendMsg`). The CRC goes only to a node whose
    /// name is the destination's IP string, as Go looks the node up (quirk kept on purpose: it is
    /// visible on the wire).
    pub(crate) fn send_msg(&mut self, to: SocketAddr, msg: Vec<u8>, _now: Instant) {
        let udp = self.cfg.udp_buffer_size;
        let num_nodes = self.members.len();
        let share = self.cfg.user_broadcast_share_percent;
        let limit = self.seal_config().piggyback_budget(udp, msg.len());
        let extras = self.collect_broadcasts(COMPOUND_OVERHEAD, limit, num_nodes, share);
        let body = with_piggyback(msg, &extras);
        let pmax = self.members.get(&to.ip().to_string()).map(|e| e.vsn.pmax);
        match body {
            Ok(body) => self.send_packet(to, body, crc_for_peer(pmax)),
            Err(e) => tracing::warn!(node = %self.cfg.name, error = %e, "cannot assemble packet"),
        }
    }

    /// Takes gossip for one packet from the system queue and the application queue. While the
    /// application has broadcasts queued, `share` percent of the budget is kept for them; what
    /// either side leaves unused goes to the other, so neither starves (Go #299). With `share`
    /// 0 this is Go's order: system messages first, application messages in what is left.
    pub(crate) fn collect_broadcasts(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        share: u8,
    ) -> Vec<QueuedMsg> {
        let user_pending = !self.user_broadcasts.is_empty() || self.hooks.has_broadcasts();
        let reserve = if user_pending { limit * usize::from(share) / 100 } else { 0 };
        let mut out = self.broadcasts.get_broadcasts_shared(overhead, limit - reserve, num_nodes);
        let used = |msgs: &[QueuedMsg]| msgs.iter().map(|m| m.len() + overhead).sum::<usize>();
        let avail = limit.saturating_sub(used(&out));
        if avail > overhead + 1 {
            out.extend(self.user_broadcasts.get_broadcasts_shared(overhead, avail, num_nodes));
        }
        // Then the application's own queue, as Go's `getBroadcasts` asks its delegate: one more
        // byte of overhead per message for the user-message type byte added here.
        let avail = limit.saturating_sub(used(&out));
        if avail > overhead + 1 {
            for msg in self.hooks.get_broadcasts(overhead + 1, avail) {
                let mut framed = Vec::with_capacity(msg.len() + 1);
                framed.push(crate::wire::MessageType::User as u8);
                framed.extend_from_slice(&msg);
                out.push(QueuedMsg::from(framed));
            }
        }
        if reserve > 0 {
            let avail = limit.saturating_sub(used(&out));
            if avail > overhead {
                out.extend(self.broadcasts.get_broadcasts_shared(overhead, avail, num_nodes));
            }
        }
        out
    }

    /// Queues a system broadcast about `node`.
    pub(crate) fn broadcast(&mut self, node: &str, msg: Message, notify: Option<BroadcastId>) {
        self.broadcasts.queue_shared(msg.encode(), Some(node.into()), notify);
    }

    /// [`broadcast`](Self::broadcast) ahead of ordinary gossip (this node's refutations).
    pub(crate) fn broadcast_urgent(&mut self, node: &str, msg: Message) {
        self.broadcasts.queue_urgent(msg.encode(), Some(node.into()), None);
    }

    pub(crate) fn collect_finished_broadcasts(&mut self) {
        for id in self.broadcasts.take_finished() {
            self.events.push_back(Event::BroadcastDone(id));
        }
        self.user_broadcasts.take_finished();
    }

    /// Whether any node other than this one is alive (Go's `anyAlive`).
    pub(crate) fn any_other_alive(&self) -> bool {
        self.members.iter().any(|e| *e.name != *self.cfg.name && e.state == NodeState::Alive)
    }
}

/// Room an emptied output queue keeps.
pub(crate) const OUTPUT_ROOM_KEPT: usize = 32;

/// The queue's next item; once it is empty, the room a burst grew it to is given back (a join
/// queues an event per member: 1000 events of 160 bytes that a node kept for good).
fn pop_or_shrink<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let next = queue.pop_front();
    if next.is_none() {
        queue.shrink_to(OUTPUT_ROOM_KEPT);
    }
    next
}

/// Packet send settings from a configuration: encryption only with keys and
/// `gossip_verify_outgoing`, version 0 only for protocol version 1.
pub(crate) fn seal_config_of(cfg: &Config) -> SealConfig<'_> {
    SealConfig {
        label: &cfg.label,
        enable_compression: cfg.enable_compression,
        algorithm: cfg.compression_algorithm,
        keyring: cfg.keyring.as_ref().filter(|_| cfg.gossip_verify_outgoing),
        encryption_version: EncryptionVersion::for_protocol(cfg.protocol_version),
    }
}

/// The first tick after `now` on the grid `t, t + interval, …` (missed ticks are skipped, as Go's
/// tickers drop them).
pub(crate) fn next_after(t: Instant, interval: Duration, now: Instant) -> Instant {
    if interval.is_zero() {
        return now + Duration::from_millis(1);
    }
    let mut next = t + interval;
    if next <= now {
        let step = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        let behind = (now - next).as_nanos() as u64 / step + 1;
        next += Duration::from_nanos(behind.saturating_mul(step));
    }
    next
}

//! The running node: a handle for the application and the task that drives the protocol core.
//!
//! One task owns the [`Endpoint`] and is the only place it is touched: datagrams, stream bytes,
//! commands from handles and timers all arrive there as messages, so no lock is ever held while
//! application code runs, and application code may call back into the node at any time (Go #23).
//! Each TCP connection has two small tasks of its own, one reading into the node task's inbox
//! and one writing what the node task hands it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::handoff::{read_loop, Filter, Inline, Queues};
use crate::transport::{BoxConn, BoxFuture, NetTransport, Transport};
use memberlist_proto::wire::Key;
use memberlist_proto::{BroadcastId, Endpoint, Event, Instant, JoinId, Member, StreamAction, StreamId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::options::Options;
use crate::Error;

enum Command {
    Join { seeds: Vec<SocketAddr>, reply: oneshot::Sender<JoinId> },
    Leave { reply: oneshot::Sender<BroadcastId> },
    UpdateMeta { meta: Option<Vec<u8>>, reply: oneshot::Sender<Result<BroadcastId, Error>> },
    Broadcast { data: Vec<u8>, name: Option<String> },
    SendBestEffort { to: SocketAddr, data: Vec<u8> },
    SendReliable { to: SocketAddr, data: Vec<u8> },
    Ping { name: String, addr: SocketAddr, reply: oneshot::Sender<u32> },
    Keyring { op: KeyOp, reply: oneshot::Sender<Result<(), Error>> },
    Shutdown,
}

enum KeyOp {
    Install(Key),
    Use(Key),
    Remove(Key),
}

enum StreamIn {
    Data(StreamId, Vec<u8>),
    Closed(StreamId),
    Failed(StreamId, String),
    Accepted(BoxConn, SocketAddr),
}

/// What handles can read without asking the node task.
struct Shared {
    members: RwLock<Arc<Vec<Member>>>,
    local: RwLock<Option<Member>>,
    health: RwLock<u32>,
    queued: RwLock<(usize, usize)>,
    stats: RwLock<memberlist_proto::Stats>,
    /// Event subscribers. Registered here rather than through a command so that a
    /// subscription is in force the moment [`Memberlist::events`] returns.
    subscribers: std::sync::Mutex<Vec<mpsc::UnboundedSender<Event>>>,
}

/// A running memberlist node. Cheap to clone; every clone controls the same node.
#[derive(Clone)]
pub struct Memberlist {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    name: String,
}

impl std::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist").field("name", &self.name).field("addr", &self.addr).finish()
    }
}

/// Owned events, as an async stream (`futures_core::Stream`) or with [`Events::recv`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

fn unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

impl Memberlist {
    /// Binds UDP and TCP on the same port and starts the node (Go's `Create`). With port 0 the
    /// kernel picks a port that is free for both.
    pub async fn create(opts: Options) -> Result<Memberlist, Error> {
        opts.config.validate()?;
        if opts.tcp_only {
            let transport = crate::tcp_only::TcpOnlyTransport::bind(opts.bind).await?;
            return Memberlist::with_transport(opts, Arc::new(transport)).await;
        }
        let transport = NetTransport::bind(opts.bind).await?;
        Memberlist::with_transport(opts, Arc::new(transport)).await
    }

    /// Starts a node on a transport of your own (or a [`crate::MemoryNetwork`] one).
    pub async fn with_transport(opts: Options, transport: Arc<dyn Transport>) -> Result<Memberlist, Error> {
        opts.config.validate()?;
        let bound = transport.local_addr();
        let advertise = opts.advertise.unwrap_or_else(|| {
            if unspecified(bound.ip()) {
                let lo =
                    if bound.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
                SocketAddr::new(lo, bound.port())
            } else {
                bound
            }
        });
        let clock = std::time::Instant::now();
        let seed = opts.seed.unwrap_or_else(|| {
            // Not cryptographic: only spreads probe order and timer phases.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
        });
        let name = opts.config.name.clone();
        let max_inbound = opts.max_inbound_streams;
        let depth = opts.handoff_queue_depth.max(1);
        let filter_cfg = opts.config.clone();
        let hooks: Box<dyn memberlist_proto::Hooks> = match &opts.delegate {
            Some(d) => Box::new(crate::delegate::DelegateHooks(d.clone())),
            None => opts.hooks,
        };
        let ep = Endpoint::new(opts.config, advertise, opts.meta, hooks, seed, Instant::ZERO)?;
        let shared = Arc::new(Shared {
            members: RwLock::new(Arc::new(ep.members())),
            local: RwLock::new(ep.local_member()),
            health: RwLock::new(0),
            queued: RwLock::new((0, 0)),
            stats: RwLock::new(memberlist_proto::Stats::default()),
            subscribers: std::sync::Mutex::new(Vec::new()),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let mut driver = Driver {
            ep,
            transport,
            clock,
            shared: shared.clone(),
            writers: HashMap::new(),
            inbound: HashSet::new(),
            max_inbound,
            in_tx,
            published: memberlist_proto::Stats::default(),
            next_publish: clock,
            keyring: Arc::new(RwLock::new(filter_cfg.keyring.clone())),
            queues: Arc::new(std::sync::Mutex::new(Queues::default())),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let filter = Filter { cfg: filter_cfg, keyring: driver.keyring.clone() };
        let startup_events = driver.pending_events();
        tokio::spawn(driver.run(cmd_rx, in_rx, filter, depth));
        let node = Memberlist { commands: cmd_tx, shared, addr: advertise, name };
        if let Some(d) = opts.delegate {
            // Notifications run on a task of their own, never on the node's.
            let mut events = node.events()?;
            tokio::spawn(async move {
                for e in &startup_events {
                    crate::delegate::dispatch(d.as_ref(), e);
                }
                while let Some(e) = events.recv().await {
                    crate::delegate::dispatch(d.as_ref(), &e);
                }
            });
        }
        Ok(node)
    }

    /// The address other nodes reach this one at.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.addr
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, c: Command) -> Result<(), Error> {
        self.commands.send(c).map_err(|_| Error::Shutdown)
    }

    /// Joins through `seeds` (push/pull with each, in parallel) and returns how many were
    /// reached; an error only when none was.
    pub async fn join(&self, seeds: &[SocketAddr]) -> Result<usize, Error> {
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join { seeds: seeds.to_vec(), reply })?;
        let id = rx.await.map_err(|_| Error::Shutdown)?;
        while let Some(e) = events.recv().await {
            if let Event::JoinCompleted { join, contacted, errors } = e {
                if join == id {
                    if contacted == 0 && !errors.is_empty() {
                        let reasons: Vec<String> = errors.iter().map(|(a, e)| format!("{a}: {e}")).collect();
                        return Err(Error::JoinFailed(reasons.join("; ")));
                    }
                    return Ok(contacted);
                }
            }
        }
        Err(Error::Shutdown)
    }

    /// Leaves gracefully and waits until the news has gone out, or `timeout` passes.
    pub async fn leave(&self, timeout: Duration) -> Result<(), Error> {
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Leave { reply })?;
        let id = rx.await.map_err(|_| Error::Shutdown)?;
        wait_broadcast(&mut events, id, timeout).await
    }

    /// Replaces this node's metadata and waits until the news has gone out, or `timeout`.
    pub async fn update_meta(&self, meta: impl Into<Vec<u8>>, timeout: Duration) -> Result<(), Error> {
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::UpdateMeta { meta: Some(meta.into()), reply })?;
        let id = rx.await.map_err(|_| Error::Shutdown)??;
        wait_broadcast(&mut events, id, timeout).await
    }

    /// Gossips application data to the cluster; with a `name`, replaces data queued under it.
    pub fn broadcast(&self, data: impl Into<Vec<u8>>, name: Option<String>) -> Result<(), Error> {
        self.send(Command::Broadcast { data: data.into(), name })
    }

    /// Sends application data in one datagram (Go's `SendBestEffort`).
    pub fn send_best_effort(&self, to: SocketAddr, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.send(Command::SendBestEffort { to, data: data.into() })
    }

    /// Sends application data on a TCP stream (Go's `SendReliable`).
    pub fn send_reliable(&self, to: SocketAddr, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.send(Command::SendReliable { to, data: data.into() })
    }

    /// Pings node `name` at `addr` and returns the round-trip time (Go's `Ping`).
    pub async fn ping(&self, name: &str, addr: SocketAddr) -> Result<Duration, Error> {
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Ping { name: name.to_owned(), addr, reply })?;
        let seq = rx.await.map_err(|_| Error::Shutdown)?;
        while let Some(e) = events.recv().await {
            if let Event::PingResult { seq_no, rtt } = e {
                if seq_no == seq {
                    return rtt.ok_or_else(|| Error::NoPingResponse(name.to_owned()));
                }
            }
        }
        Err(Error::Shutdown)
    }

    async fn key_op(&self, op: KeyOp) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Keyring { op, reply })?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Installs an encryption key: accepted for decryption at once (Go's `Keyring.AddKey`).
    pub async fn install_key(&self, key: &[u8]) -> Result<(), Error> {
        self.key_op(KeyOp::Install(Key::new(key)?)).await
    }

    /// Encrypts with an installed key from now on (Go's `Keyring.UseKey`).
    pub async fn use_key(&self, key: &[u8]) -> Result<(), Error> {
        self.key_op(KeyOp::Use(Key::new(key)?)).await
    }

    /// Removes a key that is not the primary (Go's `Keyring.RemoveKey`).
    pub async fn remove_key(&self, key: &[u8]) -> Result<(), Error> {
        self.key_op(KeyOp::Remove(Key::new(key)?)).await
    }

    /// Joins through seeds given as `host:port`, `ip` or DNS names (every address a name
    /// resolves to is tried; the port defaults to 7946), in parallel.
    pub async fn join_hosts(&self, seeds: &[&str]) -> Result<usize, Error> {
        let mut addrs = Vec::new();
        let mut errors = Vec::new();
        for seed in seeds {
            let target = with_default_port(seed);
            match tokio::net::lookup_host(target).await {
                Ok(found) => addrs.extend(found),
                Err(e) => errors.push(format!("{seed}: {e}")),
            }
        }
        addrs.dedup();
        if addrs.is_empty() {
            return Err(Error::JoinFailed(errors.join("; ")));
        }
        self.join(&addrs).await
    }

    /// A stream of every event from now on: the subscription is in force when this returns,
    /// so nothing that happens afterwards is missed.
    pub fn events(&self) -> Result<Events, Error> {
        if self.commands.is_closed() {
            return Err(Error::Shutdown);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.subscribers.lock().map_err(|_| Error::Shutdown)?.push(tx);
        Ok(Events { rx })
    }

    /// Every known member (alive, suspect, dead or left), as owned snapshots.
    pub fn members(&self) -> Vec<Member> {
        self.shared.members.read().map(|m| m.as_ref().clone()).unwrap_or_default()
    }

    /// Members that are alive or suspect (Go's `Members`).
    pub fn live_members(&self) -> Vec<Member> {
        self.members()
            .into_iter()
            .filter(|m| matches!(m.state, memberlist_proto::NodeState::Alive | memberlist_proto::NodeState::Suspect))
            .collect()
    }

    /// How many members are alive or suspect (Go's `NumMembers`).
    pub fn num_members(&self) -> usize {
        self.live_members().len()
    }

    /// This node as the cluster sees it (Go's `LocalNode`).
    pub fn local_node(&self) -> Option<Member> {
        self.shared.local.read().ok().and_then(|l| l.clone())
    }

    /// The Lifeguard health score, 0 being healthy (Go's `GetHealthScore`).
    pub fn health_score(&self) -> u32 {
        self.shared.health.read().map(|h| *h).unwrap_or(0)
    }

    /// The protocol's counters (datagrams, drops by reason, messages applied, probes, …).
    pub fn stats(&self) -> memberlist_proto::Stats {
        self.shared.stats.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Broadcasts waiting to be sent: (memberlist's own, the application's).
    pub fn queued_broadcasts(&self) -> (usize, usize) {
        self.shared.queued.read().map(|q| *q).unwrap_or((0, 0))
    }

    /// Stops the node without leaving: peers will find it dead (Go's `Shutdown`).
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
    }
}

/// `seed` as `host:port`, adding Go's default port 7946 when it has none.
fn with_default_port(seed: &str) -> String {
    if seed.parse::<SocketAddr>().is_ok() {
        return seed.to_owned();
    }
    if let Ok(ip) = seed.parse::<IpAddr>() {
        return SocketAddr::new(ip, 7946).to_string();
    }
    if seed.starts_with('[') && seed.ends_with(']') {
        return format!("{seed}:7946");
    }
    match seed.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => seed.to_owned(),
        _ => format!("{seed}:7946"),
    }
}

async fn wait_broadcast(events: &mut Events, id: BroadcastId, timeout: Duration) -> Result<(), Error> {
    let wait = async {
        while let Some(e) = events.recv().await {
            if e == Event::BroadcastDone(id) {
                return Ok(());
            }
        }
        Err(Error::Shutdown)
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout),
    }
}

struct Driver {
    ep: Endpoint,
    transport: Arc<dyn Transport>,
    clock: std::time::Instant,
    shared: Arc<Shared>,
    writers: HashMap<StreamId, mpsc::UnboundedSender<Option<Vec<u8>>>>,
    inbound: HashSet<StreamId>,
    max_inbound: usize,
    in_tx: mpsc::UnboundedSender<StreamIn>,
    published: memberlist_proto::Stats,
    next_publish: std::time::Instant,
    /// The keyring as the reader task decrypts with it.
    keyring: Arc<RwLock<Option<memberlist_proto::wire::Keyring>>>,
    queues: Arc<std::sync::Mutex<Queues>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Driver {
    /// Events the endpoint produced before anyone could subscribe (this node's own join).
    fn pending_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbox: mpsc::UnboundedReceiver<StreamIn>,
        filter: Filter,
        depth: usize,
    ) {
        let (inline_tx, mut inline_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(
            self.transport.clone(),
            filter,
            depth,
            self.queues.clone(),
            self.wake.clone(),
            inline_tx,
        ));
        let accept_tx = self.in_tx.clone();
        let transport = self.transport.clone();
        let acceptor = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(5);
            loop {
                match transport.accept().await {
                    Ok((s, peer)) => {
                        backoff = Duration::from_millis(5);
                        if accept_tx.send(StreamIn::Accepted(s, peer)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
            }
        });
        self.flush();
        loop {
            let deadline = self.ep.poll_timeout().map(|t| {
                let d = Duration::from_nanos(t.as_nanos().saturating_sub(self.now().as_nanos()));
                tokio::time::Instant::now() + d
            });
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let wake = self.wake.clone();
            tokio::select! {
                biased;
                Some(msg) = inline_rx.recv() => self.inline(msg),
                () = wake.notified() => self.drain_queues(),
                Some(msg) = inbox.recv() => self.stream_in(msg),
                c = commands.recv() => match c {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.command(c),
                },
                () = sleep => {
                    let now = self.now();
                    self.ep.handle_timeout(now);
                }
            }
            self.flush();
        }
        acceptor.abort();
        reader.abort();
        for (_, w) in self.writers.drain() {
            let _ = w.send(None);
        }
    }

    /// Urgent messages and counters from the reader.
    fn inline(&mut self, msg: Inline) {
        let now = self.now();
        match msg {
            Inline::Packet { from, bytes, urgent, errors } => {
                self.ep.record_received(bytes);
                for e in &errors {
                    self.ep.record_dropped(e);
                }
                for m in urgent {
                    self.ep.handle_message(from, m, now);
                }
            }
            Inline::HandoffDrops(n) => {
                for _ in 0..n {
                    self.ep.record_handoff_drop();
                }
            }
            Inline::NotAllowed { bytes } => {
                self.ep.record_received(bytes);
                self.ep.record_not_allowed();
            }
        }
    }

    /// Handles queued messages, newest alive first, a bounded batch at a time so that urgent
    /// messages and timers are not kept waiting.
    fn drain_queues(&mut self) {
        for _ in 0..256 {
            let next = self.queues.lock().ok().and_then(|mut q| q.pop());
            let Some((from, m)) = next else { return };
            let now = self.now();
            self.ep.handle_message(from, m, now);
        }
        // More remain: come back after the other inputs had a turn.
        self.wake.notify_one();
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Join { seeds, reply } => {
                let _ = reply.send(self.ep.join(&seeds, now));
            }
            Command::Leave { reply } => {
                let _ = reply.send(self.ep.leave(now));
            }
            Command::UpdateMeta { meta, reply } => {
                let _ = reply.send(self.ep.update_meta(meta, now).map_err(Error::from));
            }
            Command::Broadcast { data, name } => self.ep.queue_broadcast(&data, name),
            Command::SendBestEffort { to, data } => self.ep.send_best_effort(to, &data),
            Command::SendReliable { to, data } => {
                self.ep.send_reliable(to, &data, now);
            }
            Command::Ping { name, addr, reply } => {
                let _ = reply.send(self.ep.ping(&name, addr, now));
            }
            Command::Keyring { op, reply } => {
                let result = match op {
                    KeyOp::Install(k) => {
                        self.ep.install_key(k);
                        Ok(())
                    }
                    KeyOp::Use(k) => self.ep.use_key(&k).map_err(Error::from),
                    KeyOp::Remove(k) => self.ep.remove_key(&k).map_err(Error::from),
                };
                if let Ok(mut shared) = self.keyring.write() {
                    shared.clone_from(&self.ep.config().keyring);
                }
                let _ = reply.send(result);
            }
            Command::Shutdown => {}
        }
    }

    fn stream_in(&mut self, msg: StreamIn) {
        let now = self.now();
        match msg {
            StreamIn::Data(id, bytes) => self.ep.handle_stream_data(id, &bytes, now),
            StreamIn::Closed(id) => {
                self.ep.handle_stream_closed(id, now);
            }
            StreamIn::Failed(id, reason) => self.ep.handle_stream_error(id, &reason, now),
            StreamIn::Accepted(stream, peer) => {
                if self.inbound.len() >= self.max_inbound {
                    tracing::warn!(%peer, "too many inbound streams, closing");
                    return;
                }
                let id = self.ep.handle_stream_accepted(peer, now);
                self.inbound.insert(id);
                let deadline = self.ep.config().tcp_timeout;
                self.attach(id, stream, deadline);
            }
        }
    }

    /// Starts the reader and writer tasks of an accepted stream.
    fn attach(&mut self, id: StreamId, stream: BoxConn, deadline: Duration) {
        let (rd, wr) = tokio::io::split(stream);
        spawn_reader(rd, id, self.in_tx.clone(), deadline);
        let (wtx, wrx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
        self.writers.insert(id, wtx);
        tokio::spawn(write_all(wr, wrx));
    }

    /// Carries out everything the core asked for and publishes what handles may read.
    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            if let Err(e) = self.transport.send_to(&t.bytes, t.to) {
                tracing::debug!(to = %t.to, error = %e, "udp send failed");
            }
        }
        while let Some(a) = self.ep.poll_stream() {
            match a {
                StreamAction::Connect { id, to, deadline } => {
                    let wait = Duration::from_nanos(deadline.as_nanos().saturating_sub(self.now().as_nanos()));
                    let (wtx, wrx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
                    self.writers.insert(id, wtx);
                    let tx = self.in_tx.clone();
                    let connect = self.transport.connect(to);
                    let connector = Connector { id, wait, tx, wrx };
                    tokio::spawn(connector.run(connect));
                }
                StreamAction::Write { id, bytes } => {
                    if let Some(w) = self.writers.get(&id) {
                        let _ = w.send(Some(bytes));
                    }
                }
                StreamAction::Close { id } => {
                    if let Some(w) = self.writers.remove(&id) {
                        let _ = w.send(None);
                    }
                    self.inbound.remove(&id);
                }
            }
        }
        let mut events = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            events.push(e);
        }
        if !events.is_empty() {
            if let Ok(mut m) = self.shared.members.write() {
                *m = Arc::new(self.ep.members());
            }
            if let Ok(mut l) = self.shared.local.write() {
                *l = self.ep.local_member();
            }
        }
        if let Ok(mut h) = self.shared.health.write() {
            *h = self.ep.health_score();
        }
        if let Ok(mut q) = self.shared.queued.write() {
            *q = self.ep.queued_broadcasts();
        }
        if let Ok(mut st) = self.shared.stats.write() {
            st.clone_from(self.ep.stats());
        }
        if std::time::Instant::now() >= self.next_publish {
            self.next_publish = std::time::Instant::now() + Duration::from_secs(1);
            crate::metrics::publish(&self.ep, &mut self.published);
        }
        if events.is_empty() {
            return;
        }
        if let Ok(mut subscribers) = self.shared.subscribers.lock() {
            for e in events {
                subscribers.retain(|s| s.send(e.clone()).is_ok());
            }
        }
    }
}

/// Dials a stream, then shuttles bytes both ways like an accepted one.
struct Connector {
    id: StreamId,
    wait: Duration,
    tx: mpsc::UnboundedSender<StreamIn>,
    wrx: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
}

impl Connector {
    async fn run(self, connect: BoxFuture<'static, std::io::Result<BoxConn>>) {
        let stream = match tokio::time::timeout(self.wait, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = self.tx.send(StreamIn::Failed(self.id, e.to_string()));
                return;
            }
            Err(_) => {
                let _ = self.tx.send(StreamIn::Failed(self.id, "connect timeout".into()));
                return;
            }
        };
        let (rd, wr) = tokio::io::split(stream);
        spawn_reader(rd, self.id, self.tx.clone(), self.wait);
        write_all(wr, self.wrx).await;
    }
}

/// Reads a stream into the node task's inbox until EOF, an error, or `deadline` (a read
/// deadline on the whole exchange, so a slow peer cannot hold a connection open: no slow-loris).
fn spawn_reader(
    mut rd: tokio::io::ReadHalf<BoxConn>,
    id: StreamId,
    tx: mpsc::UnboundedSender<StreamIn>,
    deadline: Duration,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let read_all = async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) => return StreamIn::Closed(id),
                    Ok(n) => {
                        if tx.send(StreamIn::Data(id, buf[..n].to_vec())).is_err() {
                            return StreamIn::Closed(id);
                        }
                    }
                    Err(e) => return StreamIn::Failed(id, e.to_string()),
                }
            }
        };
        let end = match tokio::time::timeout(deadline, read_all).await {
            Ok(m) => m,
            Err(_) => StreamIn::Failed(id, "i/o timeout".into()),
        };
        let _ = tx.send(end);
    });
}

/// Writes what the node task hands over until it says to close (`None`), then half-closes.
async fn write_all(mut wr: tokio::io::WriteHalf<BoxConn>, mut rx: mpsc::UnboundedReceiver<Option<Vec<u8>>>) {
    while let Some(Some(bytes)) = rx.recv().await {
        if wr.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::with_default_port;

    #[test]
    fn default_port() {
        assert_eq!(with_default_port("10.0.0.1"), "10.0.0.1:7946");
        assert_eq!(with_default_port("10.0.0.1:8000"), "10.0.0.1:8000");
        assert_eq!(with_default_port("::1"), "[::1]:7946");
        assert_eq!(with_default_port("[::1]"), "[::1]:7946");
        assert_eq!(with_default_port("[::1]:9"), "[::1]:9");
        assert_eq!(with_default_port("seed.example"), "seed.example:7946");
        assert_eq!(with_default_port("seed.example:1234"), "seed.example:1234");
    }
}

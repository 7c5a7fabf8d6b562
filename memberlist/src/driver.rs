//! The task that drives the protocol core, and the small tasks around it.
//!
//! One task owns the [`Endpoint`] and is the only place it is touched: datagrams, stream bytes,
//! commands from handles and timers all arrive there as messages, so no lock is ever held while
//! application code runs, and application code may call back into the node at any time (Go #23).
//! Around it run a datagram reader, a stream acceptor, one task per TCP connection (reading into
//! the node task's inbox and writing what the node task hands it) and, with automatic re-join
//! and seed names, a resolver. All of them live in one [`JoinSet`], so that shutting down aborts
//! and awaits every one before the node reports that it has stopped.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use memberlist_proto::state::app_state::StateToSend;
use memberlist_proto::wire::{Key, Keyring};
use memberlist_proto::{BroadcastId, Endpoint, Event, Instant, JoinId, Member, StreamAction, StreamId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::delegate::Delegate;
use crate::handoff::{read_loop, Filter, Inline, Queues};
use crate::member_view::MemberView;
use crate::seeds::Seed;
use crate::transport::{BoxConn, BoxFuture, Transport};
use crate::Error;

/// How many distinct seeds automatic re-join remembers; older ones are forgotten first.
const MAX_REMEMBERED_SEEDS: usize = 256;

/// What a handle asks of the node task.
pub(crate) enum Command {
    Join { seeds: Vec<SocketAddr>, names: Vec<Seed>, reply: oneshot::Sender<JoinId> },
    Leave { reply: oneshot::Sender<BroadcastId> },
    UpdateMeta { meta: Option<Vec<u8>>, reply: oneshot::Sender<Result<BroadcastId, Error>> },
    Broadcast { data: Vec<u8>, name: Option<String> },
    SendBestEffort { to: SocketAddr, data: Vec<u8> },
    SendReliable { to: SocketAddr, data: Vec<u8>, reply: oneshot::Sender<Result<(), Error>> },
    Ping { name: String, addr: SocketAddr, reply: oneshot::Sender<u32> },
    Keyring { op: KeyOp, reply: oneshot::Sender<Result<(), Error>> },
    Shutdown,
}

/// A keyring change.
pub(crate) enum KeyOp {
    Install(Key),
    Use(Key),
    Remove(Key),
}

/// What the node task's helper tasks tell it.
pub(crate) enum Input {
    Data(StreamId, Vec<u8>),
    Closed(StreamId),
    Failed(StreamId, String),
    Accepted(BoxConn, SocketAddr),
    /// The seed names resolved again, for an automatic re-join round.
    Seeds(Vec<SocketAddr>),
    /// A stream's task wrote a push/pull it completed with the application's state.
    StateWritten {
        bytes: usize,
    },
    /// A stream's task gave the peer's application state to the delegate.
    StateMerged(StreamId),
}

/// What a connection's task is told to do, in order.
pub(crate) enum Job {
    Write(Vec<u8>),
    /// Ask the delegate for its state (on a blocking thread), seal and write it.
    WriteState(Box<StateToSend>),
    /// Give the peer's state to the delegate (on a blocking thread), then say so.
    Merge {
        state: Vec<u8>,
        join: bool,
    },
    /// Half-close once everything before has been written.
    Close,
}

/// What a connection's task needs to run the delegate's share of a push/pull.
#[derive(Clone)]
struct StreamCtx {
    id: StreamId,
    tx: mpsc::UnboundedSender<Input>,
    delegate: Option<Arc<dyn Delegate>>,
}

/// What handles can read without asking the node task.
pub(crate) struct Shared {
    pub members: RwLock<MemberView>,
    pub local: RwLock<Option<Member>>,
    pub health: RwLock<u32>,
    pub queued: RwLock<(usize, usize)>,
    pub stats: RwLock<memberlist_proto::Stats>,
    /// Event subscribers. Registered here rather than through a command so that a
    /// subscription is in force the moment `Memberlist::events` returns; cleared when the node
    /// stops (`None` from then on), which ends every event stream.
    pub subscribers: std::sync::Mutex<Option<Vec<mpsc::UnboundedSender<Event>>>>,
    /// Becomes true once the node task and all its helpers have ended and the transport is
    /// dropped.
    pub stopped: watch::Receiver<bool>,
    /// The keyring as the node task last changed it, read by the datagram reader and by
    /// `Memberlist::keys`.
    pub keyring: Arc<RwLock<Option<Keyring>>>,
    /// The task that runs delegate notifications, awaited by `shutdown`.
    pub delegate_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// What handles read of `ep`; from here on `ep` tracks its table's changes, which the
    /// node task applies to the view.
    pub(crate) fn new(ep: &mut Endpoint) -> (Arc<Shared>, watch::Sender<bool>) {
        let (stopped_tx, stopped) = watch::channel(false);
        ep.track_member_changes();
        let shared = Shared {
            members: RwLock::new(MemberView::new(ep.members())),
            local: RwLock::new(ep.local_member()),
            health: RwLock::new(0),
            queued: RwLock::new((0, 0)),
            stats: RwLock::new(memberlist_proto::Stats::default()),
            subscribers: std::sync::Mutex::new(Some(Vec::new())),
            stopped,
            delegate_task: std::sync::Mutex::new(None),
            keyring: Arc::new(RwLock::new(ep.config().keyring.clone())),
        };
        (Arc::new(shared), stopped_tx)
    }
}

/// The node task's state.
pub(crate) struct Driver {
    ep: Endpoint,
    transport: Arc<dyn Transport>,
    clock: std::time::Instant,
    shared: Arc<Shared>,
    stopped: watch::Sender<bool>,
    writers: HashMap<StreamId, mpsc::UnboundedSender<Job>>,
    /// The delegate whose push/pull state runs on the streams' tasks.
    delegate: Option<Arc<dyn Delegate>>,
    /// Reliable sends waiting to hear whether their stream was written.
    reliable: HashMap<StreamId, oneshot::Sender<Result<(), Error>>>,
    inbound: HashSet<StreamId>,
    max_inbound: usize,
    in_tx: mpsc::UnboundedSender<Input>,
    metrics: crate::metrics::Metrics,
    /// The keyring as the reader task decrypts with it.
    keyring: Arc<RwLock<Option<Keyring>>>,
    queues: Arc<std::sync::Mutex<Queues>>,
    wake: Arc<tokio::sync::Notify>,
    /// Every seed given to joins (names and addresses, the newest [`MAX_REMEMBERED_SEEDS`]),
    /// resolved again before every automatic re-join.
    remembered_seeds: Arc<std::sync::Mutex<Vec<Seed>>>,
    tasks: JoinSet<()>,
}

impl Driver {
    pub(crate) fn new(
        ep: Endpoint,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
        stopped: watch::Sender<bool>,
        max_inbound: usize,
        delegate: Option<Arc<dyn Delegate>>,
        metrics: crate::metrics::Metrics,
    ) -> (Driver, mpsc::UnboundedReceiver<Input>) {
        let clock = std::time::Instant::now();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let keyring = shared.keyring.clone();
        let driver = Driver {
            ep,
            transport,
            clock,
            shared,
            stopped,
            writers: HashMap::new(),
            delegate,
            reliable: HashMap::new(),
            inbound: HashSet::new(),
            max_inbound,
            in_tx,
            metrics,
            keyring,
            queues: Arc::new(std::sync::Mutex::new(Queues::default())),
            wake: Arc::new(tokio::sync::Notify::new()),
            remembered_seeds: Arc::new(std::sync::Mutex::new(Vec::new())),
            tasks: JoinSet::new(),
        };
        (driver, in_rx)
    }

    /// Events the endpoint produced before anyone could subscribe (this node's own join).
    pub(crate) fn pending_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Runs the node until a handle asks it to shut down or every handle is gone, then stops
    /// every helper task, drops the transport (closing its sockets) and says so.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbox: mpsc::UnboundedReceiver<Input>,
        depth: usize,
    ) {
        let (inline_tx, mut inline_rx) = mpsc::unbounded_channel();
        let filter = Filter { cfg: self.ep.config().clone(), keyring: self.keyring.clone() };
        self.tasks.spawn(read_loop(
            self.transport.clone(),
            filter,
            depth,
            self.queues.clone(),
            self.wake.clone(),
            inline_tx,
        ));
        self.tasks.spawn(accept_loop(self.transport.clone(), self.in_tx.clone()));
        if let Some(interval) = self.ep.config().auto_rejoin_interval {
            self.tasks.spawn(resolve_loop(self.remembered_seeds.clone(), interval, self.in_tx.clone()));
        }
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
            let mut gossiped = None;
            tokio::select! {
                biased;
                Some(msg) = inline_rx.recv() => self.inline(msg),
                () = wake.notified() => self.drain_queues(),
                Some(msg) = inbox.recv() => self.input(msg),
                c = commands.recv() => match c {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.command(c),
                },
                () = sleep => {
                    let now = self.now();
                    let (started, rounds) = (std::time::Instant::now(), self.ep.stats().gossip_rounds);
                    self.ep.handle_timeout(now);
                    gossiped = (self.ep.stats().gossip_rounds > rounds).then_some(started);
                }
            }
            self.flush();
            if let Some(started) = gossiped {
                // Go's `memberlist.gossip` times the round up to its packets' sending.
                self.metrics.gossip(started.elapsed());
            }
        }
        // From here on handles see the node as stopped.
        drop(commands);
        self.stop().await;
    }

    async fn stop(mut self) {
        end_event_streams(&self.shared);
        self.tasks.shutdown().await;
        for (_, reply) in self.reliable.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        self.writers.clear();
        self.transport.close().await;
        let Driver { stopped, transport, .. } = self;
        drop(transport);
        let _ = stopped.send(true);
    }

    /// Urgent messages and counters from the reader.
    fn inline(&mut self, msg: Inline) {
        let now = self.now();
        match msg {
            Inline::Packet { from, bytes, urgent, errors, compressed } => {
                self.ep.record_received(bytes);
                if let Some(algo) = compressed {
                    self.ep.record_compressed(algo);
                }
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
            Command::Join { seeds, names, reply } => {
                if let Ok(mut known) = self.remembered_seeds.lock() {
                    for n in names {
                        if !known.contains(&n) {
                            known.push(n);
                        }
                    }
                    let excess = known.len().saturating_sub(MAX_REMEMBERED_SEEDS);
                    known.drain(..excess);
                }
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
            Command::SendReliable { to, data, reply } => {
                let id = self.ep.send_reliable(to, &data, now);
                self.reliable.insert(id, reply);
            }
            Command::Ping { name, addr, reply } => {
                let _ = reply.send(self.ep.ping(&name, addr, now));
            }
            Command::Keyring { op, reply } => {
                let result = match op {
                    KeyOp::Install(k) => self.ep.install_key(k).map_err(Error::from),
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

    fn input(&mut self, msg: Input) {
        let now = self.now();
        match msg {
            Input::Data(id, bytes) => self.ep.handle_stream_data(id, &bytes, now),
            Input::Closed(id) => {
                self.ep.handle_stream_closed(id, now);
            }
            Input::Failed(id, reason) => self.ep.handle_stream_error(id, &reason, now),
            Input::Accepted(stream, peer) => {
                if !self.ep.config().ip_allowed(peer.ip()) {
                    tracing::warn!(%peer, "rejected a connection from {peer}: not in cidrs_allowed");
                    self.ep.record_not_allowed();
                    return;
                }
                if self.inbound.len() >= self.max_inbound {
                    tracing::warn!(%peer, "too many inbound streams, closing");
                    return;
                }
                let id = self.ep.handle_stream_accepted(peer, now);
                self.inbound.insert(id);
                let deadline = self.ep.config().tcp_timeout;
                let (wtx, wrx) = mpsc::unbounded_channel();
                self.writers.insert(id, wtx);
                let ctx = self.stream_ctx(id);
                self.tasks.spawn(serve_conn(stream, ctx, wrx, deadline, None));
            }
            Input::Seeds(addrs) => {
                self.ep.set_seeds(&addrs);
                self.ep.rejoin_now(now);
            }
            Input::StateWritten { bytes } => {
                self.ep.record_stream_bytes_sent(bytes);
                self.metrics.local_state_size(bytes);
            }
            Input::StateMerged(id) => self.ep.handle_state_merged(id, now),
        }
    }

    /// Carries out everything the core asked for and publishes what handles may read.
    fn flush(&mut self) {
        while self.tasks.try_join_next().is_some() {}
        while let Some(t) = self.ep.poll_transmit() {
            if let Err(e) = self.transport.send_to(&t.bytes, t.to) {
                tracing::debug!(to = %t.to, error = %e, "udp send failed");
            }
        }
        while let Some(a) = self.ep.poll_stream() {
            match a {
                StreamAction::Connect { id, to, deadline } => {
                    let wait = Duration::from_nanos(deadline.as_nanos().saturating_sub(self.now().as_nanos()));
                    let (wtx, wrx) = mpsc::unbounded_channel();
                    self.writers.insert(id, wtx);
                    let connect = self.transport.connect(to);
                    let done = self.reliable.remove(&id);
                    let ctx = self.stream_ctx(id);
                    self.tasks.spawn(dial(connect, ctx, wrx, wait, done));
                }
                StreamAction::Write { id, bytes } => self.to_stream(id, Job::Write(bytes)),
                StreamAction::WriteState { id, state } => self.to_stream(id, Job::WriteState(state)),
                StreamAction::MergeState { id, state, join } => {
                    if let Some(w) = self.writers.get(&id) {
                        let _ = w.send(Job::Merge { state, join });
                    } else {
                        // The connection is gone; the state arrived all the same.
                        let ctx = self.stream_ctx(id);
                        self.tasks.spawn(async move { merge_state(&ctx, state, join).await });
                    }
                }
                StreamAction::Close { id } => {
                    if let Some(w) = self.writers.remove(&id) {
                        let _ = w.send(Job::Close);
                    }
                    self.inbound.remove(&id);
                }
            }
        }
        // The view first, so that a handle woken by an event already reads what it reports.
        let changes = self.ep.take_member_changes();
        if !changes.is_empty() {
            let me = &self.ep.config().name;
            if let Some((_, local)) = changes.iter().find(|(n, _)| **n == **me) {
                if let Ok(mut l) = self.shared.local.write() {
                    l.clone_from(local);
                }
            }
            if let Ok(mut view) = self.shared.members.write() {
                for (name, now) in changes {
                    view.apply(name, now);
                }
            }
        }
        let mut events = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            events.push(e);
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
        while let Some(t) = self.ep.poll_sample() {
            self.metrics.sample(t);
        }
        let counts = self.shared.members.read().map(|v| v.counts()).unwrap_or_default();
        self.metrics.maybe_publish(&self.ep, counts);
        if events.is_empty() {
            return;
        }
        if let Some(subscribers) = self.shared.subscribers.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            for e in events {
                subscribers.retain(|s| s.send(e.clone()).is_ok());
            }
        }
    }
}

impl Driver {
    fn stream_ctx(&self, id: StreamId) -> StreamCtx {
        StreamCtx { id, tx: self.in_tx.clone(), delegate: self.delegate.clone() }
    }

    fn to_stream(&self, id: StreamId, job: Job) {
        if let Some(w) = self.writers.get(&id) {
            let _ = w.send(job);
        }
    }
}

/// How many members are alive or suspect (Go's `NumMembers`).
pub(crate) fn live_members(shared: &Shared) -> usize {
    shared.members.read().map(|m| m.counts().live()).unwrap_or(0)
}

/// Ends every event stream: the node will produce no more events.
fn end_event_streams(shared: &Shared) {
    if let Ok(mut s) = shared.subscribers.lock() {
        *s = None;
    }
}

/// Accepts streams until the node task goes away, backing off on errors as Go does (5 ms,
/// doubling to 1 s).
async fn accept_loop(transport: Arc<dyn Transport>, tx: mpsc::UnboundedSender<Input>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match transport.accept().await {
            Ok((s, peer)) => {
                backoff = Duration::from_millis(5);
                if tx.send(Input::Accepted(s, peer)).is_err() {
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
}

/// Every `interval`, resolves the seeds again (names by a lookup, addresses as they are) and
/// hands the addresses to the node task for an automatic re-join round, so that nodes which
/// appeared behind a name since the last round (pods behind a headless Service) are found.
async fn resolve_loop(names: Arc<std::sync::Mutex<Vec<Seed>>>, interval: Duration, tx: mpsc::UnboundedSender<Input>) {
    loop {
        tokio::time::sleep(interval).await;
        let seeds = names.lock().map(|n| n.clone()).unwrap_or_default();
        if seeds.is_empty() {
            continue;
        }
        let (addrs, errors) = crate::seeds::resolve_all(&seeds).await;
        for e in errors {
            tracing::debug!(error = %e, "re-join: seed did not resolve");
        }
        if !addrs.is_empty() && tx.send(Input::Seeds(addrs.into_iter().map(|(a, _)| a).collect())).is_err() {
            return;
        }
    }
}

/// Dials a stream, then serves it like an accepted one. `done` (a reliable send) hears whether
/// the connection was made and everything written.
async fn dial(
    connect: BoxFuture<'static, std::io::Result<BoxConn>>,
    ctx: StreamCtx,
    wrx: mpsc::UnboundedReceiver<Job>,
    wait: Duration,
    done: Option<oneshot::Sender<Result<(), Error>>>,
) {
    let failed = |e: std::io::Error, done: Option<oneshot::Sender<Result<(), Error>>>| {
        let _ = ctx.tx.send(Input::Failed(ctx.id, e.to_string()));
        if let Some(d) = done {
            let _ = d.send(Err(Error::Io(e)));
        }
    };
    match tokio::time::timeout(wait, connect).await {
        Ok(Ok(stream)) => serve_conn(stream, ctx.clone(), wrx, wait, done).await,
        Ok(Err(e)) => failed(e, done),
        Err(_) => failed(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"), done),
    }
}

/// Shuttles one connection's bytes: reads into the node task's inbox until EOF, an error or
/// `deadline` (a read deadline on the whole exchange, so a slow peer cannot hold a connection
/// open: no slow-loris), and carries out what the node task hands over until it says to close.
async fn serve_conn(
    stream: BoxConn,
    ctx: StreamCtx,
    wrx: mpsc::UnboundedReceiver<Job>,
    deadline: Duration,
    done: Option<oneshot::Sender<Result<(), Error>>>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let write = async {
        let result = run_jobs(wr, wrx, &ctx).await;
        if let Some(d) = done {
            let _ = d.send(result.map_err(Error::Io));
        }
    };
    tokio::join!(read_all(rd, ctx.id, ctx.tx.clone(), deadline), write);
}

async fn read_all(
    mut rd: tokio::io::ReadHalf<BoxConn>,
    id: StreamId,
    tx: mpsc::UnboundedSender<Input>,
    deadline: Duration,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let read = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return Input::Closed(id),
                Ok(n) => {
                    if tx.send(Input::Data(id, buf[..n].to_vec())).is_err() {
                        return Input::Closed(id);
                    }
                }
                Err(e) => return Input::Failed(id, e.to_string()),
            }
        }
    };
    let end = match tokio::time::timeout(deadline, read).await {
        Ok(m) => m,
        Err(_) => Input::Failed(id, "i/o timeout".into()),
    };
    let _ = tx.send(end);
}

/// Carries out the node task's jobs for one connection, in order, until it says to close, then
/// half-closes. The delegate's `local_state` and `merge_remote_state` run here, on a blocking
/// thread, as Go runs them on the stream's goroutine: the node task keeps probing meanwhile.
async fn run_jobs(
    mut wr: tokio::io::WriteHalf<BoxConn>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    ctx: &StreamCtx,
) -> std::io::Result<()> {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Write(bytes) => wr.write_all(&bytes).await?,
            Job::WriteState(state) => {
                let delegate = ctx.delegate.clone();
                let sealed = tokio::task::spawn_blocking(move || {
                    let user = delegate.map(|d| d.local_state(state.join())).unwrap_or_default();
                    state.seal(user)
                })
                .await
                .map_err(|e| std::io::Error::other(format!("local_state panicked: {e}")))?
                .map_err(|e| std::io::Error::other(format!("cannot seal the push/pull: {e}")))?;
                wr.write_all(&sealed).await?;
                let _ = ctx.tx.send(Input::StateWritten { bytes: sealed.len() });
            }
            Job::Merge { state, join } => merge_state(ctx, state, join).await,
            Job::Close => break,
        }
    }
    wr.shutdown().await
}

/// Gives a peer's application state to the delegate on a blocking thread and tells the node
/// task, which completes the push/pull (and a join waiting for it).
async fn merge_state(ctx: &StreamCtx, state: Vec<u8>, join: bool) {
    if let Some(d) = ctx.delegate.clone() {
        let merged = tokio::task::spawn_blocking(move || d.merge_remote_state(&state, join)).await;
        if let Err(e) = merged {
            tracing::warn!(error = %e, "merge_remote_state panicked");
        }
    }
    let _ = ctx.tx.send(Input::StateMerged(ctx.id));
}

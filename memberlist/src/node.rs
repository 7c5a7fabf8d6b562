//! The running node as the application holds it: a cheap handle whose methods mirror Go's
//! `*Memberlist`. The protocol runs on the node task of [`crate::driver`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use memberlist_proto::wire::Key;
use memberlist_proto::{BroadcastId, Endpoint, Event, Instant, Member};
use tokio::sync::{mpsc, oneshot};

use crate::advertise::{final_advertise_addr, host_interfaces};
use crate::driver::{Command, Driver, KeyOp, Shared};
use crate::member_view::StateCounts;
use crate::options::Options;
use crate::seeds::Seed;
use crate::transport::{NetTransport, Transport};
use crate::Error;

/// A running memberlist node. Cheap to clone; every clone controls the same node. When the
/// last clone is dropped the node stops, as after [`Memberlist::shutdown`].
#[derive(Clone)]
pub struct Memberlist {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    bind_port: u16,
    name: String,
    protocol_version: u8,
    meta_limit: usize,
    delegate: Option<Arc<dyn crate::Delegate>>,
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

impl Memberlist {
    /// Binds UDP and TCP on the same port and starts the node (Go's `Create`). With port 0 the
    /// kernel picks a port that is free for both. Bound to `0.0.0.0` or `::` without an
    /// advertise address, the node advertises this host's private address, as Go does (see
    /// [`Options::advertise`]), and fails when there is none.
    pub async fn create(opts: Options) -> Result<Memberlist, Error> {
        opts.config.validate()?;
        if let Some(cfg) = &opts.dskit {
            let transport = crate::DskitTransport::bind_with(opts.bind, cfg.clone()).await?;
            return Memberlist::with_transport(opts, Arc::new(transport)).await;
        }
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
        if opts.config.udp_buffer_size > transport.max_packet_size() {
            return Err(Error::Config(memberlist_proto::ConfigError {
                field: "udp_buffer_size",
                reason: format!(
                    "{} is more than this transport carries in one packet ({})",
                    opts.config.udp_buffer_size,
                    transport.max_packet_size()
                ),
            }));
        }
        let bound = transport.local_addr();
        let advertise = final_advertise_addr(bound, opts.advertise, host_interfaces)?;
        transport.set_advertise_addr(advertise);
        let seed = opts.seed.unwrap_or_else(|| {
            // Not cryptographic: only spreads probe order and timer phases.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
        });
        let name = opts.config.name.clone();
        let protocol_version = opts.config.protocol_version;
        let meta_limit = opts.config.meta_max_size;
        // Go's NodeMeta(MetaMaxSize) when the node starts; too long is refused below.
        let meta = match opts.delegate.as_ref().and_then(|d| d.node_meta(meta_limit)) {
            Some(m) => Some(m),
            None => opts.meta,
        };
        let depth = opts.handoff_queue_depth.max(1);
        let hooks: Box<dyn memberlist_proto::Hooks> = match &opts.delegate {
            Some(d) => Box::new(crate::delegate::DelegateHooks(d.clone())),
            None => opts.hooks,
        };
        let mut ep = Endpoint::new(opts.config, advertise, meta, hooks, seed, Instant::ZERO)?;
        let (shared, stopped) = Shared::new(&mut ep);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let metrics = crate::metrics::Metrics::new(&opts.metric_labels, opts.queue_check_interval);
        let (mut driver, inbox) = Driver::new(
            ep,
            transport,
            shared.clone(),
            stopped,
            opts.max_inbound_streams,
            opts.delegate.clone(),
            metrics,
        );
        let startup_events = driver.pending_events();
        tokio::spawn(driver.run(cmd_rx, inbox, depth));
        let node = Memberlist {
            commands: cmd_tx,
            shared,
            addr: advertise,
            bind_port: bound.port(),
            name,
            protocol_version,
            meta_limit,
            delegate: opts.delegate.clone(),
        };
        if let Some(d) = opts.delegate {
            // Notifications run on a task of their own, never on the node's.
            let mut events = node.events()?;
            let task = tokio::spawn(async move {
                for e in &startup_events {
                    crate::delegate::dispatch(d.as_ref(), e);
                }
                while let Some(e) = events.recv().await {
                    crate::delegate::dispatch(d.as_ref(), &e);
                }
            });
            if let Ok(mut slot) = node.shared.delegate_task.lock() {
                *slot = Some(task);
            }
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
        let labelled: Vec<(SocketAddr, String)> = seeds.iter().map(|a| (*a, a.to_string())).collect();
        let remembered = seeds.iter().map(|a| Seed::from_addr(*a)).collect();
        self.join_resolved(&labelled, remembered, Vec::new()).await
    }

    /// Joins through seeds written as Go's `Join` takes them: `[name/]host[:port]`, where the
    /// host is an IP or a DNS name and a missing port means this node's bind port (as Go uses
    /// `BindPort`). Every address a name resolves to is tried, in parallel; names are resolved
    /// now, and again before every automatic re-join when
    /// [`auto_rejoin_interval`](memberlist_proto::Config::auto_rejoin_interval) is set.
    /// Returns how many addresses were reached; an error only when none was, listing why.
    pub async fn join_hosts(&self, seeds: &[&str]) -> Result<usize, Error> {
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for s in seeds {
            match Seed::parse(s, self.bind_port) {
                Ok(seed) => parsed.push(seed),
                Err(e) => errors.push(e),
            }
        }
        let (addrs, resolve_errors) = crate::seeds::resolve_all(&parsed).await;
        errors.extend(resolve_errors);
        self.join_resolved(&addrs, parsed, errors).await
    }

    async fn join_resolved(
        &self,
        addrs: &[(SocketAddr, String)],
        names: Vec<Seed>,
        mut errors: Vec<String>,
    ) -> Result<usize, Error> {
        if addrs.is_empty() {
            if errors.is_empty() {
                errors.push("no seeds given".into());
            }
            return Err(Error::JoinFailed(errors.join("; ")));
        }
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        let seeds = addrs.iter().map(|(a, _)| *a).collect();
        self.send(Command::Join { seeds, names, reply })?;
        let id = rx.await.map_err(|_| Error::Shutdown)?;
        while let Some(e) = events.recv().await {
            if let Event::JoinCompleted { join, contacted, errors: failed } = e {
                if join != id {
                    continue;
                }
                if contacted > 0 {
                    return Ok(contacted);
                }
                for (addr, reason) in failed {
                    let seed = addrs.iter().find(|(a, _)| *a == addr).map_or(String::new(), |(_, s)| s.clone());
                    let shown = if seed == addr.to_string() { seed } else { format!("{seed} ({addr})") };
                    errors.push(format!("failed to join {shown}: {reason}"));
                }
                return Err(Error::JoinFailed(errors.join("; ")));
            }
        }
        Err(Error::Shutdown)
    }

    /// Leaves gracefully and waits until the news has gone out, or `timeout` passes;
    /// `Duration::ZERO` waits without limit, as Go's 0 timeout does (it returns at once when
    /// there is nobody to tell).
    pub async fn leave(&self, timeout: Duration) -> Result<(), Error> {
        let mut events = self.events()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Leave { reply })?;
        let id = rx.await.map_err(|_| Error::Shutdown)?;
        wait_broadcast(&mut events, id, timeout).await
    }

    /// Replaces this node's metadata and waits until the news has gone out, or `timeout`
    /// (`Duration::ZERO`: without limit, as for [`leave`](Self::leave)).
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

    /// Sends application data on a TCP stream of its own and returns once it is written (Go's
    /// `SendReliable`): an error when the connection cannot be made within the TCP timeout or
    /// the write fails.
    pub async fn send_reliable(&self, to: SocketAddr, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SendReliable { to, data: data.into(), reply })?;
        rx.await.map_err(|_| Error::Shutdown)?
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

    /// The installed keys, primary first (Go's `Keyring.GetKeys`); empty without encryption.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let ring = self.shared.keyring.read().ok().and_then(|k| k.clone());
        ring.map(|r| r.keys().map(|k| k.as_bytes().to_vec()).collect()).unwrap_or_default()
    }

    /// The key this node encrypts with (Go's `Keyring.GetPrimaryKey`); `None` without
    /// encryption.
    pub fn primary_key(&self) -> Option<Vec<u8>> {
        let ring = self.shared.keyring.read().ok().and_then(|k| k.clone());
        ring.map(|r| r.primary().as_bytes().to_vec())
    }

    /// The protocol version this node speaks (Go's `ProtocolVersion`).
    pub fn protocol_version(&self) -> u8 {
        self.protocol_version
    }

    /// Asks the delegate for this node's metadata with [`Delegate::node_meta`] and gossips it,
    /// waiting as [`update_meta`](Self::update_meta) does (Go's `UpdateNode`). Without a
    /// delegate, or when it has no metadata, the metadata becomes empty.
    ///
    /// [`Delegate::node_meta`]: crate::Delegate::node_meta
    pub async fn update_node(&self, timeout: Duration) -> Result<(), Error> {
        let meta = self.delegate.as_ref().and_then(|d| d.node_meta(self.meta_limit));
        self.update_meta(meta.unwrap_or_default(), timeout).await
    }

    /// A stream of every event from now on: the subscription is in force when this returns,
    /// so nothing that happens afterwards is missed. The stream ends when the node stops.
    pub fn events(&self) -> Result<Events, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subscribers = self.shared.subscribers.lock().map_err(|_| Error::Shutdown)?;
        subscribers.as_mut().ok_or(Error::Shutdown)?.push(tx);
        Ok(Events { rx })
    }

    /// Every known member in its real state — alive, suspect, dead or left — as owned
    /// snapshots (Go has no such call; its `Node.State` cannot tell dead from left, #293).
    pub fn all_members(&self) -> Vec<Member> {
        self.shared.members.read().map(|m| m.members()).unwrap_or_default()
    }

    /// The members that are alive or suspect, this node included, as Go's `Members` returns
    /// them (dead and left nodes are not listed).
    pub fn members(&self) -> Vec<Member> {
        self.shared.members.read().map(|v| v.live_members()).unwrap_or_default()
    }

    /// One member by name, in its real state, if this node knows it (dead and left members
    /// until they are reaped); no copy of the table is made.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.shared.members.read().ok().and_then(|v| v.get(name))
    }

    /// How many members this node knows in each state, without copying the table.
    pub fn state_counts(&self) -> StateCounts {
        self.shared.members.read().map(|v| v.counts()).unwrap_or_default()
    }

    /// How many members are alive or suspect (Go's `NumMembers`): `members().len()`.
    pub fn num_members(&self) -> usize {
        crate::driver::live_members(&self.shared)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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

    /// Stops the node without leaving: peers will find it dead (Go's `Shutdown`). Returns once
    /// the node's tasks have ended and its sockets are closed, so a new node can bind the same
    /// port at once; every event stream ends. Calling it again, or on a stopped node, returns
    /// `Ok` at once.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.send(Command::Shutdown);
        let mut stopped = self.shared.stopped.clone();
        // An error means the node task is gone without saying so (it panicked): stopped too.
        let _ = stopped.wait_for(|s| *s).await;
        let delegate = self.shared.delegate_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = delegate {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Waits for a broadcast to go out; a zero `timeout` waits without limit.
async fn wait_broadcast(events: &mut crate::Events, id: BroadcastId, timeout: Duration) -> Result<(), Error> {
    let wait = async {
        while let Some(e) = events.recv().await {
            if e == Event::BroadcastDone(id) {
                return Ok(());
            }
        }
        Err(Error::Shutdown)
    };
    if timeout.is_zero() {
        return wait.await;
    }
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout),
    }
}

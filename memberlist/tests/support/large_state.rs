//! A large application state over real sockets, as dskit rings hold: `local_state` returns 8 MB
//! and takes 300 ms. Three nodes exchange it every push/pull while a fourth pings them; the
//! report says how fast the pings were answered and whether anybody was suspected. Shared by
//! `tests/large_state.rs` (asserts) and `benches/large_state.rs` (prints both ways side by side).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memberlist::{Delegate, Event, Hooks, Memberlist, Options};

/// The state's size.
pub const STATE_BYTES: usize = 8 << 20;
/// How long `local_state` takes.
pub const STATE_DELAY: Duration = Duration::from_millis(300);

/// Where the application's state runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As a [`Delegate`]: on the streams' tasks (this library's way, and Go's).
    Delegate,
    /// As [`Hooks`]: on the node's task (how delegates ran before).
    NodeTask,
}

/// The application: a big blob, slow to produce.
#[derive(Clone)]
pub struct BigState {
    blob: Arc<Vec<u8>>,
    pub local_calls: Arc<AtomicU64>,
    pub merged_bytes: Arc<AtomicU64>,
}

impl BigState {
    pub fn new() -> Self {
        // Ring-like content: repeated records with varying tokens (compresses about 3:1).
        let mut blob = Vec::with_capacity(STATE_BYTES);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while blob.len() < STATE_BYTES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            blob.extend_from_slice(format!("ingester-{:03}:token={:016x};state=ACTIVE\n", x % 300, x).as_bytes());
        }
        blob.truncate(STATE_BYTES);
        BigState { blob: Arc::new(blob), local_calls: Default::default(), merged_bytes: Default::default() }
    }

    fn local(&self) -> Vec<u8> {
        self.local_calls.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(STATE_DELAY);
        self.blob.as_ref().clone()
    }

    fn merge(&self, state: &[u8]) {
        self.merged_bytes.fetch_add(state.len() as u64, Ordering::Relaxed);
    }
}

impl Delegate for BigState {
    fn local_state(&self, _join: bool) -> Vec<u8> {
        self.local()
    }
    fn merge_remote_state(&self, state: &[u8], _join: bool) {
        self.merge(state)
    }
}

struct AsHooks(BigState);

impl Hooks for AsHooks {
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        self.0.local()
    }
    fn merge_remote_state(&mut self, state: &[u8], _join: bool) {
        self.0.merge(state)
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    pub mode: Mode,
    /// Round-trip times of the answered pings, sorted.
    pub rtts: Vec<Duration>,
    /// Pings that got no answer within the probe timeout.
    pub unanswered: usize,
    /// `NodeSuspected` events seen by any node.
    pub suspicions: usize,
    /// `local_state` calls, over all nodes.
    pub exchanges: u64,
    /// Application state bytes merged, over all nodes.
    pub merged_bytes: u64,
    pub probe_timeout: Duration,
}

impl Report {
    pub fn quantile(&self, q: f64) -> Duration {
        if self.rtts.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.rtts.len() - 1) as f64 * q).round() as usize;
        self.rtts[i]
    }
    pub fn late(&self) -> usize {
        self.unanswered + self.rtts.iter().filter(|r| **r > self.probe_timeout).count()
    }
}

fn options(name: &str) -> Options {
    // Go's LAN timers (probe every 1 s, 500 ms timeout), push/pull every 2 s to exchange often.
    Options::lan(name).bind("127.0.0.1:0".parse().unwrap()).configure(|c| {
        c.push_pull_interval = Duration::from_secs(2);
    })
}

/// Runs three nodes holding the state and a pinger for `secs` seconds.
pub async fn run(mode: Mode, secs: u64) -> Report {
    let app = BigState::new();
    let mut holders = Vec::new();
    for i in 0..3 {
        let o = options(&format!("holder-{i}"));
        let o = match mode {
            Mode::Delegate => o.delegate(app.clone()),
            Mode::NodeTask => o.hooks(AsHooks(app.clone())),
        };
        holders.push(Memberlist::create(o).await.expect("holder starts"));
    }
    let pinger = Memberlist::create(options("pinger")).await.expect("pinger starts");
    let probe_timeout = pinger_probe_timeout();
    let suspicions = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for n in holders.iter().chain([&pinger]) {
        let mut events = n.events().expect("events");
        let suspicions = suspicions.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if matches!(e, Event::NodeSuspected(_)) {
                    suspicions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let seed = holders[0].advertise_addr();
    for n in holders.iter().skip(1).chain([&pinger]) {
        n.join(&[seed]).await.expect("join");
    }
    let (mut rtts, mut unanswered) = (Vec::new(), 0);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for h in &holders {
            match pinger.ping(h.name(), h.advertise_addr()).await {
                Ok(rtt) => rtts.push(rtt),
                Err(_) => unanswered += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rtts.sort();
    for n in holders.iter().chain([&pinger]) {
        n.shutdown().await.expect("shutdown");
    }
    for w in watchers {
        let _ = w.await;
    }
    Report {
        mode,
        rtts,
        unanswered,
        suspicions: suspicions.load(Ordering::Relaxed) as usize,
        exchanges: app.local_calls.load(Ordering::Relaxed),
        merged_bytes: app.merged_bytes.load(Ordering::Relaxed),
        probe_timeout,
    }
}

fn pinger_probe_timeout() -> Duration {
    options("x").config.probe_timeout
}

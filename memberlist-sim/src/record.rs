//! What a run produces: the trace hash, the timeline, and the measurements the summary reports.
//!
//! The trace hash is FNV-1a (64 bit) over every delivered datagram (time, endpoints, length and
//! a 64-bit digest of its bytes) and every membership event (time, observer, kind, subject,
//! state, incarnation), in the engine's merge order. Two runs with the same seed and scenario
//! must print the same hash, whatever the number of threads.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use memberlist_proto::{Event, Instant, NodeState};

/// FNV-1a, 64 bit.
#[derive(Debug, Clone, Copy)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Mixes `bytes` in.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Mixes a number in.
    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// A digest of a datagram's bytes, computed where the datagram is delivered (on any thread):
/// 8 bytes at a time, each word mixed in with a multiply and a rotate, the length last. Not
/// cryptographic; stable across machines (little-endian words, wrapping integer math).
pub fn digest(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K).rotate_left(31);
    (h ^ bytes.len() as u64).wrapping_mul(K)
}

/// What happened to one crashed node.
#[derive(Debug, Clone, Default)]
pub struct CrashRecord {
    /// When it crashed.
    pub at: Option<Instant>,
    /// First suspicion of it anywhere.
    pub first_suspect: Option<Instant>,
    /// First death declaration anywhere.
    pub first_dead: Option<Instant>,
    /// When every node alive at that moment had declared it dead.
    pub all_dead: Option<Instant>,
    /// Observers that declared it dead.
    pub dead_at: usize,
}

/// First receipts of one watched update (B2 dissemination).
#[derive(Debug, Clone)]
pub struct Receipts {
    /// The node whose update is watched (its own event does not count).
    pub origin: usize,
    /// When the update was made.
    pub since: Instant,
    /// Per observer, the first time it applied the update.
    pub first: BTreeMap<usize, Duration>,
}

/// Measurements collected during a run.
#[derive(Default)]
pub struct Recorder {
    /// The trace hash.
    pub hash: TraceHash,
    /// Datagrams delivered.
    pub packets: u64,
    /// Bytes delivered in datagrams.
    pub bytes: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Events seen.
    pub events: u64,
    /// Suspicions of nodes that were running.
    pub false_suspicions: u64,
    /// False suspicions whose subject was healthy (never paused or slowed).
    pub false_suspicions_of_healthy: u64,
    /// Deaths declared about nodes that were running.
    pub false_deaths: u64,
    /// False deaths whose subject was healthy (never paused or slowed).
    pub false_deaths_of_healthy: u64,
    /// False deaths where both the subject and the node declaring it were healthy.
    pub false_deaths_healthy_by_healthy: u64,
    /// Per crashed node (by index).
    pub crashes: BTreeMap<usize, CrashRecord>,
    /// Live members each node counts (alive or suspect), by node index.
    pub live_view: Vec<i64>,
    /// Health scores sampled once per second: (time, mean, max).
    pub awareness: Vec<(Instant, f64, u32)>,
    /// JSON-lines timeline, when asked for.
    pub timeline: Option<Box<dyn Write>>,
    /// The update being watched for dissemination, if any.
    pub receipts: Option<Receipts>,
    /// The graceful leaves being watched, if any.
    pub leaves: Option<LeaveWatch>,
    /// Members re-added after their death, when watched.
    pub readds: Option<ReaddWatch>,
}

/// Members an observer adds again after it declared them dead or left: a dead member brought
/// back by someone's stale alive (the mechanism behind "ghost members").
#[derive(Debug, Default)]
pub struct ReaddWatch {
    /// (observer, member) pairs whose last event was a death.
    dead: std::collections::BTreeSet<(usize, String)>,
    /// Each re-add: when, the observer, the member.
    pub readds: Vec<(Instant, usize, String)>,
}

impl ReaddWatch {
    fn see(&mut self, at: Instant, observer: usize, e: &Event) {
        match e {
            Event::NodeLeft(m) => {
                self.dead.insert((observer, m.name.clone()));
            }
            Event::NodeJoined(m) if self.dead.remove(&(observer, m.name.clone())) => {
                self.readds.push((at, observer, m.name.clone()));
            }
            _ => {}
        }
    }
}

/// Graceful leaves being watched: how each observer first recorded each leaver, and when the
/// leave broadcast being waited for was done.
#[derive(Debug, Default)]
pub struct LeaveWatch {
    /// Leaver name → (observer → the state its first `NodeLeft` about the leaver carried:
    /// `Left` for a clean leave, `Dead` when it failed the node first).
    pub verdicts: BTreeMap<String, BTreeMap<usize, NodeState>>,
    /// The leave broadcast waited for: (leaving node, broadcast id).
    pub waiting: Option<(usize, memberlist_proto::BroadcastId)>,
    /// When that broadcast was done (sent its share of times).
    pub done_at: Option<Instant>,
}

impl LeaveWatch {
    fn see(&mut self, at: Instant, observer: usize, e: &Event) {
        match e {
            Event::BroadcastDone(id) if self.waiting == Some((observer, *id)) => self.done_at = Some(at),
            Event::NodeLeft(m) => {
                if let Some(v) = self.verdicts.get_mut(&m.name) {
                    v.entry(observer).or_insert(m.state);
                }
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("hash", &self.hash.value())
            .field("packets", &self.packets)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

fn kind_code(e: &Event) -> u8 {
    match e {
        Event::NodeJoined(_) => 1,
        Event::NodeLeft(_) => 2,
        Event::NodeUpdated(_) => 3,
        Event::NodeSuspected(_) => 4,
        Event::UserMessage { .. } => 5,
        _ => 9,
    }
}

impl Recorder {
    /// Records one delivered datagram of `len` bytes whose [`digest`] is `digest`.
    pub fn packet(&mut self, at: Instant, from: usize, to: usize, len: usize, digest: u64) {
        self.packets += 1;
        self.bytes += len as u64;
        self.hash.write_u64(at.as_nanos());
        self.hash.write_u64((from as u64) << 32 | to as u64);
        self.hash.write_u64(digest);
    }

    /// Records one event at `observer`; `running(i)` tells whether node i is up, `healthy(i)`
    /// whether it is neither paused nor slow.
    pub fn event(
        &mut self,
        at: Instant,
        observer: usize,
        e: &Event,
        index_of: impl Fn(&str) -> Option<usize>,
        running: impl Fn(usize) -> bool,
        healthy: impl Fn(usize) -> bool,
    ) {
        self.events += 1;
        if let Some(w) = self.leaves.as_mut() {
            w.see(at, observer, e);
        }
        if let Some(w) = self.readds.as_mut() {
            w.see(at, observer, e);
        }
        if let (Event::NodeUpdated(m), Some(r)) = (e, self.receipts.as_mut()) {
            if index_of(&m.name) == Some(r.origin) && observer != r.origin {
                let since = r.since;
                r.first.entry(observer).or_insert(at - since);
            }
        }
        let code = kind_code(e);
        self.hash.write_u64(at.as_nanos());
        self.hash.write_u64((observer as u64) << 8 | u64::from(code));
        let member = match e {
            Event::NodeJoined(m) | Event::NodeLeft(m) | Event::NodeUpdated(m) | Event::NodeSuspected(m) => m,
            _ => return,
        };
        self.hash.write(member.name.as_bytes());
        self.hash.write_u64(u64::from(member.incarnation) << 8 | member.state as u64);
        if self.live_view.len() <= observer {
            self.live_view.resize(observer + 1, 0);
        }
        let subject = index_of(&member.name);
        match e {
            Event::NodeJoined(_) => self.live_view[observer] += 1,
            Event::NodeLeft(m) => {
                self.live_view[observer] -= 1;
                if let Some(s) = subject {
                    if m.state == NodeState::Dead && running(s) {
                        self.false_deaths += 1;
                        if healthy(s) {
                            self.false_deaths_of_healthy += 1;
                            if healthy(observer) {
                                self.false_deaths_healthy_by_healthy += 1;
                            }
                        }
                    }
                    if let Some(c) = self.crashes.get_mut(&s) {
                        if c.at.is_some_and(|t| t <= at) {
                            c.first_dead.get_or_insert(at);
                            c.dead_at += 1;
                        }
                    }
                }
            }
            Event::NodeSuspected(_) => {
                if let Some(s) = subject {
                    if running(s) {
                        self.false_suspicions += 1;
                        if healthy(s) {
                            self.false_suspicions_of_healthy += 1;
                        }
                    }
                    if let Some(c) = self.crashes.get_mut(&s) {
                        if c.at.is_some_and(|t| t <= at) {
                            c.first_suspect.get_or_insert(at);
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(w) = self.timeline.as_mut() {
            let _ = writeln!(
                w,
                r#"{{"t":{:.6},"observer":{},"event":"{}","subject":"{}","state":"{}","incarnation":{}}}"#,
                at.as_nanos() as f64 / 1e9,
                observer,
                match code {
                    1 => "join",
                    2 => "leave",
                    3 => "update",
                    _ => "suspect",
                },
                member.name,
                member.state,
                member.incarnation
            );
        }
    }

    /// Time from `a` to `b` in seconds.
    pub fn secs(a: Instant, b: Instant) -> f64 {
        (b - a).as_secs_f64()
    }

    /// A duration in seconds, for printing.
    pub fn d(d: Duration) -> f64 {
        d.as_secs_f64()
    }
}

//! Metrics through the `metrics` crate, under Go memberlist's names and kinds, so dashboards
//! built for Go nodes work for Rust nodes too. Counters are published once a second as
//! increments of the core's [`Stats`](memberlist_proto::Stats); timers are histograms of
//! milliseconds, as go-metrics' `MeasureSince` records them (a Prometheus exporter shows them
//! as summaries with quantiles, as Go's does); every metric carries the node's
//! [`metric_labels`](crate::Options::metric_labels) (Go's `MetricLabels`).
//!
//! | name | kind | meaning |
//! | --- | --- | --- |
//! | `memberlist.msg.alive`, `.suspect`, `.dead` | counter | state messages applied |
//! | `memberlist.degraded.probe`, `.timeout` | counter | health-scaled probes, suspicions that expired short of confirmations |
//! | `memberlist.udp.sent`, `.received` | counter | datagram bytes |
//! | `memberlist.tcp.sent` | counter | stream bytes written |
//! | `memberlist.tcp.accept`, `.connect` | counter | streams accepted, push/pulls started |
//! | `memberlist.probeNode` | timer (ms) | a probe, from its ping to its ack or its failure |
//! | `memberlist.gossip` | timer (ms) | a gossip round: choosing peers, building and sending its packets |
//! | `memberlist.pushPullNode` | timer (ms) | a push/pull this node started, dial to merged reply |
//! | `memberlist.size.local` | gauge (bytes) | the last push/pull written |
//! | `memberlist.size.remote` | histogram (bytes) | push/pulls received (Go samples only encrypted ones) |
//! | `memberlist.queue.broadcasts` | gauge | memberlist's own broadcasts queued, sampled every [`queue_check_interval`](crate::Options::queue_check_interval) |
//! | `memberlist.dropped` (label `reason`) | counter | input dropped: `label` (another cluster's label, or none), `decrypt`, `crc`, `malformed`, `limit`, `not_allowed` (CIDR), `wrong_node`, `unexpected`, `bad_vsn`, `handoff` (queue full) |
//! | `memberlist.decompress` (label `algo`: `lzw`, `snappy`) | counter | compressed packets received |
//! | `memberlist.pushpull.rejected` | counter | joins and push/pulls refused (versions out of range, merge veto), each also logged at warn |
//! | `memberlist.health.score` | gauge | Lifeguard health, 0 = healthy |
//! | `memberlist.node.instances` (label `node_state`) | gauge | members per state |

use std::sync::Arc;
use std::time::{Duration, Instant};

use memberlist_proto::{Endpoint, NodeState, Sample, Stats};

use crate::member_view::StateCounts;
use metrics::Label;

/// The node task's metrics: the labels every metric carries and what was published last.
pub(crate) struct Metrics {
    labels: Arc<[Label]>,
    last: Stats,
    next_publish: Instant,
    queue_check_interval: Duration,
    next_queue_check: Instant,
    /// Whether the counters were published once (all of them, at 0, so that they exist).
    registered: bool,
}

impl Metrics {
    pub(crate) fn new(labels: &[(String, String)], queue_check_interval: Duration) -> Metrics {
        let now = Instant::now();
        Metrics {
            labels: labels.iter().map(|(k, v)| Label::new(k.clone(), v.clone())).collect(),
            last: Stats::default(),
            next_publish: now,
            queue_check_interval,
            next_queue_check: now,
            registered: false,
        }
    }

    /// The node's labels plus one more.
    fn with(&self, key: &'static str, value: &'static str) -> Vec<Label> {
        let mut l = self.labels.to_vec();
        l.push(Label::new(key, value));
        l
    }

    /// Publishes the counters and gauges once a second and the queue depth every
    /// `queue_check_interval`; cheap to call after every step of the node task.
    pub(crate) fn maybe_publish(&mut self, ep: &Endpoint, counts: StateCounts) {
        let now = Instant::now();
        if now >= self.next_queue_check {
            self.next_queue_check = now + self.queue_check_interval;
            // Go's `checkBroadcastQueueDepth`: memberlist's own queue, not the application's.
            let (system, _user) = ep.queued_broadcasts();
            metrics::gauge!("memberlist.queue.broadcasts", self.labels.to_vec()).set(system as f64);
        }
        if now >= self.next_publish {
            self.next_publish = now + Duration::from_secs(1);
            self.publish(ep, counts);
        }
    }

    /// A probe's or a push/pull's duration, or a received push/pull's size, from the core.
    pub(crate) fn sample(&self, s: Sample) {
        let (name, value) = match s {
            Sample::Probe(d) => ("memberlist.probeNode", millis(d)),
            Sample::PushPull(d) => ("memberlist.pushPullNode", millis(d)),
            Sample::RemoteStateSize(bytes) => ("memberlist.size.remote", bytes as f64),
            _ => return,
        };
        metrics::histogram!(name, self.labels.to_vec()).record(value);
    }

    /// A gossip round's wall time.
    pub(crate) fn gossip(&self, took: Duration) {
        metrics::histogram!("memberlist.gossip", self.labels.to_vec()).record(millis(took));
    }

    /// The size of the local state written in a push/pull (Go's `memberlist.size.local`, a
    /// gauge; Go's value reads four bytes of the message's header by mistake, ours is the
    /// message's length).
    pub(crate) fn local_state_size(&self, bytes: usize) {
        metrics::gauge!("memberlist.size.local", self.labels.to_vec()).set(bytes as f64);
    }
    /// Publishes what changed since the last publication, then remembers the counters.
    fn publish(&mut self, ep: &Endpoint, counts: StateCounts) {
        let now = ep.stats().clone();
        let last = &self.last;
        let counters: [(&'static str, u64, u64); 11] = [
            ("memberlist.msg.alive", now.msg_alive, last.msg_alive),
            ("memberlist.msg.suspect", now.msg_suspect, last.msg_suspect),
            ("memberlist.msg.dead", now.msg_dead, last.msg_dead),
            ("memberlist.degraded.probe", now.degraded_probe, last.degraded_probe),
            ("memberlist.degraded.timeout", now.degraded_timeout, last.degraded_timeout),
            ("memberlist.udp.sent", now.bytes_sent, last.bytes_sent),
            ("memberlist.udp.received", now.bytes_received, last.bytes_received),
            ("memberlist.tcp.sent", now.stream_bytes_sent, last.stream_bytes_sent),
            ("memberlist.tcp.accept", now.streams_accepted, last.streams_accepted),
            ("memberlist.tcp.connect", now.push_pulls, last.push_pulls),
            ("memberlist.pushpull.rejected", now.push_pull_rejected, last.push_pull_rejected),
        ];
        // Every counter exists from the first publication, at 0 if nothing happened yet, so
        // dashboards and `rate()` see it before its first event.
        let first = !std::mem::replace(&mut self.registered, true);
        for (name, value, before) in counters {
            if value > before || first {
                metrics::counter!(name, self.labels.to_vec()).increment(value - before);
            }
        }
        for (algo, value, before) in [
            ("lzw", now.compressed_lzw_received, last.compressed_lzw_received),
            ("snappy", now.compressed_snappy_received, last.compressed_snappy_received),
        ] {
            if value > before {
                metrics::counter!("memberlist.decompress", self.with("algo", algo)).increment(value - before);
            }
        }
        for (reason, value, before) in dropped(&now).into_iter().zip(dropped(last)).map(|((r, v), (_, b))| (r, v, b)) {
            if value > before {
                metrics::counter!("memberlist.dropped", self.with("reason", reason)).increment(value - before);
            }
        }
        metrics::gauge!("memberlist.health.score", self.labels.to_vec()).set(f64::from(ep.health_score()));
        for (state, count) in [
            (NodeState::Alive, counts.alive),
            (NodeState::Suspect, counts.suspect),
            (NodeState::Dead, counts.dead),
            (NodeState::Left, counts.left),
        ] {
            metrics::gauge!("memberlist.node.instances", self.with("node_state", state.as_str())).set(count as f64);
        }
        self.last = now;
    }
}

/// A duration in milliseconds, as go-metrics records timers.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Dropped input by reason.
fn dropped(s: &Stats) -> [(&'static str, u64); 10] {
    [
        ("label", s.dropped_label),
        ("decrypt", s.dropped_decrypt),
        ("crc", s.dropped_crc),
        ("malformed", s.dropped_malformed),
        ("limit", s.dropped_limit),
        ("not_allowed", s.dropped_not_allowed),
        ("wrong_node", s.dropped_wrong_node),
        ("unexpected", s.dropped_unexpected),
        ("bad_vsn", s.dropped_bad_vsn),
        ("handoff", s.dropped_handoff),
    ]
}

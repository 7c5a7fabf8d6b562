//! Metrics through the `metrics` crate, under Go memberlist's names, so dashboards built for Go
//! nodes work for Rust nodes too. Counters are published as increments of the core's
//! [`Stats`](memberlist_proto::Stats) since the last publication; the health score and the number
//! of members per state are gauges.
//!
//! | name | kind | meaning |
//! | --- | --- | --- |
//! | `memberlist.msg.alive`, `.suspect`, `.dead` | counter | state messages applied |
//! | `memberlist.degraded.probe`, `.timeout` | counter | health-scaled probes, suspicions that expired short of confirmations |
//! | `memberlist.udp.sent`, `.received` | counter | datagram bytes |
//! | `memberlist.tcp.sent` | counter | stream bytes written |
//! | `memberlist.tcp.accept`, `.connect` | counter | streams accepted, push/pulls started |
//! | `memberlist.probeNode`, `memberlist.gossip`, `memberlist.pushPullNode` | counter | probes, gossip rounds, push/pulls (timers in Go) |
//! | `memberlist.dropped` (label `reason`) | counter | input dropped: `label` (another cluster's label, or none), `decrypt`, `crc`, `malformed`, `limit`, `not_allowed` (CIDR), `wrong_node`, `unexpected`, `bad_vsn`, `handoff` (queue full) |
//! | `memberlist.decompress` (label `algo`: `lzw`, `snappy`) | counter | compressed packets received |
//! | `memberlist.pushpull.rejected` | counter | joins and push/pulls refused (versions out of range, merge veto), each also logged at warn |
//! | `memberlist.health.score` | gauge | Lifeguard health, 0 = healthy |
//! | `memberlist.node.instances` (label `node_state`) | gauge | members per state |

use memberlist_proto::{Endpoint, NodeState, Stats};

/// Publishes what changed since `last`, then remembers the current counters.
pub(crate) fn publish(ep: &Endpoint, last: &mut Stats) {
    let now = ep.stats().clone();
    let counters: [(&'static str, u64, u64); 14] = [
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
        ("memberlist.probeNode", now.probes, last.probes),
        ("memberlist.gossip", now.gossip_rounds, last.gossip_rounds),
        ("memberlist.pushPullNode", now.push_pulls, last.push_pulls),
        ("memberlist.pushpull.rejected", now.push_pull_rejected, last.push_pull_rejected),
    ];
    for (name, value, before) in counters {
        if value > before {
            metrics::counter!(name).increment(value - before);
        }
    }
    for (algo, value, before) in [
        ("lzw", now.compressed_lzw_received, last.compressed_lzw_received),
        ("snappy", now.compressed_snappy_received, last.compressed_snappy_received),
    ] {
        if value > before {
            metrics::counter!("memberlist.decompress", "algo" => algo).increment(value - before);
        }
    }
    for (reason, value, before) in dropped(&now).into_iter().zip(dropped(last)).map(|((r, v), (_, b))| (r, v, b)) {
        if value > before {
            metrics::counter!("memberlist.dropped", "reason" => reason).increment(value - before);
        }
    }
    metrics::gauge!("memberlist.health.score").set(f64::from(ep.health_score()));
    let mut per_state = [0u32; 4];
    for m in ep.members() {
        per_state[m.state as usize] += 1;
    }
    for state in [NodeState::Alive, NodeState::Suspect, NodeState::Dead, NodeState::Left] {
        metrics::gauge!("memberlist.node.instances", "node_state" => state.as_str())
            .set(f64::from(per_state[state as usize]));
    }
    *last = now;
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

/// The size of the local state written in a push/pull (Go's `memberlist.size.local`, a sample).
pub(crate) fn local_state_size(bytes: usize) {
    metrics::histogram!("memberlist.size.local").record(bytes as f64);
}

/// The size of the application state a peer sent in a push/pull (`memberlist.size.remote`).
pub(crate) fn remote_state_size(bytes: usize) {
    metrics::histogram!("memberlist.size.remote").record(bytes as f64);
}

//! Several endpoints wired together in memory with a manual clock: the protocol end to end.

mod support;

use std::sync::{Arc, Mutex};

use std::time::Duration;

use memberlist_proto::{Config, Event, Hooks, NodeState};
use support::{name, Net};

const SEC: Duration = Duration::from_secs(1);

fn cluster(n: usize, cfg: impl Fn() -> Config) -> Net {
    let mut net = Net::new();
    for _ in 0..n {
        net.add(cfg(), Box::new(()), None);
    }
    for i in 1..n {
        net.join(i, 0);
    }
    net
}

fn lan() -> Config {
    Config::lan("x")
}

#[test]
fn five_nodes_join_and_converge() {
    let mut net = cluster(5, lan);
    net.run_for(5 * SEC);
    assert!(net.converged());
    for i in 0..5 {
        assert_eq!(net.node(i).num_members(), 5);
    }
    // Every join completed with its seed contacted.
    let joins: Vec<_> = net.events.iter().filter(|(_, _, e)| matches!(e, Event::JoinCompleted { .. })).collect();
    assert_eq!(joins.len(), 4);
    for (_, _, e) in joins {
        assert!(matches!(e, Event::JoinCompleted { contacted: 1, errors, .. } if errors.is_empty()));
    }
}

#[test]
fn a_silent_node_is_suspected_then_dead_within_the_bound() {
    let mut net = cluster(5, lan);
    net.run_for(5 * SEC);
    assert!(net.converged());
    let crash_at = net.now;
    net.crash(4);
    net.run_for(30 * SEC);
    let first_suspect = net
        .events
        .iter()
        .find(|(t, _, e)| *t > crash_at && matches!(e, Event::NodeSuspected(m) if m.name == name(4)))
        .map(|(t, _, _)| *t)
        .expect("someone suspected node 4");
    let deaths: Vec<_> = net
        .events
        .iter()
        .filter(|(t, _, e)| *t > crash_at && matches!(e, Event::NodeLeft(m) if m.name == name(4)))
        .collect();
    assert_eq!(deaths.len(), 4, "every live node declared node 4 dead exactly once");
    for (_, _, e) in &deaths {
        let Event::NodeLeft(m) = e else { unreachable!() };
        assert_eq!(m.state, NodeState::Dead, "a failure, not a leave");
    }
    // The formula: with 5 nodes min = 4 · log10(5 → 1) · 1 s = 4 s, max = 6 · min = 24 s, k = 2.
    // A probe reaches the crashed node within one pass over the other nodes (≤ 4 probe
    // intervals) plus its own deadline; the last death comes at most max after the first
    // suspicion plus gossip time.
    let first_dead = deaths.iter().map(|(t, _, _)| *t).min().unwrap();
    let last_dead = deaths.iter().map(|(t, _, _)| *t).max().unwrap();
    assert!(first_suspect - crash_at <= 6 * SEC, "first suspicion after {:?}", first_suspect - crash_at);
    assert!(first_dead - first_suspect >= 4 * SEC, "dead only after the minimum suspicion time");
    assert!(last_dead - first_suspect <= 25 * SEC, "dead within the maximum suspicion time");
    // No false deaths.
    assert!(!net.events.iter().any(|(_, _, e)| matches!(e, Event::NodeLeft(m) if m.name != name(4))));
    for o in 0..4 {
        assert_eq!(net.state(o, 4), Some(NodeState::Dead));
        assert_eq!(net.node(o).num_members(), 4);
    }
    // Dead nodes are reaped once gossip_to_the_dead_time (30 s) has passed.
    net.run_for(40 * SEC);
    for o in 0..4 {
        assert_eq!(net.state(o, 4), None, "reaped at observer {o}");
    }
}

#[test]
fn an_alive_suspect_refutes() {
    let mut net = cluster(5, lan);
    net.run_for(5 * SEC);
    let inc_before = net.member(0, 3).unwrap().incarnation;
    // Cut node 3 off long enough to be suspected, shorter than the suspicion timeout.
    net.isolate(3, true);
    let t0 = net.now;
    while !(0..5).any(|o| o != 3 && net.state(o, 3) == Some(NodeState::Suspect)) {
        net.run_for(Duration::from_millis(100));
        assert!(net.now - t0 < 10 * SEC, "never suspected");
    }
    net.isolate(3, false);
    net.run_for(10 * SEC);
    assert!(net.converged(), "node 3 refuted and is alive everywhere");
    for o in [0, 1, 2, 4] {
        assert!(net.member(o, 3).unwrap().incarnation > inc_before, "refutation raised the incarnation");
    }
    assert!(net.node(3).stats().refutes >= 1);
    assert!(!net.events.iter().any(|(_, _, e)| matches!(e, Event::NodeLeft(_))), "nobody died");
}

#[test]
fn a_leave_arrives_as_left_not_dead() {
    let mut net = cluster(5, lan);
    net.run_for(5 * SEC);
    let now = net.now;
    let id = net.node(2).leave(now);
    net.drain(2);
    net.run_for(3 * SEC);
    assert!(net.events.iter().any(|(_, i, e)| *i == 2 && *e == Event::BroadcastDone(id)), "leave broadcast finished");
    for o in [0, 1, 3, 4] {
        assert_eq!(net.state(o, 2), Some(NodeState::Left), "observer {o}");
        assert!(net
            .events
            .iter()
            .any(|(_, i, e)| *i == o
                && matches!(e, Event::NodeLeft(m) if m.name == name(2) && m.state == NodeState::Left)));
    }
    // Stop the node after leaving: peers never turn "left" into "dead".
    net.crash(2);
    net.run_for(20 * SEC);
    for o in [0, 1, 3, 4] {
        assert_eq!(net.state(o, 2), Some(NodeState::Left));
    }
}

#[test]
fn a_node_rejoins_after_leaving() {
    let mut net = cluster(3, lan);
    net.run_for(5 * SEC);
    let now = net.now;
    net.node(1).leave(now);
    net.drain(1);
    net.run_for(3 * SEC);
    assert_eq!(net.state(0, 1), Some(NodeState::Left));
    net.join(1, 0);
    net.run_for(5 * SEC);
    assert!(net.converged(), "Go cannot do this (#140)");
}

#[test]
fn push_pull_repairs_a_missed_update() {
    let mut net = cluster(5, || Config { push_pull_interval: 6 * SEC, ..lan() });
    net.run_for(5 * SEC);
    // Node 4 is cut off while node 1 announces new metadata; the broadcast runs out of
    // retransmissions before node 4 comes back.
    net.isolate(4, true);
    let now = net.now;
    net.node(1).update_meta(Some(b"v2".to_vec()), now).unwrap();
    net.drain(1);
    net.run_for(2 * SEC);
    assert_eq!(net.node(1).queued_broadcasts().0, 0, "the update was fully gossiped");
    assert_eq!(net.member(0, 1).unwrap().meta, b"v2");
    net.isolate(4, false);
    assert_ne!(net.member(4, 1).unwrap().meta, b"v2");
    // Only push/pull can bring it now (every 6 s with one random peer).
    net.run_for(40 * SEC);
    assert_eq!(net.member(4, 1).unwrap().meta, b"v2", "push/pull repaired the table");
    assert!(net.converged());
}

#[test]
fn a_user_broadcast_reaches_everyone() {
    // As in Go, an application broadcast is sent by its origin only, retransmit_limit times
    // (4 · ⌈log10(n + 1)⌉ = 4 here): receivers do not pass it on. With 4 nodes one gossip round
    // to 3 random nodes reaches all of them.
    let mut net = cluster(4, lan);
    net.run_for(5 * SEC);
    net.node(0).queue_broadcast(b"hello cluster", None);
    net.run_for(3 * SEC);
    for o in 1..4 {
        let got = net
            .events
            .iter()
            .filter(|(_, i, e)| *i == o && matches!(e, Event::UserMessage { data, .. } if data == b"hello cluster"))
            .count();
        assert!(got >= 1, "node {o} got the broadcast");
    }
}

#[derive(Clone, Default)]
struct StateHooks {
    me: String,
    merged: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl Hooks for StateHooks {
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        format!("state-of-{}", self.me).into_bytes()
    }
    fn merge_remote_state(&mut self, state: &[u8], join: bool) {
        self.merged.lock().unwrap().push((self.me.clone(), String::from_utf8_lossy(state).into_owned(), join));
    }
}

#[test]
fn user_state_is_merged_both_ways() {
    let merged = Arc::new(Mutex::new(Vec::new()));
    let mut net = support::Net::new();
    for i in 0..3 {
        let hooks = StateHooks { me: name(i), merged: merged.clone() };
        net.add(lan(), Box::new(hooks), None);
    }
    net.join(1, 0);
    net.join(2, 0);
    net.run_for(2 * SEC);
    let m = merged.lock().unwrap().clone();
    assert!(m.contains(&(name(1), "state-of-node-0".into(), true)), "{m:?}");
    assert!(m.contains(&(name(0), "state-of-node-1".into(), true)), "{m:?}");
    assert!(m.contains(&(name(0), "state-of-node-2".into(), true)), "{m:?}");
}

#[test]
fn metadata_update_reaches_everyone_as_an_update_event() {
    let mut net = cluster(4, lan);
    net.run_for(5 * SEC);
    let now = net.now;
    net.node(2).update_meta(Some(b"role=db".to_vec()), now).unwrap();
    net.drain(2);
    net.run_for(3 * SEC);
    for o in [0, 1, 3] {
        assert_eq!(net.member(o, 2).unwrap().meta, b"role=db");
        assert!(net.events.iter().any(|(_, i, e)| *i == o && matches!(e, Event::NodeUpdated(m) if m.name == name(2))));
    }
}

#[test]
fn tcp_fallback_keeps_a_node_with_blocked_udp_alive() {
    let mut net = cluster(4, lan);
    net.run_for(5 * SEC);
    // Every datagram to or from node 3 is dropped; streams still work.
    for o in 0..3 {
        net.udp_cut.insert((o, 3));
        net.udp_cut.insert((3, o));
    }
    net.run_for(30 * SEC);
    for o in 0..3 {
        assert!(
            net.events
                .iter()
                .any(|(_, i, e)| *i == o && matches!(e, Event::TcpFallbackSucceeded { node } if *node == name(3))),
            "node {o} reached node 3 over TCP"
        );
        assert_eq!(net.state(o, 3), Some(NodeState::Alive));
    }
    assert!(!net.events.iter().any(|(_, _, e)| matches!(e, Event::NodeLeft(_))));
}

#[test]
fn nacks_from_live_relays_keep_the_prober_healthy() {
    // Relays send their nack probe_timeout after they are asked, that is about
    // 2 · probe_timeout after the ping; the prober counts nacks until probe_interval. With Go's
    // LAN values (500 ms, 1 s) they arrive just too late — as in Go — so this uses 300 ms.
    let mut net = cluster(5, || Config { probe_timeout: Duration::from_millis(300), ..lan() });
    net.run_for(5 * SEC);
    net.crash(4);
    net.run_for(30 * SEC);
    for o in 0..4 {
        assert_eq!(net.state(o, 4), Some(NodeState::Dead));
        assert_eq!(net.node(o).stats().health_changes, 0, "node {o} never blamed itself");
    }
    // Without any relay the same failure costs health.
    let mut net = cluster(2, lan);
    net.run_for(5 * SEC);
    net.crash(1);
    net.run_for(3 * SEC);
    assert!(net.node(0).health_score() >= 1);
}

fn partition_and_heal(auto_rejoin: Option<Duration>) -> Net {
    let cfg = move || Config {
        auto_rejoin_interval: auto_rejoin,
        gossip_to_the_dead_time: 10 * SEC,
        push_pull_interval: 10 * SEC,
        ..Config::lan("x")
    };
    let mut net = cluster(6, cfg);
    net.run_for(5 * SEC);
    assert!(net.converged());
    // Longer than suspicion (≤ 24 s at 6 nodes) plus reaping (10 s + a probe pass).
    net.partition(&[vec![0, 1, 2], vec![3, 4, 5]]);
    net.run_for(90 * SEC);
    for (a, b) in [(0, 3), (3, 0), (1, 5), (5, 2)] {
        assert_eq!(net.state(a, b), None, "{b} reaped at {a}");
    }
    net.partition(&[]);
    net.run_for(120 * SEC);
    net
}

#[test]
fn halves_of_a_long_partition_stay_apart_as_in_go() {
    let net = partition_and_heal(None);
    assert_eq!(net.state(0, 3), None);
    assert!(!net.converged());
}

#[test]
fn halves_of_a_long_partition_rejoin_with_auto_rejoin() {
    let net = partition_and_heal(Some(5 * SEC));
    assert!(net.converged(), "one cluster again (Go #222)");
}

struct Picky;

impl Hooks for Picky {
    fn notify_merge(&mut self, peers: &[memberlist_proto::Member]) -> Result<(), String> {
        if peers.iter().any(|p| p.meta == b"other-cluster") {
            Err("wrong cluster".into())
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_rejected_join_is_reported_to_the_joiner() {
    // Go #132: when the seed's merge delegate refuses, the joiner hears about it.
    let mut net = Net::new();
    net.add(lan(), Box::new(Picky), None);
    net.add(lan(), Box::new(()), Some(b"other-cluster".to_vec()));
    net.join(1, 0);
    net.run_for(2 * SEC);
    let result = net.events.iter().find_map(|(_, i, e)| match e {
        Event::JoinCompleted { contacted, errors, .. } if *i == 1 => Some((*contacted, errors.clone())),
        _ => None,
    });
    let (contacted, errors) = result.expect("join finished");
    assert_eq!(contacted, 0);
    assert!(errors[0].1.contains("remote error: wrong cluster"), "{errors:?}");
    assert_eq!(net.state(0, 1), None, "the seed did not merge the joiner");
    assert_eq!(net.state(1, 0), None, "the joiner did not merge the seed");
}

#[test]
fn a_join_to_nobody_reports_the_failure() {
    let mut net = Net::new();
    net.add(lan(), Box::new(()), None);
    let now = net.now;
    let nowhere = support::addr(99);
    net.node(0).join(&[nowhere], now);
    net.drain(0);
    net.run_for(2 * SEC);
    assert!(net.events.iter().any(|(_, _, e)| matches!(e,
        Event::JoinCompleted { contacted: 0, errors, .. } if errors.len() == 1 && errors[0].0 == nowhere)));
}

#[test]
fn rejoin_now_reaches_seeds_a_driver_resolved_again() {
    // Two clusters that never met: {0, 1} and {2}. Node 0's seeds are replaced by what a
    // driver found when it resolved its seed name again (node 2's address): the next re-join
    // round merges them, without node 2 doing anything.
    let cfg = || Config { auto_rejoin_interval: Some(60 * SEC), ..Config::lan("x") };
    let mut net = cluster(2, cfg);
    net.add(cfg(), Box::new(()), None);
    net.run_for(5 * SEC);
    assert_eq!(net.state(0, 2), None);
    // rejoin_now with no seeds beyond the alive members does nothing.
    let now = net.now;
    net.node(0).rejoin_now(now);
    net.drain(0);
    net.run_for(2 * SEC);
    assert_eq!(net.state(0, 2), None, "no candidate yet");
    let now = net.now;
    net.node(0).set_seeds(&[support::addr(1), support::addr(2), support::addr(2)]);
    net.node(0).rejoin_now(now);
    net.drain(0);
    // Well before the endpoint's own 60 s timer.
    net.run_for(5 * SEC);
    assert!(net.converged(), "the re-resolved seed was joined");
}

/// Serf's delegate protocol range: version 5, accepting 2 to 5 (serf v0.11.0).
fn serf(dcur: u8, dmin: u8, dmax: u8) -> Config {
    Config { delegate_protocol_version: dcur, delegate_protocol_min: dmin, delegate_protocol_max: dmax, ..lan() }
}

fn join_errors(seed: Config, joiner: Config) -> (Vec<String>, u64) {
    let mut net = Net::new();
    net.add(seed, Box::new(()), None);
    net.add(joiner, Box::new(()), None);
    net.join(1, 0);
    net.run_for(2 * SEC);
    let errors = net
        .events
        .iter()
        .find_map(|(_, i, e)| match e {
            Event::JoinCompleted { errors, .. } if *i == 1 => Some(errors.iter().map(|(_, e)| e.clone()).collect()),
            _ => None,
        })
        .expect("join finished");
    (errors, net.node(0).stats().push_pull_rejected)
}

#[test]
fn delegate_protocol_ranges_with_serfs_numbers() {
    // A plain memberlist node (0 in [0, 0]) cannot join a Serf pool, and is told why.
    let (errors, rejected) = join_errors(serf(5, 2, 5), serf(0, 0, 0));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("delegate protocol version (0) is incompatible: [2, 0]"), "{errors:?}");
    assert_eq!(rejected, 1, "the Serf side counts its refusal");
    // A node that accepts only up to 4 cannot sit with Serf nodes at 5.
    let (errors, _) = join_errors(serf(5, 2, 5), serf(4, 2, 4));
    assert!(errors[0].contains("delegate protocol version (5) is incompatible: [2, 4]"), "{errors:?}");
    // Serf's own numbers join, and so does a node at 4 that accepts up to 5.
    assert_eq!(join_errors(serf(5, 2, 5), serf(5, 2, 5)), (vec![], 0));
    assert_eq!(join_errors(serf(5, 2, 5), serf(4, 2, 5)), (vec![], 0));
}

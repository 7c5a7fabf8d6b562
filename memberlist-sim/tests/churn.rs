//! Churn at scale (issue 19): rolling restarts reusing addresses, graceful leaves while gossip is
//! full, and a mass restart — small versions of the built-in scenarios.

use memberlist_sim::scenario::{self, Outcome, Scenario, Step};
use memberlist_sim::sim::slot_of;
use memberlist_sim::Sim;

fn quiet(_: &Sim, _: &str) {}

fn outcome_of(sc: &Scenario, seed: u64, pick: impl Fn(&Outcome) -> bool) -> (Sim, Outcome) {
    let (sim, outcomes) = scenario::run(sc, seed, |_| {}, quiet);
    let found = outcomes.into_iter().map(|(_, o)| o).find(|o| pick(o));
    (sim, found.expect("the scenario reported its step"))
}

#[test]
fn replaced_members_take_new_names_on_the_old_address() {
    assert_eq!(slot_of("node-7"), Some(7));
    assert_eq!(slot_of("node-7-3"), Some(7));
    assert_eq!(slot_of("other-7"), None);
    let sc = Scenario { steps: vec![Step::Converged {}], ..Scenario::builtin("converged-crash", 5).unwrap() };
    let (mut sim, _) = scenario::run(&sc, 1, |_| {}, quiet);
    let name = sim.replace(3, &[0]);
    assert_eq!(name, "node-3-2");
    assert_eq!(sim.name_of(3), "node-3-2");
    sim.run_for(std::time::Duration::from_secs(5));
    let ep = sim.endpoint(0).unwrap();
    assert!(ep.member("node-3-2").is_some_and(|m| m.state == memberlist_proto::NodeState::Alive));
    let (a, b) = (ep.member("node-3-2").unwrap(), ep.member("node-3").unwrap());
    assert_eq!(a.socket_addr(), b.socket_addr(), "the new member is on the old one's address");
}

#[test]
fn rolling_restarts_reusing_addresses_leave_no_ghosts_and_refuse_no_pod() {
    let sc = Scenario {
        steps: vec![
            Step::Converged {},
            Step::Run { secs: 5.0 },
            Step::RollingRestart { rounds: 1, every_secs: 2.0, settle_secs: None },
        ],
        ..Scenario::builtin("rolling-restart", 40).unwrap()
    };
    let (sim, o) = outcome_of(&sc, 3, |o| matches!(o, Outcome::Rolled { .. }));
    let Outcome::Rolled {
        replaced,
        longest_listed,
        resurrections,
        ghost_pairs_max,
        ghosts_at_end,
        ghost_bound,
        stuck_pairs,
        joins_unfinished,
        ..
    } = o
    else {
        unreachable!()
    };
    assert_eq!(replaced, 40);
    assert_eq!((ghost_pairs_max, ghosts_at_end, resurrections), (0, 0, 0), "ghosts");
    assert!(longest_listed > std::time::Duration::ZERO && longest_listed <= ghost_bound);
    assert_eq!((stuck_pairs, joins_unfinished), (0, 0), "every new pod alive everywhere");
    // Every table holds the 40 current names and nothing else.
    let running = sim.running_nodes();
    assert_eq!(running.len(), 40);
    for &o in &running {
        assert_eq!(sim.endpoint(o).unwrap().members().len(), 40);
    }
}

#[test]
fn graceful_leaves_while_gossip_is_full_are_seen_as_left() {
    let sc = Scenario {
        steps: vec![
            Step::Converged {},
            Step::LeaveUnderLoad {
                leaves: 10,
                every_secs: 2.0,
                timeout_secs: 5.0,
                depth: 64,
                bytes: 100,
                settle_secs: 60.0,
            },
        ],
        ..Scenario::builtin("leave-under-load", 100).unwrap()
    };
    let (sim, o) = outcome_of(&sc, 1, |o| matches!(o, Outcome::LeftUnderLoad { .. }));
    let Outcome::LeftUnderLoad { leaves, left, dead, none, .. } = o else { unreachable!() };
    assert_eq!(leaves, 10);
    assert_eq!(left + dead + none, 10 * 90, "every remaining node judged every leaver");
    assert!(left * 100 >= 99 * (left + dead + none), "left {left}, dead {dead}, none {none}");
    // The gossip really was full: well over 10 KB per node per second of application data.
    let secs = sim.now().as_nanos() as f64 / 1e9;
    assert!(sim.rec.bytes as f64 / 100.0 / secs > 10_000.0, "{} bytes in {secs} s", sim.rec.bytes);
}

#[test]
fn a_mass_restart_leaves_no_member_stuck_dead() {
    let sc = Scenario::builtin("mass-restart", 60).unwrap();
    let (_, o) = outcome_of(&sc, 1, |o| matches!(o, Outcome::Restarted { .. }));
    let Outcome::Restarted { stuck_dead, converged_after, .. } = o else { unreachable!() };
    assert_eq!(stuck_dead, 0);
    assert!(converged_after.is_some());
}

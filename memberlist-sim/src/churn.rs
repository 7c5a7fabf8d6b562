//! Churn scenarios of large deployments: rolling restarts that reuse addresses (Kubernetes'
//! "ghost members") and graceful leaves while gossip is busy (Consul's unclean leaves).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use memberlist_proto::{Config, Instant, NodeState};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::record::LeaveWatch;
use crate::scenario::Outcome;
use crate::sim::Sim;

/// How long a crashed member may stay listed anywhere under Go's rules while a new member
/// joins every `every`: until someone probes it (10 probe intervals, generously), its
/// suspicion times out at the longest (`suspicion_max_timeout_mult · suspicion_mult ·
/// max(1, log10 n) · probe_interval`), it has been dead for `gossip_to_the_dead_time` (plus
/// `dead_node_reclaim_time`), and the observer's probe cycle wraps, which is when dead members
/// are reaped: one probe interval per live member, and members that join during the pass may
/// land ahead of the cursor, so a pass `P` with one join per `every` lasts at most
/// `n · interval + (P / every) · interval`, that is `P = n · interval / (1 − interval / every)`.
pub fn ghost_bound(cfg: &Config, n: usize, every: Duration) -> Duration {
    let suspicion = memberlist_proto::state::suspicion::suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        * u32::try_from(cfg.suspicion_max_timeout_mult.max(1)).unwrap_or(u32::MAX);
    let interval = cfg.probe_interval.as_secs_f64();
    let churn = if every.is_zero() { 0.0 } else { interval / every.as_secs_f64() };
    let pass = cfg.probe_interval.mul_f64((n + 1) as f64 / (1.0 - churn.min(0.9)));
    cfg.probe_interval * 10 + suspicion + cfg.gossip_to_the_dead_time + cfg.dead_node_reclaim_time + pass
}

/// What [`rolling_restart`] watches each second: names a running node still lists long after
/// their pod was killed, and new pods not yet alive everywhere.
struct RollWatch {
    killed_at: BTreeMap<String, Instant>,
    longest_listed: Duration,
    joining: BTreeMap<String, Instant>,
    bound: Duration,
    ghost_pairs_max: usize,
    slowest_join: Duration,
    example: Option<String>,
}

impl RollWatch {
    fn check(&mut self, sim: &Sim) {
        let now = sim.now();
        let running = sim.running_nodes();
        let mut ghosts = 0;
        for &o in &running {
            let Some(ep) = sim.endpoint(o) else { continue };
            for m in ep.members() {
                let Some(&killed) = self.killed_at.get(&m.name) else { continue };
                self.longest_listed = self.longest_listed.max(now - killed);
                if now - killed > self.bound {
                    ghosts += 1;
                    self.example.get_or_insert_with(|| {
                        format!("{} listed {} as {:?} at {now:?}", sim.name_of(o), m.name, m.state)
                    });
                }
            }
        }
        self.ghost_pairs_max = self.ghost_pairs_max.max(ghosts);
        let alive_everywhere = |name: &str| {
            running
                .iter()
                .all(|&o| sim.endpoint(o).and_then(|ep| ep.member(name)).is_some_and(|m| m.state == NodeState::Alive))
        };
        let joined: Vec<String> = self.joining.keys().filter(|n| alive_everywhere(n)).cloned().collect();
        for name in joined {
            if let Some(since) = self.joining.remove(&name) {
                self.slowest_join = self.slowest_join.max(now - since);
            }
        }
    }
}

/// Kubernetes rolling restarts, `rounds` times over every running node: every `every`, one pod
/// (in a fresh random order per round) is killed without leaving, and a new pod under a new
/// name starts on the address of the pod killed one step before (so each address is reused
/// `every` after its pod died, while the cluster may still hold that pod alive or suspect).
/// Then `settle` more. Every second: the (observer, name) pairs listing a killed pod after
/// [`ghost_bound`] (ghosts) and the longest any killed pod stayed listed, and how long each
/// new pod took to be alive at every running node; over the run, killed pods that an observer
/// added again after it had declared them dead (resurrections).
pub fn rolling_restart(
    sim: &mut Sim,
    rng: &mut ChaCha8Rng,
    cfg: &Config,
    rounds: u32,
    every: Duration,
    settle: Option<Duration>,
) -> Outcome {
    let slots = sim.running_nodes();
    let bound = ghost_bound(cfg, slots.len(), every);
    sim.rec.readds = Some(crate::record::ReaddWatch::default());
    let mut w = RollWatch {
        killed_at: BTreeMap::new(),
        longest_listed: Duration::ZERO,
        joining: BTreeMap::new(),
        bound,
        ghost_pairs_max: 0,
        slowest_join: Duration::ZERO,
        example: None,
    };
    let mut free: Option<usize> = None;
    let mut replaced = 0;
    let mut next_check = sim.now() + Duration::from_secs(1);
    let mut run_to = |sim: &mut Sim, w: &mut RollWatch, until: Instant| {
        while next_check <= until {
            sim.run_until(next_check);
            w.check(sim);
            next_check += Duration::from_secs(1);
        }
        sim.run_until(until);
    };
    for _ in 0..rounds {
        let mut order = slots.clone();
        crate::network::shuffle_with(rng, &mut order);
        for a in order {
            let t = sim.now() + every;
            run_to(sim, &mut w, t);
            w.killed_at.insert(sim.name_of(a), sim.now());
            sim.crash(a);
            if let Some(b) = free.replace(a) {
                let running = sim.running_nodes();
                let seed = running[(rng.next_u32() as usize) % running.len().max(1)];
                let name = sim.replace(b, &[seed]);
                w.joining.insert(name, sim.now());
                replaced += 1;
            }
        }
    }
    if let Some(b) = free {
        let running = sim.running_nodes();
        let seed = running[(rng.next_u32() as usize) % running.len().max(1)];
        let name = sim.replace(b, &[seed]);
        w.joining.insert(name, sim.now());
        replaced += 1;
    }
    let last = sim.now();
    let settle = settle.unwrap_or(bound + Duration::from_secs(30));
    run_to(sim, &mut w, last + settle);
    // At the end every table holds exactly the running pods.
    let running = sim.running_nodes();
    let current: BTreeSet<String> = running.iter().map(|&i| sim.name_of(i)).collect();
    let mut ghosts_at_end = 0;
    for &o in &running {
        if let Some(ep) = sim.endpoint(o) {
            ghosts_at_end += ep.members().iter().filter(|m| !current.contains(&m.name)).count();
        }
    }
    let (_, stuck_pairs) = crate::scenario::stuck_dead(sim);
    let readds = sim.rec.readds.take().map(|r| r.readds).unwrap_or_default();
    let resurrections = readds.iter().filter(|(_, _, name)| w.killed_at.contains_key(name)).count();
    Outcome::Rolled {
        replaced,
        longest_listed: w.longest_listed,
        resurrections,
        ghost_pairs_max: w.ghost_pairs_max,
        ghosts_at_end,
        ghost_bound: bound,
        stuck_pairs,
        joins_unfinished: w.joining.len(),
        slowest_join: w.slowest_join,
        example: w.example,
    }
}

/// Graceful leaves while gossip is busy: every running node keeps `depth` application
/// broadcasts of `bytes` bytes queued (topped up each second, so every packet is full of
/// them, as a busy Serf's are); `leaves` random nodes then leave one after another, `every`
/// apart, each waiting for its leave broadcast at most `timeout` (Serf's default 5 s) and
/// then stopping. After `settle`, each remaining node's first verdict about each leaver is
/// counted: left (clean), dead (failed first) or none.
#[allow(clippy::too_many_arguments)]
pub fn leave_under_load(
    sim: &mut Sim,
    rng: &mut ChaCha8Rng,
    leaves: usize,
    every: Duration,
    timeout: Duration,
    depth: usize,
    bytes: usize,
    settle: Duration,
) -> Outcome {
    let mut payload_no = 0u64;
    let mut top_up = |sim: &mut Sim| {
        for i in sim.running_nodes() {
            let queued = sim.endpoint(i).map_or(depth, |ep| ep.queued_broadcasts().1);
            for _ in queued..depth {
                payload_no += 1;
                // Incompressible bytes, so that compression does not shrink the load.
                let mut x = payload_no;
                let data: Vec<u8> = (0..bytes.max(8))
                    .map(|_| {
                        x = crate::sim::splitmix64(x);
                        x as u8
                    })
                    .collect();
                sim.queue_user_broadcast(i, &data);
            }
        }
    };
    let mut next_top_up = sim.now();
    let mut run_to = |sim: &mut Sim, until: Instant, stop: &dyn Fn(&Sim) -> bool| {
        while sim.now() < until && !stop(sim) {
            if next_top_up <= sim.now() {
                top_up(sim);
                next_top_up = sim.now() + Duration::from_secs(1);
            }
            let step = (sim.now() + Duration::from_millis(100)).min(until);
            sim.run_until(step);
        }
    };
    // Fill the queues first.
    let t = sim.now() + Duration::from_secs(10);
    run_to(sim, t, &|_| false);
    let mut watch = LeaveWatch::default();
    let mut candidates: Vec<usize> = sim.running_nodes().into_iter().filter(|&i| i != 0).collect();
    let mut leavers = Vec::new();
    for _ in 0..leaves.min(candidates.len()) {
        let k = (rng.next_u32() as usize) % candidates.len();
        let i = candidates.swap_remove(k);
        leavers.push(i);
        watch.verdicts.insert(sim.name_of(i), BTreeMap::new());
    }
    sim.rec.leaves = Some(watch);
    let (mut timeouts, mut slowest) = (0, Duration::ZERO);
    for &i in &leavers {
        let id = sim.leave(i);
        let started = sim.now();
        if let Some(w) = sim.rec.leaves.as_mut() {
            w.waiting = id.map(|id| (i, id));
            w.done_at = None;
        }
        let done = |s: &Sim| s.rec.leaves.as_ref().is_some_and(|w| w.done_at.is_some());
        run_to(sim, started + timeout, &done);
        match sim.rec.leaves.as_ref().and_then(|w| w.done_at) {
            Some(t) => slowest = slowest.max(t - started),
            None => {
                timeouts += 1;
                slowest = timeout;
            }
        }
        sim.crash(i);
        sim.rec.crashes.remove(&i);
        let t = started + every;
        run_to(sim, t, &|_| false);
    }
    let t = sim.now() + settle;
    run_to(sim, t, &|_| false);
    let watch = sim.rec.leaves.take().unwrap_or_default();
    let observers = sim.running_nodes();
    let (mut left, mut dead, mut none) = (0, 0, 0);
    for verdicts in watch.verdicts.values() {
        for o in &observers {
            match verdicts.get(o) {
                Some(NodeState::Left) => left += 1,
                Some(_) => dead += 1,
                None => none += 1,
            }
        }
    }
    Outcome::LeftUnderLoad { leaves: leavers.len(), left, dead, none, timeouts, slowest_broadcast: slowest }
}

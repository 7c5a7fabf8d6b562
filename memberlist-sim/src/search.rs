//! Randomized fault search, as deterministic simulation testing does it.
//!
//! Each seed draws a cluster of 5–50 nodes (LAN defaults, auto re-join every 10 s), bootstraps
//! it through node 0, and then a fault schedule over 60 s: per-node loss bursts (egress,
//! ingress or both), one-way and two-way partitions that cut a group off from the rest, pauses
//! (timers stopped) and input stalls (timers running), crashes followed by restarts under the
//! same name with fresh state, and jitter of up to 20 ms that reorders datagrams. Then
//! everything heals — the network, and every crashed node restarts — and the named invariants
//! are checked:
//!
//! * `incarnation` and `resurrection`: see [`watch`](crate::watch), checked on every event;
//! * `convergence`: within [`heal_bound`] of the healing, every live node sees every live node
//!   alive;
//! * `false death`: no node that was never faulted (loss, pause, stall, crash) and never on
//!   either side of a cut is declared dead by another such node — on its own judgment or on
//!   that of a third such node (a dead message from a faulted node, believed by a healthy one,
//!   is the protocol as designed and is not counted).
//!
//! A run is a pure function of its seed: a failing seed replays with
//! `memberlist-sim --search-seed S`.

use std::io::Write;
use std::time::Duration;

use memberlist_proto::state::push_pull_scale;
use memberlist_proto::state::suspicion::suspicion_timeout;
use memberlist_proto::{Config, Instant};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::network::NetworkModel;
use crate::sim::{splitmix64, Sim};

/// The faults are drawn over this much time after the cluster converged.
const FAULT_WINDOW: Duration = Duration::from_secs(60);

/// One fault of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Datagrams from (egress), to (ingress) or both of `nodes` are lost with `ppm`.
    Loss { nodes: Vec<usize>, ppm: u32, egress: bool, ingress: bool },
    /// `group` cannot reach the rest (`two_way`: nor the rest the group).
    Partition { group: Vec<usize>, two_way: bool },
    /// `node` stops (timers too).
    Pause { node: usize },
    /// `node` reads nothing, its timers run.
    Stall { node: usize },
    /// `node` crashes and restarts when the fault ends.
    CrashRestart { node: usize },
    /// Every datagram gets up to this much extra latency.
    Jitter { max: Duration },
}

/// A fault and when it runs, relative to the start of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// When it starts.
    pub at: Duration,
    /// How long it lasts.
    pub lasts: Duration,
    /// What it is.
    pub fault: Fault,
}

/// What one seed did and found.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The fault schedule.
    pub schedule: Vec<Scheduled>,
    /// Faults skipped because another partition was in force.
    pub skipped: usize,
    /// The bound convergence had after healing.
    pub bound: Duration,
    /// How long convergence took after healing.
    pub converged_after: Option<Duration>,
    /// Every broken invariant: its name and what happened.
    pub violations: Vec<(&'static str, String)>,
    /// Datagrams delivered.
    pub datagrams: u64,
    /// Virtual time at the end.
    pub ended_at: Instant,
    /// The run's trace hash.
    pub trace_hash: u64,
}

/// The bound on convergence after everything healed, from the configuration: a suspicion that
/// started before the healing can still end in a death (the longest suspicion timeout, `S`);
/// the two sides of a cut hold each other dead until a dead entry is reaped (it is kept for
/// `gossip_to_the_dead_time` and reaped when the probe round wraps, at most `n` probe intervals
/// later); within one `auto_rejoin_interval` a node then exchanges state with a seed or a
/// reaped member; and a push/pull interval (scaled to `n`) plus 10 s lets the refutations and
/// alives that follow spread. `S + gossip_to_the_dead + n · probe_interval + rejoin + push/pull
/// + 10 s`.
pub fn heal_bound(cfg: &Config, n: usize) -> Duration {
    let min = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval);
    let longest_suspicion = min * u32::try_from(cfg.suspicion_max_timeout_mult).unwrap_or(u32::MAX);
    let round = cfg.probe_interval * u32::try_from(n).unwrap_or(u32::MAX);
    longest_suspicion
        + cfg.gossip_to_the_dead_time
        + round
        + cfg.auto_rejoin_interval.unwrap_or_default()
        + push_pull_scale(cfg.push_pull_interval, n)
        + Duration::from_secs(10)
}

fn pick(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let mut out = Vec::new();
    while out.len() < k && !all.is_empty() {
        let j = (rng.next_u32() as usize) % all.len();
        out.push(all.swap_remove(j));
    }
    out.sort_unstable();
    out
}

fn millis(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.next_u64() % (hi - lo).max(1))
}

/// The cluster size and fault schedule of `seed`.
pub fn draw(seed: u64) -> (usize, Vec<Scheduled>) {
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ 0x5ea2_c400_0000_0000));
    let n = 5 + (rng.next_u32() as usize) % 46;
    let count = 2 + rng.next_u32() % 7;
    let mut schedule = Vec::new();
    for _ in 0..count {
        let at = millis(&mut rng, 0, FAULT_WINDOW.as_millis() as u64);
        let (lasts, fault) = match rng.next_u32() % 6 {
            0 => {
                let k = 1 + (rng.next_u32() as usize) % (n / 4).max(1);
                let dir = rng.next_u32() % 3;
                let ppm = 100_000 + rng.next_u32() % 500_000;
                (
                    millis(&mut rng, 1000, 16_000),
                    Fault::Loss { nodes: pick(&mut rng, n, k), ppm, egress: dir != 1, ingress: dir != 0 },
                )
            }
            1 => {
                let k = 1 + (rng.next_u32() as usize) % (n / 2).max(1);
                let two_way = rng.next_u32() % 2 == 0;
                (millis(&mut rng, 1000, 16_000), Fault::Partition { group: pick(&mut rng, n, k), two_way })
            }
            2 => (millis(&mut rng, 500, 8000), Fault::Pause { node: (rng.next_u32() as usize) % n }),
            3 => (millis(&mut rng, 500, 8000), Fault::Stall { node: (rng.next_u32() as usize) % n }),
            4 => (millis(&mut rng, 500, 16_000), Fault::CrashRestart { node: (rng.next_u32() as usize) % n }),
            _ => (
                millis(&mut rng, 1000, 16_000),
                Fault::Jitter { max: Duration::from_micros(u64::from(rng.next_u32() % 20_000)) },
            ),
        };
        schedule.push(Scheduled { at, lasts, fault });
    }
    schedule.sort_by_key(|s| s.at);
    (n, schedule)
}

/// The configuration every node of a search runs.
pub fn search_config() -> Config {
    let mut cfg = Config::lan("x");
    cfg.auto_rejoin_interval = Some(Duration::from_secs(10));
    cfg
}

/// What is in force while the schedule runs.
#[derive(Default)]
struct Active {
    /// (end, nodes, ppm, egress, ingress)
    loss: Vec<(Instant, Vec<usize>, u32, bool, bool)>,
    partition_until: Option<Instant>,
    jitter: Vec<(Instant, Duration)>,
    restarts: Vec<(Instant, usize)>,
}

impl Active {
    fn apply_loss(&self, net: &mut NetworkModel, n: usize) {
        net.egress_loss_ppm = vec![0; n];
        net.ingress_loss_ppm = vec![0; n];
        for (_, nodes, ppm, egress, ingress) in &self.loss {
            for &i in nodes {
                if *egress {
                    net.egress_loss_ppm[i] = net.egress_loss_ppm[i].max(*ppm);
                }
                if *ingress {
                    net.ingress_loss_ppm[i] = net.ingress_loss_ppm[i].max(*ppm);
                }
            }
        }
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64) -> SeedReport {
    run_seed_with(seed, None)
}

/// [`run_seed`], writing the timeline of membership events as JSON lines to `timeline`.
pub fn run_seed_with(seed: u64, timeline: Option<Box<dyn std::io::Write>>) -> SeedReport {
    let (n, schedule) = draw(seed);
    let cfg = search_config();
    let lan = NetworkModel::lan(n);
    let mut sim = Sim::new(seed, lan.clone());
    sim.rec.timeline = timeline;
    sim.enable_watch(cfg.gossip_to_the_dead_time);
    let mut violations: Vec<(&'static str, String)> = Vec::new();
    sim.add_node(cfg.clone());
    for _ in 1..n {
        sim.run_for(Duration::from_millis(50));
        let i = sim.add_node(cfg.clone());
        sim.join(i, &[0]);
    }
    // Gossip alone can miss a node now and then (SWIM's bound is probabilistic); the periodic
    // push/pull repairs that, its first one at most two (scaled) intervals after the start.
    let boot_bound = push_pull_scale(cfg.push_pull_interval, n) * 2 + Duration::from_secs(10);
    if !sim.run_while_not(boot_bound, Duration::from_millis(250), Sim::converged) {
        violations.push((
            "convergence",
            format!("the bootstrap did not converge within {} s: {}", boot_bound.as_secs(), unconverged(&sim)),
        ));
    }
    let start = sim.now();
    let mut active = Active::default();
    let mut skipped = 0;
    // Start and end times, in order; faults end when their time comes.
    for s in &schedule {
        let at = start + s.at;
        // End what is due first.
        end_due(&mut sim, &mut active, at, n, &lan);
        sim.run_until(at);
        let until = at + s.lasts;
        match &s.fault {
            Fault::Loss { nodes, ppm, egress, ingress } => {
                for &i in nodes {
                    sim.mark_faulted(i);
                }
                active.loss.push((until, nodes.clone(), *ppm, *egress, *ingress));
                active.apply_loss(&mut sim.net, n);
            }
            Fault::Partition { group, two_way } => {
                if active.partition_until.is_some() || group.len() >= n {
                    skipped += 1;
                    continue;
                }
                // Both sides are cut off from each other, so both count as faulted.
                for i in 0..n {
                    sim.mark_faulted(i);
                }
                sim.net.ensure(n - 1);
                for &i in group {
                    sim.net.group[i] = 1;
                }
                sim.net.blocked.insert((1, 0));
                if *two_way {
                    sim.net.blocked.insert((0, 1));
                }
                active.partition_until = Some(until);
            }
            Fault::Pause { node } => {
                if sim.running(*node) {
                    sim.pause(*node, s.lasts);
                }
            }
            Fault::Stall { node } => {
                if sim.running(*node) {
                    sim.stall_input(*node, s.lasts);
                }
            }
            Fault::CrashRestart { node } => {
                if sim.running(*node) {
                    sim.crash(*node);
                    sim.mark_faulted(*node);
                    active.restarts.push((until, *node));
                }
            }
            Fault::Jitter { max } => {
                active.jitter.push((until, *max));
                sim.net.jitter = active.jitter.iter().map(|j| j.1).max().unwrap_or(lan.jitter).max(lan.jitter);
            }
        }
    }
    // Everything heals when the last fault ends: the network, and every crashed node restarts.
    let heal_at = start + schedule.iter().map(|s| s.at + s.lasts).max().unwrap_or_default();
    end_due(&mut sim, &mut active, heal_at, n, &lan);
    sim.run_until(heal_at);
    sim.net = lan.clone();
    for i in 0..n {
        if !sim.running(i) {
            let seeds: Vec<usize> = if i == 0 { vec![1] } else { vec![0] };
            sim.restart(i, &seeds);
        }
    }
    let bound = heal_bound(&cfg, n);
    let healed = sim.now();
    let mut converged_after = None;
    while sim.now() < healed + bound {
        if sim.converged() {
            converged_after = Some(sim.now() - healed);
            break;
        }
        let next = sim.now() + Duration::from_millis(500);
        sim.run_until(next);
    }
    if converged_after.is_none() && sim.converged() {
        converged_after = Some(sim.now() - healed);
    }
    if converged_after.is_none() {
        let live = sim.running_nodes().len();
        violations.push((
            "convergence",
            format!(
                "{live} live nodes not all alive everywhere {} s after healing: {}",
                bound.as_secs(),
                unconverged(&sim)
            ),
        ));
    }
    // A death of a never-faulted node that a never-faulted node judged (its own suspicion ran
    // out, or it applied a dead message from another never-faulted node). Deaths that
    // faulted nodes judged and healthy ones applied are the protocol working as designed: a
    // dead message at the current incarnation is believed from anyone.
    let index_of = crate::sim::slot_of;
    if let Some(w) = sim.watch.as_ref() {
        for d in &w.deaths {
            let (Some(s), Some(j)) = (index_of(&d.subject), index_of(&d.judged_by)) else { continue };
            if sim.healthy(s) && sim.healthy(d.observer) && sim.healthy(j) && s != d.observer {
                violations.push((
                    "false death",
                    format!(
                        "at {:.3} s: node-{} holds {} dead on the judgment of {}, all three never faulted",
                        d.at.as_nanos() as f64 / 1e9,
                        d.observer,
                        d.subject,
                        d.judged_by
                    ),
                ));
            }
        }
    }
    if let Some(w) = sim.watch.as_ref() {
        for (at, what) in &w.violations {
            let name = if what.starts_with("resurrected") { "resurrection" } else { "incarnation" };
            violations.push((name, format!("at {:.3} s: {what}", at.as_nanos() as f64 / 1e9)));
        }
    }
    let trace_hash = sim.trace_hash();
    let (datagrams, ended_at) = (sim.rec.packets, sim.now());
    if let Some(mut t) = sim.rec.timeline.take() {
        let _ = t.flush();
    }
    // Small tables: freeing them is cheap.
    drop(sim);
    SeedReport {
        seed,
        nodes: n,
        schedule,
        skipped,
        bound,
        converged_after,
        violations,
        datagrams,
        ended_at,
        trace_hash,
    }
}

/// The running nodes that do not see every running node alive, and whom they miss.
fn unconverged(sim: &Sim) -> String {
    let running = sim.running_nodes();
    let views: Vec<String> = running
        .iter()
        .filter_map(|&i| {
            let ep = sim.endpoint(i)?;
            let alive: Vec<String> = ep.live_members().into_iter().map(|m| m.name).collect();
            let missing: Vec<String> =
                running.iter().map(|&j| crate::sim::node_name(j)).filter(|x| !alive.contains(x)).collect();
            (!missing.is_empty()).then(|| format!("node-{i} misses {missing:?}"))
        })
        .collect();
    views.join(", ")
}

/// Ends the faults due by `at`, in time order.
fn end_due(sim: &mut Sim, active: &mut Active, at: Instant, n: usize, lan: &NetworkModel) {
    loop {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if t <= at && next.is_none_or(|x| t < x) {
                next = Some(t);
            }
        };
        active.loss.iter().for_each(|l| consider(l.0));
        active.partition_until.into_iter().for_each(&mut consider);
        active.jitter.iter().for_each(|j| consider(j.0));
        active.restarts.iter().for_each(|r| consider(r.0));
        let Some(t) = next else { return };
        sim.run_until(t);
        active.loss.retain(|l| l.0 > t);
        active.apply_loss(&mut sim.net, n);
        if active.partition_until.is_some_and(|p| p <= t) {
            active.partition_until = None;
            sim.net.heal();
        }
        active.jitter.retain(|j| j.0 > t);
        sim.net.jitter = active.jitter.iter().map(|j| j.1).max().unwrap_or(lan.jitter).max(lan.jitter);
        let due: Vec<usize> = active.restarts.iter().filter(|r| r.0 <= t).map(|r| r.1).collect();
        active.restarts.retain(|r| r.0 > t);
        for i in due {
            let seeds: Vec<usize> = (0..n).filter(|&j| j != i && sim.running(j)).take(1).collect();
            sim.restart(i, &seeds);
        }
    }
}

/// Runs seeds `1..=count` on `threads` threads; the reports come back in seed order.
pub fn search(count: u64, threads: usize) -> Vec<SeedReport> {
    let next = std::sync::atomic::AtomicU64::new(1);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed > count {
                    break;
                }
                let r = run_seed(seed);
                reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r);
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|r| r.seed);
    reports
}

/// The report of one seed, as `--search-seed` prints it.
pub fn describe(r: &SeedReport) -> String {
    let mut out = format!("seed {}: {} nodes, {} faults ({} skipped)\n", r.seed, r.nodes, r.schedule.len(), r.skipped);
    for s in &r.schedule {
        out.push_str(&format!(
            "  at {:>6.2} s for {:>5.2} s: {:?}\n",
            s.at.as_secs_f64(),
            s.lasts.as_secs_f64(),
            s.fault
        ));
    }
    match r.converged_after {
        Some(d) => {
            out.push_str(&format!("converged {:.2} s after healing (bound {} s)\n", d.as_secs_f64(), r.bound.as_secs()))
        }
        None => out.push_str(&format!("not converged within {} s of healing\n", r.bound.as_secs())),
    }
    for (name, what) in &r.violations {
        out.push_str(&format!("violation [{name}]: {what}\n"));
    }
    out.push_str(&format!(
        "datagrams={} virtual_time_s={:.1} trace_hash={:016x}",
        r.datagrams,
        r.ended_at.as_nanos() as f64 / 1e9,
        r.trace_hash
    ));
    out
}

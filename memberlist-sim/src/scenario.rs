//! Scenarios: what happens to the cluster and when. Built in by name, or read from a JSON file:
//!
//! ```json
//! {"name": "my-run", "nodes": 200, "config": "lan",
//!  "steps": [
//!    {"bootstrap": {"join_window_secs": 2.0}},
//!    {"wait_converged": {"limit_secs": 120}},
//!    {"loss": {"percent": 5.0}},
//!    {"crash": {"count": 2}},
//!    {"wait_detected": {"limit_secs": 120}},
//!    {"partition": {"groups": 2}}, {"run": {"secs": 60}}, {"heal": {}},
//!    {"pause": {"count": 8, "pause_secs": 2, "every_secs": 10, "for_secs": 120}},
//!    {"run": {"secs": 30}}
//!  ]}
//! ```

use std::time::Duration;

use memberlist_proto::{Config, Instant};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::network::NetworkModel;
use crate::sim::{splitmix64, Sim};

/// One step of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Start node 0, then start the others and join them through node 0, spread evenly over
    /// the window.
    Bootstrap {
        /// Seconds over which the joins are spread.
        join_window_secs: f64,
    },
    /// Start all the nodes already converged: every node holds every other as alive, with no
    /// join traffic (for runs about what happens after the bootstrap, at sizes where gossiping
    /// the bootstrap itself would take too long).
    Converged {},
    /// Run until every running node sees exactly the running nodes as members.
    WaitConverged {
        /// Give up after this long.
        limit_secs: f64,
    },
    /// Crash `count` random running nodes other than node 0.
    Crash {
        /// How many.
        count: usize,
    },
    /// Crash `crashes` random nodes in rounds of `batch` at a random moment and record the time
    /// from each crash to its first suspicion (SWIM's first-detection time). Once every victim
    /// of a round was first suspected, the victims restart under their names (they refute and
    /// probe again) and the next round begins, so the cluster keeps its size and only the
    /// current round's victims are faulty, as in SWIM's analysis. The victims of one round are
    /// detected independently (each prober pings one member per period), so a round of `b`
    /// yields `b` samples; it lowers the probers from n − 1 to n − b, which raises the expected
    /// count by a factor of about (n − 1)/(n − b) in the exponent (+0.5 % at n = 1000, b = 10).
    FirstDetection {
        /// How many crashes to sample.
        crashes: usize,
        /// Victims crashed together in one round (at least 1).
        #[serde(default = "one")]
        batch: usize,
    },
    /// One random running node (other than node 0) updates its metadata; run until every other
    /// running node applied the update (or the limit) and record when each first did (B2).
    Disseminate {
        /// Give up after this long.
        limit_secs: f64,
    },
    /// Run until every crashed node is dead at every running node.
    WaitDetected {
        /// Give up after this long.
        limit_secs: f64,
    },
    /// Run for a while and measure the load: datagrams and bytes delivered per running node
    /// per second over the window (B3).
    Measure {
        /// Seconds.
        secs: f64,
    },
    /// Run for a while.
    Run {
        /// Seconds.
        secs: f64,
    },
    /// Uniform datagram loss from now on.
    Loss {
        /// Percent of datagrams lost.
        percent: f64,
    },
    /// Split the running nodes into `groups` equal groups that cannot reach each other.
    Partition {
        /// Number of groups.
        groups: usize,
    },
    /// Remove every partition.
    Heal {},
    /// Make `count` random nodes spend `cost_ms` on every datagram they receive, during
    /// `for_secs` (a CPU-starved member that answers late).
    Slow {
        /// How many nodes starve.
        count: usize,
        /// Processing time per datagram, in milliseconds.
        cost_ms: f64,
        /// How long the starvation lasts.
        for_secs: f64,
    },
    /// Every running node goes down at a random moment within `within_secs` and comes back
    /// `down_secs_min`–`down_secs_max` later under its name with fresh state (incarnation from
    /// scratch), joining through a random running node; the run then goes on for
    /// `settle_push_pulls` (scaled) push/pull intervals after the last restart and counts the
    /// nodes still not alive at some live observer (Go #311).
    MassRestart {
        /// The crashes are spread over this long.
        within_secs: f64,
        /// Shortest time a node stays down.
        down_secs_min: f64,
        /// Longest time a node stays down.
        down_secs_max: f64,
        /// How long to watch afterwards, in push/pull intervals scaled to the cluster size.
        settle_push_pulls: u32,
    },
    /// Kubernetes rolling restarts with address reuse: `rounds` passes over every running
    /// node, one pod killed every `every_secs` and replaced by a pod with a new name on the
    /// address of the pod killed one step before; then `settle_secs` (default: the ghost bound
    /// plus 30 s). See [`churn::rolling_restart`](crate::churn::rolling_restart).
    RollingRestart {
        /// Passes over every node.
        rounds: u32,
        /// Seconds between two kills.
        every_secs: f64,
        /// How long to watch after the last new pod started.
        #[serde(default)]
        settle_secs: Option<f64>,
    },
    /// `leaves` random nodes leave gracefully one after another, `every_secs` apart, while every
    /// node keeps `depth` application broadcasts of `bytes` bytes queued; each waits for its
    /// leave broadcast at most `timeout_secs`, then stops. See
    /// [`churn::leave_under_load`](crate::churn::leave_under_load).
    LeaveUnderLoad {
        /// How many nodes leave.
        leaves: usize,
        /// Seconds between two leaves.
        every_secs: f64,
        /// The leave's broadcast timeout (Serf's default: 5 s).
        timeout_secs: f64,
        /// Application broadcasts each node keeps queued.
        depth: usize,
        /// Size of each.
        bytes: usize,
        /// How long to watch after the last leave.
        settle_secs: f64,
    },
    /// Pause `count` random nodes for `pause_secs` every `every_secs`, during `for_secs`
    /// (Lifeguard's CPU-starvation model).
    Pause {
        /// How many nodes starve.
        count: usize,
        /// Length of each pause.
        pause_secs: f64,
        /// Period of the pauses.
        every_secs: f64,
        /// How long the starvation lasts.
        for_secs: f64,
        /// Only received messages wait during a pause; timers keep firing and the node keeps
        /// sending (the Lifeguard paper's slow message processing). Off: the whole node stops.
        #[serde(default)]
        timers_run: bool,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// Cluster size.
    pub nodes: usize,
    /// Config preset: lan, wan or local.
    #[serde(default = "default_config")]
    pub config: String,
    /// Automatic re-join after partitions, in seconds (none by default, as Go).
    #[serde(default)]
    pub auto_rejoin_secs: Option<f64>,
    /// The steps.
    pub steps: Vec<Step>,
}

fn default_config() -> String {
    "lan".into()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Scenario {
    /// A built-in scenario by name, for `n` nodes.
    pub fn builtin(name: &str, n: usize) -> Option<Scenario> {
        let window = (n as f64 * 0.005).max(1.0);
        let steps = match name {
            "bootstrap-crash" => vec![
                Step::Bootstrap { join_window_secs: window },
                Step::WaitConverged { limit_secs: 3600.0 },
                Step::Crash { count: 1 },
                Step::WaitDetected { limit_secs: 600.0 },
            ],
            "partition-heal" => vec![
                Step::Bootstrap { join_window_secs: window },
                Step::WaitConverged { limit_secs: 3600.0 },
                Step::Partition { groups: 2 },
                Step::Run { secs: 120.0 },
                Step::Heal {},
                Step::Run { secs: 180.0 },
            ],
            "loss-sweep" => {
                let mut steps =
                    vec![Step::Bootstrap { join_window_secs: window }, Step::WaitConverged { limit_secs: 3600.0 }];
                for p in [1.0, 5.0, 10.0, 15.0] {
                    steps.push(Step::Loss { percent: p });
                    steps.push(Step::Run { secs: 120.0 });
                }
                steps
            }
            "converged-crash" => vec![
                Step::Converged {},
                Step::Run { secs: 5.0 },
                Step::Crash { count: 1 },
                Step::WaitDetected { limit_secs: 600.0 },
            ],
            "first-detection" => vec![
                Step::Bootstrap { join_window_secs: window },
                Step::WaitConverged { limit_secs: 3600.0 },
                Step::FirstDetection { crashes: 200, batch: 1 },
            ],
            "slow" => vec![
                Step::Bootstrap { join_window_secs: window },
                Step::WaitConverged { limit_secs: 3600.0 },
                Step::Slow { count: 8.min(n / 4), cost_ms: 250.0, for_secs: 300.0 },
            ],
            // Go #311: a converged cluster restarted all at once within 30 s.
            "mass-restart" => vec![
                Step::Converged {},
                Step::Run { secs: 5.0 },
                Step::MassRestart { within_secs: 30.0, down_secs_min: 2.0, down_secs_max: 25.0, settle_push_pulls: 2 },
            ],
            // Kubernetes: 3 rolling restarts of every pod, new names on reused addresses.
            "rolling-restart" => vec![
                Step::Converged {},
                Step::Run { secs: 5.0 },
                Step::RollingRestart { rounds: 3, every_secs: 2.0, settle_secs: None },
            ],
            // Consul #8435: 100 graceful leaves, one every 2 s, while gossip is full of
            // application broadcasts; Serf's default 5 s leave timeout.
            "leave-under-load" => vec![
                Step::Converged {},
                Step::Run { secs: 5.0 },
                Step::LeaveUnderLoad {
                    leaves: 100.min(n / 10).max(1),
                    every_secs: 2.0,
                    timeout_secs: 5.0,
                    depth: 64,
                    bytes: 100,
                    settle_secs: 120.0,
                },
            ],
            // Whole-process pauses (SIGSTOP, GC): 8 members stop 2 s in every 10 s for 5 minutes.
            "starved" => starvation(window, n, 2.0, 10.0, false, 30.0),
            // The Lifeguard paper's slow message processing: 8 members read nothing for 20 s
            // out of every 30 s (their timers keep firing), for 5 minutes.
            "stalled" => starvation(window, n, 20.0, 30.0, true, 60.0),
            _ => return None,
        };
        Some(Scenario { name: name.into(), nodes: n, config: "lan".into(), auto_rejoin_secs: None, steps })
    }

    /// The names of the built-in scenarios.
    pub fn builtin_names() -> &'static [&'static str] {
        &[
            "bootstrap-crash",
            "converged-crash",
            "mass-restart",
            "rolling-restart",
            "leave-under-load",
            "partition-heal",
            "loss-sweep",
            "starved",
            "stalled",
            "slow",
            "first-detection",
        ]
    }

    /// The protocol configuration every node gets.
    pub fn config(&self) -> Config {
        let mut cfg = match self.config.as_str() {
            "wan" => Config::wan("x"),
            "local" => Config::local("x"),
            _ => Config::lan("x"),
        };
        cfg.auto_rejoin_interval = self.auto_rejoin_secs.map(secs);
        cfg
    }
}

/// Bootstrap, converge, then 8 members (a quarter of a small cluster) starve for 5 minutes:
/// paused `pause_secs` in every `every_secs` (with their timers running or not), then `tail_secs`
/// of recovery.
fn starvation(window: f64, n: usize, pause_secs: f64, every_secs: f64, timers_run: bool, tail_secs: f64) -> Vec<Step> {
    vec![
        Step::Bootstrap { join_window_secs: window },
        Step::WaitConverged { limit_secs: 3600.0 },
        Step::Pause { count: 8.min(n / 4), pause_secs, every_secs, for_secs: 300.0, timers_run },
        Step::Run { secs: tail_secs },
    ]
}

/// What a step reported, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Convergence reached after this long (None: not within the limit).
    Converged(Option<Duration>),
    /// Crash detection complete after this long (None: not within the limit).
    Detected(Option<Duration>),
    /// Nodes crashed.
    Crashed(Vec<usize>),
    /// Times from crash to first suspicion.
    FirstDetections(Vec<Duration>),
    /// Datagrams and bytes delivered per running node per second over a window.
    Load { datagrams_per_node_s: f64, bytes_per_node_s: f64 },
    /// How long the update took to reach each node that got it (sorted), and how many running
    /// nodes other than the origin there were.
    Disseminated { times: Vec<Duration>, of: usize },
    /// A run ended with (false suspicions, false deaths) so far and whether the cluster had
    /// converged.
    Ran { converged: bool },
    /// After a mass restart: the live nodes still not alive at some live observer at the end,
    /// the (observer, subject) pairs that make it up, and when every live node was last seen
    /// alive everywhere after the last restart (None: not by the end).
    Restarted { stuck_dead: usize, stuck_pairs: usize, converged_after: Option<Duration>, watched: Duration },
    /// After rolling restarts: pods replaced; the longest a killed pod stayed listed; killed pods
    /// re-added after their death; the most (observer, killed pod) pairs listed past the ghost
    /// bound at any second, and the names listed at the end that run nowhere;
    /// (observer, running pod) pairs not alive at the end; new pods never alive everywhere,
    /// the slowest that was; and one ghost, described.
    Rolled {
        replaced: usize,
        longest_listed: Duration,
        resurrections: usize,
        ghost_pairs_max: usize,
        ghosts_at_end: usize,
        ghost_bound: Duration,
        stuck_pairs: usize,
        joins_unfinished: usize,
        slowest_join: Duration,
        example: Option<String>,
    },
    /// After graceful leaves under load: (leaver, remaining observer) pairs whose first
    /// verdict was left, dead, or none; leaves whose broadcast timed out, and the slowest.
    LeftUnderLoad { leaves: usize, left: usize, dead: usize, none: usize, timeouts: usize, slowest_broadcast: Duration },
}

/// Live nodes that some live node does not hold alive (dead, left, suspect, or missing), and
/// the number of such (observer, subject) pairs.
pub fn stuck_dead(sim: &Sim) -> (usize, usize) {
    let running = sim.running_nodes();
    let mut stuck = std::collections::BTreeSet::new();
    let mut pairs = 0;
    for &o in &running {
        let Some(ep) = sim.endpoint(o) else { continue };
        for &s in &running {
            let alive = ep.member(&sim.name_of(s)).is_some_and(|m| m.state == memberlist_proto::NodeState::Alive);
            if !alive {
                pairs += 1;
                stuck.insert(s);
            }
        }
    }
    (stuck.len(), pairs)
}

/// Turns Lifeguard off: the SWIM baseline of the Lifeguard paper (no local health, a fixed
/// suspicion timeout with α = 5, no nacks, no buddy system).
pub fn swim_baseline(cfg: &mut Config) {
    cfg.awareness_max_multiplier = 1;
    cfg.suspicion_mult = 5;
    cfg.suspicion_max_timeout_mult = 1;
    cfg.request_nacks = false;
    cfg.buddy_system = false;
}

/// The SWIM paper's expected first-detection time in protocol periods for `n` members:
/// `1 / (1 − (1 − 1/n)^(n−1))`, which tends to `e / (e − 1) ≈ 1.582` as n grows.
pub fn swim_expected_periods(n: usize) -> f64 {
    let n = n.max(2) as f64;
    1.0 / (1.0 - (1.0 - 1.0 / n).powf(n - 1.0))
}

/// SWIM's first-detection time in whole protocol periods, averaged over `samples` (times from a
/// crash to the first suspicion of it). A probe that pings the crashed node raises its suspicion
/// exactly one probe interval later (the probe's deadline), so the first ping came
/// `sample − interval` after the crash; SWIM counts the period in which that ping falls, so a
/// sample counts ⌈(sample − interval) / interval⌉ periods. The SWIM paper's expectation for this
/// count is `1 / (1 − (1 − 1/n)^(n−1))`.
pub fn detection_periods(samples: &[Duration], interval: Duration) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let t = interval.as_secs_f64();
    let sum: f64 = samples.iter().map(|s| ((s.as_secs_f64() - t) / t).ceil().max(1.0)).sum();
    sum / samples.len() as f64
}

fn one() -> usize {
    1
}

/// Picks `count` random running nodes other than node 0.
fn pick(sim: &mut Sim, rng: &mut ChaCha8Rng, count: usize) -> Vec<usize> {
    pick_except(sim, rng, count, &std::collections::BTreeSet::new())
}

/// Picks `count` random running nodes other than node 0 and those in `except`.
fn pick_except(
    sim: &mut Sim,
    rng: &mut ChaCha8Rng,
    count: usize,
    except: &std::collections::BTreeSet<usize>,
) -> Vec<usize> {
    let mut candidates: Vec<usize> =
        sim.running_nodes().into_iter().filter(|i| *i != 0 && !except.contains(i)).collect();
    let mut picked = Vec::new();
    for _ in 0..count {
        if candidates.is_empty() {
            break;
        }
        let k = (rng.next_u32() as usize) % candidates.len();
        picked.push(candidates.swap_remove(k));
    }
    picked
}

/// The number of threads a run uses unless told otherwise: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Runs `scenario` on a fresh simulator seeded with `seed`, on [`default_threads`] threads;
/// `configure` adjusts every node's configuration and `progress` hears a short description
/// before each step.
pub fn run(
    scenario: &Scenario,
    seed: u64,
    configure: impl Fn(&mut Config),
    progress: impl FnMut(&Sim, &str),
) -> (Sim, Vec<(Step, Outcome)>) {
    run_with(scenario, seed, default_threads(), configure, progress, None)
}

/// [`run`] on `threads` threads (the result does not depend on it), writing the timeline of
/// membership events as JSON lines to `timeline`.
pub fn run_with(
    scenario: &Scenario,
    seed: u64,
    threads: usize,
    configure: impl Fn(&mut Config),
    mut progress: impl FnMut(&Sim, &str),
    timeline: Option<Box<dyn std::io::Write>>,
) -> (Sim, Vec<(Step, Outcome)>) {
    let mut cfg = scenario.config();
    configure(&mut cfg);
    let mut sim = Sim::new(seed, NetworkModel::lan(scenario.nodes));
    sim.set_threads(threads);
    sim.rec.timeline = timeline;
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ 0x5ce7_a210));
    let mut outcomes = Vec::new();
    for step in &scenario.steps {
        progress(&sim, &format!("{step:?}"));
        let outcome = match step {
            Step::Bootstrap { join_window_secs } => {
                let first = sim.add_node(cfg.clone());
                let n = scenario.nodes.max(1);
                let gap = secs(*join_window_secs) / u32::try_from(n).unwrap_or(u32::MAX);
                for _ in 1..n {
                    sim.run_for(gap);
                    let i = sim.add_node(cfg.clone());
                    sim.join(i, &[first]);
                }
                Outcome::Ran { converged: false }
            }
            Step::Converged {} => {
                for _ in 0..scenario.nodes.max(1) {
                    sim.add_node(cfg.clone());
                }
                sim.assume_converged(&cfg);
                Outcome::Ran { converged: sim.converged_by_events() }
            }
            Step::WaitConverged { limit_secs } => {
                let start = sim.now();
                let ok = sim.run_while_not(secs(*limit_secs), Duration::from_millis(250), Sim::converged_by_events);
                Outcome::Converged(ok.then(|| sim.now() - start))
            }
            Step::Crash { count } => {
                let crashed = pick(&mut sim, &mut rng, *count);
                for &victim in &crashed {
                    sim.crash(victim);
                }
                Outcome::Crashed(crashed)
            }
            Step::FirstDetection { crashes, batch } => {
                let mut samples = Vec::new();
                let mut left = *crashes;
                // Each node is a victim at most once: late gossip about an earlier crash must not
                // count as the first detection of a later one.
                let mut spent = std::collections::BTreeSet::new();
                while left > 0 {
                    let victims = pick_except(&mut sim, &mut rng, left.min((*batch).max(1)), &spent);
                    spent.extend(victims.iter().copied());
                    if victims.is_empty() {
                        break;
                    }
                    left -= victims.len();
                    // Desynchronise the crash from the probe schedule.
                    let offset = Duration::from_nanos(rng.next_u64() % 1_000_000_000);
                    sim.run_for(offset);
                    for &v in &victims {
                        sim.crash(v);
                    }
                    let at = sim.now();
                    sim.run_while_not(Duration::from_secs(120), Duration::from_millis(10), |s| {
                        victims.iter().all(|v| s.rec.crashes.get(v).is_some_and(|c| c.first_suspect.is_some()))
                    });
                    samples
                        .extend(victims.iter().filter_map(|v| sim.rec.crashes.get(v)?.first_suspect).map(|t| t - at));
                    for &v in &victims {
                        sim.restart(v, &[0]);
                    }
                }
                Outcome::FirstDetections(samples)
            }
            Step::Disseminate { limit_secs } => {
                let origin = pick(&mut sim, &mut rng, 1).first().copied().unwrap_or(0);
                let of = sim.running_nodes().len().saturating_sub(1);
                sim.rec.receipts = Some(crate::record::Receipts {
                    origin,
                    since: sim.now(),
                    first: std::collections::BTreeMap::new(),
                });
                sim.update_meta(origin, format!("v{}", rng.next_u32()).into_bytes());
                sim.run_while_not(secs(*limit_secs), Duration::from_millis(10), |s| {
                    s.rec.receipts.as_ref().is_some_and(|r| r.first.len() >= of)
                });
                let mut times: Vec<Duration> =
                    sim.rec.receipts.take().map(|r| r.first.into_values().collect()).unwrap_or_default();
                times.sort();
                Outcome::Disseminated { times, of }
            }
            Step::WaitDetected { limit_secs } => {
                let start = sim.now();
                let ok = sim.run_while_not(secs(*limit_secs), Duration::from_millis(100), |s| {
                    s.rec.crashes.values().all(|c| c.all_dead.is_some())
                });
                Outcome::Detected(ok.then(|| sim.now() - start))
            }
            Step::Measure { secs: s } => {
                let (p0, b0, t0) = (sim.rec.packets, sim.rec.bytes, sim.now());
                sim.run_for(secs(*s));
                let n = sim.running_nodes().len().max(1) as f64;
                let dt = (sim.now() - t0).as_secs_f64().max(1e-9);
                Outcome::Load {
                    datagrams_per_node_s: (sim.rec.packets - p0) as f64 / n / dt,
                    bytes_per_node_s: (sim.rec.bytes - b0) as f64 / n / dt,
                }
            }
            Step::Run { secs: s } => {
                sim.run_for(secs(*s));
                Outcome::Ran { converged: sim.converged_by_events() }
            }
            Step::Loss { percent } => {
                sim.net.loss_ppm = (percent * 10_000.0).round() as u32;
                Outcome::Ran { converged: sim.converged_by_events() }
            }
            Step::Partition { groups } => {
                let running = sim.running_nodes();
                let g = (*groups).max(1);
                let chunk = running.len().div_ceil(g);
                let parts: Vec<Vec<usize>> = running.chunks(chunk.max(1)).map(<[usize]>::to_vec).collect();
                sim.net.partition(&parts);
                Outcome::Ran { converged: false }
            }
            Step::Heal {} => {
                sim.net.heal();
                Outcome::Ran { converged: sim.converged_by_events() }
            }
            Step::Slow { count, cost_ms, for_secs } => {
                let starved = pick(&mut sim, &mut rng, *count);
                for &i in &starved {
                    sim.set_slow(i, Duration::from_secs_f64(cost_ms / 1000.0));
                }
                sim.run_for(secs(*for_secs));
                for &i in &starved {
                    sim.set_slow(i, Duration::ZERO);
                }
                Outcome::Ran { converged: sim.converged_by_events() }
            }
            Step::MassRestart { within_secs, down_secs_min, down_secs_max, settle_push_pulls } => {
                let nodes = sim.running_nodes();
                let window = secs(*within_secs).as_nanos().max(1) as u64;
                let (lo, hi) = (secs(*down_secs_min), secs(*down_secs_max).max(secs(*down_secs_min)));
                let spread = (hi - lo).as_nanos().max(1) as u64;
                let start = sim.now();
                // (time, restart?, node), in time order (crashes first at equal times).
                let mut plan: Vec<(Instant, bool, usize)> = Vec::new();
                for &i in &nodes {
                    let down = start + Duration::from_nanos(rng.next_u64() % window);
                    let up = down + lo + Duration::from_nanos(rng.next_u64() % spread);
                    plan.push((down, false, i));
                    plan.push((up, true, i));
                }
                plan.sort_unstable();
                for (t, up, i) in plan {
                    sim.run_until(t);
                    if !up {
                        sim.crash(i);
                        continue;
                    }
                    let running = sim.running_nodes();
                    let seeds: Vec<usize> = if running.is_empty() {
                        Vec::new()
                    } else {
                        vec![running[(rng.next_u32() as usize) % running.len()]]
                    };
                    sim.restart(i, &seeds);
                }
                let last = sim.now();
                let watched =
                    memberlist_proto::state::push_pull_scale(cfg.push_pull_interval, sim.len()) * *settle_push_pulls;
                let mut converged_after = None;
                while sim.now() < last + watched {
                    let next = sim.now() + Duration::from_secs(1);
                    sim.run_until(next);
                    let (stuck, _) = stuck_dead(&sim);
                    match (stuck, converged_after) {
                        (0, None) => converged_after = Some(sim.now() - last),
                        (s, Some(_)) if s > 0 => converged_after = None,
                        _ => {}
                    }
                }
                let (stuck_dead, stuck_pairs) = stuck_dead(&sim);
                Outcome::Restarted { stuck_dead, stuck_pairs, converged_after, watched }
            }
            Step::RollingRestart { rounds, every_secs, settle_secs } => crate::churn::rolling_restart(
                &mut sim,
                &mut rng,
                &cfg,
                *rounds,
                secs(*every_secs),
                settle_secs.map(secs),
            ),
            Step::LeaveUnderLoad { leaves, every_secs, timeout_secs, depth, bytes, settle_secs } => {
                crate::churn::leave_under_load(
                    &mut sim,
                    &mut rng,
                    *leaves,
                    secs(*every_secs),
                    secs(*timeout_secs),
                    *depth,
                    *bytes,
                    secs(*settle_secs),
                )
            }
            Step::Pause { count, pause_secs, every_secs, for_secs, timers_run } => {
                let starved = pick(&mut sim, &mut rng, *count);
                // Each starved node gets its own phase within the period.
                let end = sim.now() + secs(*for_secs);
                let period = secs(*every_secs);
                let phases: Vec<Duration> = starved
                    .iter()
                    .map(|_| Duration::from_nanos(rng.next_u64() % period.as_nanos().max(1) as u64))
                    .collect();
                let mut next: Vec<_> = phases.iter().map(|p| sim.now() + *p).collect();
                while sim.now() < end {
                    let (k, &t) = next.iter().enumerate().min_by_key(|(_, t)| **t).expect("some node starves");
                    if t >= end {
                        break;
                    }
                    sim.run_until(t);
                    if *timers_run {
                        sim.stall_input(starved[k], secs(*pause_secs));
                    } else {
                        sim.pause(starved[k], secs(*pause_secs));
                    }
                    next[k] = t + period;
                }
                sim.run_until(end);
                Outcome::Ran { converged: sim.converged_by_events() }
            }
        };
        outcomes.push((step.clone(), outcome));
    }
    (sim, outcomes)
}

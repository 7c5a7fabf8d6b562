//! The report printed at the end of a run: one `key=value` per line, the trace hash last.

use std::fmt::Write;
use std::time::Duration;

use crate::record::Recorder;
use crate::scenario::{Outcome, Scenario, Step};
use crate::sim::Sim;

fn s(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Renders the summary of a finished run.
pub fn render(scenario: &Scenario, seed: u64, sim: &Sim, outcomes: &[(Step, Outcome)], wall: Duration) -> String {
    let mut out = String::new();
    let n = scenario.nodes.max(1) as f64;
    let virtual_secs = (sim.now().as_nanos() as f64 / 1e9 - 1.0).max(1e-9);
    let _ = writeln!(out, "scenario={} nodes={} seed={}", scenario.name, scenario.nodes, seed);
    for (step, outcome) in outcomes {
        match outcome {
            Outcome::Converged(Some(d)) => {
                let _ = writeln!(out, "converged_after_s={}", s(*d));
            }
            Outcome::Converged(None) => {
                let _ = writeln!(out, "converged_after_s=never ({step:?})");
            }
            Outcome::Crashed(v) => {
                let _ = writeln!(out, "crashed={v:?}");
            }
            Outcome::FirstDetections(v) if !v.is_empty() => {
                let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64;
                let max = v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max);
                let swim = crate::scenario::swim_expected_periods(scenario.nodes);
                let periods = crate::scenario::detection_periods(v, scenario.config().probe_interval);
                let _ = writeln!(
                    out,
                    "first_detection_samples={} first_detection_mean_s={mean:.3} first_detection_max_s={max:.3} \
                     detection_periods_mean={periods:.3} swim_expected_periods={swim:.3}",
                    v.len()
                );
            }
            Outcome::FirstDetections(_) => {}
            Outcome::Load { datagrams_per_node_s, bytes_per_node_s } => {
                let _ = writeln!(
                    out,
                    "load_datagrams_per_node_per_s={datagrams_per_node_s:.2} load_bytes_per_node_per_s={bytes_per_node_s:.1}"
                );
            }
            Outcome::Disseminated { times, of } => {
                let at = |share: f64| {
                    let need = ((share * *of as f64).ceil() as usize).max(1);
                    times.get(need - 1).map_or_else(|| "never".to_string(), |d| s(*d))
                };
                let _ = writeln!(
                    out,
                    "disseminated_to={}/{of} t50_s={} t99_s={} t100_s={}",
                    times.len(),
                    at(0.5),
                    at(0.99),
                    at(1.0)
                );
            }
            Outcome::Detected(Some(d)) => {
                let _ = writeln!(out, "detection_complete_after_s={}", s(*d));
            }
            Outcome::Detected(None) => {
                let _ = writeln!(out, "detection_complete_after_s=never");
            }
            Outcome::Restarted { stuck_dead, stuck_pairs, converged_after, watched } => {
                let after = converged_after.map_or_else(|| "never".to_string(), s);
                let _ = writeln!(
                    out,
                    "stuck_dead={stuck_dead} stuck_pairs={stuck_pairs} all_alive_everywhere_after_s={after} watched_s={}",
                    s(*watched)
                );
            }
            Outcome::Rolled {
                replaced,
                longest_listed,
                resurrections,
                ghost_pairs_max,
                ghosts_at_end,
                ghost_bound,
                stuck_pairs,
                joins_unfinished,
                slowest_join,
                example,
            } => {
                let _ = writeln!(
                    out,
                    "replaced={replaced} ghost_pairs_max={ghost_pairs_max} ghosts_at_end={ghosts_at_end} \
                     ghost_bound_s={} longest_listed_s={} resurrections={resurrections} stuck_pairs={stuck_pairs} \
                     joins_unfinished={joins_unfinished} slowest_join_s={}",
                    s(*ghost_bound),
                    s(*longest_listed),
                    s(*slowest_join)
                );
                if let Some(e) = example {
                    let _ = writeln!(out, "first ghost: {e}");
                }
            }
            Outcome::LeftUnderLoad { leaves, left, dead, none, timeouts, slowest_broadcast } => {
                let pairs = (left + dead + none).max(1);
                let _ = writeln!(
                    out,
                    "leaves={leaves} verdicts_left={left} verdicts_dead={dead} verdicts_none={none} left_pct={:.2} \
                     leave_timeouts={timeouts} slowest_leave_broadcast_s={}",
                    100.0 * *left as f64 / pairs as f64,
                    s(*slowest_broadcast)
                );
            }
            Outcome::Ran { converged } => {
                if matches!(step, Step::Run { .. } | Step::Heal {}) {
                    let _ = writeln!(out, "after {step:?}: converged={converged}");
                }
            }
        }
    }
    for (node, c) in &sim.rec.crashes {
        let Some(at) = c.at else { continue };
        let rel = |t: Option<memberlist_proto::Instant>| t.map_or("never".to_string(), |t| s(t - at));
        let _ = writeln!(
            out,
            "crash node-{node}: first_suspect_s={} first_dead_s={} all_dead_s={} dead_declarations={}",
            rel(c.first_suspect),
            rel(c.first_dead),
            rel(c.all_dead),
            c.dead_at
        );
    }
    let (sent, bytes) = sim.sent_totals();
    let r = &sim.rec;
    let _ = writeln!(
        out,
        "false_suspicions={} false_suspicions_of_healthy={} false_deaths={} false_deaths_of_healthy={} \
         false_deaths_healthy_by_healthy={}",
        r.false_suspicions,
        r.false_suspicions_of_healthy,
        r.false_deaths,
        r.false_deaths_of_healthy,
        r.false_deaths_healthy_by_healthy
    );
    let _ = writeln!(
        out,
        "msgs_per_node_per_s={:.2} bytes_per_node_per_s={:.1} datagrams_delivered={} datagrams_lost={}",
        sent as f64 / n / virtual_secs,
        bytes as f64 / n / virtual_secs,
        sim.rec.packets,
        sim.rec.lost
    );
    if let Some(max) = sim.rec.awareness.iter().map(|a| a.2).max() {
        let mean = sim.rec.awareness.iter().map(|a| a.1).sum::<f64>() / sim.rec.awareness.len().max(1) as f64;
        let _ = writeln!(out, "awareness_mean={mean:.3} awareness_max={max}");
    }
    let wall_s = wall.as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "virtual_time_s={:.1} wall_time_s={:.2} threads={}",
        virtual_secs,
        wall.as_secs_f64(),
        sim.threads()
    );
    let _ = writeln!(
        out,
        "datagrams_per_wall_s={:.0} messages_decoded={} messages_decoded_per_wall_s={:.0}",
        sim.rec.packets as f64 / wall_s,
        sim.messages_decoded(),
        sim.messages_decoded() as f64 / wall_s
    );
    if let Some(peak) = peak_rss_kib() {
        let _ = writeln!(out, "peak_rss_mib={:.1} rss_per_node_kib={:.1}", peak as f64 / 1024.0, peak as f64 / n);
    }
    let _ = write!(out, "trace_hash={:016x}", sim.trace_hash());
    let _ = Recorder::d;
    out
}

/// The process's peak resident memory (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

//! `memberlist sim`: a simulator scenario with a progress bar and the summary.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use memberlist_sim::scenario::{self, Scenario};
use memberlist_sim::summary;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// A built-in scenario (bootstrap-crash, partition-heal, loss-sweep, starved, slow,
    /// first-detection) or a JSON file.
    #[arg(long, default_value = "bootstrap-crash")]
    scenario: String,
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Turn Lifeguard off (the SWIM baseline).
    #[arg(long)]
    swim_baseline: bool,
    /// Write an SVG chart here: dissemination curves (share of nodes informed against time,
    /// the updates of each loss level pooled) and the first-detection distribution.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
}

pub fn run(args: &SimArgs) -> Result<ExitCode> {
    let mut sc = match Scenario::builtin(&args.scenario, args.nodes) {
        Some(s) => s,
        None => {
            let text = std::fs::read_to_string(&args.scenario).map_err(|e| {
                anyhow::anyhow!(
                    "{:?} is neither a built-in scenario ({}) nor a readable file: {e}",
                    args.scenario,
                    Scenario::builtin_names().join(", ")
                )
            })?;
            serde_json::from_str::<Scenario>(&text)?
        }
    };
    if sc.nodes == 0 {
        bail!("a scenario needs at least one node");
    }
    sc.nodes = args.nodes;
    let total = sc.steps.len().max(1);
    let started = Instant::now();
    let mut step = 0;
    let swim = args.swim_baseline;
    let (sim, outcomes) = scenario::run(
        &sc,
        args.seed,
        move |cfg| {
            if swim {
                scenario::swim_baseline(cfg);
            }
        },
        |sim, what| {
            step += 1;
            let done = (step - 1) * 30 / total;
            let name = what.split([' ', '{']).next().unwrap_or(what);
            eprint!(
                "\r[{}{}] step {step}/{total} {name:<16} virtual {:>7.1}s",
                "#".repeat(done),
                " ".repeat(30 - done),
                sim.now().as_nanos() as f64 / 1e9
            );
            let _ = std::io::stderr().flush();
        },
    );
    eprintln!("\r[{}] done in {:.1}s{}", "#".repeat(30), started.elapsed().as_secs_f64(), " ".repeat(30));
    println!("{}", summary::render(&sc, args.seed, &sim, &outcomes, started.elapsed()));
    if let Some(path) = &args.svg {
        std::fs::write(path, chart(&sc, &outcomes))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Pools the receipt times of every update made at the same loss level (and the first
/// detections) into cumulative curves.
fn chart(sc: &Scenario, outcomes: &[(scenario::Step, scenario::Outcome)]) -> String {
    use scenario::{Outcome, Step};
    let mut loss = 0.0;
    let mut pools: Vec<(String, Vec<f64>, usize)> = Vec::new();
    let mut detections = Vec::new();
    for (step, outcome) in outcomes {
        if let Step::Loss { percent } = step {
            loss = *percent;
        }
        match outcome {
            Outcome::Disseminated { times, of } => {
                let label = format!("{} nodes, {loss} % loss", sc.nodes);
                if pools.last().is_none_or(|p| p.0 != label) {
                    pools.push((label, Vec::new(), 0));
                }
                if let Some(p) = pools.last_mut() {
                    p.1.extend(times.iter().map(Duration::as_secs_f64));
                    p.2 += of;
                }
            }
            Outcome::FirstDetections(v) => detections.extend(v.iter().map(Duration::as_secs_f64)),
            _ => {}
        }
    }
    let mut series: Vec<(String, Vec<(f64, f64)>)> = pools
        .into_iter()
        .map(|(label, mut t, total)| {
            t.sort_by(f64::total_cmp);
            let mut pts = vec![(0.0, 0.0)];
            for (i, x) in t.iter().enumerate() {
                pts.push((*x, (i + 1) as f64 / total.max(1) as f64));
            }
            (label, pts)
        })
        .collect();
    if !detections.is_empty() {
        detections.sort_by(f64::total_cmp);
        let n = detections.len() as f64;
        let pts = std::iter::once((0.0, 0.0))
            .chain(detections.iter().enumerate().map(|(i, x)| (*x, (i + 1) as f64 / n)))
            .collect();
        series.push(("first detection (crash → first suspicion)".into(), pts));
    }
    // Cut the long tails (updates repaired by push/pull after tens of seconds) at the 95th
    // percentile of every receipt, so the curves' shape stays visible.
    let mut all: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).collect();
    all.sort_by(f64::total_cmp);
    let limit = all.get(all.len() * 95 / 100).map(|x| x * 1.5);
    crate::svg::line_chart(&format!("{} — seed-reproducible simulation", sc.name), "seconds", "share", &series, limit)
}

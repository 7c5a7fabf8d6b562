//! `memberlist sim`: a simulator scenario with a progress bar and the summary.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

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
    Ok(ExitCode::SUCCESS)
}

//! `memberlist-sim`: run a scenario, print its summary and, last, `trace_hash=<hex>`.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;
use std::time::Instant as WallClock;

use clap::Parser;
use memberlist_sim::scenario::{self, Scenario};
use memberlist_sim::summary;

/// Deterministic simulation of a memberlist cluster.
#[derive(Debug, Parser)]
#[command(name = "memberlist-sim", version, about)]
struct Args {
    /// A built-in scenario (bootstrap-crash, partition-heal, loss-sweep, starved) or a JSON file.
    #[arg(long, default_value = "bootstrap-crash")]
    scenario: String,
    /// Cluster size (overrides the file's).
    #[arg(long)]
    nodes: Option<usize>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write every membership event as JSON lines to this file.
    #[arg(long)]
    timeline: Option<String>,
    /// Turn Lifeguard off (SWIM baseline: no awareness, fixed suspicion timeout).
    #[arg(long)]
    swim_baseline: bool,
    /// Suspicion multiplier α (memberlist's SuspicionMult; LAN default 4, the Lifeguard
    /// paper's and the SWIM baseline's 5).
    #[arg(long)]
    alpha: Option<usize>,
    /// Threads to run the nodes on (default: the machine's cores); the trace hash does not
    /// depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Print progress to stderr.
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut sc = match Scenario::builtin(&args.scenario, args.nodes.unwrap_or(100)) {
        Some(s) => s,
        None => match std::fs::read_to_string(&args.scenario) {
            Ok(text) => match serde_json::from_str::<Scenario>(&text) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {}: {e}", args.scenario);
                    return ExitCode::from(2);
                }
            },
            Err(e) => {
                eprintln!(
                    "error: {:?} is neither a built-in scenario ({}) nor a readable file: {e}",
                    args.scenario,
                    Scenario::builtin_names().join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    if let Some(n) = args.nodes {
        sc.nodes = n;
    }
    let started = WallClock::now();
    let swim = args.swim_baseline;
    let alpha = args.alpha;
    let show = args.progress;
    let timeline = args.timeline.clone();
    let (sim, outcomes) = scenario::run_with(
        &sc,
        args.seed,
        args.threads.unwrap_or_else(scenario::default_threads),
        move |cfg| {
            if swim {
                memberlist_sim::scenario::swim_baseline(cfg);
            }
            if let Some(a) = alpha {
                cfg.suspicion_mult = a;
            }
        },
        move |sim, what| {
            if show {
                eprintln!("[{:>8.1}s virtual] {what}", sim.now().as_nanos() as f64 / 1e9);
            }
        },
        timeline.map(|path| -> Box<dyn std::io::Write> {
            Box::new(BufWriter::new(File::create(path).expect("timeline file can be created")))
        }),
    );
    println!("{}", summary::render(&sc, args.seed, &sim, &outcomes, started.elapsed()));
    // Thousands of nodes' tables take seconds to free one by one; the process exit frees them
    // at once.
    std::mem::forget(sim);
    ExitCode::SUCCESS
}

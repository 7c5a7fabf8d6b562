//! `memberlist-sim`: run a scenario, print its summary and, last, `trace_hash=<hex>`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant as WallClock;

use clap::Parser;
use memberlist_sim::scenario::{self, Scenario};
use memberlist_sim::search;
use memberlist_sim::summary;

/// Deterministic simulation of a memberlist cluster.
#[derive(Debug, Parser)]
#[command(name = "memberlist-sim", version, about)]
struct Args {
    /// A built-in scenario (bootstrap-crash, converged-crash, mass-restart, rolling-restart, leave-under-load, partition-heal,
    /// loss-sweep, starved, stalled, slow, first-detection) or a JSON file.
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
    /// Randomized fault search: run seeds 1..=N (each its own cluster and fault schedule),
    /// print the failing ones with the command that replays them, and end with
    /// `searched N seeds: V violations` (exit status 1 when V > 0).
    #[arg(long, value_name = "N")]
    search: Option<u64>,
    /// Replay one seed of the fault search and print its schedule and findings.
    #[arg(long, value_name = "S")]
    search_seed: Option<u64>,
    /// Go's rules for stale alives: do not send a member the accusation it announced itself
    /// below (`Config::tell_the_accused` off), to compare with Go #311.
    #[arg(long)]
    go_accusations: bool,
    /// Send packets uncompressed (memberlist's `EnableCompression` off; every preset has it on,
    /// as Go's): the same run without LZW, to see what compression costs the simulation.
    #[arg(long)]
    no_compression: bool,
    /// Print progress to stderr.
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.search_seed {
        let timeline = args.timeline.as_ref().map(|path| -> Box<dyn std::io::Write> {
            Box::new(BufWriter::new(File::create(path).expect("timeline file can be created")))
        });
        let r = search::run_seed_with(seed, timeline);
        println!("{}", search::describe(&r));
        return if r.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    if let Some(count) = args.search {
        let threads = args.threads.unwrap_or_else(scenario::default_threads);
        let reports = search::search(count, threads);
        let mut violations = 0;
        for r in &reports {
            if !r.violations.is_empty() {
                violations += r.violations.len();
                println!("{}", search::describe(r));
                println!("replay: memberlist-sim --search-seed {}", r.seed);
            }
        }
        let slowest = reports.iter().filter_map(|r| r.converged_after.map(|d| (d, r.seed))).max();
        if let Some((d, seed)) = slowest {
            println!("slowest convergence after healing: {:.2} s (seed {seed})", d.as_secs_f64());
        }
        println!("searched {count} seeds: {violations} violations");
        return if violations == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
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
    let go_accusations = args.go_accusations;
    let no_compression = args.no_compression;
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
            if go_accusations {
                cfg.tell_the_accused = false;
            }
            if no_compression {
                cfg.enable_compression = false;
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
    // at once. The timeline is flushed first.
    let mut sim = sim;
    if let Some(mut timeline) = sim.rec.timeline.take() {
        if let Err(e) = timeline.flush() {
            eprintln!("error: writing the timeline: {e}");
        }
    }
    std::mem::forget(sim);
    ExitCode::SUCCESS
}

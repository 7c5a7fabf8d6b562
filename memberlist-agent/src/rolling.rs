//! `memberlist rolling-restart`: Kubernetes rolling restarts with real processes (issue 19 §2;
//! "ghost members" in Mimir, Tempo and Pyroscope rings). A cluster of Rust peers and/or Go peers
//! converges on loopback; then, `--rounds` times over every member in a random order, one
//! process is killed (SIGKILL, no leave) every `--every-secs`, and a new process with a new name
//! (`r3-1`, `g0-2`, …) starts on the address and port of the process killed one step before —
//! while the cluster still holds that one alive or suspect. The run lists, every second, the
//! killed names each running process still holds; one held past the bound Go's rules allow
//! ([`memberlist_sim::churn::ghost_bound`]) is a ghost. It ends once no running process lists a
//! killed name (or the bound has passed since the last kill) and reports ghosts, names still
//! listed that run nowhere, new members never alive everywhere and the slowest join.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use memberlist::NodeState;
use memberlist_proto::Config;

use crate::soak::{
    cluster_size, next, random_running, restart_in_place, start_cluster, tables, wait_converged, Member,
};

#[derive(Debug, Args)]
pub struct RollingRestartArgs {
    /// Rust processes.
    #[arg(long, default_value_t = 0)]
    rust: usize,
    /// Go processes.
    #[arg(long, default_value_t = 0)]
    go: usize,
    /// Passes over every member.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Seconds between two kills.
    #[arg(long, default_value_t = 2.0)]
    every_secs: f64,
    /// The Go peer binary.
    #[arg(long, default_value = "interop/bin/gopeer")]
    gopeer: std::path::PathBuf,
    /// Seed of the order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// What the run watches each second.
#[derive(Default)]
struct Watch {
    /// Killed names and when they were killed.
    killed: BTreeMap<String, Instant>,
    /// New members not yet alive at every running process, and when they started.
    joining: BTreeMap<String, Instant>,
    ghost_pairs_max: usize,
    longest_listed: Duration,
    slowest_join: Duration,
    /// Killed names some running process lists, at the last look.
    listed_now: usize,
    /// (observer, running name) pairs not alive, at the last look.
    not_alive_now: usize,
}

impl Watch {
    fn look(&mut self, members: &mut [Member], bound: Duration) -> Result<()> {
        let running: Vec<String> = members.iter().filter(|m| m.proc.is_some()).map(|m| m.name.clone()).collect();
        let tables = tables(members)?;
        let now = Instant::now();
        let (mut ghosts, mut listed, mut not_alive) = (0, BTreeSet::new(), 0);
        let mut alive_at: BTreeMap<&str, usize> = BTreeMap::new();
        for states in &tables {
            for name in states.keys() {
                if let Some(&at) = self.killed.get(name) {
                    let age = now - at;
                    self.longest_listed = self.longest_listed.max(age);
                    ghosts += usize::from(age > bound);
                    listed.insert(name.clone());
                }
            }
            for name in &running {
                if states.get(name) == Some(&NodeState::Alive) {
                    *alive_at.entry(name.as_str()).or_default() += 1;
                } else {
                    not_alive += 1;
                }
            }
        }
        self.ghost_pairs_max = self.ghost_pairs_max.max(ghosts);
        self.listed_now = listed.len();
        self.not_alive_now = not_alive;
        let everywhere = running.len();
        let joined: Vec<String> = self
            .joining
            .keys()
            .filter(|n| alive_at.get(n.as_str()).copied().unwrap_or(0) == everywhere)
            .cloned()
            .collect();
        for name in joined {
            if let Some(at) = self.joining.remove(&name) {
                self.slowest_join = self.slowest_join.max(now - at);
            }
        }
        Ok(())
    }
}

pub async fn run(args: &RollingRestartArgs) -> Result<ExitCode> {
    let n = cluster_size(args.rust, args.go, &args.gopeer)?;
    let mut members = start_cluster(args.rust, args.go, &args.gopeer, &[]).await?;
    let every = Duration::from_secs_f64(args.every_secs.max(0.1));
    let bound = memberlist_sim::churn::ghost_bound(&Config::lan("x"), n, every);
    println!(
        "rolling restart: {n} processes ({} Rust, {} Go), {} round(s), a kill every {:.1} s, each new member on the \
         address of the one killed a step before; ghost bound {:.0} s",
        args.rust,
        args.go,
        args.rounds,
        every.as_secs_f64(),
        bound.as_secs_f64()
    );
    let Some(joined) = wait_converged(&mut members, Duration::from_secs(120)).await? else {
        bail!("{n} processes did not converge within 120 s of starting");
    };
    println!("converged {:.1} s after the last start", joined.as_secs_f64());

    let (mut rng, mut watch) = (args.seed, Watch::default());
    let mut generation = vec![0usize; n];
    let mut previous: Option<usize> = None;
    let mut replaced = 0;
    let mut steps: Vec<usize> = Vec::new();
    for _ in 0..args.rounds {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, (next(&mut rng) % (i as u64 + 1)) as usize);
        }
        steps.extend(order);
    }
    let mut step_at = Instant::now();
    let mut last_look = Instant::now();
    // One step past the last: the last killed slot gets its new member too.
    for k in 0..=steps.len() {
        while Instant::now() < step_at {
            if last_look.elapsed() >= Duration::from_secs(1) {
                watch.look(&mut members, bound)?;
                last_look = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        step_at += every;
        if let Some(&victim) = steps.get(k) {
            if let Some(p) = members[victim].proc.take() {
                drop(p); // SIGKILL
                watch.killed.insert(members[victim].name.clone(), Instant::now());
            }
        }
        if let Some(slot) = previous.take() {
            generation[slot] += 1;
            let base = members[slot].name.split('-').next().unwrap_or("x").to_owned();
            let name = format!("{base}-{}", generation[slot]);
            let seed = random_running(&members, 1, &mut rng);
            let m = &mut members[slot];
            m.name = name.clone();
            restart_in_place(m, &args.gopeer, &seed, &[]).await?;
            watch.joining.insert(name, Instant::now());
            replaced += 1;
        }
        previous = steps.get(k).copied();
    }
    let last_kill = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        watch.look(&mut members, bound)?;
        let clean = watch.listed_now == 0 && watch.joining.is_empty() && watch.not_alive_now == 0;
        if clean || last_kill.elapsed() > bound {
            break;
        }
    }
    println!("replaced {replaced} members; watched {:.0} s after the last kill", last_kill.elapsed().as_secs_f64());
    println!("ghost pairs (killed members listed past the bound), most at once: {}", watch.ghost_pairs_max);
    println!("longest a killed member stayed listed: {:.0} s", watch.longest_listed.as_secs_f64());
    println!("killed members still listed at the end: {}", watch.listed_now);
    println!("(observer, running member) pairs not alive at the end: {}", watch.not_alive_now);
    println!(
        "new members never alive everywhere: {}; slowest to be alive everywhere: {:.0} s",
        watch.joining.len(),
        watch.slowest_join.as_secs_f64()
    );
    let ok =
        watch.ghost_pairs_max == 0 && watch.listed_now == 0 && watch.not_alive_now == 0 && watch.joining.is_empty();
    println!("rolling-restart: {}", if ok { "passed" } else { "FAILED" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

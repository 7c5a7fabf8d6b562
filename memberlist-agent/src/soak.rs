//! `memberlist soak`: churn with real processes. Rust peers (`memberlist peer`) and Go peers
//! (HashiCorp memberlist) form one cluster on loopback; every `--every-secs` one random process
//! is killed with SIGKILL and, after a random time down (up to `--down-max-secs`), started again
//! under the same name on the same address and port (a crashed service restarted in place), Go
//! and Rust victims taking turns. A few processes are
//! never killed: their memory is sampled after the first minute and at the end. After the
//! churn, the cluster must converge — every process holding every name alive, nothing else —
//! within two push/pull intervals, and no long-lived process may have grown by more than 10 %.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use memberlist::NodeState;

use crate::procs::{rss_kib, Peer, Proc};

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Rust processes.
    #[arg(long, default_value_t = 30)]
    rust: usize,
    /// Go processes.
    #[arg(long, default_value_t = 5)]
    go: usize,
    /// Seconds between two kills.
    #[arg(long, default_value_t = 2.0)]
    every_secs: f64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// A killed process stays down a random time up to this many seconds before it restarts
    /// (long enough, often, to be suspected or declared dead first).
    #[arg(long, default_value_t = 10.0)]
    down_max_secs: f64,
    /// Processes never killed (one Go among them when there are Go peers), whose memory is
    /// watched.
    #[arg(long, default_value_t = 4)]
    long_lived: usize,
    /// The Go peer binary.
    #[arg(long, default_value = "interop/bin/gopeer")]
    gopeer: std::path::PathBuf,
    /// A seed for the choice of victims.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One member of a cluster of processes (the soak's, the mass restart's).
pub(crate) struct Member {
    pub name: String,
    pub kind: Peer,
    /// Where it runs (kept across restarts).
    pub bind: SocketAddr,
    /// The running process; `None` while it is down.
    pub proc: Option<Proc>,
    /// Never killed (the soak watches its memory).
    pub long_lived: bool,
}

/// The LAN preset's push/pull interval scaled to `n` nodes as memberlist scales it.
pub(crate) fn push_pull_interval(n: usize) -> Duration {
    memberlist_proto::state::push_pull_scale(Duration::from_secs(30), n)
}

/// The next number of the victims' generator: splitmix64 over a state advanced by its gamma.
pub(crate) fn next(state: &mut u64) -> u64 {
    let value = memberlist_sim::sim::splitmix64(*state);
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value
}

/// [`Proc::spawn_at`] on a blocking thread of the runtime.
pub(crate) async fn spawn(
    kind: Peer,
    gopeer: &std::path::Path,
    name: &str,
    bind: &str,
    seeds: &[SocketAddr],
    rust_flags: &[String],
) -> Result<Proc> {
    let (gopeer, name, bind) = (gopeer.to_path_buf(), name.to_owned(), bind.to_owned());
    let (seeds, rust_flags) = (seeds.to_vec(), rust_flags.to_vec());
    tokio::task::spawn_blocking(move || Proc::spawn_at(kind, &gopeer, &name, &bind, &seeds, &rust_flags)).await?
}

/// The number of processes of a `--rust N --go M` cluster run, once the Go peer is there and
/// there are at least three.
pub(crate) fn cluster_size(rust: usize, go: usize, gopeer: &std::path::Path) -> Result<usize> {
    if go > 0 && !gopeer.exists() {
        bail!("{} is missing: ./scripts/test-all builds it (Go toolchain needed)", gopeer.display());
    }
    if rust + go < 3 {
        bail!("need at least three processes (--rust N, --go M)");
    }
    Ok(rust + go)
}

/// The addresses of up to `k` distinct running members, drawn at random.
pub(crate) fn random_running(members: &[Member], k: usize, rng: &mut u64) -> Vec<SocketAddr> {
    let mut running: Vec<SocketAddr> = members.iter().filter(|m| m.proc.is_some()).map(|m| m.bind).collect();
    let mut picked = Vec::new();
    while picked.len() < k && !running.is_empty() {
        picked.push(running.swap_remove((next(rng) % running.len() as u64) as usize));
    }
    picked
}

/// Starts `rust` Rust peers (`r0`, `r1`, …, with `rust_flags`) and `go` Go peers (`g0`, …) on
/// 127.0.0.1, each joining through the first.
pub(crate) async fn start_cluster(
    rust: usize,
    go: usize,
    gopeer: &std::path::Path,
    rust_flags: &[String],
) -> Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::new();
    for (kind, prefix, count) in [(Peer::Rust, "r", rust), (Peer::Go, "g", go)] {
        for i in 0..count {
            let (name, bind) = (format!("{prefix}{i}"), "127.0.0.1:0".parse()?);
            members.push(Member { name, kind, bind, proc: None, long_lived: false });
        }
    }
    let mut seed_addr: Option<SocketAddr> = None;
    for m in members.iter_mut() {
        let p = spawn(m.kind, gopeer, &m.name, "127.0.0.1:0", seed_addr.as_slice(), rust_flags).await?;
        m.bind = p.addr;
        seed_addr.get_or_insert(p.addr);
        m.proc = Some(p);
    }
    Ok(members)
}

/// Starts `m` again under its name on its address and port, joining through `seeds`; tries for
/// a second, as the port may linger a moment after the kill.
pub(crate) async fn restart_in_place(
    m: &mut Member,
    gopeer: &std::path::Path,
    seeds: &[SocketAddr],
    rust_flags: &[String],
) -> Result<()> {
    for _ in 0..20 {
        if let Ok(p) = spawn(m.kind, gopeer, &m.name, &m.bind.to_string(), seeds, rust_flags).await {
            m.proc = Some(p);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} could not restart on {}", m.name, m.bind)
}

/// The (observer, name) pairs that are wrong at one moment: every running process should hold
/// every name of the cluster alive, and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Census {
    /// Names held dead.
    pub dead: usize,
    /// Names held suspect.
    pub suspect: usize,
    /// Names held left.
    pub left: usize,
    /// Names not in the table at all.
    pub missing: usize,
    /// Entries for names that are not in the cluster.
    pub unknown: usize,
    /// Names some running process holds dead (each counted once).
    pub names_held_dead: usize,
    /// Names some running process holds dead or suspect.
    pub names_accused: std::collections::BTreeSet<String>,
}

impl Census {
    /// Every wrong pair.
    pub fn wrong(&self) -> usize {
        self.dead + self.suspect + self.left + self.missing + self.unknown
    }
}

/// Every running process's table, name → state: all are asked first, so that they answer
/// together, then read in turn.
pub(crate) fn tables(members: &mut [Member]) -> Result<Vec<BTreeMap<String, NodeState>>> {
    for p in members.iter_mut().filter_map(|m| m.proc.as_mut()) {
        p.ask_members()?;
    }
    members.iter_mut().filter_map(|m| m.proc.as_mut()).map(|p| Ok(p.read_members()?.0.into_iter().collect())).collect()
}

/// Asks every running process for its table and counts what is wrong.
pub(crate) fn census(members: &mut [Member]) -> Result<Census> {
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let mut c = Census::default();
    let mut held_dead = std::collections::BTreeSet::new();
    for states in tables(members)? {
        for name in &names {
            let state = states.get(name);
            if matches!(state, Some(NodeState::Dead | NodeState::Suspect)) {
                c.names_accused.insert(name.clone());
            }
            match state {
                Some(NodeState::Alive) => {}
                Some(NodeState::Suspect) => c.suspect += 1,
                Some(NodeState::Dead) => {
                    c.dead += 1;
                    held_dead.insert(name.as_str());
                }
                Some(NodeState::Left) => c.left += 1,
                None => c.missing += 1,
            }
        }
        c.unknown += states.keys().filter(|n| !names.contains(n)).count();
    }
    c.names_held_dead = held_dead.len();
    Ok(c)
}

/// How many (observer, name) pairs are wrong (see [`census`]).
fn not_alive(members: &mut [Member]) -> Result<usize> {
    Ok(census(members)?.wrong())
}

pub(crate) async fn wait_converged(members: &mut [Member], limit: Duration) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if not_alive(members)? == 0 {
            return Ok(Some(t0.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(None)
}

fn rss_of(members: &[Member]) -> Vec<(String, u64)> {
    members
        .iter()
        .filter(|m| m.long_lived)
        .filter_map(|m| Some((m.name.clone(), rss_kib(m.proc.as_ref()?.child.id(), "VmRSS:"))))
        .collect()
}

pub async fn run(args: &SoakArgs) -> Result<ExitCode> {
    if args.go > 0 && !args.gopeer.exists() {
        bail!("{} is missing: ./scripts/test-all builds it (Go toolchain needed)", args.gopeer.display());
    }
    let n = args.rust + args.go;
    if n < 2 || args.long_lived >= n {
        bail!("need at least two processes and fewer long-lived ones than processes");
    }
    // Long-lived: the first Rust processes (the seed among them) and the first Go one.
    let mut members = start_cluster(args.rust, args.go, &args.gopeer, &[]).await?;
    let go_long = usize::from(args.go > 0 && args.long_lived > 1);
    let (rust_long, mut go_seen) = (args.long_lived - go_long, 0);
    for (i, m) in members.iter_mut().enumerate() {
        m.long_lived = match m.kind {
            Peer::Rust => i < rust_long,
            Peer::Go => {
                go_seen += 1;
                go_seen <= go_long
            }
        };
    }
    let pp = push_pull_interval(n);
    let Some(joined) = wait_converged(&mut members, Duration::from_secs(120)).await? else {
        bail!("{n} processes did not converge within 120 s of starting");
    };
    println!(
        "{n} processes ({} Rust, {} Go) converged {:.1} s after the last start",
        args.rust,
        args.go,
        joined.as_secs_f64()
    );
    let every = Duration::from_secs_f64(args.every_secs.max(0.1));
    let t0 = Instant::now();
    let (mut rng, mut kills, mut go_kills) = (args.seed, 0usize, 0usize);
    let mut after_first_minute: Option<Vec<(String, u64)>> = None;
    let mut next_kill = t0 + every;
    let mut restarts: Vec<(Instant, usize)> = Vec::new();
    let churn_end = t0 + Duration::from_secs(args.secs);
    while Instant::now() < churn_end || !restarts.is_empty() {
        if after_first_minute.is_none()
            && t0.elapsed() >= Duration::from_secs(60).min(Duration::from_secs(args.secs / 2))
        {
            after_first_minute = Some(rss_of(&members));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        // Restarts that are due, under the same name on the same address and port.
        let (due, later): (Vec<_>, Vec<_>) = restarts.into_iter().partition(|(t, _)| *t <= now);
        restarts = later;
        for (_, victim) in due {
            let join = random_running(&members, 1, &mut rng);
            restart_in_place(&mut members[victim], &args.gopeer, &join, &[]).await?;
        }
        if now < next_kill || now >= churn_end {
            continue;
        }
        next_kill += every;
        // Go and Rust victims take turns (while both kinds can be killed).
        let want_go = kills % 2 == 1;
        let killable = |m: &Member, go: bool| !m.long_lived && m.proc.is_some() && (m.kind == Peer::Go) == go;
        let mut pool: Vec<usize> = (0..members.len()).filter(|&i| killable(&members[i], want_go)).collect();
        if pool.is_empty() {
            pool = (0..members.len()).filter(|&i| killable(&members[i], !want_go)).collect();
        }
        if pool.is_empty() {
            continue;
        }
        let victim = pool[(next(&mut rng) % pool.len() as u64) as usize];
        drop(members[victim].proc.take()); // SIGKILL
        kills += 1;
        go_kills += usize::from(members[victim].kind == Peer::Go);
        let down = Duration::from_secs_f64(args.down_max_secs.max(0.0) * (next(&mut rng) % 1000) as f64 / 1000.0);
        restarts.push((now + down, victim));
        if kills % 50 == 0 {
            println!("{:.0} s: {kills} kills ({go_kills} Go)", t0.elapsed().as_secs_f64());
        }
    }
    let churned = t0.elapsed();
    let converged = wait_converged(&mut members, pp * 3).await?;
    let at_end = rss_of(&members);
    let first = after_first_minute.unwrap_or_else(|| at_end.clone());
    println!(
        "churn: {kills} kills ({go_kills} Go, {} Rust) in {:.0} s, one every {:.1} s",
        kills - go_kills,
        churned.as_secs_f64(),
        every.as_secs_f64()
    );
    let bound = pp * 2;
    match converged {
        Some(t) => println!(
            "converged {:.1} s after the churn stopped (bound: 2 push/pull intervals = {:.0} s)",
            t.as_secs_f64(),
            bound.as_secs_f64()
        ),
        None => println!("not converged within {:.0} s after the churn stopped", (pp * 3).as_secs_f64()),
    }
    let mut worst_growth: f64 = 0.0;
    println!("| long-lived process | RSS after the first minute (KiB) | RSS at the end (KiB) | growth |");
    println!("| --- | --- | --- | --- |");
    for (name, end) in &at_end {
        let start = first.iter().find(|(n, _)| n == name).map_or(*end, |(_, k)| *k);
        let growth = (*end as f64 - start as f64) / (start.max(1) as f64) * 100.0;
        worst_growth = worst_growth.max(growth);
        println!("| {name} | {start} | {end} | {growth:+.1} % |");
    }
    let ok = converged.is_some_and(|t| t <= bound) && worst_growth <= 10.0;
    println!("soak: {}", if ok { "passed" } else { "FAILED" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

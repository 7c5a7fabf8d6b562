//! `memberlist bench`: the same cluster work done by real Rust nodes and by real Go memberlist
//! peers (interop/bin/gopeer) on loopback with the same LAN preset, for BENCHMARKS.md.
//!
//! Three ways to run a cluster of N nodes:
//! - `rust`: N memberlist-rs nodes inside this process;
//! - `rust-procs`: N `memberlist peer` processes, one node each;
//! - `go`: N Go peers (HashiCorp memberlist v0.7.0), one node each.
//!
//! For each: join convergence (all see all, from the first join); steady-state cost per node
//! over a quiet window (CPU share of a core, RSS, UDP packets and bytes sent per second, TCP
//! bytes sent per second); then `kills` crashes one after another (SIGKILL, or shutdown without
//! leaving in-process), each timed from the kill to the first suspicion anywhere and to dead
//! everywhere, with a fresh node joining after each so N stays the same; false deaths are any
//! other node ever shown dead.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist::{Memberlist, NodeState, Options};

use crate::procs::{cpu_secs, pss_kib, rss_kib, Peer, Proc};

/// In-process nodes share this machine's loopback: 127.0.0.1 on a kernel-chosen port.
const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

use crate::svg;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Cluster sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    nodes: Vec<usize>,
    /// Crashes to time per size (a fresh node replaces each).
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Seconds of quiet steady state over which CPU, memory and traffic are measured.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Which clusters: rust, rust-procs, go (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "rust,rust-procs,go")]
    implementation: Vec<String>,
    /// The Go peer binary.
    #[arg(long, default_value = "interop/bin/gopeer")]
    gopeer: std::path::PathBuf,
    /// Write the distribution of kill → dead everywhere as an SVG chart here.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// A quick check that everything runs: 4 nodes, 1 kill, 2 s of steady state.
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Rust,
    RustProcs,
    Go,
}

impl Kind {
    fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "rust" => Kind::Rust,
            "rust-procs" => Kind::RustProcs,
            "go" => Kind::Go,
            other => bail!("--implementation takes rust, rust-procs or go, not {other:?}"),
        })
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Rust => "Rust, N nodes in one process",
            Kind::RustProcs => "Rust, one process per node",
            Kind::Go => "Go v0.7.0, one process per node",
        }
    }
}

/// What one node reports: its table (name, state) and what it sent.
#[derive(Default)]
struct Report {
    table: Vec<(String, NodeState)>,
    sent: Traffic,
}

#[derive(Clone, Copy, Default)]
struct Traffic {
    packets: u64,
    bytes: u64,
    stream_bytes: u64,
}

/// A cluster of one kind.
struct Cluster {
    kind: Kind,
    gopeer: std::path::PathBuf,
    inproc: Vec<Memberlist>,
    procs: Vec<Proc>,
    names: Vec<String>,
    seed: Option<SocketAddr>,
    next_id: usize,
    /// Every name this cluster ever had: anything else in a table is another cluster's node.
    ever: BTreeSet<String>,
}

/// The victim's state at every node, and each (observer, member) death that was not a kill.
type KillCheck = (Vec<Option<NodeState>>, Vec<(String, String)>);

impl Cluster {
    fn new(kind: Kind, gopeer: &std::path::Path) -> Cluster {
        Cluster {
            kind,
            gopeer: gopeer.to_path_buf(),
            inproc: Vec::new(),
            procs: Vec::new(),
            names: Vec::new(),
            seed: None,
            next_id: 0,
            ever: BTreeSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    /// Starts one more node, joining the first.
    async fn add(&mut self) -> Result<()> {
        let prefix = match self.kind {
            Kind::Rust => "r",
            Kind::RustProcs => "p",
            Kind::Go => "g",
        };
        let name = format!("{prefix}{}", self.next_id);
        self.next_id += 1;
        let addr = match self.kind {
            Kind::Rust => {
                let node = Memberlist::create(Options::lan(name.clone()).bind(LOOPBACK_ANY_PORT)).await?;
                if let Some(s) = self.seed {
                    node.join(&[s]).await?;
                }
                let a = node.advertise_addr();
                self.inproc.push(node);
                a
            }
            kind => {
                let (bin, name2, seed) = (self.gopeer.clone(), name.clone(), self.seed);
                let peer = if kind == Kind::Go { Peer::Go } else { Peer::Rust };
                let p = tokio::task::spawn_blocking(move || Proc::spawn(peer, &bin, &name2, seed)).await??;
                let a = p.addr;
                self.procs.push(p);
                a
            }
        };
        self.seed.get_or_insert(addr);
        self.ever.insert(name.clone());
        self.names.push(name);
        Ok(())
    }

    /// The state of `victim` at every node, and each death (observer, member) of a node that was
    /// not `killed`. In process the victim is looked up and the dead counted at each node, and
    /// tables are read only when some node holds a death that is not a kill.
    fn kill_check(&mut self, victim: &str, killed: &BTreeSet<String>) -> Result<KillCheck> {
        let dead = |state: Option<NodeState>| state == Some(NodeState::Dead);
        let (states, read_tables) = if self.kind == Kind::Rust {
            let states = self.inproc.iter().map(|m| m.member(victim).map(|m| m.state)).collect();
            let others_dead = self
                .inproc
                .iter()
                .any(|m| m.state_counts().dead > killed.iter().filter(|k| dead(m.member(k).map(|k| k.state))).count());
            (Some(states), others_dead)
        } else {
            (None, true)
        };
        if !read_tables {
            return Ok((states.unwrap_or_default(), Vec::new()));
        }
        let reports = self.reports()?;
        let mut deaths = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            for (m, s) in &r.table {
                if *s == NodeState::Dead && !killed.contains(m) {
                    deaths.push((self.names[i].clone(), m.clone()));
                }
            }
        }
        let states = states.unwrap_or_else(|| {
            reports.iter().map(|r| r.table.iter().find(|(m, _)| m == victim).map(|(_, s)| *s)).collect()
        });
        Ok((states, deaths))
    }

    /// Crashes node `i` (never the seed): SIGKILL, or shutdown without leaving.
    async fn kill(&mut self, i: usize) -> String {
        match self.kind {
            Kind::Rust => {
                let _ = self.inproc.remove(i).shutdown().await;
            }
            _ => drop(self.procs.remove(i)),
        }
        self.names.remove(i)
    }

    /// Every node's table and traffic; an error if any table holds a node of another cluster
    /// (on a shared loopback a restarted port can bridge two clusters, which voids the figures).
    fn reports(&mut self) -> Result<Vec<Report>> {
        let reports = self.reports_unchecked()?;
        for r in &reports {
            if let Some((m, _)) = r.table.iter().find(|(m, _)| !self.ever.contains(m)) {
                bail!("foreign member {m:?} in the {:?} cluster: another cluster shares this loopback", self.kind);
            }
        }
        Ok(reports)
    }

    fn reports_unchecked(&mut self) -> Result<Vec<Report>> {
        if self.kind == Kind::Rust {
            return Ok(self
                .inproc
                .iter()
                .map(|n| {
                    let st = n.stats();
                    Report {
                        table: n.all_members().into_iter().map(|m| (m.name, m.state)).collect(),
                        sent: Traffic {
                            packets: st.packets_sent,
                            bytes: st.bytes_sent,
                            stream_bytes: st.stream_bytes_sent,
                        },
                    }
                })
                .collect());
        }
        for p in &mut self.procs {
            p.ask_members()?;
        }
        let mut out = Vec::new();
        for p in &mut self.procs {
            let (table, v) = p.read_members()?;
            let sent = Traffic {
                packets: v["sent_packets"].as_u64().unwrap_or(0),
                bytes: v["sent_bytes"].as_u64().unwrap_or(0),
                stream_bytes: v["stream_sent_bytes"].as_u64().unwrap_or(0),
            };
            out.push(Report { table, sent });
        }
        Ok(out)
    }

    /// CPU seconds used so far, resident memory now, its proportional share (PSS: each page
    /// divided by the number of processes mapping it) and its private (anonymous) part (KiB), of
    /// the nodes' processes.
    fn usage(&self) -> (f64, u64, u64, u64) {
        let pids: Vec<u32> = match self.kind {
            Kind::Rust => vec![std::process::id()],
            _ => self.procs.iter().map(|p| p.child.id()).collect(),
        };
        pids.iter()
            .map(|p| (cpu_secs(*p), rss_kib(*p, "VmRSS:"), pss_kib(*p), rss_kib(*p, "RssAnon:")))
            .fold((0.0, 0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3))
    }

    async fn shutdown(&mut self) {
        for n in self.inproc.drain(..) {
            let _ = n.shutdown().await;
        }
        self.procs.clear();
    }
}

#[derive(Debug, Default)]
struct Figures {
    converge: Duration,
    suspect: Vec<Duration>,
    dead: Vec<Duration>,
    false_deaths: usize,
    cpu_share: f64,
    rss_mib: f64,
    pss_mib: f64,
    anon_mib: f64,
    packets_per_s: f64,
    bytes_per_s: f64,
    stream_bytes_per_s: f64,
}

/// The p-th percentile (nearest rank) in seconds.
fn percentile(v: &[Duration], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

async fn wait_converged(c: &mut Cluster, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let n = c.len();
        // In process, poll the nodes' counts (no table copies: a poll of every node's full table
        // every 50 ms cost more than the 1000 nodes it watched); the full check runs once they
        // agree.
        if c.kind == Kind::Rust && !c.inproc.iter().all(|m| m.state_counts().alive == n) {
            if start.elapsed() > limit {
                bail!("{:?}: no convergence at {n}", c.kind);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let reports = c.reports()?;
        if reports.iter().all(|r| r.table.iter().filter(|(_, s)| *s == NodeState::Alive).count() == n) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{:?}: no convergence at {n}", c.kind);
        }
        if std::env::var_os("BENCH_DEBUG").is_some() && start.elapsed() > Duration::from_secs(3) {
            for (i, r) in reports.iter().enumerate() {
                let not_alive: Vec<String> =
                    r.table.iter().filter(|(_, s)| *s != NodeState::Alive).map(|(m, s)| format!("{m}:{s:?}")).collect();
                let alive = r.table.iter().filter(|(_, s)| *s == NodeState::Alive).count();
                if alive != n {
                    let missing: Vec<&String> =
                        c.names.iter().filter(|m| !r.table.iter().any(|(t, _)| t == *m)).collect();
                    eprintln!(
                        "{} sees {alive}/{n} alive, table {} {not_alive:?}, missing {missing:?}",
                        c.names[i],
                        r.table.len()
                    );
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench(kind: Kind, gopeer: &std::path::Path, n: usize, kills: usize, steady: Duration) -> Result<Figures> {
    let mut c = Cluster::new(kind, gopeer);
    let (rss_before, pss_before, anon_before) = if kind == Kind::Rust {
        let me = std::process::id();
        (rss_kib(me, "VmRSS:"), pss_kib(me), rss_kib(me, "RssAnon:"))
    } else {
        (0, 0, 0)
    };
    c.add().await?;
    let start = Instant::now();
    for _ in 1..n {
        c.add().await?;
    }
    wait_converged(&mut c, Duration::from_secs(120)).await?;
    let mut f = Figures { converge: start.elapsed(), ..Figures::default() };

    // Steady state: let the joins' gossip settle, then measure a quiet window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sum = |r: &[Report]| {
        r.iter().fold(Traffic::default(), |a, x| Traffic {
            packets: a.packets + x.sent.packets,
            bytes: a.bytes + x.sent.bytes,
            stream_bytes: a.stream_bytes + x.sent.stream_bytes,
        })
    };
    let (cpu0, t0) = (c.usage().0, sum(&c.reports()?));
    let w0 = Instant::now();
    tokio::time::sleep(steady).await;
    let secs = w0.elapsed().as_secs_f64();
    let ((cpu1, rss, pss, anon), t1) = (c.usage(), sum(&c.reports()?));
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64 / secs;
    f.cpu_share = (cpu1 - cpu0) / n as f64 / secs;
    f.rss_mib = rss.saturating_sub(rss_before) as f64 / n as f64 / 1024.0;
    f.pss_mib = pss.saturating_sub(pss_before) as f64 / n as f64 / 1024.0;
    f.anon_mib = anon.saturating_sub(anon_before) as f64 / n as f64 / 1024.0;
    f.packets_per_s = per(t0.packets, t1.packets);
    f.bytes_per_s = per(t0.bytes, t1.bytes);
    f.stream_bytes_per_s = per(t0.stream_bytes, t1.stream_bytes);

    let mut killed = BTreeSet::new();
    let mut false_deaths = BTreeSet::new();
    for k in 0..kills {
        let victim = 1 + k % (c.len() - 1);
        let name = c.kill(victim).await;
        killed.insert(name.clone());
        let t0 = Instant::now();
        let mut suspected = None;
        loop {
            let (states, deaths) = c.kill_check(&name, &killed)?;
            for state in &states {
                if suspected.is_none() && matches!(state, Some(NodeState::Suspect | NodeState::Dead)) {
                    suspected = Some(t0.elapsed());
                }
            }
            false_deaths.extend(deaths);
            if states.iter().all(|s| *s == Some(NodeState::Dead)) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("{kind:?}: kill {k} not detected");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        f.suspect.push(suspected.unwrap_or_default());
        f.dead.push(t0.elapsed());
        // Back to N with a fresh node.
        c.add().await?;
        wait_converged(&mut c, Duration::from_secs(60)).await?;
    }
    f.false_deaths = false_deaths.len();
    c.shutdown().await;
    Ok(f)
}

fn row(kind: Kind, n: usize, f: &Figures) {
    println!(
        "| {} | {n} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} | {:.2} % | {:.2} / {:.2} / {:.2} | {:.1} / {:.0} | {:.0} |",
        kind.label(),
        f.converge.as_secs_f64(),
        percentile(&f.suspect, 50.0),
        percentile(&f.suspect, 99.0),
        percentile(&f.dead, 50.0),
        percentile(&f.dead, 99.0),
        f.dead.len(),
        f.false_deaths,
        f.cpu_share * 100.0,
        f.rss_mib,
        f.pss_mib,
        f.anon_mib,
        f.packets_per_s,
        f.bytes_per_s,
        f.stream_bytes_per_s,
    );
}

pub async fn run(args: &BenchArgs) -> Result<ExitCode> {
    let kinds: Vec<Kind> = args.implementation.iter().map(|s| Kind::parse(s)).collect::<Result<_>>()?;
    let (sizes, kills, steady) = if args.smoke {
        (vec![4], 1, Duration::from_secs(2))
    } else {
        (args.nodes.clone(), args.kills, Duration::from_secs(args.steady_secs))
    };
    if kinds.contains(&Kind::Go) && !args.gopeer.exists() {
        bail!("{} is missing: ./scripts/test-all builds it (or pass --gopeer)", args.gopeer.display());
    }
    println!(
        "| cluster | N | converge (s) | kill → first suspect p50 / p99 (s) | kill → dead everywhere p50 / p99 (s) \
         | kills | false deaths | CPU per node (of one core) | RSS / PSS / private RSS per node (MiB) \
         | UDP sent per node: packets/s / bytes/s \
         | TCP bytes/s per node |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut series = Vec::new();
    for &n in &sizes {
        if n < 3 {
            bail!("--nodes values must be at least 3");
        }
        for &kind in &kinds {
            let f = bench(kind, &args.gopeer, n, kills, steady).await?;
            row(kind, n, &f);
            series.push((format!("{} N={n}", kind.label()), f.dead.iter().map(Duration::as_secs_f64).collect()));
        }
    }
    if let Some(path) = &args.svg {
        let chart = svg::cdf_chart("kill → dead everywhere (s), cumulative share of kills", &series);
        std::fs::write(path, chart).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `memberlist bench`: the same cluster work done by real Rust nodes and by real Go memberlist
//! peers (interop/bin/gopeer) on loopback with the same preset — join convergence and
//! crash detection (kill → first suspect → dead everywhere) — for BENCHMARKS.md.
//!
//! Rust nodes run many per process (this one); Go peers run one per process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist::{Memberlist, NodeState, Options};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Cluster sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    nodes: Vec<usize>,
    /// Crashes to time per size.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Which implementation: rust, go or both.
    #[arg(long, default_value = "both")]
    implementation: String,
    /// The Go peer binary.
    #[arg(long, default_value = "interop/bin/gopeer")]
    gopeer: std::path::PathBuf,
}

#[derive(Debug, Default)]
struct Figures {
    converge: Duration,
    suspect: Vec<Duration>,
    dead: Vec<Duration>,
}

fn median(v: &[Duration]) -> f64 {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

fn max(v: &[Duration]) -> f64 {
    v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max)
}

async fn bench_rust(n: usize, kills: usize) -> Result<Figures> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(Memberlist::create(Options::lan(format!("r{i}"))).await?);
    }
    let start = Instant::now();
    let seed = nodes[0].advertise_addr();
    for node in &nodes[1..] {
        node.join(&[seed]).await?;
    }
    while !nodes.iter().all(|x| x.num_members() == n) {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("rust: no convergence at {n}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut f = Figures { converge: start.elapsed(), ..Figures::default() };
    for k in 0..kills.min(n - 2) {
        let victim = nodes.pop().context("a node to kill")?;
        let name = victim.name().to_owned();
        victim.shutdown();
        let t0 = Instant::now();
        let mut suspected = None;
        loop {
            let states: Vec<Option<NodeState>> =
                nodes.iter().map(|x| x.members().into_iter().find(|m| m.name == name).map(|m| m.state)).collect();
            if suspected.is_none() && states.iter().any(|s| matches!(s, Some(NodeState::Suspect | NodeState::Dead))) {
                suspected = Some(t0.elapsed());
            }
            if states.iter().all(|s| *s == Some(NodeState::Dead)) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("rust: kill {k} not detected");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f.suspect.push(suspected.unwrap_or_default());
        f.dead.push(t0.elapsed());
    }
    for x in &nodes {
        x.shutdown();
    }
    Ok(f)
}

struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Peer {
    fn spawn(bin: &std::path::Path, name: &str, join: Option<&str>) -> Result<(Peer, String)> {
        let mut cmd = Command::new(bin);
        cmd.args(["-name", name, "-bind", "127.0.0.1:0", "-config", "lan"]);
        if let Some(j) = join {
            cmd.args(["-join", j]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut p = Peer { child, stdin, lines: rx };
        let ready = p.wait("ready")?;
        let addr = format!("{}:{}", ready["addr"].as_str().unwrap_or("127.0.0.1"), ready["port"]);
        Ok((p, addr))
    }

    fn wait(&mut self, ev: &str) -> Result<serde_json::Value> {
        let end = Instant::now() + Duration::from_secs(30);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let v = self.lines.recv_timeout(left)?;
            if v["ev"] == ev {
                return Ok(v);
            }
        }
        bail!("gopeer: no {ev} event")
    }

    /// (name, state) of every node in the Go node's own table.
    fn table(&mut self) -> Result<Vec<(String, String)>> {
        writeln!(self.stdin, "members")?;
        let v = self.wait("members")?;
        Ok(v["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (m["name"].as_str().unwrap_or("").to_owned(), m["state"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench_go(bin: &std::path::Path, n: usize, kills: usize) -> Result<Figures> {
    let (first, seed) = Peer::spawn(bin, "g0", None)?;
    let start = Instant::now();
    let mut peers = vec![first];
    for i in 1..n {
        peers.push(Peer::spawn(bin, &format!("g{i}"), Some(&seed))?.0);
    }
    loop {
        let mut all = true;
        for p in &mut peers {
            let t = p.table()?;
            if t.iter().filter(|(_, s)| s == "alive").count() != n {
                all = false;
                break;
            }
        }
        if all {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("go: no convergence at {n}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut f = Figures { converge: start.elapsed(), ..Figures::default() };
    for k in 0..kills.min(n - 2) {
        let name = format!("g{}", peers.len() - 1);
        drop(peers.pop()); // kill -9
        let t0 = Instant::now();
        let mut suspected = None;
        loop {
            let mut all_dead = true;
            for p in &mut peers {
                let state = p.table()?.into_iter().find(|(m, _)| *m == name).map(|(_, s)| s).unwrap_or_default();
                if suspected.is_none() && (state == "suspect" || state == "dead") {
                    suspected = Some(t0.elapsed());
                }
                all_dead &= state == "dead";
            }
            if all_dead {
                break;
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("go: kill {k} not detected");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        f.suspect.push(suspected.unwrap_or_default());
        f.dead.push(t0.elapsed());
    }
    Ok(f)
}

fn row(which: &str, n: usize, f: &Figures) {
    println!(
        "| {which} | {n} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
        f.converge.as_secs_f64(),
        median(&f.suspect),
        max(&f.suspect),
        median(&f.dead),
        max(&f.dead),
        f.dead.len()
    );
}

pub async fn run(args: &BenchArgs) -> Result<ExitCode> {
    println!("| implementation | N | converge (s) | kill → first suspect, median / max (s) | kill → dead everywhere, median / max (s) | kills |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &n in &args.nodes {
        if n < 3 {
            bail!("--nodes values must be at least 3");
        }
        if args.implementation != "go" {
            let f = bench_rust(n, args.kills).await?;
            row("Rust (one process)", n, &f);
        }
        if args.implementation != "rust" {
            let bin = args.gopeer.clone();
            let kills = args.kills;
            let f = tokio::task::spawn_blocking(move || bench_go(&bin, n, kills)).await??;
            row("Go v0.7.0 (process per node)", n, &f);
        }
    }
    Ok(ExitCode::SUCCESS)
}

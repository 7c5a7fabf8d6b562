//! Nodes in processes of their own — `memberlist peer` or the Go test peer — driven through
//! line commands on stdin and JSON lines on stdout, and what /proc says about them.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use memberlist::NodeState;
use serde_json::Value;

/// One node in its own process (Rust peer or Go peer), driven through stdin / stdout.
pub struct Proc {
    pub child: Child,
    pub stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    pub addr: SocketAddr,
}

/// Which peer program a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `memberlist peer` (this executable).
    Rust,
    /// The Go test peer on HashiCorp memberlist (interop/bin/gopeer).
    Go,
}

impl Proc {
    /// Starts `name` on 127.0.0.1 on a port of the kernel's, joining `join`.
    pub fn spawn(kind: Peer, gopeer: &std::path::Path, name: &str, join: Option<SocketAddr>) -> Result<Proc> {
        Proc::spawn_at(kind, gopeer, name, "127.0.0.1:0", join.as_slice(), &[])
    }

    /// Starts `name` bound to `bind`, joining through `seeds` (none: alone); a Rust peer gets
    /// `rust_flags` too (`memberlist peer` options).
    pub fn spawn_at(
        kind: Peer,
        gopeer: &std::path::Path,
        name: &str,
        bind: &str,
        seeds: &[SocketAddr],
        rust_flags: &[String],
    ) -> Result<Proc> {
        let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
        let mut cmd = match kind {
            Peer::Go => {
                let mut c = Command::new(gopeer);
                c.args(["-name", name, "-bind", bind, "-config", "lan"]);
                if !seeds.is_empty() {
                    c.args(["-join", &seeds.join(",")]);
                }
                c
            }
            Peer::Rust => {
                let mut c = Command::new(std::env::current_exe().context("this executable")?);
                c.args(["peer", "--name", name, "--bind", bind, "--config", "lan"]);
                if !seeds.is_empty() {
                    c.args(["--join", &seeds.join(",")]);
                }
                c.args(rust_flags);
                c
            }
        };
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
        let mut p = Proc { child, stdin, lines: rx, addr: "127.0.0.1:0".parse()? };
        let ready = p.wait("ready")?;
        p.addr = format!("{}:{}", ready["addr"].as_str().unwrap_or("127.0.0.1"), ready["port"]).parse()?;
        Ok(p)
    }

    pub fn wait(&mut self, ev: &str) -> Result<Value> {
        let end = Instant::now() + Duration::from_secs(30);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let v = self.lines.recv_timeout(left)?;
            if v["ev"] == ev {
                return Ok(v);
            }
        }
        bail!("peer: no {ev} event")
    }
}

impl Proc {
    /// Asks for the node's table; [`read_members`](Self::read_members) collects the answer (ask
    /// every process first, then read, so that they answer together).
    pub fn ask_members(&mut self) -> Result<()> {
        Ok(writeln!(self.stdin, "members")?)
    }

    /// The answer to [`ask_members`](Self::ask_members): (name, state) of every member, and
    /// the whole JSON line.
    pub fn read_members(&mut self) -> Result<(Vec<(String, NodeState)>, Value)> {
        let v = self.wait("members")?;
        let table = v["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| (m["name"].as_str().unwrap_or("").to_owned(), state_of(m["state"].as_str().unwrap_or(""))))
                    .collect()
            })
            .unwrap_or_default();
        Ok((table, v))
    }
}

/// Kills the process (SIGKILL) when dropped.
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member state as the peers print it.
pub fn state_of(s: &str) -> NodeState {
    match s {
        "suspect" => NodeState::Suspect,
        "dead" => NodeState::Dead,
        "left" => NodeState::Left,
        _ => NodeState::Alive,
    }
}

/// utime + stime of a process, in seconds (Linux, 100 ticks per second).
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// A memory field of /proc/PID/status (VmRSS, RssAnon), KiB.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The proportional set size of a process (/proc/PID/smaps_rollup), KiB.
pub fn pss_kib(pid: u32) -> u64 {
    let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else { return 0 };
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

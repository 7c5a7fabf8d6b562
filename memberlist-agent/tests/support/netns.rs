//! A multi-host harness on one machine: every node in its own network namespace, all joined by a
//! bridge that lives in a namespace of its own, addresses only inside those namespaces.
//!
//! Layout for a harness with prefix `p` and hosts 1..=n:
//! - `p-sw` holds the bridge `br0`;
//! - host i is namespace `p-hi`, with `eth0` = 10.77.0.i/24, joined to the bridge by a veth pair
//!   (`upi` on the bridge side);
//! - the root namespace gets no interface, address or route.
//!
//! Loss and partitions are nftables rules inside a host's namespace (`numgen random` for loss;
//! this kernel has no netem), delay is the peers' own transport knob. Nodes are Rust peers
//! (`memberlist peer`) or Go peers (`interop/bin/gopeer`, HashiCorp memberlist v0.7.0), both
//! driven through stdin and reporting JSON lines, started with `ip netns exec`, so the child's
//! PID is the node's own and SIGKILL / SIGSTOP reach it directly. Dropping the harness kills
//! every peer it started (by PID) and deletes every namespace it created, which also removes
//! the veths and the bridge.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether this machine can run the harness (root, `ip`, `nft`). Under CI it must: a missing
/// tool fails there instead of skipping.
pub fn available() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let tools =
        ["ip", "nft"].iter().all(|t| Command::new(t).arg("-V").output().map(|o| o.status.success()).unwrap_or(false));
    let ok = root && tools;
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI needs root, ip and nft for the namespace tests");
        eprintln!("skipped: the multi-host tests need root, ip (iproute2) and nft (nftables)");
    }
    ok
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("command runs");
    assert!(out.status.success(), "{} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

fn run_stdin(args: &[&str], input: &str) {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("command ends");
    assert!(out.status.success(), "{} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

/// Which implementation a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// memberlist-rs (`memberlist peer`).
    Rust,
    /// HashiCorp memberlist v0.7.0 (`interop/bin/gopeer`).
    Go,
}

/// What the harness learned from one node's output.
#[derive(Debug, Default)]
pub struct Seen {
    /// The node's latest table: name → (state, incarnation).
    pub table: BTreeMap<String, (String, u64)>,
    /// Every (subject, state) this node ever showed for another member other than alive.
    pub states: BTreeSet<(String, String)>,
    /// How often a member turned suspect in this node's table (episodes, not reports).
    pub suspect_episodes: usize,
    /// When the table was last reported.
    pub at: Option<Instant>,
    /// Where the node's latest table places each member (`ip:port`).
    pub addrs: BTreeMap<String, String>,
    /// The address the node said it advertises (its `ready` line).
    pub ready: Option<String>,
    /// Why the node could not start (its `fatal` line).
    pub fatal: Option<String>,
}

/// One node: a child process in a host's namespace.
pub struct Peer {
    pub name: String,
    pub kind: Kind,
    child: Child,
    stdin: ChildStdin,
    pub seen: Arc<Mutex<Seen>>,
}

impl Peer {
    /// The node's process id (of the peer itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line.
    pub fn command(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// The latest table.
    pub fn table(&self) -> BTreeMap<String, (String, u64)> {
        self.seen.lock().unwrap().table.clone()
    }

    /// Sends a signal to the node's process (by PID).
    pub fn signal(&self, sig: &str) {
        run(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A set of host namespaces on one bridge.
pub struct Hosts {
    prefix: String,
    n: usize,
    created: Vec<String>,
    /// `/etc/netns/<namespace>` directories written for hosts files (removed on drop).
    etc_dirs: Vec<PathBuf>,
}

/// Where node i listens.
pub fn addr(i: usize) -> String {
    format!("10.77.0.{i}:7946")
}

impl Hosts {
    /// Creates `n` hosts. `tag` keeps concurrent tests apart (namespace names carry it and the
    /// PID of the test process).
    pub fn up(tag: &str, n: usize) -> Hosts {
        let prefix = format!("mlt{}{tag}", std::process::id());
        let mut hosts = Hosts { prefix: prefix.clone(), n, created: Vec::new(), etc_dirs: Vec::new() };
        let sw = format!("{prefix}-sw");
        run(&["ip", "netns", "add", &sw]);
        hosts.created.push(sw.clone());
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for i in 1..=n {
            let h = hosts.ns(i);
            run(&["ip", "netns", "add", &h]);
            hosts.created.push(h.clone());
            let up = format!("up{i}");
            run(&["ip", "-n", &sw, "link", "add", &up, "type", "veth", "peer", "name", "eth0", "netns", &h]);
            run(&["ip", "-n", &sw, "link", "set", &up, "master", "br0"]);
            run(&["ip", "-n", &sw, "link", "set", &up, "up"]);
            run(&["ip", "-n", &h, "link", "set", "lo", "up"]);
            run(&["ip", "-n", &h, "addr", "add", &format!("10.77.0.{i}/24"), "dev", "eth0"]);
            run(&["ip", "-n", &h, "link", "set", "eth0", "up"]);
        }
        hosts
    }

    /// The namespace of host i.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// Starts a node on host i. `join` lists hosts to join at start.
    pub fn start(&self, kind: Kind, i: usize, join: &[usize], extra: &[&str]) -> Peer {
        assert!(i >= 1 && i <= self.n);
        let name = format!("node-{i}");
        let seeds: Vec<String> = join.iter().map(|j| addr(*j)).collect();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(i)]);
        match kind {
            Kind::Rust => {
                cmd.arg(env!("CARGO_BIN_EXE_memberlist"));
                cmd.args([
                    "peer",
                    "--name",
                    &name,
                    "--bind",
                    &addr(i),
                    "--config",
                    "lan",
                    "--interval-ms",
                    "250",
                    "--faults",
                ]);
                if !seeds.is_empty() {
                    cmd.args(["--join", &seeds.join(",")]);
                }
            }
            Kind::Go => {
                cmd.arg(gopeer());
                cmd.args(["-name", &name, "-bind", &addr(i), "-config", "lan", "-interval", "250ms"]);
                if !seeds.is_empty() {
                    cmd.args(["-join", &seeds.join(",")]);
                }
            }
        }
        cmd.args(extra);
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["ev"] == "ready" {
                    sink.lock().unwrap().ready = Some(format!("{}:{}", v["addr"].as_str().unwrap_or("?"), v["port"]));
                }
                if v["ev"] == "fatal" {
                    sink.lock().unwrap().fatal = Some(v["error"].as_str().unwrap_or_default().to_owned());
                }
                if v["ev"] != "members" {
                    continue;
                }
                let me = v["self"].as_str().unwrap_or_default().to_string();
                let mut s = sink.lock().unwrap();
                let before = std::mem::take(&mut s.table);
                for m in v["members"].as_array().into_iter().flatten() {
                    let name = m["name"].as_str().unwrap_or_default().to_string();
                    let state = m["state"].as_str().unwrap_or_default().to_string();
                    if state != "alive" && name != me {
                        s.states.insert((name.clone(), state.clone()));
                    }
                    if state == "suspect" && before.get(&name).is_none_or(|(b, _)| b != "suspect") {
                        s.suspect_episodes += 1;
                    }
                    let at = format!("{}:{}", m["addr"].as_str().unwrap_or("?"), m["port"]);
                    s.addrs.insert(name.clone(), at);
                    s.table.insert(name, (state, m["inc"].as_u64().unwrap_or(0)));
                }
                s.at = Some(Instant::now());
            }
        });
        Peer { name, kind, child, stdin, seen }
    }

    /// Drops this percentage of packets into and out of host i.
    pub fn loss(&self, i: usize, percent: u32) {
        self.nft(
            i,
            &format!(
                "table inet mlt {{\n chain in {{ type filter hook input priority 0; policy accept; \
                 numgen random mod 100 < {percent} counter drop; }}\n chain out {{ type filter hook output priority 0; \
                 policy accept; numgen random mod 100 < {percent} counter drop; }}\n}}\n"
            ),
        );
    }

    /// Host i stops receiving anything from the hosts in `from` (a one-way cut when only one
    /// side has it).
    pub fn deaf_to(&self, i: usize, from: &[usize]) {
        let set: Vec<String> = from.iter().map(|j| format!("10.77.0.{j}")).collect();
        self.nft(
            i,
            &format!(
                "table inet mlt {{\n chain in {{ type filter hook input priority 0; policy accept; \
                 ip saddr {{ {} }} counter drop; }}\n}}\n",
                set.join(", ")
            ),
        );
    }

    /// Cuts every host in `a` from every host in `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &i in a {
            self.deaf_to(i, b);
        }
        for &i in b {
            self.deaf_to(i, a);
        }
    }

    /// Packets host i's rules dropped so far.
    pub fn dropped(&self, i: usize) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(i), "nft", "list", "table", "inet", "mlt"])
            .output()
            .expect("nft runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words.windows(2).filter(|w| w[0] == "packets").filter_map(|w| w[1].parse::<u64>().ok()).sum()
    }

    /// Removes host i's rules.
    pub fn clear(&self, i: usize) {
        let _ =
            Command::new("ip").args(["netns", "exec", &self.ns(i), "nft", "delete", "table", "inet", "mlt"]).output();
    }

    /// Removes every host's rules.
    pub fn heal(&self) {
        for i in 1..=self.n {
            self.clear(i);
        }
    }

    fn nft(&self, i: usize, rules: &str) {
        self.clear(i);
        run_stdin(&["ip", "netns", "exec", &self.ns(i), "nft", "-f", "-"], rules);
    }
}

impl Hosts {
    /// Replaces host i's IPv4 address (`10.77.0.i/24`) with `cidr`, or adds `cidr` when it is
    /// IPv6 (without duplicate-address detection, so it is usable at once).
    pub fn set_address(&self, i: usize, cidr: &str) {
        let ns = self.ns(i);
        if cidr.contains(':') {
            run(&["ip", "-n", &ns, "addr", "add", cidr, "dev", "eth0", "nodad"]);
        } else {
            run(&["ip", "-n", &ns, "addr", "flush", "dev", "eth0", "scope", "global"]);
            run(&["ip", "-n", &ns, "addr", "add", cidr, "dev", "eth0"]);
        }
    }

    /// Writes the `/etc/hosts` that processes started in host i see (`ip netns exec` mounts
    /// `/etc/netns/<namespace>/hosts` over it). The file is rewritten in place, so processes
    /// already running see the new content at their next lookup: a stand-in for DNS records
    /// that change, as a Kubernetes headless Service's do when pods come and go.
    pub fn set_hosts_file(&mut self, i: usize, content: &str) {
        let dir = PathBuf::from("/etc/netns").join(self.ns(i));
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        if !self.etc_dirs.contains(&dir) {
            self.etc_dirs.push(dir.clone());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join("hosts"))
            .expect("open the hosts file");
        f.write_all(format!("127.0.0.1 localhost\n{content}").as_bytes()).expect("write the hosts file");
    }

    /// Starts `program args` in host i, its stdout and stderr appended to `log`.
    pub fn spawn(&self, i: usize, program: &str, args: &[&str], log: &std::path::Path) -> Child {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the log");
        let err = out.try_clone().expect("clone the log");
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the process")
    }

    /// Runs `program args` in host i to the end.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.ns(i), program]).args(args).output().expect("command runs")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
        for dir in &self.etc_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The Go peer binary, built by `scripts/test-all`.
pub fn gopeer() -> PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/gopeer");
    assert!(p.exists(), "{} is missing: ./scripts/test-all builds it (Go toolchain needed)", p.display());
    p
}

/// Waits until `ok` holds, polling every 100 ms; false after `limit`.
pub fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether every peer in `peers` sees exactly `alive` (by host number) as alive members and
/// nothing else alive.
pub fn sees_exactly(peers: &[&Peer], alive: &[usize]) -> bool {
    let want: BTreeSet<String> = alive.iter().map(|i| format!("node-{i}")).collect();
    peers.iter().all(|p| {
        let t = p.table();
        let got: BTreeSet<String> = t.iter().filter(|(_, (s, _))| s == "alive").map(|(n, _)| n.clone()).collect();
        got == want
    })
}

/// Every (observer, subject) pair where the observer ever showed the subject dead.
pub fn deaths(peers: &[&Peer]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in peers {
        for (subject, state) in &p.seen.lock().unwrap().states {
            if state == "dead" {
                out.push((p.name.clone(), subject.clone()));
            }
        }
    }
    out
}

/// How many times, summed over observers, a member turned suspect.
pub fn suspicions(peers: &[&Peer]) -> usize {
    peers.iter().map(|p| p.seen.lock().unwrap().suspect_episodes).sum()
}

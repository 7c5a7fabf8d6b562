//! Nodes started the way deployments start them, each host a network namespace on one bridge:
//! `memberlist agent --bind 0.0.0.0:7946` with no advertise address (as in a container), seeds
//! by DNS name with several records that change while the nodes run (a Kubernetes headless
//! Service, stood in for by each namespace's /etc/hosts), the readiness probe, a host with no
//! private address, and IPv6. Go peers (HashiCorp memberlist v0.7.0) started the same way sit in
//! the same clusters.
//!
//! Needs root, `ip` and `nft` (`scripts/test-all` installs them); without them the tests skip,
//! except under CI where they fail. The harness is in `support/netns.rs`.

#[path = "support/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use netns::{wait_until, Hosts, Kind};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memberlist")
}

/// An agent process in a host namespace, killed (by PID) when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// `memberlist agent --name node-<i> --bind 0.0.0.0:7946 <args>` (another `--bind` in
    /// `args` replaces that one) in host i, logging to a file; returns once its HTTP API
    /// (127.0.0.1:7947 inside the namespace) answers.
    fn start(hosts: &Hosts, i: usize, args: &[&str]) -> Agent {
        let log = std::env::temp_dir().join(format!("memberlist-deploy-{}-{}.log", hosts.ns(i), std::process::id()));
        let _ = std::fs::remove_file(&log);
        let name = format!("node-{i}");
        let mut full = vec!["agent", "--name", &name];
        if !args.contains(&"--bind") {
            full.extend(["--bind", "0.0.0.0:7946"]);
        }
        full.extend_from_slice(args);
        let child = hosts.spawn(i, bin(), &full, &log);
        let agent = Agent { child, log };
        let up = wait_until(Duration::from_secs(10), || members(hosts, i).is_some());
        assert!(up, "node-{i}'s API never came up: {}", agent.log_text());
        agent
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `memberlist members --json` against host i's agent (the default API address).
fn members(hosts: &Hosts, i: usize) -> Option<Vec<Value>> {
    let out = hosts.exec(i, bin(), &["members", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// name → (state, "addr:port") in host i's agent's table.
fn table(hosts: &Hosts, i: usize) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = members(hosts, i)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let at = format!("{}:{}", m["addr"].as_str().unwrap_or("?"), m["port"]);
            (m["name"].as_str().unwrap_or("?").to_owned(), m["state"].as_str().unwrap_or("?").to_owned(), at)
        })
        .collect();
    rows.sort();
    rows
}

/// The table every node of `expect` must show: each alive at its private address.
fn alive_at(expect: &[(usize, &str)]) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> =
        expect.iter().map(|(i, addr)| (format!("node-{i}"), "alive".to_owned(), (*addr).to_owned())).collect();
    rows.sort();
    rows
}

/// `GET /v1/health` on host i's agent: the status code.
fn health_status(hosts: &Hosts, i: usize) -> u16 {
    let script = "import sys,urllib.request,urllib.error\n\
                  try:\n  print(urllib.request.urlopen('http://127.0.0.1:7947/v1/health', timeout=5).status)\n\
                  except urllib.error.HTTPError as e:\n  print(e.code)\n\
                  except Exception:\n  print(0)\n";
    let out = hosts.exec(i, "python3", &["-c", script]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn views(hosts: &Hosts, n: &[usize]) -> String {
    n.iter().map(|i| format!("host {i}: {:?}", table(hosts, *i))).collect::<Vec<_>>().join("; ")
}

#[test]
fn agents_bound_to_any_address_advertise_their_private_ip_rust() {
    if !netns::available() {
        return;
    }
    let hosts = Hosts::up("da", 3);
    let a1 = Agent::start(&hosts, 1, &[]);
    let _a2 = Agent::start(&hosts, 2, &["--join", "10.77.0.1"]);
    let _a3 = Agent::start(&hosts, 3, &["--join", "10.77.0.1"]);
    let want = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946"), (3, "10.77.0.3:7946")]);
    let formed = wait_until(Duration::from_secs(20), || (1..=3).all(|i| table(&hosts, i) == want));
    assert!(formed, "one cluster at the private addresses: {}\n{}", views(&hosts, &[1, 2, 3]), a1.log_text());
    // Advertising loopback made members die within seconds: hold and look again.
    std::thread::sleep(Duration::from_secs(8));
    assert!((1..=3).all(|i| table(&hosts, i) == want), "still one cluster: {}", views(&hosts, &[1, 2, 3]));
    assert!(a1.log_text().contains("addr=10.77.0.1:7946"), "the log says what is advertised: {}", a1.log_text());
    eprintln!("[Rust] three agents bound to 0.0.0.0:7946: {want:?}");
}

#[test]
fn agents_and_a_go_peer_bound_to_any_address_form_one_cluster_mixed() {
    if !netns::available() {
        return;
    }
    let hosts = Hosts::up("db", 3);
    let _a1 = Agent::start(&hosts, 1, &[]);
    // Go, bound the same way with no advertise address: memberlist picks the private IP.
    let go = hosts.start(Kind::Go, 2, &[1], &["-bind", "0.0.0.0:7946", "-advertise="]);
    assert!(wait_until(Duration::from_secs(10), || go.seen.lock().unwrap().ready.is_some()), "the Go peer starts");
    let _a3 = Agent::start(&hosts, 3, &["--join", "10.77.0.2"]);
    let want = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946"), (3, "10.77.0.3:7946")]);
    let go_sees_all = || {
        let s = go.seen.lock().unwrap();
        (1..=3).all(|i| {
            let name = format!("node-{i}");
            s.table.get(&name).is_some_and(|(st, _)| st == "alive")
                && s.addrs.get(&name).is_some_and(|a| *a == format!("10.77.0.{i}:7946"))
        })
    };
    let formed =
        wait_until(Duration::from_secs(20), || table(&hosts, 1) == want && table(&hosts, 3) == want && go_sees_all());
    let go_view = format!("{:?}", go.seen.lock().unwrap().addrs);
    assert!(formed, "one cluster: {}; Go: {go_view}", views(&hosts, &[1, 3]));
    assert_eq!(go.seen.lock().unwrap().ready.as_deref(), Some("10.77.0.2:7946"), "Go advertises its private IP");
    std::thread::sleep(Duration::from_secs(8));
    assert!(table(&hosts, 1) == want && table(&hosts, 3) == want && go_sees_all(), "still one cluster");
    eprintln!("[Rust + Go] two agents and a Go peer bound to 0.0.0.0:7946: {want:?}; Go sees {go_view}");
}

#[test]
fn no_private_address_fails_to_start_as_go_does() {
    if !netns::available() {
        return;
    }
    let hosts = Hosts::up("dc", 2);
    // A documentation-range address only: not private, so nothing to advertise.
    hosts.set_address(1, "192.0.2.10/24");
    let log = std::env::temp_dir().join(format!("memberlist-deploy-noprivate-{}.log", std::process::id()));
    let mut child = hosts.spawn(1, bin(), &["agent", "--name", "lonely", "--bind", "0.0.0.0:7946"], &log);
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(!status.success(), "the agent refuses to start: {text}");
    assert!(text.contains("no private IP address found, and explicit IP not provided"), "{text}");
    // Go says the same, in the same network.
    let go = hosts.start(Kind::Go, 1, &[], &["-bind", "0.0.0.0:7946", "-advertise="]);
    assert!(wait_until(Duration::from_secs(10), || go.seen.lock().unwrap().fatal.is_some()), "Go fails too");
    let go_error = go.seen.lock().unwrap().fatal.clone().unwrap();
    assert!(go_error.contains("no private IP address found, and explicit IP not provided"), "{go_error}");
    // An explicit advertise address starts it; loopback stays loopback when bound to it.
    let a = Agent::start(&hosts, 1, &["--advertise", "192.0.2.10"]);
    assert_eq!(table(&hosts, 1), alive_at(&[(1, "192.0.2.10:7946")]), "{}", a.log_text());
    drop(a);
    // RFC 6598 shared address space (carrier-grade NAT, Tailscale) counts as private.
    hosts.set_address(2, "100.64.7.2/16");
    let _b = Agent::start(&hosts, 2, &[]);
    assert_eq!(table(&hosts, 2), alive_at(&[(2, "100.64.7.2:7946")]));
    eprintln!("[Rust + Go] no private address: both refuse with Go's message: {go_error:?}");
}

#[test]
fn ipv6_any_advertises_the_unique_local_address() {
    if !netns::available() {
        return;
    }
    let hosts = Hosts::up("dv", 2);
    hosts.set_address(1, "fd00:77::1/64");
    hosts.set_address(2, "fd00:77::2/64");
    let _a1 = Agent::start(&hosts, 1, &["--bind", "[::]:7946"]);
    let _a2 = Agent::start(&hosts, 2, &["--bind", "[::]:7946", "--join", "[fd00:77::1]"]);
    let want = alive_at(&[(1, "fd00:77::1:7946"), (2, "fd00:77::2:7946")]);
    assert!(
        wait_until(Duration::from_secs(20), || table(&hosts, 1) == want && table(&hosts, 2) == want),
        "one IPv6 cluster: {}",
        views(&hosts, &[1, 2])
    );
}

/// Seeds by one DNS name with several records, as a Kubernetes headless Service gives them:
/// nodes start in any order with `--retry-join`, the readiness probe says when each has
/// joined, and a node that appears behind the name later is found by the automatic re-join,
/// which resolves the name again every time.
#[test]
fn seeds_by_a_dns_name_with_several_records_that_change() {
    if !netns::available() {
        return;
    }
    let mut hosts = Hosts::up("dd", 4);
    let records = |ips: &[usize]| -> String {
        ips.iter().map(|i| format!("10.77.0.{i} members.cluster.svc members\n")).collect()
    };
    for i in 1..=4 {
        hosts.set_hosts_file(i, &records(&[1, 2, 3]));
    }
    let join = ["--retry-join", "members.cluster.svc", "--retry-interval", "1", "--rejoin-interval", "2"];
    // Node 3 starts first: the name lists 1, 2 and itself, and only it is up.
    let _a3 = Agent::start(&hosts, 3, &join);
    // Node 1 starts next; a join through the name reaches node 3 (and itself).
    let _a1 = Agent::start(&hosts, 1, &join);
    let _a2 = Agent::start(&hosts, 2, &join);
    let want = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946"), (3, "10.77.0.3:7946")]);
    assert!(
        wait_until(Duration::from_secs(30), || (1..=3).all(|i| table(&hosts, i) == want)),
        "one cluster through the name: {}",
        views(&hosts, &[1, 2, 3])
    );
    assert!(wait_until(Duration::from_secs(10), || (1..=3).all(|i| health_status(&hosts, i) == 200)));

    // Node 4 starts alone, behind a name that does not list it yet, and is not ready: its seeds
    // are a name with no record yet.
    hosts.set_hosts_file(4, "");
    let a4 = Agent::start(&hosts, 4, &["--retry-join", "members.cluster.svc", "--retry-interval", "1"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(health_status(&hosts, 4), 503, "not ready before its first join: {}", a4.log_text());
    assert!(a4.log_text().contains("retry-join failed"), "each failure is logged: {}", a4.log_text());
    // The records change: node 4 is listed and can resolve the name. Node 4's retry joins,
    // and becomes ready.
    for i in 1..=4 {
        hosts.set_hosts_file(i, &records(&[1, 2, 3, 4]));
    }
    let all = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946"), (3, "10.77.0.3:7946"), (4, "10.77.0.4:7946")]);
    assert!(
        wait_until(Duration::from_secs(30), || (1..=4).all(|i| table(&hosts, i) == all)),
        "node 4 found: {}",
        views(&hosts, &[1, 2, 3, 4])
    );
    assert!(wait_until(Duration::from_secs(10), || health_status(&hosts, 4) == 200), "node 4 ready");
}

/// A node that joined nobody (its own cluster) appears behind the name later: the others'
/// automatic re-join resolves the name again and brings it in, without it joining anyone.
#[test]
fn automatic_rejoin_resolves_the_seed_name_again() {
    if !netns::available() {
        return;
    }
    let mut hosts = Hosts::up("dr", 3);
    for i in 1..=3 {
        hosts.set_hosts_file(i, "10.77.0.1 members.cluster.svc\n10.77.0.2 members.cluster.svc\n");
    }
    let join = ["--join", "members.cluster.svc", "--rejoin-interval", "2"];
    let _a1 = Agent::start(&hosts, 1, &join);
    let _a2 = Agent::start(&hosts, 2, &join);
    let two = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946")]);
    assert!(wait_until(Duration::from_secs(20), || table(&hosts, 1) == two && table(&hosts, 2) == two));
    // Node 3 starts with no seeds at all: a cluster of one.
    let _a3 = Agent::start(&hosts, 3, &[]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(table(&hosts, 1), two, "nobody knows node 3 while the name does not list it");
    // The records now list node 3: within a re-join interval or two the clusters merge.
    for i in 1..=3 {
        hosts.set_hosts_file(
            i,
            "10.77.0.1 members.cluster.svc\n10.77.0.2 members.cluster.svc\n10.77.0.3 members.cluster.svc\n",
        );
    }
    let t = std::time::Instant::now();
    let all = alive_at(&[(1, "10.77.0.1:7946"), (2, "10.77.0.2:7946"), (3, "10.77.0.3:7946")]);
    assert!(
        wait_until(Duration::from_secs(20), || (1..=3).all(|i| table(&hosts, i) == all)),
        "merged through the re-resolved name: {}",
        views(&hosts, &[1, 2, 3])
    );
    eprintln!("[Rust] a node listed behind the seed name later was found by auto re-join after {:?}", t.elapsed());
}

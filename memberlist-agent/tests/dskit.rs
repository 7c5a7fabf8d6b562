//! Grafana dskit's memberlist KV — what Loki, Mimir, Tempo and Pyroscope run — with Rust nodes
//! in its cluster, on loopback. The dskit nodes are `interop/bin/dskitpeer` (dskit
//! v0.0.0-20260703122047-de1ec7541c44 with Grafana's memberlist fork
//! v0.3.1-0.20260515134459-1798cf41aca7, built by `scripts/test-all`): dskit's TCP-only
//! transport and a ring in the KV store, each node heartbeating its own instance. The Rust
//! nodes are `memberlist agent --transport dskit`, or the library with a delegate where the
//! test needs to see what dskit sends.

#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

use ports::{free_port, wait_until};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memberlist")
}

fn dskit_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/dskitpeer");
    assert!(p.exists(), "{} is missing: ./scripts/test-all builds it", p.display());
    p
}

#[derive(Default)]
struct Seen {
    /// memberlist's node table at the dskit node: name → state.
    table: BTreeMap<String, String>,
    /// The ring instances the dskit node's KV holds.
    ring: Vec<String>,
    /// Every (name, state) the table ever showed (dead and left nodes are reaped soon).
    ever: std::collections::BTreeSet<(String, String)>,
    ready: bool,
}

/// A dskit node: a child process, killed by PID when dropped.
struct Dskit {
    name: String,
    addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Seen>>,
    stderr: PathBuf,
}

impl Dskit {
    fn start(name: &str, join: Option<SocketAddr>, extra: &[&str]) -> Dskit {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stderr = std::env::temp_dir().join(format!("memberlist-dskit-test-{}-{name}.log", std::process::id()));
        let mut cmd = Command::new(dskit_bin());
        cmd.args(["-name", name, "-bind", &addr.to_string(), "-interval", "250ms"]);
        if let Some(j) = join {
            cmd.args(["-join", &j.to_string()]);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                let mut s = sink.lock().unwrap();
                match v["ev"].as_str() {
                    Some("ready") => s.ready = true,
                    Some("members") => {
                        let table: BTreeMap<String, String> = v["members"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| {
                                (
                                    m["name"].as_str().unwrap_or("").to_owned(),
                                    m["state"].as_str().unwrap_or("").to_owned(),
                                )
                            })
                            .collect();
                        for (n, st) in &table {
                            s.ever.insert((n.clone(), st.clone()));
                        }
                        s.table = table;
                    }
                    Some("ring") => {
                        s.ring = v["instances"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect();
                    }
                    _ => {}
                }
            }
        });
        let d = Dskit { name: name.to_owned(), addr, child, stdin, seen, stderr };
        wait_until(&format!("{name} ready"), Duration::from_secs(20), || d.seen.lock().unwrap().ready);
        d
    }

    fn state_of(&self, name: &str) -> Option<String> {
        self.seen.lock().unwrap().table.get(name).cloned()
    }

    fn was(&self, name: &str, state: &str) -> bool {
        self.seen.lock().unwrap().ever.contains(&(name.to_owned(), state.to_owned()))
    }

    fn ring(&self) -> Vec<String> {
        self.seen.lock().unwrap().ring.clone()
    }

    fn command(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Warning and error lines of dskit's log (logfmt on stderr).
    fn complaints(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("level=warn") || l.contains("level=error"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Dskit {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// `memberlist agent --transport dskit`.
struct Rust {
    child: Child,
    addr: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

impl Rust {
    fn start(name: &str, join: Option<SocketAddr>, extra: &[&str]) -> Rust {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::env::temp_dir().join(format!("memberlist-dskit-test-{}-{name}.log", std::process::id()));
        let mut cmd = Command::new(bin());
        cmd.args(["agent", "--name", name, "--transport", "dskit", "--bind", &addr.to_string()]);
        cmd.args(["--http", &http.to_string()]).args(extra);
        if let Some(j) = join {
            cmd.args(["--join", &j.to_string()]);
        }
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
        let r = Rust { child, addr, http, log };
        wait_until(&format!("{name}'s API"), Duration::from_secs(10), || std::net::TcpStream::connect(http).is_ok());
        r
    }

    fn state_of(&self, name: &str) -> Option<String> {
        let out = Command::new(bin()).args(["members", "--json", "--http", &self.http.to_string()]).output().unwrap();
        let members: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        members.into_iter().find(|m| m["name"] == name).and_then(|m| m["state"].as_str().map(str::to_owned))
    }

    fn complaints(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }

    /// A counter from the agent's `/metrics` (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(self.http) else { return 0.0 };
        let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    }

    fn sigterm(&mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Rust {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn alive_everywhere(dskit: &[&Dskit], rust: &[&Rust], names: &[&str]) -> bool {
    names.iter().all(|n| {
        dskit.iter().all(|d| d.state_of(n).as_deref() == Some("alive"))
            && rust.iter().all(|r| r.state_of(n).as_deref() == Some("alive"))
    })
}

/// Three dskit nodes and Rust nodes joining both ways, with `dskit_flags` on the dskit nodes
/// and `rust_flags` on the Rust ones; returns once everyone sees everyone alive.
fn cluster(tag: &str, dskit_flags: &[&str], rust_flags: &[&str]) -> (Vec<Dskit>, Vec<Rust>) {
    let d1 = Dskit::start(&format!("{tag}-d1"), None, dskit_flags);
    let d2 = Dskit::start(&format!("{tag}-d2"), Some(d1.addr), dskit_flags);
    let d3 = Dskit::start(&format!("{tag}-d3"), Some(d1.addr), dskit_flags);
    // A Rust node joins the dskit cluster …
    let r1 = Rust::start(&format!("{tag}-r1"), Some(d2.addr), rust_flags);
    // … and a dskit node joins through the Rust node, its only seed.
    let d4 = Dskit::start(&format!("{tag}-d4"), Some(r1.addr), dskit_flags);
    let names: Vec<String> = ["d1", "d2", "d3", "d4", "r1"].iter().map(|n| format!("{tag}-{n}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let ds = [&d1, &d2, &d3, &d4];
    wait_until("one cluster", Duration::from_secs(40), || alive_everywhere(&ds, &[&r1], &refs));
    (vec![d1, d2, d3, d4], vec![r1])
}

#[test]
fn rust_nodes_in_a_dskit_cluster_join_fail_and_leave_both_ways() {
    let (mut ds, mut rs) = cluster("m", &[], &[]);
    // dskit's KV keeps working with a Rust member: every dskit node holds every ring instance.
    wait_until("the ring", Duration::from_secs(20), || ds.iter().all(|d| d.ring().len() == 4));
    // kill -9 of a dskit node: dead at the Rust node.
    ds[2].kill9();
    let t = Instant::now();
    wait_until("m-d3 dead at m-r1", Duration::from_secs(60), || rs[0].state_of("m-d3").as_deref() == Some("dead"));
    let dskit_dead = t.elapsed();
    // Graceful leave of a dskit node: left at the Rust node.
    ds[1].command("leave");
    wait_until("m-d2 left at m-r1", Duration::from_secs(30), || rs[0].state_of("m-d2").as_deref() == Some("left"));
    // A second Rust node; then a graceful leave of the first: left at dskit.
    let r2 = Rust::start("m-r2", Some(ds[0].addr), &[]);
    wait_until("m-r2 in", Duration::from_secs(30), || ds[0].state_of("m-r2").as_deref() == Some("alive"));
    // The agent sends no user messages of its own into a dskit cluster: a broadcast is refused
    // (dskit would log it as an invalid KV update).
    let (status, body) = post(r2.http, "/v1/broadcast", "hello");
    assert_eq!(status, 409, "{body}");
    // While they are up, no complaints from dskit about the Rust nodes.
    std::thread::sleep(Duration::from_secs(6));
    for d in [&ds[0], &ds[3]] {
        let bad: Vec<String> =
            d.complaints().into_iter().filter(|l| l.contains("m-r1") || l.contains("m-r2")).collect();
        assert!(bad.is_empty(), "{} complained: {bad:#?}", d.name);
    }
    assert!(rs[0].complaints().is_empty() && r2.complaints().is_empty(), "{:#?}", rs[0].complaints());
    rs[0].sigterm();
    wait_until("m-r1 left at dskit", Duration::from_secs(30), || ds[0].was("m-r1", "left"));
    // kill -9 of a Rust node: dead at dskit.
    let mut r2 = r2;
    let _ = r2.child.kill();
    let t = Instant::now();
    // dskit probes every 5 s, and with few nodes to confirm a suspicion its timeout runs long.
    wait_until("m-r2 dead at dskit", Duration::from_secs(150), || {
        ds[0].was("m-r2", "dead") && ds[3].was("m-r2", "dead")
    });
    let rust_dead = t.elapsed();
    eprintln!("[dskit] kill -9 dskit -> dead at rust after {dskit_dead:?}; kill -9 rust -> dead at dskit after {rust_dead:?}; leaves seen as left both ways");
}

#[test]
fn snappy_both_ways_and_cluster_labels() {
    let (ds, rs) = cluster(
        "s",
        &["-compression", "snappy", "-label", "loki-prod"],
        &["--compression", "snappy", "--label", "loki-prod"],
    );
    wait_until("the ring over snappy", Duration::from_secs(20), || ds.iter().all(|d| d.ring().len() == 4));
    assert!(rs[0].complaints().is_empty(), "{:#?}", rs[0].complaints());
    // Snappy-compressed packets from the fork arrived and were decoded.
    wait_until("snappy packets at the Rust node", Duration::from_secs(20), || {
        rs[0].metric("memberlist_decompress{algo=\"snappy\"}") > 0.0
    });
    assert_eq!(rs[0].metric("memberlist_decompress{algo=\"lzw\"}"), 0.0, "the dskit nodes send snappy only");
    assert_eq!(rs[0].metric("memberlist_dropped{reason=\"malformed\"}"), 0.0);
    // And the fork decoded ours: no decompression complaints at all.
    let undecodable: Vec<String> = ds
        .iter()
        .flat_map(|d| d.complaints())
        .filter(|l| l.contains("ecompress") || l.contains("unknown algorithm"))
        .collect();
    assert!(undecodable.is_empty(), "{undecodable:#?}");
    // Another cluster's label is refused.
    let stranger = Rust::start("s-stranger", Some(ds[0].addr), &["--label", "mimir-prod"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ds[0].state_of("s-stranger"), None, "refused");
    assert!(stranger.state_of("s-d1").is_none());
    let bad: Vec<String> = ds.iter().flat_map(|d| d.complaints()).filter(|l| l.contains("s-r1")).collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The library with a delegate: dskit's KV updates (user messages) and its full state (push/pull
/// user state) reach the delegate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dskit_kv_traffic_reaches_a_rust_delegate() {
    #[derive(Default)]
    struct Counting {
        msgs: AtomicUsize,
        states: AtomicUsize,
    }
    struct D(Arc<Counting>);
    impl memberlist::Delegate for D {
        fn notify_msg(&self, _from: SocketAddr, _msg: &[u8]) {
            self.0.msgs.fetch_add(1, Ordering::Relaxed);
        }
        fn merge_remote_state(&self, state: &[u8], _join: bool) {
            if !state.is_empty() {
                self.0.states.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let d1 = tokio::task::spawn_blocking(|| Dskit::start("k-d1", None, &[])).await.unwrap();
    let seed = d1.addr;
    let d2 = tokio::task::spawn_blocking(move || Dskit::start("k-d2", Some(seed), &[])).await.unwrap();
    let counts = Arc::new(Counting::default());
    let opts = memberlist::Options::lan("k-r1")
        .bind("127.0.0.1:0".parse().unwrap())
        .dskit(memberlist::DskitConfig::default())
        .delegate(D(counts.clone()))
        .configure(|c| c.push_pull_interval = Duration::from_secs(2));
    let node = memberlist::Memberlist::create(opts).await.unwrap();
    assert_eq!(node.join(&[d1.addr]).await.unwrap(), 1);
    let end = Instant::now() + Duration::from_secs(30);
    while counts.msgs.load(Ordering::Relaxed) < 5 || counts.states.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < end,
            "msgs {}, states {}",
            counts.msgs.load(Ordering::Relaxed),
            counts.states.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = node.stats();
    assert_eq!((stats.dropped_malformed, stats.dropped_limit), (0, 0), "{stats:?}");
    eprintln!(
        "[dskit] KV updates at the Rust delegate: {} messages, {} push/pull states",
        counts.msgs.load(Ordering::Relaxed),
        counts.states.load(Ordering::Relaxed)
    );
    node.shutdown().await.unwrap();
    drop(d2);
}

/// A CA and one node certificate for 127.0.0.1 (every node shares it, as a ring's pods often
/// share a Secret), written as PEM files; returns (dir, ca, cert, key).
fn test_pki(tag: &str) -> (PathBuf, String, String, String) {
    let dir = std::env::temp_dir().join(format!("memberlist-dskit-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "memberlist-rs test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["memberlist.ring.svc".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&node_key, &issuer).unwrap();
    let path = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("node.pem"), cert.pem()).unwrap();
    std::fs::write(path("node-key.pem"), node_key.serialize_pem()).unwrap();
    let (ca, cert, key) = (path("ca.pem"), path("node.pem"), path("node-key.pem"));
    (dir, ca, cert, key)
}

#[test]
fn tls_on_dskits_transport_both_ways() {
    let (dir, ca, cert, key) = test_pki("t");
    let go_tls = ["-tls", "-tls-ca", &ca, "-tls-cert", &cert, "-tls-key", &key];
    let rust_tls = ["--tls", "--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    let (ds, rs) = cluster("t", &go_tls, &rust_tls);
    wait_until("the ring over TLS", Duration::from_secs(20), || ds.iter().all(|d| d.ring().len() == 4));
    assert!(rs[0].complaints().is_empty(), "{:#?}", rs[0].complaints());
    // A node without TLS is refused; so is one that trusts another CA.
    let plain = Rust::start("t-plain", Some(ds[0].addr), &[]);
    let (other_dir, other_ca, ..) = test_pki("other");
    let stranger = Rust::start(
        "t-stranger",
        Some(ds[0].addr),
        &["--tls", "--tls-ca", &other_ca, "--tls-cert", &cert, "--tls-key", &key],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ds[0].state_of("t-plain"), None);
    assert_eq!(ds[0].state_of("t-stranger"), None);
    assert!(plain.state_of("t-d1").is_none() && stranger.state_of("t-d1").is_none());
    // Certificates named by DNS: --tls-server-name checks that name instead of the IP.
    let named = Rust::start(
        "t-named",
        Some(ds[1].addr),
        &["--tls", "--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key, "--tls-server-name", "memberlist.ring.svc"],
    );
    wait_until("t-named in", Duration::from_secs(30), || ds[1].state_of("t-named").as_deref() == Some("alive"));
    drop(named);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other_dir);
}

fn post(http: SocketAddr, path: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_owned())
}

/// Records every datagram a Rust node on dskit's transport receives.
struct Recording {
    inner: memberlist::DskitTransport,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl memberlist::Transport for Recording {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<()> {
        self.inner.send_to(buf, to)
    }
    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> memberlist::BoxFuture<'a, std::io::Result<(usize, SocketAddr)>> {
        Box::pin(async move {
            let (n, from) = self.inner.recv_from(buf).await?;
            self.seen.lock().unwrap().push(buf[..n].to_vec());
            Ok((n, from))
        })
    }
    fn recv_packet(&self) -> memberlist::BoxFuture<'_, std::io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(async move {
            let (packet, from) = self.inner.recv_packet().await?;
            self.seen.lock().unwrap().push(packet.clone());
            Ok((packet, from))
        })
    }
    fn connect(&self, to: SocketAddr) -> memberlist::BoxFuture<'static, std::io::Result<memberlist::BoxConn>> {
        self.inner.connect(to)
    }
    fn accept(&self) -> memberlist::BoxFuture<'_, std::io::Result<(memberlist::BoxConn, SocketAddr)>> {
        self.inner.accept()
    }
    fn set_advertise_addr(&self, addr: SocketAddr) {
        self.inner.set_advertise_addr(addr)
    }
    fn max_packet_size(&self) -> usize {
        self.inner.max_packet_size()
    }
    fn close(&self) -> memberlist::BoxFuture<'_, ()> {
        self.inner.close()
    }
}

/// Captures snappy-compressed packets from real dskit nodes into a JSON file (the golden
/// vectors in memberlist-proto/tests/data/snappy-vectors.json came from this):
/// `CAPTURE_SNAPPY=/tmp/out.json cargo test -p memberlist-agent --test dskit capture -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a capture tool, not a test"]
async fn capture_snappy_packets_from_the_fork() {
    let out = std::env::var("CAPTURE_SNAPPY").expect("CAPTURE_SNAPPY=<file>");
    let d1 = tokio::task::spawn_blocking(|| Dskit::start("fork-a", None, &["-compression", "snappy"])).await.unwrap();
    let seed = d1.addr;
    let d2 = tokio::task::spawn_blocking(move || Dskit::start("fork-b", Some(seed), &["-compression", "snappy"]))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = memberlist::DskitTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let transport = Arc::new(Recording { inner, seen: seen.clone() });
    let opts = memberlist::Options::lan("capture").dskit(memberlist::DskitConfig::default());
    let node = memberlist::Memberlist::with_transport(opts, transport).await.unwrap();
    node.join(&[d1.addr]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let snappy: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.first() == Some(&9) || (p.first() == Some(&12) && p.get(5) == Some(&9)))
        .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    std::fs::write(&out, serde_json::to_string_pretty(&snappy).unwrap()).unwrap();
    eprintln!("{} compressed packets captured into {out}", snappy.len());
    node.shutdown().await.unwrap();
    drop(d2);
}

//! The real binary: three agents in three processes, `members`, the HTTP API, SIGTERM.

#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

#[path = "support/agent.rs"]
#[allow(dead_code)]
mod agent;

use agent::{bin, eventually, post, Agent};
use ports::free_port;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn three_agents_members_http_api_and_sigterm_leaves() {
    let (a, seed) = Agent::start("a1", None, &[]);
    let (_b, _) = Agent::start("a2", Some(seed), &[]);
    let (mut c, _) = Agent::start("a3", Some(seed), &[]);
    eventually("3 alive members", || {
        let m = a.members();
        m.len() == 3 && m.iter().all(|x| x["state"] == "alive")
    });
    // The JSON carries the documented fields.
    let m = a.members();
    let a3 = m.iter().find(|x| x["name"] == "a3").unwrap();
    for field in ["name", "addr", "port", "state", "incarnation", "meta", "protocol", "delegate"] {
        assert!(!a3[field].is_null(), "{field} missing in {a3}");
    }
    assert_eq!(a3["meta"], "role=a3");
    assert_eq!(a3["protocol"]["max"], 5);
    // The aligned table, like `consul members`.
    let out = Command::new(bin()).args(["members", "--http", &a.http.to_string()]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Node") && lines[0].contains("Address") && lines[0].contains("Status"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    let col = lines[0].find("Status").unwrap();
    assert!(lines[1..].iter().all(|l| l[col..].starts_with("alive")), "aligned: {table}");
    // /v1/self and /v1/health.
    let (status, body) = a.get("/v1/self", None);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["name"], "a1");
    let (_, body) = a.get("/v1/health", None);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["members"]["alive"], 3);
    assert!(health["health_score"].is_u64());
    // /metrics parses as Prometheus text and carries Go's metric names.
    let (status, metrics) = a.get("/metrics", None);
    assert_eq!(status, 200);
    let mut names = Vec::new();
    for line in metrics.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name {name:?}");
        names.push(name.to_owned());
    }
    for want in ["memberlist_msg_alive", "memberlist_health_score", "memberlist_node_instances"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // SIGTERM: a graceful leave, exit 0, seen as left (not dead).
    let status = c.sigterm();
    assert!(status.success(), "{status:?}");
    eventually("a3 left", || a.members().iter().any(|x| x["name"] == "a3" && x["state"] == "left"));
    let out =
        Command::new(bin()).args(["members", "--status", "left", "--http", &a.http.to_string()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("a3"));
}

#[test]
fn the_api_can_require_a_token() {
    let (a, _) = Agent::start("locked", None, &["--token", "s3cret"]);
    assert_eq!(a.get("/v1/members", None).0, 401);
    assert_eq!(a.get("/v1/members", Some("wrong")).0, 401);
    assert_eq!(a.get("/v1/members", Some("s3cret")).0, 200);
    assert_eq!(a.get("/nope", Some("s3cret")).0, 404);
    // The readiness probe stays open: kubelets and load balancers hold no token.
    assert_eq!(a.get("/v1/health", None).0, 200);
    assert_eq!(a.get("/metrics", None).0, 401);
}

#[test]
fn keys_from_a_file_and_another_clusters_label_is_refused_logged_and_counted() {
    let dir = std::env::temp_dir().join(format!("memberlist-agent-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("gossip.key");
    std::fs::write(&key_file, "# from a Secret\nAAECAwQFBgcICQoLDA0ODw==\n").unwrap();
    let log = dir.join("a.log");
    let (port, http) = (free_port(), free_port());
    let child = Command::new(bin())
        .args(["agent", "--name", "kf-a", "--bind", &format!("127.0.0.1:{port}"), "--config", "local"])
        .args(["--http", &format!("127.0.0.1:{http}"), "--label", "cluster-a"])
        .args(["--key-file", key_file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let a = Agent { child, http: format!("127.0.0.1:{http}").parse().unwrap() };
    a.wait_for_api("the agent");
    // Same key file, same label: joins.
    let kf = key_file.to_str().unwrap();
    let (b, _) = Agent::start("kf-b", Some(port), &["--label", "cluster-a", "--key-file", kf]);
    eventually("kf-b joined", || a.members().iter().any(|m| m["name"] == "kf-b" && m["state"] == "alive"));
    drop(b);
    // Another cluster's label on the same key: refused, logged at warn with the peer, counted.
    let (c, _) = Agent::start("kf-c", Some(port), &["--label", "cluster-b", "--key-file", kf]);
    eventually("the label drop is counted", || {
        a.get("/metrics", None).1.lines().any(|l| l.starts_with("memberlist_dropped{reason=\"label\"}"))
    });
    eventually("the refusal is logged", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("WARN") && text.contains("refused a stream from 127.0.0.1:") && text.contains("label")
    });
    assert!(!a.members().iter().any(|m| m["name"] == "kf-c"), "kf-c stays out");
    drop(c);
    // A bad key file stops the agent with a clear error.
    std::fs::write(&key_file, "not-a-key\n").unwrap();
    let out = Command::new(bin()).args(["agent", "--key-file", kf]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad key on key line 1"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_runs_and_reports_timings() {
    let out = Command::new(bin()).args(["demo", "--nodes", "4"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("node-3 dead at every node"), "{text}");
    assert!(text.contains("node-2 seen as left (not dead) everywhere"), "{text}");
    assert!(text.contains("timings: converge"), "{text}");
}

#[test]
fn agent_with_bad_settings_fails_clearly() {
    let out = Command::new(bin()).args(["agent", "--config", "galaxy", "--http", "127.0.0.1:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lan, wan or local"));
    let out = Command::new(bin()).args(["agent", "--meta", "novalue"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("K=V"));
    let out = Command::new(bin())
        .args(["agent", "--delegate-protocol-version", "5", "--delegate-protocol-max", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a Serf pool needs 5 in [2, 5]"));
    let out = Command::new(bin()).args(["agent", "--tag", "novalue"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tag takes K=V"));
    let out = Command::new(bin()).args(["agent", "--tag", "a=b", "--meta", "c=d"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let long = format!("k={}", "v".repeat(600));
    let out = Command::new(bin()).args(["agent", "--tag", &long]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the metadata limit of 512 bytes"));
    let out = Command::new(bin()).args(["members", "--http", "127.0.0.1:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
}

#[test]
fn sim_prints_a_summary_ending_in_the_trace_hash() {
    let out = Command::new(bin())
        .args(["sim", "--scenario", "bootstrap-crash", "--nodes", "30", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().lines().last().unwrap().starts_with("trace_hash="), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("done in"));
}

#[test]
fn post_join_broadcast_leave_and_server_sent_events() {
    use std::io::{BufRead, BufReader, Write};
    let (a, seed) = Agent::start("e1", None, &[]);
    let (b, _) = Agent::start("e2", None, &[]);
    // POST /v1/join.
    let (status, body) = post(b.http, "/v1/join", &format!("[\"127.0.0.1:{seed}\"]"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["contacted"], 1);
    eventually("2 members", || a.members().len() == 2);
    // GET /v1/events on a, then POST /v1/broadcast on b.
    let mut sse = std::net::TcpStream::connect(a.http).unwrap();
    write!(sse, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(sse);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = post(b.http, "/v1/broadcast", "hello over sse");
    assert_eq!(status, 200);
    let mut seen = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("stream ended: {seen:?}");
        }
        seen.push(line.trim_end().to_owned());
        if line.starts_with("data:") && line.contains("hello over sse") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l == "event: message"), "{seen:?}");
    // POST /v1/leave: b leaves, a sees it left.
    let (status, body) = post(b.http, "/v1/leave", "");
    assert_eq!(status, 200, "{body}");
    eventually("e2 left", || a.members().iter().any(|x| x["name"] == "e2" && x["state"] == "left"));
}

#[test]
fn agent_reads_a_toml_config_file() {
    let dir = std::env::temp_dir().join(format!("memberlist-agent-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.toml");
    let (port, http) = (free_port(), free_port());
    std::fs::write(
        &file,
        format!(
            "name = \"from-file\"\nbind = \"127.0.0.1:{port}\"\nhttp = \"127.0.0.1:{http}\"\nconfig = \"local\"\nmeta = [\"zone=a\"]\n"
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["agent", "--config-file", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent { child, http: format!("127.0.0.1:{http}").parse().unwrap() };
    agent.wait_for_api("the agent");
    let me: Value = serde_json::from_str(&agent.get("/v1/self", None).1).unwrap();
    assert_eq!(
        (me["name"].as_str(), me["meta"].as_str(), me["port"].as_u64()),
        (Some("from-file"), Some("zone=a"), Some(u64::from(port)))
    );
    // An unknown key in the file is an error, not ignored.
    std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
    let out = Command::new(bin()).args(["agent", "--config-file", file.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn retry_join_waits_for_a_seed_that_starts_later_and_health_says_when_ready() {
    // The seed's port is chosen now; nobody listens there yet.
    let seed_port = free_port();
    let (late, _) = Agent::start(
        "late",
        None,
        &["--retry-join", &format!("127.0.0.1:{seed_port}"), "--retry-interval", "1", "--rejoin-interval", "1"],
    );
    // Not ready: the readiness probe answers 503 until a join succeeds.
    let (status, body) = late.get("/v1/health", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], false);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(late.get("/v1/health", None).0, 503, "still no seed");
    // The seed comes up on that port; the next attempt joins it.
    let seed_http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["agent", "--name", "seed", "--bind", &format!("127.0.0.1:{seed_port}")])
        .args(["--http", &seed_http.to_string(), "--config", "local"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let seed = Agent { child: cmd.spawn().unwrap(), http: seed_http };
    eventually("late is ready", || late.get("/v1/health", None).0 == 200);
    eventually("the seed lists late", || seed_api_lists(&seed, "late"));
    // An agent with no seeds is ready at once.
    assert_eq!(seed.get("/v1/health", None).0, 200);
}

fn seed_api_lists(a: &Agent, name: &str) -> bool {
    std::net::TcpStream::connect(a.http).is_ok() && a.members().iter().any(|m| m["name"] == name)
}

#[test]
fn retry_join_gives_up_after_retry_max_attempts() {
    let nobody = free_port();
    let http = free_port();
    let started = Instant::now();
    let out = Command::new(bin())
        .args(["agent", "--name", "quitter", "--bind", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{http}"), "--config", "local"])
        .args(["--retry-join", &format!("127.0.0.1:{nobody}"), "--retry-interval", "1", "--retry-max", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "exits with an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max join retry exhausted"), "{stderr}");
    // Each failure is logged with its reason.
    assert_eq!(stderr.matches("retry-join failed").count(), 2, "{stderr}");
    assert!(stderr.contains("Connection refused") || stderr.contains("connection refused"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn advertise_takes_an_ip_and_keeps_the_bound_port() {
    let (a, port) = Agent::start("adv", None, &["--advertise", "127.0.0.9"]);
    let me: Value = serde_json::from_str(&a.get("/v1/self", None).1).unwrap();
    assert_eq!((me["addr"].as_str(), me["port"].as_u64()), (Some("127.0.0.9"), Some(u64::from(port))));
    let out = Command::new(bin()).args(["agent", "--advertise", "seed.example"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--advertise takes an IP address"));
}

#[test]
fn serf_settings_from_flags_and_the_toml_file() {
    // Flags: tags in Serf's encoding and Serf's delegate protocol range.
    let serf = ["--delegate-protocol-version", "5", "--delegate-protocol-min", "2", "--delegate-protocol-max", "5"];
    let mut flags = vec!["--tag", "role=db"];
    flags.extend(serf);
    let (a, _) = Agent::start("serfish", None, &flags);
    let me: Value = serde_json::from_str(&a.get("/v1/self", None).1).unwrap();
    assert_eq!((me["tags"]["role"].as_str(), me["delegate"]["cur"].as_u64()), (Some("db"), Some(5)), "{me}");
    // The same from the settings file.
    let dir = std::env::temp_dir().join(format!("memberlist-agent-serf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.toml");
    let (port, http) = (free_port(), free_port());
    std::fs::write(
        &file,
        format!(
            "name = \"tagged\"\nbind = \"127.0.0.1:{port}\"\nhttp = \"127.0.0.1:{http}\"\nconfig = \"local\"\n\
             delegate_protocol_version = 5\ndelegate_protocol_min = 2\ndelegate_protocol_max = 5\n\
             tags = {{ role = \"web\", dc = \"eu-1\" }}\n"
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["agent", "--config-file", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent { child, http: format!("127.0.0.1:{http}").parse().unwrap() };
    agent.wait_for_api("the agent");
    let me: Value = serde_json::from_str(&agent.get("/v1/self", None).1).unwrap();
    assert_eq!(me["tags"], serde_json::json!({"role": "web", "dc": "eu-1"}), "{me}");
    assert_eq!(me["delegate"], serde_json::json!({"min": 2, "max": 5, "cur": 5}), "{me}");
    // The table shows the tags, not the encoded bytes.
    let out = Command::new(bin()).args(["members", "--http", &agent.http.to_string()]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().nth(1).is_some_and(|l| l.trim_end().ends_with("dc=eu-1,role=web")), "{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}

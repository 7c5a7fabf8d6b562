//! `/metrics` as a Prometheus server scrapes it: every metric Go memberlist emits, under Go's
//! name and of Go's kind (timers as summaries with quantiles), each carrying the agent's
//! `--metric-label`s (Go's `MetricLabels`), and values that follow what happens.

#[path = "support/agent.rs"]
#[allow(dead_code)]
mod agent;
#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

use std::collections::BTreeMap;

use agent::{eventually, Agent};

/// Go memberlist's metrics as its Prometheus sink shows them: name and type.
const GO_METRICS: [(&str, &str); 18] = [
    ("memberlist_health_score", "gauge"),
    ("memberlist_node_instances", "gauge"),
    ("memberlist_queue_broadcasts", "gauge"),
    ("memberlist_msg_alive", "counter"),
    ("memberlist_msg_suspect", "counter"),
    ("memberlist_msg_dead", "counter"),
    ("memberlist_degraded_probe", "counter"),
    ("memberlist_degraded_timeout", "counter"),
    ("memberlist_udp_sent", "counter"),
    ("memberlist_udp_received", "counter"),
    ("memberlist_tcp_sent", "counter"),
    ("memberlist_tcp_accept", "counter"),
    ("memberlist_tcp_connect", "counter"),
    ("memberlist_probeNode", "summary"),
    ("memberlist_gossip", "summary"),
    ("memberlist_pushPullNode", "summary"),
    ("memberlist_size_local", "gauge"),
    ("memberlist_size_remote", "summary"),
];

/// `# TYPE` lines of a scrape: name → type.
fn types(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// The value of the first sample line starting with `series`.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok())
}

#[test]
fn every_go_metric_under_its_name_and_kind_with_the_metric_labels() {
    let labels = ["--metric-label", "cluster=blue", "--metric-label", "dc=lab"];
    let (a, seed) = Agent::start("m-a", None, &labels);
    let (b, _) = Agent::start("m-b", Some(seed), &labels);
    let (mut c, _) = Agent::start("m-c", Some(seed), &labels);
    eventually("3 members", || a.members().len() == 3);
    // The joiners started push/pulls (timed, sized) and everyone probes and gossips.
    let mut scrape = String::new();
    let missing = |scrape: &str| -> Vec<&str> {
        let t = types(scrape);
        GO_METRICS.iter().filter(|(n, _)| !t.contains_key(*n)).map(|(n, _)| *n).collect()
    };
    eventually("every Go metric on b", || {
        scrape = b.get("/metrics", None).1;
        missing(&scrape).is_empty()
    });
    let t = types(&scrape);
    for (name, kind) in GO_METRICS {
        assert_eq!(t[name], kind, "{name} is a {kind}");
    }
    // Timers in milliseconds with quantiles, as go-metrics' Prometheus sink shows them.
    for timer in ["memberlist_probeNode", "memberlist_gossip", "memberlist_pushPullNode"] {
        assert!(scrape.lines().any(|l| l.starts_with(timer) && l.contains("quantile=\"0.99\"")), "{timer}: {scrape}");
        let count = value(&scrape, &format!("{timer}_count")).unwrap_or(0.0);
        assert!(count >= 1.0, "{timer} recorded: {scrape}");
    }
    let probe_p50 = scrape.lines().find(|l| l.starts_with("memberlist_probeNode{") && l.contains("quantile=\"0.5\""));
    let p50: f64 = probe_p50.and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok()).unwrap();
    assert!(p50 > 0.0 && p50 < 1000.0, "a probe on loopback takes well under a second: {p50} ms");
    // Every memberlist series carries both labels.
    for line in scrape.lines().filter(|l| l.starts_with("memberlist_")) {
        assert!(line.contains("cluster=\"blue\"") && line.contains("dc=\"lab\""), "labels on {line}");
    }
    assert!(scrape.contains("node_state=\"alive\""), "extra labels keep their own: {scrape}");
    // Values follow the cluster: c is killed, a counts the suspicion and the death.
    let _ = c.child.kill();
    let _ = c.child.wait();
    eventually("a counts m-c dead", || {
        let s = a.get("/metrics", None).1;
        let dead = s.lines().find(|l| l.starts_with("memberlist_node_instances{") && l.contains("node_state=\"dead\""));
        let dead = dead.and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse::<f64>().ok());
        dead == Some(1.0) && value(&s, "memberlist_msg_suspect{").is_some_and(|v| v >= 1.0)
    });
}

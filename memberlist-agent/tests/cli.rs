//! The real `memberlist` binary: decode every captured vector, refuse bad input and flags.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn memberlist(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memberlist"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn vectors() -> Vec<Value> {
    serde_json::from_str(include_str!("../../memberlist-proto/tests/data/wire-vectors.json")).unwrap()
}

#[test]
fn decode_prints_the_recorded_tree_of_every_vector() {
    for v in vectors() {
        let mut args = vec!["decode"];
        if !v["dir"].as_str().unwrap().starts_with("udp") {
            args.push("--stream");
        }
        if let Some(k) = v["key_hex"].as_str() {
            args.extend(["--key", k]);
        }
        if let Some(l) = v["label"].as_str() {
            args.extend(["--label", l]);
        }
        args.push("-");
        let out = memberlist(&args, Some(v["hex"].as_str().unwrap().as_bytes()));
        assert!(out.status.success(), "{}: {}", v["id"], String::from_utf8_lossy(&out.stderr));
        let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(tree, v["decoded"], "{}", v["id"]);
    }
}

#[test]
fn decode_reads_hex_arguments_and_raw_stdin() {
    let out = memberlist(&["decode", "0x0b81a5 5365714e6f07"], None);
    assert!(out.status.success());
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree[0]["body"]["SeqNo"], 7);
    let out = memberlist(&["decode", "--raw", "-"], Some(&hex::decode("0b81a55365714e6f07").unwrap()));
    assert!(out.status.success());
}

#[test]
fn decode_fails_clearly_on_bad_input() {
    // Not hex.
    let out = memberlist(&["decode", "zz"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid hex"));
    // An encrypted packet without a key: non-zero, with a hint.
    let enc = vectors().into_iter().find(|v| v["id"] == "enc-ping").unwrap();
    let out = memberlist(&["decode", enc["hex"].as_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key"), "{}", String::from_utf8_lossy(&out.stderr));
    // The wrong key.
    let out = memberlist(&["decode", "--key", "AAAAAAAAAAAAAAAAAAAAAA==", enc["hex"].as_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no installed keys could decrypt"));
    // A bad key size.
    let out = memberlist(&["decode", "--key", "AAEC", "00"], None);
    assert!(!out.status.success());
    // A CRC mismatch is reported in the tree (crc_ok false) and the message still decoded.
    let crc = vectors().into_iter().find(|v| v["id"] == "suspect").unwrap();
    let mut bytes = hex::decode(crc["hex"].as_str().unwrap()).unwrap();
    bytes[1] ^= 0xff;
    let out = memberlist(&["decode", &hex::encode(&bytes)], None);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree[0]["crc_ok"], false);
    assert_eq!(tree[1]["name"], "suspect");
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = memberlist(&["decode", "--no-such-flag", "00"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    let out = memberlist(&["no-such-command"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = memberlist(&["decode"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keygen_prints_a_fresh_32_byte_base64_key() {
    let a = memberlist(&["keygen"], None);
    let b = memberlist(&["keygen"], None);
    assert!(a.status.success());
    let a = String::from_utf8(a.stdout).unwrap();
    assert_eq!(a.trim().len(), 44);
    assert_ne!(a, String::from_utf8(b.stdout).unwrap());
    // It is accepted back as a key (a plaintext stream decodes with keys set, as with Go's
    // GossipVerifyIncoming off).
    let out =
        memberlist(&["decode", "--stream", "--key", a.trim(), "0881aa557365724d73674c656e077669612d746370"], None);
    assert!(out.status.success());
}

#[test]
fn samples_all_decode() {
    let out = memberlist(&["decode", "--samples"], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("25 samples captured from Go memberlist decoded, 0 failed"));
}

#[test]
fn agent_refuses_a_zero_rejoin_interval() {
    let out = memberlist(&["agent", "--rejoin-interval", "0", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rejoin-interval must be at least 1 second"), "{err}");
}

#[test]
fn bench_smoke_mode_measures_every_kind_of_cluster() {
    // The benchmark runner end to end at toy size: Rust in one process, Rust one process per
    // node, Go peers (built by scripts/test-all).
    let gopeer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/gopeer");
    assert!(gopeer.exists(), "{} is missing: ./scripts/test-all builds it", gopeer.display());
    let svg = std::env::temp_dir().join(format!("bench-smoke-{}.svg", std::process::id()));
    let out =
        memberlist(&["bench", "--smoke", "--gopeer", gopeer.to_str().unwrap(), "--svg", svg.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("| 4 |")).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[6], "1", "one kill timed: {row}");
        assert_eq!(cells[7], "0", "no false death: {row}");
        let bytes: f64 = cells[10].split('/').nth(1).unwrap().trim().parse().unwrap();
        assert!(bytes > 0.0, "traffic measured: {row}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    // One line per kind of cluster (plotters draws axes and ticks as thinner polylines).
    let series = chart.lines().filter(|l| l.starts_with("<polyline") && l.contains(r#"stroke-width="2""#)).count();
    assert_eq!(series, 3, "{chart}");
    let _ = std::fs::remove_file(svg);
}

#[test]
fn soak_churns_rust_and_go_processes_and_the_cluster_converges() {
    // The churn soak at toy size (issue 19 §4; the 30 + 5 process, 10-minute run is in
    // BENCHMARKS.md): every 0.5 s a process is killed with SIGKILL and restarts in place up to
    // 3 s later; afterwards every process holds every name alive, and none grew.
    let gopeer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/gopeer");
    assert!(gopeer.exists(), "{} is missing: ./scripts/test-all builds it", gopeer.display());
    let args = ["soak", "--rust", "6", "--go", "3", "--secs", "20", "--every-secs", "0.5", "--down-max-secs", "3"];
    let out = memberlist(&[&args[..], &["--long-lived", "3", "--gopeer", gopeer.to_str().unwrap()]].concat(), None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let churn = text.lines().find(|l| l.starts_with("churn: ")).unwrap_or_default();
    let kills: usize = churn.split_whitespace().nth(1).and_then(|k| k.parse().ok()).unwrap_or(0);
    assert!(kills >= 30, "{text}");
    let go: usize = churn.split('(').nth(1).and_then(|g| g.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    assert!(go >= 5, "Go processes were killed too: {text}");
    assert!(text.lines().any(|l| l.starts_with("converged ") && l.contains("after the churn stopped")), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("| r") || l.starts_with("| g")).count(), 3, "{text}");
    assert!(text.contains("soak: passed"), "{text}");
}

#[test]
fn mass_restart_of_rust_and_go_processes_leaves_no_one_dead() {
    // Go memberlist #311 at toy size (issue 19 §1; the 30-process runs, Go beside Rust, are in
    // BENCHMARKS.md): 6 Rust and 3 Go processes, each killed with SIGKILL within 20 s and down
    // 10-14 s — long enough to be declared dead by those still running — then restarted in
    // place with fresh state through one random running member. The cluster held members dead meanwhile; afterwards
    // every process holds every name alive, within the bound, and none is left held dead.
    let gopeer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/gopeer");
    assert!(gopeer.exists(), "{} is missing: ./scripts/test-all builds it", gopeer.display());
    let args = ["mass-restart", "--rust", "6", "--go", "3", "--within-secs", "20", "--down-min-secs", "10"];
    let more = ["--down-max-secs", "14", "--stable-secs", "5", "--gopeer", gopeer.to_str().unwrap()];
    let out = memberlist(&[&args[..], &more[..]].concat(), None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let during = text.lines().find(|l| l.starts_with("every process restarted")).unwrap_or_default();
    let held: usize =
        during.split("at most ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    assert!(held >= 1, "the restarts left members dead to recover from: {text}");
    assert!(text.contains("restart -> held dead or suspect nowhere: ") && text.contains("never: none"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("all alive everywhere ")), "{text}");
    assert!(text.contains("stuck_dead=0") && text.contains("mass-restart: passed"), "{text}");
}

#[test]
fn rolling_restart_of_rust_and_go_processes_leaves_no_ghost() {
    // Kubernetes rolling restarts at toy size (issue 19 §2; the 30-process runs, Go beside
    // Rust, are in BENCHMARKS.md): 5 Rust and 3 Go processes, one killed every second without
    // leaving and a new member under a new name started on the address of the one killed a
    // second before. Every killed name leaves every table, every new member is alive everywhere,
    // and no killed name is held past the bound Go's rules allow.
    let gopeer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bin/gopeer");
    assert!(gopeer.exists(), "{} is missing: ./scripts/test-all builds it", gopeer.display());
    let args = ["rolling-restart", "--rust", "5", "--go", "3", "--every-secs", "1"];
    let out = memberlist(&[&args[..], &["--gopeer", gopeer.to_str().unwrap()]].concat(), None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("replaced 8 members"), "{text}");
    let longest = text.lines().find(|l| l.starts_with("longest a killed member stayed listed: ")).unwrap_or_default();
    let secs: f64 = longest.rsplit(": ").next().and_then(|v| v.trim_end_matches(" s").parse().ok()).unwrap_or(0.0);
    assert!(secs > 0.0, "killed members were listed for a while before they were reaped: {text}");
    for line in [
        "ghost pairs (killed members listed past the bound), most at once: 0",
        "killed members still listed at the end: 0",
        "(observer, running member) pairs not alive at the end: 0",
        "new members never alive everywhere: 0",
        "rolling-restart: passed",
    ] {
        assert!(text.contains(line), "{line:?} missing: {text}");
    }
}

#[test]
fn decode_shows_dskit_framing() {
    // A join's push/pull as a real dskit node (Grafana's fork, cluster label loki-dev) wrote it
    // on its stream connection, captured from interop/bin/dskitpeer.
    let hex = include_str!("data/dskit-join-stream.hex").trim();
    let out = memberlist(&["decode", "--dskit", "--label", "loki-dev", hex], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree[0], serde_json::json!({"layer": "dskit", "kind": "stream"}));
    assert_eq!(tree[1]["label"], "loki-dev");
    let last = tree.as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "pushPull");
    assert_eq!(last["nodes"][0]["Name"], "cap-lzw");
    // A packet connection: the sender's address and the digest check come first.
    let data = b"\x08\x81\xa5SeqNo\x01";
    let digest = [0u8; 16]; // not the MD5 of `data`
    let mut frame = vec![1u8, 13];
    frame.extend_from_slice(b"10.0.0.1:7946");
    frame.extend_from_slice(data);
    frame.extend_from_slice(&digest);
    let out = memberlist(&["decode", "--dskit", &hex::encode(&frame)], None);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree[0]["from"], "10.0.0.1:7946");
    assert_eq!(tree[0]["digestMatches"], false);
    let out = memberlist(&["decode", "--dskit", "07"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dskit connection type 7"));
}

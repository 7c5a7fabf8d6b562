//! The `memberlist-sim` command line.

use std::process::Command;

fn run(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memberlist-sim"))
        .args(["--scenario", "bootstrap-crash", "--nodes", "30", "--seed", "2", "--threads", "1"])
        .args(extra)
        .output()
        .expect("memberlist-sim runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 summary")
}

fn field<'a>(summary: &'a str, key: &str) -> &'a str {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

/// `--no-compression` runs the same simulation with other bytes on the wire: the same
/// deliveries, decoded messages and convergence, another trace hash.
#[test]
fn no_compression_changes_the_bytes_not_the_run() {
    let (on, off) = (run(&[]), run(&["--no-compression"]));
    for key in ["datagrams_delivered", "messages_decoded", "converged_after_s", "detection_complete_after_s"] {
        assert_eq!(field(&on, key), field(&off, key), "{key}");
    }
    assert!(field(&on, "messages_decoded").parse::<u64>().unwrap() > 1000);
    assert_ne!(field(&on, "trace_hash"), field(&off, "trace_hash"));
    assert!(
        field(&on, "bytes_per_node_per_s").parse::<f64>().unwrap()
            < field(&off, "bytes_per_node_per_s").parse::<f64>().unwrap(),
        "compressed is smaller"
    );
}

//! What the loopback socket tests share: fast timers and waiting for a condition.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::time::Duration;

use memberlist::Options;

pub mod large_state;

/// The LAN preset on 127.0.0.1 (a kernel-chosen port) with timers fast enough for tests.
pub fn fast(name: &str) -> Options {
    Options::lan(name).bind("127.0.0.1:0".parse().unwrap()).configure(|c| {
        c.probe_interval = Duration::from_millis(200);
        c.probe_timeout = Duration::from_millis(80);
        c.gossip_interval = Duration::from_millis(50);
        c.suspicion_mult = 3;
        c.push_pull_interval = Duration::from_secs(2);
        c.tcp_timeout = Duration::from_secs(2);
    })
}

/// Waits up to 15 s for `f` to hold, or panics naming `what`.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

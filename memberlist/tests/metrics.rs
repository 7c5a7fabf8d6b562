//! Metrics come out under Go memberlist's names.

use std::time::Duration;

use memberlist::{Memberlist, Options};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_metric_names_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder in this test binary");
    let fast = |name: &str| {
        Options::lan(name).bind("127.0.0.1:0".parse().unwrap()).configure(|c| {
            c.probe_interval = Duration::from_millis(100);
            c.probe_timeout = Duration::from_millis(50);
            c.gossip_interval = Duration::from_millis(50);
        })
    };
    let a = Memberlist::create(fast("a")).await.unwrap();
    let b = Memberlist::create(fast("b")).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let snapshot = snapshotter.snapshot().into_vec();
    let names: Vec<String> = snapshot.iter().map(|(k, _, _, _)| k.key().name().to_owned()).collect();
    for want in [
        "memberlist.msg.alive",
        "memberlist.udp.sent",
        "memberlist.probeNode",
        "memberlist.gossip",
        "memberlist.health.score",
        "memberlist.node.instances",
        "memberlist.tcp.connect",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let alive =
        snapshot.iter().find(|(k, _, _, _)| k.key().name() == "memberlist.msg.alive").map(|(_, _, _, v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        });
    assert!(alive.is_some_and(|n| n >= 2), "{alive:?}");
}

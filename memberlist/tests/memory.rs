//! Nodes on an in-memory transport: no sockets, same behaviour.

use std::sync::Arc;
use std::time::Duration;

use memberlist::{Memberlist, MemoryNetwork, NodeState, Options};

fn fast(name: &str) -> Options {
    Options::lan(name).bind("127.0.0.1:0".parse().unwrap()).configure(|c| {
        c.probe_interval = Duration::from_millis(100);
        c.probe_timeout = Duration::from_millis(40);
        c.gossip_interval = Duration::from_millis(30);
        c.suspicion_mult = 3;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_a_memory_network_converge_and_detect_failure() {
    let net = MemoryNetwork::new();
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(Memberlist::with_transport(fast(&format!("mem{i}")), Arc::new(net.transport())).await.unwrap());
    }
    for n in &nodes[1..] {
        assert_eq!(n.join(&[nodes[0].advertise_addr()]).await.unwrap(), 1);
    }
    for _ in 0..100 {
        if nodes.iter().all(|n| n.num_members() == 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(nodes.iter().all(|n| n.num_members() == 4));
    // The host of node 3 goes away.
    net.disconnect(nodes[3].advertise_addr());
    nodes[3].shutdown().await.unwrap();
    let dead = |n: &Memberlist| n.all_members().iter().any(|m| m.name == "mem3" && m.state == NodeState::Dead);
    for _ in 0..200 {
        if nodes[..3].iter().all(dead) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(nodes[..3].iter().all(dead));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_nodes_work_without_udp() {
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(Memberlist::create(fast(&format!("tcp{i}")).tcp_only(true)).await.unwrap());
    }
    for n in &nodes[1..] {
        assert_eq!(n.join(&[nodes[0].advertise_addr()]).await.unwrap(), 1);
    }
    let mut events = nodes[2].events().unwrap();
    for _ in 0..100 {
        if nodes.iter().all(|n| n.num_members() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(nodes.iter().all(|n| n.num_members() == 3));
    // A "datagram" goes over TCP.
    nodes[0].send_best_effort(nodes[2].advertise_addr(), b"no udp needed".to_vec()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.recv().await {
            if let memberlist::Event::UserMessage { data, .. } = e {
                return data;
            }
        }
        Vec::new()
    })
    .await
    .unwrap();
    assert_eq!(got, b"no udp needed");
    // Probes over TCP keep everyone alive for a while, and a stopped node is found dead.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(nodes.iter().all(|n| n.num_members() == 3));
    nodes[1].shutdown().await.unwrap();
    let dead = |n: &Memberlist| n.all_members().iter().any(|m| m.name == "tcp1" && m.state == NodeState::Dead);
    for _ in 0..200 {
        if dead(&nodes[0]) && dead(&nodes[2]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead(&nodes[0]) && dead(&nodes[2]));
}

//! Nodes on an in-memory transport: no sockets, same behaviour.

use std::sync::Arc;
use std::time::Duration;

use memberlist::{Memberlist, MemoryNetwork, NodeState, Options};

fn fast(name: &str) -> Options {
    Options::lan(name).configure(|c| {
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
    nodes[3].shutdown();
    let dead = |n: &Memberlist| n.members().iter().any(|m| m.name == "mem3" && m.state == NodeState::Dead);
    for _ in 0..200 {
        if nodes[..3].iter().all(dead) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(nodes[..3].iter().all(dead));
}

//! Real nodes on 127.0.0.1 sockets.

use std::time::Duration;

mod support;

use memberlist::{Event, Memberlist, NodeState, Options};
use support::{eventually, fast};

async fn cluster(n: usize, opts: impl Fn(usize) -> Options) -> Vec<Memberlist> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(Memberlist::create(opts(i)).await.unwrap());
    }
    let seed = nodes[0].advertise_addr();
    for node in &nodes[1..] {
        assert_eq!(node.join(&[seed]).await.unwrap(), 1);
    }
    nodes
}

fn state_of(node: &Memberlist, name: &str) -> Option<NodeState> {
    node.all_members().into_iter().find(|m| m.name == name).map(|m| m.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_and_see_failure_and_leave() {
    let nodes = cluster(5, |i| fast(&format!("n{i}"))).await;
    eventually("convergence", || nodes.iter().all(|n| n.num_members() == 5)).await;
    // Shut down without leaving: seen dead.
    nodes[4].shutdown().await.unwrap();
    eventually("n4 dead everywhere", || nodes[..4].iter().all(|n| state_of(n, "n4") == Some(NodeState::Dead))).await;
    // Leave: seen left.
    nodes[3].leave(Duration::from_secs(5)).await.unwrap();
    eventually("n3 left everywhere", || nodes[..3].iter().all(|n| state_of(n, "n3") == Some(NodeState::Left))).await;
    assert!(nodes[..3].iter().all(|n| n.num_members() == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_updates_broadcasts_and_direct_messages_arrive() {
    // A user broadcast is sent retransmit_mult · ⌈log10(n + 1)⌉ times, piggybacked on whatever
    // packet leaves next (acks and pings too, as in Go), and receivers do not relay it: with the
    // LAN default of 4 sends among 3 peers, one peer can get none (seen twice here under load). 12 sends
    // make every peer's share of them near certain; delivery itself is what is tested here.
    let nodes = cluster(4, |i| fast(&format!("m{i}")).configure(|c| c.retransmit_mult = 12)).await;
    eventually("convergence", || nodes.iter().all(|n| n.num_members() == 4)).await;
    let mut events: Vec<_> = nodes.iter().map(|n| n.events().unwrap()).collect();

    nodes[1].update_meta(b"role=db".to_vec(), Duration::from_secs(5)).await.unwrap();
    nodes[0].broadcast(b"to everyone".to_vec(), None).unwrap();
    nodes[2].send_best_effort(nodes[3].advertise_addr(), b"datagram".to_vec()).unwrap();
    nodes[2].send_reliable(nodes[0].advertise_addr(), b"stream".to_vec()).await.unwrap();

    let expected: [&[&str]; 4] =
        [&["update", "stream"], &["to everyone"], &["update", "to everyone"], &["update", "datagram", "to everyone"]];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (i, ev) in events.iter_mut().enumerate() {
        let mut got: Vec<String> = Vec::new();
        while !expected[i].iter().all(|w| got.iter().any(|g| g == w)) {
            match tokio::time::timeout_at(deadline, ev.recv()).await {
                Ok(Some(Event::NodeUpdated(m))) if m.meta == b"role=db" => got.push("update".into()),
                Ok(Some(Event::UserMessage { data, .. })) => got.push(String::from_utf8_lossy(&data).into_owned()),
                Ok(Some(_)) => {}
                _ => panic!("node {i} got {got:?}, expected {:?}", expected[i]),
            }
        }
    }
    for n in &nodes {
        assert_eq!(n.members().iter().find(|m| m.name == "m1").unwrap().meta, b"role=db");
    }
    // Ping measures a round trip.
    let rtt = nodes[0].ping("m3", nodes[3].advertise_addr()).await.unwrap();
    assert!(rtt < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_keys_keep_clusters_apart() {
    let key = [7u8; 32];
    let a = Memberlist::create(fast("a").label("prod").keys(&key, &[]).unwrap()).await.unwrap();
    let same = Memberlist::create(fast("same").label("prod").keys(&key, &[]).unwrap()).await.unwrap();
    assert_eq!(same.join(&[a.advertise_addr()]).await.unwrap(), 1);
    let other_label = Memberlist::create(fast("other-label").label("test").keys(&key, &[]).unwrap()).await.unwrap();
    assert!(other_label.join(&[a.advertise_addr()]).await.is_err());
    let wrong_key = Memberlist::create(fast("wrong-key").label("prod").keys(&[9u8; 32], &[]).unwrap()).await.unwrap();
    assert!(wrong_key.join(&[a.advertise_addr()]).await.is_err());
    let plain = Memberlist::create(fast("plain").label("prod")).await.unwrap();
    assert!(plain.join(&[a.advertise_addr()]).await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = a.members().into_iter().map(|m| m.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_cluster_survives_key_rotation() {
    let (old, new) = ([1u8; 16], [2u8; 32]);
    let nodes = cluster(4, |i| fast(&format!("k{i}")).keys(&old, &[]).unwrap()).await;
    eventually("convergence", || nodes.iter().all(|n| n.num_members() == 4)).await;
    for n in &nodes {
        n.install_key(&new).await.unwrap();
    }
    for n in &nodes {
        n.use_key(&new).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &nodes {
        n.remove_key(&old).await.unwrap();
    }
    // Removing the primary is refused.
    assert!(nodes[0].remove_key(&new).await.is_err());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(nodes.iter().all(|n| n.num_members() == 4), "nobody lost during rotation");
    // A node with only the old key cannot join any more; one with the new key can.
    let stale = Memberlist::create(fast("stale").keys(&old, &[]).unwrap()).await.unwrap();
    assert!(stale.join(&[nodes[0].advertise_addr()]).await.is_err());
    let fresh = Memberlist::create(fast("fresh").keys(&new, &[]).unwrap()).await.unwrap();
    assert_eq!(fresh.join_hosts(&[&nodes[0].advertise_addr().to_string()]).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_resolves_names_and_reports_unreachable_seeds() {
    let a = Memberlist::create(fast("a")).await.unwrap();
    let b = Memberlist::create(fast("b")).await.unwrap();
    let port = a.advertise_addr().port();
    assert_eq!(b.join_hosts(&[&format!("localhost:{port}")]).await.unwrap(), 1);
    let c = Memberlist::create(fast("c")).await.unwrap();
    let err = c.join_hosts(&["127.0.0.1:1"]).await.unwrap_err();
    assert!(matches!(err, memberlist::Error::JoinFailed(_)), "{err}");
    assert!(c.join_hosts(&["no-such-host.invalid"]).await.is_err());
}

#[derive(Default)]
struct Recording {
    joins: std::sync::Mutex<Vec<String>>,
    messages: std::sync::Mutex<Vec<Vec<u8>>>,
    queue: std::sync::Mutex<Vec<Vec<u8>>>,
    node: std::sync::OnceLock<Memberlist>,
    members_seen_in_callback: std::sync::Mutex<Vec<usize>>,
}

impl memberlist::Delegate for Recording {
    fn notify_join(&self, node: &memberlist::Member) {
        self.joins.lock().unwrap().push(node.name.clone());
        // Calling back into the node from a callback must not deadlock (Go #23).
        if let Some(n) = self.node.get() {
            self.members_seen_in_callback.lock().unwrap().push(n.members().len());
        }
    }
    fn notify_msg(&self, _from: std::net::SocketAddr, msg: &[u8]) {
        self.messages.lock().unwrap().push(msg.to_vec());
    }
    fn has_broadcasts(&self) -> bool {
        !self.queue.lock().unwrap().is_empty()
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let mut q = self.queue.lock().unwrap();
        let mut used = 0;
        let mut out = Vec::new();
        while let Some(m) = q.first() {
            if used + overhead + m.len() > limit {
                break;
            }
            used += overhead + m.len();
            out.push(q.remove(0));
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegates_hear_joins_and_messages_and_supply_broadcasts() {
    let rec = std::sync::Arc::new(Recording::default());
    let a = Memberlist::create(fast("d-a").delegate(rec.clone())).await.unwrap();
    rec.node.set(a.clone()).unwrap();
    let other = std::sync::Arc::new(Recording::default());
    let b = Memberlist::create(fast("d-b").delegate(other.clone())).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    other.queue.lock().unwrap().push(b"from b's delegate queue".to_vec());
    eventually("a hears b join and b's delegate broadcast", || {
        rec.joins.lock().unwrap().contains(&"d-b".to_string())
            && rec.messages.lock().unwrap().contains(&b"from b's delegate queue".to_vec())
    })
    .await;
    assert!(rec.joins.lock().unwrap().contains(&"d-a".to_string()), "the local node's own join");
    assert!(!rec.members_seen_in_callback.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_nodes_join_on_the_v6_loopback() {
    let v6 = |name: &str| fast(name).bind("[::1]:0".parse().unwrap());
    let a = Memberlist::create(v6("v6a")).await.unwrap();
    let b = Memberlist::create(v6("v6b")).await.unwrap();
    assert!(a.advertise_addr().is_ipv6());
    assert_eq!(b.join_hosts(&[&a.advertise_addr().to_string()]).await.unwrap(), 1);
    eventually("both see 2", || a.num_members() == 2 && b.num_members() == 2).await;
    let m = a.members().into_iter().find(|m| m.name == "v6b").unwrap();
    assert_eq!(m.addr, "::1".parse::<std::net::IpAddr>().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_in_force_when_events_returns() {
    // The datagram is sent right after subscribing: had the subscription still been on its way
    // to the node's task, the message could have been handled first and missed.
    let nodes = cluster(2, |i| fast(&format!("sub{i}"))).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for i in 0..20 {
        let mut events = a.events().unwrap();
        let text = format!("message {i}");
        b.send_best_effort(a.advertise_addr(), text.clone().into_bytes()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::UserMessage { data, .. })) if data == text.as_bytes() => break,
                Ok(Some(_)) => {}
                other => panic!("{text} never reached the subscriber: {other:?}"),
            }
        }
    }
    a.shutdown().await.unwrap();
    eventually("events() refused after shutdown", || a.events().is_err()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_sends_its_first_datagram() {
    // Neither node has sent anything yet, nor joined anyone: the very first datagram must go
    // out (tokio's try_send_to refused it until the reactor had seen the socket writable).
    let a = Memberlist::create(fast("fresh-a")).await.unwrap();
    let b = Memberlist::create(fast("fresh-b")).await.unwrap();
    let mut events = a.events().unwrap();
    b.send_best_effort(a.advertise_addr(), b"first".to_vec()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::UserMessage { data, .. })) if data == b"first" => break,
            Ok(Some(_)) => {}
            other => panic!("the first datagram never arrived: {other:?}; sender {:?}", b.stats()),
        }
    }
}

//! Go's API promises on real loopback sockets: shutdown releases the port before it returns,
//! `send_reliable` reports the write, zero timeouts wait without limit, `members()` is Go's
//! `Members()`, seeds take Go's forms, and refused joins are reported on both sides.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

mod support;

use memberlist::{Error, Event, Memberlist, NodeState};
use support::{eventually, fast};

/// A loopback port nobody listens on, for TCP or UDP.
fn closed_port() -> SocketAddr {
    let t = TcpListener::bind("127.0.0.1:0").unwrap();
    t.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_port_before_it_returns() {
    let b = Memberlist::create(fast("port-b")).await.unwrap();
    let mut port: Option<SocketAddr> = None;
    for round in 0..5 {
        // The first round takes a kernel-chosen port; every later one binds that port again
        // right after the previous node's shutdown returned.
        let opts = match port {
            Some(p) => fast("port-a").bind(p),
            None => fast("port-a"),
        };
        let a = Memberlist::create(opts).await.unwrap_or_else(|e| panic!("round {round}: create: {e}"));
        let addr = *port.get_or_insert(a.advertise_addr());
        assert_eq!(a.advertise_addr(), addr);
        let mut events = a.events().unwrap();
        assert_eq!(a.join(&[b.advertise_addr()]).await.unwrap(), 1, "round {round}");
        // Work in flight while it stops: a broadcast, a reliable send, a ping.
        a.broadcast(b"x".to_vec(), None).unwrap();
        a.send_reliable(b.advertise_addr(), b"r".to_vec()).await.unwrap();
        a.shutdown().await.unwrap();
        // Both sockets are closed when shutdown returns.
        assert!(UdpSocket::bind(addr).is_ok(), "round {round}: UDP port still bound");
        assert!(TcpListener::bind(addr).is_ok(), "round {round}: TCP port still bound");
        // The stopped node's event stream ends, and it refuses commands.
        let end = tokio::time::timeout(Duration::from_secs(2), async { while events.recv().await.is_some() {} }).await;
        assert!(end.is_ok(), "round {round}: the event stream did not end");
        assert!(a.events().is_err());
        assert!(matches!(a.broadcast(b"y".to_vec(), None), Err(Error::Shutdown)));
        assert!(matches!(a.send_reliable(b.advertise_addr(), b"z".to_vec()).await, Err(Error::Shutdown)));
        // A second shutdown returns at once.
        tokio::time::timeout(Duration::from_secs(1), a.shutdown()).await.expect("second shutdown").unwrap();
    }
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reliable_returns_the_outcome_of_the_write() {
    let a = Memberlist::create(fast("rel-a")).await.unwrap();
    let b = Memberlist::create(fast("rel-b")).await.unwrap();
    let mut events = a.events().unwrap();
    b.send_reliable(a.advertise_addr(), b"over tcp".to_vec()).await.expect("written");
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Event::UserMessage { data, .. }) = events.recv().await {
                return data;
            }
        }
    })
    .await
    .expect("delivered");
    assert_eq!(got, b"over tcp");
    // Nobody listens there: the connection is refused and the caller hears it.
    let err = b.send_reliable(closed_port(), b"lost".to_vec()).await.unwrap_err();
    match err {
        Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        other => panic!("expected an i/o error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_timeouts_wait_for_the_broadcast() {
    let lonely = Memberlist::create(fast("z-alone")).await.unwrap();
    // Nobody to tell: both return at once.
    tokio::time::timeout(Duration::from_secs(1), lonely.update_meta(b"v=2".to_vec(), Duration::ZERO))
        .await
        .expect("update_meta returns at once")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), lonely.leave(Duration::ZERO))
        .await
        .expect("leave returns at once")
        .unwrap();

    let a = Memberlist::create(fast("z-a")).await.unwrap();
    let b = Memberlist::create(fast("z-b")).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    eventually("both see 2", || a.num_members() == 2 && b.num_members() == 2).await;
    // With a peer, zero means "until it went out", not "fail at once".
    b.update_meta(b"v=3".to_vec(), Duration::ZERO).await.expect("meta update sent");
    eventually("a sees the new meta", || a.members().iter().any(|m| m.name == "z-b" && m.meta == b"v=3")).await;
    b.leave(Duration::ZERO).await.expect("leave sent");
    eventually("a sees z-b left", || a.all_members().iter().any(|m| m.name == "z-b" && m.state == NodeState::Left))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_is_gos_members_and_all_members_has_every_state() {
    let a = Memberlist::create(fast("m-a")).await.unwrap();
    let b = Memberlist::create(fast("m-b")).await.unwrap();
    let c = Memberlist::create(fast("m-c")).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    c.join(&[a.advertise_addr()]).await.unwrap();
    eventually("3 members", || a.num_members() == 3).await;
    b.leave(Duration::from_secs(2)).await.unwrap();
    b.shutdown().await.unwrap();
    c.shutdown().await.unwrap();
    eventually("b left and c dead", || {
        let all = a.all_members();
        let state = |n: &str| all.iter().find(|m| m.name == n).map(|m| m.state);
        state("m-b") == Some(NodeState::Left) && state("m-c") == Some(NodeState::Dead)
    })
    .await;
    let names: Vec<String> = a.members().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["m-a"], "members() lists only alive and suspect nodes");
    assert_eq!(a.num_members(), 1);
    assert_eq!(a.all_members().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_in_gos_forms() {
    let a = Memberlist::create(fast("s-a")).await.unwrap();
    let port = a.advertise_addr().port();
    // `name/host:port`.
    let b = Memberlist::create(fast("s-b")).await.unwrap();
    assert_eq!(b.join_hosts(&[&format!("s-a/127.0.0.1:{port}")]).await.unwrap(), 1);
    // A bare IP takes the joining node's own bind port: a node on the same port as the seed.
    b.shutdown().await.unwrap();
    let alt = "127.0.0.2".parse().unwrap();
    let c = Memberlist::create(fast("s-c").bind(SocketAddr::new(alt, port))).await.unwrap();
    assert_eq!(c.join_hosts(&["127.0.0.1"]).await.unwrap(), 1);
    assert_eq!(c.join_hosts(&["s-a/localhost"]).await.unwrap(), 1);
    // Errors name the seed as it was written.
    let err = c.join_hosts(&["/127.0.0.1", "ghost/127.0.0.1:1", "no-such-host.invalid"]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("empty node name"), "{text}");
    assert!(text.contains("failed to join ghost/127.0.0.1:1"), "{text}");
    assert!(text.contains("failed to resolve no-such-host.invalid"), "{text}");
    assert!(matches!(c.join_hosts(&[]).await, Err(Error::JoinFailed(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_is_reported_on_both_sides() {
    // Serf's range: delegate protocol 5 in [2, 5]. A node at 0/0/0 cannot overlap it.
    let serf_like = |name: &str| {
        fast(name).configure(|c| {
            c.delegate_protocol_version = 5;
            c.delegate_protocol_min = 2;
            c.delegate_protocol_max = 5;
        })
    };
    let a = Memberlist::create(serf_like("v-a")).await.unwrap();
    let old = Memberlist::create(fast("v-old")).await.unwrap();
    let err = old.join(&[a.advertise_addr()]).await.unwrap_err().to_string();
    assert!(err.contains("delegate protocol version (0) is incompatible: [2, 0]"), "{err}");
    eventually("the refusing side counted it", || a.stats().push_pull_rejected == 1).await;
    assert_eq!(a.num_members(), 1, "nothing merged");
    // A compatible node joins.
    let ok = Memberlist::create(serf_like("v-ok")).await.unwrap();
    assert_eq!(ok.join(&[a.advertise_addr()]).await.unwrap(), 1);
    assert_eq!(a.stats().push_pull_rejected, 1);

    // Another cluster's label: refused and counted as a label drop on the receiving side.
    let labelled = Memberlist::create(fast("l-a").label("cluster-a")).await.unwrap();
    let other = Memberlist::create(fast("l-b").label("cluster-b")).await.unwrap();
    assert!(other.join(&[labelled.advertise_addr()]).await.is_err());
    eventually("label mismatch counted", || labelled.stats().dropped_label >= 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_from_outside_cidrs_allowed_is_refused_and_counted() {
    // Node a accepts only 127.0.0.2; b dials from 127.0.0.1.
    let only = memberlist::proto::Cidr::parse("127.0.0.2/32").unwrap();
    let a = Memberlist::create(fast("c-a").configure(|c| c.cidrs_allowed = Some(vec![only]))).await.unwrap();
    let b = Memberlist::create(fast("c-b")).await.unwrap();
    assert!(b.join(&[a.advertise_addr()]).await.is_err(), "the stream is closed unanswered");
    eventually("counted", || a.stats().dropped_not_allowed >= 1).await;
    assert!(!a.all_members().iter().any(|m| m.name == "c-b"), "nothing merged");
    // The same join to a node that allows loopback succeeds. (Loopback dials always come from
    // 127.0.0.1, whatever address the dialer listens on.)
    let lo = memberlist::proto::Cidr::parse("127.0.0.0/8").unwrap();
    let open = Memberlist::create(fast("c-open").configure(|c| c.cidrs_allowed = Some(vec![lo]))).await.unwrap();
    assert_eq!(b.join(&[open.advertise_addr()]).await.unwrap(), 1);
    assert_eq!(open.stats().dropped_not_allowed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rejoin_keeps_address_seeds_beside_names() {
    let rejoin = |name: &str| fast(name).configure(|c| c.auto_rejoin_interval = Some(Duration::from_secs(1)));
    let a = Memberlist::create(rejoin("rj-a")).await.unwrap();
    let c = Memberlist::create(fast("rj-c")).await.unwrap();
    // One seed by address, where nobody runs yet, and one by name.
    let down = closed_port();
    let seeds = [down.to_string(), format!("localhost:{}", c.advertise_addr().port())];
    assert_eq!(a.join_hosts(&[&seeds[0], &seeds[1]]).await.unwrap(), 1);
    // Several re-join rounds pass, each resolving the name again; the address must stay a seed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A node comes up, alone, at the address seed: it was never a member, so only the
    // remembered seed leads there.
    let fresh = Memberlist::create(fast("rj-fresh").bind(down)).await.unwrap();
    eventually("a re-joins through the address seed", || a.members().iter().any(|m| m.name == "rj-fresh")).await;
    eventually("the clusters merged", || fresh.members().iter().any(|m| m.name == "rj-c")).await;
}

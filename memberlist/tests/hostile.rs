//! Hostile input against a live node: floods of random and mutated datagrams, crafted malformed
//! messages, half-open and slow TCP connections. The node stays up, nobody is falsely declared
//! dead, drops are counted, memory stays bounded. `HOSTILE_FLOOD_SECS` makes the flood longer
//! (60 for the long run); the default keeps the normal test run fast.

use std::io::Write;
use std::time::{Duration, Instant};

use memberlist::wire::{compress::compress_message, Alive, Message, PushPullHeader};
use memberlist::{Event, Memberlist, NodeState, Options};

fn fast(name: &str) -> Options {
    Options::lan(name).bind("127.0.0.1:0".parse().unwrap()).configure(|c| {
        c.probe_interval = Duration::from_millis(200);
        c.probe_timeout = Duration::from_millis(80);
        c.gossip_interval = Duration::from_millis(50);
        c.suspicion_mult = 3;
        c.tcp_timeout = Duration::from_secs(2);
    })
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// A tiny xorshift so the flood is reproducible without extra dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn vectors() -> Vec<Vec<u8>> {
    let text = include_str!("../../memberlist-proto/tests/data/wire-vectors.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (0..x["hex"].as_str().unwrap().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&x["hex"].as_str().unwrap()[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn crafted() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // A decompression bomb: 50 MB of zeros, above the 40 MiB limit, in a ~40 KB datagram.
    out.push(compress_message(&vec![0u8; 50_000_000]));
    // A 255-part compound of empty parts, and one whose length table is cut short.
    let mut c = vec![7u8, 255];
    c.extend(std::iter::repeat_n(0u8, 510));
    out.push(c);
    out.push(vec![7u8, 200, 0, 1]);
    // An alive with a 1-byte Vsn.
    let mut a = Message::Alive(Alive {
        incarnation: 9,
        node: "evil".into(),
        addr: vec![127, 0, 0, 1],
        port: 1,
        ..Default::default()
    })
    .encode();
    let n = a.len();
    a.truncate(n - 7);
    a.extend_from_slice(&[0xa1, 1]);
    out.push(a);
    // Empty and one-byte messages, a lone CRC header, a lone label header.
    out.push(vec![0]);
    out.push(vec![12, 0, 0, 0, 0]);
    out.push(vec![0xF4, 9, b'x']);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_under_a_flood_stays_up_and_counts_its_drops() {
    flood(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_node_under_a_flood_lets_nothing_in() {
    flood(true).await;
}

async fn flood(encrypted: bool) {
    let secs: u64 = std::env::var("HOSTILE_FLOOD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let opts = |name: &str| if encrypted { fast(name).keys(&[4u8; 32], &[]).unwrap() } else { fast(name) };
    let nodes = [
        Memberlist::create(opts("t0")).await.unwrap(),
        Memberlist::create(opts("t1")).await.unwrap(),
        Memberlist::create(opts("t2")).await.unwrap(),
    ];
    for n in &nodes[1..] {
        n.join(&[nodes[0].advertise_addr()]).await.unwrap();
    }
    let mut watchers: Vec<_> = nodes.iter().map(|n| n.events().unwrap()).collect();
    for _ in 0..100 {
        if nodes.iter().all(|n| n.num_members() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = nodes[0].advertise_addr();
    let rss_before = rss_kib();

    // Half-open connections (never send a byte) and slow ones (a byte every 200 ms).
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(std::net::TcpStream::connect(target).unwrap());
    }
    let slow = std::thread::spawn(move || {
        let mut conns: Vec<_> = (0..16).filter_map(|_| std::net::TcpStream::connect(target).ok()).collect();
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            for c in &mut conns {
                let _ = c.write_all(&[6]);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // An oversized push/pull header over TCP (for a plaintext node).
    let mut big = vec![6u8];
    PushPullHeader { join: true, nodes: 50_000_000, user_state_len: 0 }
        .encode_into(&mut big, memberlist::wire::IntEncoding::Signed);
    std::net::TcpStream::connect(target).unwrap().write_all(&big).unwrap();

    // The datagram flood.
    let flood = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let vecs = vectors();
        let crafted = crafted();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let end = Instant::now() + Duration::from_secs(secs);
        let mut sent = 0u64;
        while Instant::now() < end {
            for _ in 0..100 {
                let kind = rng.next() % 10;
                let pkt: Vec<u8> = if kind < 4 {
                    let len = (rng.next() % 1500) as usize + 1;
                    (0..len).map(|_| rng.next() as u8).collect()
                } else if kind < 9 {
                    let mut v = vecs[(rng.next() as usize) % vecs.len()].clone();
                    for _ in 0..=(rng.next() % 4) {
                        let i = (rng.next() as usize) % v.len();
                        v[i] ^= (rng.next() as u8) | 1;
                    }
                    v
                } else {
                    crafted[(rng.next() as usize) % crafted.len()].clone()
                };
                if sock.send_to(&pkt, target).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    let sent = tokio::task::spawn_blocking(move || flood.join().unwrap()).await.unwrap();
    tokio::task::spawn_blocking(move || slow.join().unwrap()).await.unwrap();
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rss_after = rss_kib();
    let stats = nodes[0].stats();
    eprintln!(
        "flood: {sent} datagrams in {secs} s; dropped malformed {} decrypt {} crc {} limit {} label {}; rss {} → {} KiB",
        stats.dropped_malformed, stats.dropped_decrypt, stats.dropped_crc, stats.dropped_limit, stats.dropped_label, rss_before, rss_after
    );
    assert!(sent > 1000);
    let real = ["t0", "t1", "t2"];
    if encrypted {
        // Nothing decrypts: every datagram is dropped, no member can be injected.
        assert!(stats.dropped_decrypt > 1000, "{stats:?}");
        for n in &nodes {
            assert_eq!(n.members().len(), 3, "{:?}", n.members());
        }
    } else {
        assert!(stats.dropped_malformed > 100, "{stats:?}");
        assert!(stats.dropped_limit > 0, "the bomb and the oversized header were refused: {stats:?}");
        // Without keys anyone may announce members (as in Go): mutated captured alives can add
        // the vectors' nodes, which then die. The real members must not be touched.
    }
    // The real members are alive everywhere, and none of them was ever declared dead.
    for n in &nodes {
        for name in real {
            let m = n.members().into_iter().find(|m| m.name == name).expect("member");
            assert_eq!(m.state, NodeState::Alive, "{name} at {}", n.name());
        }
    }
    for w in &mut watchers {
        while let Some(e) = w.try_recv() {
            if let Event::NodeLeft(m) = &e {
                assert!(!real.contains(&m.name.as_str()), "false death: {e:?}");
            }
        }
    }
    assert!(rss_after < rss_before + 64 * 1024, "memory stayed bounded: {rss_before} → {rss_after} KiB");
    // The flooded node still answers.
    let rtt = nodes[1].ping("t0", target).await.unwrap();
    assert!(rtt < Duration::from_secs(1));
}

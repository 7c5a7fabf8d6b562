//! Codec throughput: encode + decode of the two hottest shapes on the wire, in messages per
//! second (criterion prints "thrpt" in elements/s; each element is one message).
//!
//! * a probe packet: a ping with one alive piggybacked, as a compound, through the default
//!   packet pipeline (compression tried, as Go's default `EnableCompression = true`);
//! * a 100-node push/pull through the default stream pipeline (always compressed), plaintext
//!   and encrypted with AES-256-GCM.
//!
//! Run: `cargo bench -p memberlist-proto --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memberlist_proto::wire::security::EncryptionVersion;
use memberlist_proto::wire::*;
use memberlist_proto::Vsn;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn alive(i: u32) -> Alive {
    Alive {
        incarnation: 3,
        node: format!("node-{i:04}"),
        addr: vec![10, 0, (i >> 8) as u8, i as u8],
        port: 7946,
        meta: Some(b"role=web,zone=eu-west-1a".to_vec()),
        vsn: Vsn::new(2, 0, 0, 0),
    }
}

fn probe_packet(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let ping = Message::Ping(Ping {
        seq_no: 1234,
        node: "node-0001".into(),
        source_addr: vec![10, 0, 0, 2],
        source_port: 7946,
        source_node: "node-0002".into(),
    });
    let gossip = Message::Alive(alive(9));
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(2));
    g.bench_function("compound ping+alive encode+decode", |b| {
        b.iter(|| {
            let body = with_piggyback(ping.encode(), &[gossip.encode()]).unwrap();
            let bytes = seal_packet(body, true, &SealConfig::default(), &mut rng).unwrap();
            let opened = open_packet(black_box(&bytes), &OpenConfig::default()).unwrap();
            black_box(opened.payload.into_messages())
        })
    });
    let ring = Keyring::new(vec![Key::new(&[7u8; 32]).unwrap()]).unwrap();
    g.bench_function("compound ping+alive encode+decode, AES-256", |b| {
        let seal = SealConfig { keyring: Some(&ring), ..SealConfig::default() };
        let open = OpenConfig { keyring: Some(&ring), ..OpenConfig::default() };
        b.iter(|| {
            let body = with_piggyback(ping.encode(), &[gossip.encode()]).unwrap();
            let bytes = seal_packet(body, true, &seal, &mut rng).unwrap();
            black_box(open_packet(black_box(&bytes), &open).unwrap())
        })
    });
    g.finish();
}

fn push_pull(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let nodes: Vec<PushNodeState> = (0..100)
        .map(|i| {
            let a = alive(i);
            PushNodeState {
                name: a.node,
                addr: a.addr,
                port: a.port,
                meta: a.meta,
                incarnation: a.incarnation,
                state: 0,
                vsn: a.vsn,
            }
        })
        .collect();
    let msg = StreamMessage::PushPull(PushPull { join: false, nodes, user_state: vec![] });
    let ring = Keyring::new(vec![Key::new(&[7u8; 32]).unwrap()]).unwrap();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(1));
    for (name, keyring) in
        [("100-node push/pull encode+decode", None), ("100-node push/pull encode+decode, AES-256", Some(ring))]
    {
        let seal = StreamSealConfig {
            label: "",
            enable_compression: true,
            algorithm: memberlist_proto::wire::Compression::Lzw,
            keyring: keyring.as_ref(),
            encryption_version: EncryptionVersion::V1,
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let bytes = seal_stream(&msg.encode(IntEncoding::Signed), true, &seal, &mut rng).unwrap();
                let mut dec = StreamDecoder::new(StreamOpenConfig { keyring: keyring.clone(), ..Default::default() });
                dec.push(black_box(&bytes));
                black_box(dec.poll().unwrap().unwrap())
            })
        });
    }
    g.bench_function("100-node push/pull encode+decode, no compression", |b| {
        let seal = StreamSealConfig {
            label: "",
            enable_compression: false,
            algorithm: memberlist_proto::wire::Compression::Lzw,
            keyring: None,
            encryption_version: EncryptionVersion::V1,
        };
        b.iter(|| {
            let bytes = seal_stream(&msg.encode(IntEncoding::Signed), true, &seal, &mut rng).unwrap();
            let mut dec = StreamDecoder::new(StreamOpenConfig::default());
            dec.push(black_box(&bytes));
            black_box(dec.poll().unwrap().unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, probe_packet, push_pull);
criterion_main!(benches);

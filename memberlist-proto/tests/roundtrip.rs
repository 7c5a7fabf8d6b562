//! Property tests: every message type through every combination of layers comes back as it was,
//! and arbitrary bytes into every decoder never panic.

use memberlist_proto::wire::compound::{decode_compound, encode_compounds};
use memberlist_proto::wire::inspect::{inspect_packet, inspect_stream, InspectOptions};
use memberlist_proto::wire::lzw;
use memberlist_proto::wire::security::EncryptionVersion;
use memberlist_proto::wire::*;
use memberlist_proto::Vsn;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,40}"
}

fn addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 4), proptest::collection::vec(any::<u8>(), 16)]
}

fn opt_addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), addr()]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn vsn() -> impl Strategy<Value = Vsn> {
    any::<[u8; 6]>().prop_map(|b| Vsn::from_slice(&b).unwrap())
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), name(), opt_addr(), any::<u16>(), name()).prop_map(
            |(seq_no, node, source_addr, source_port, source_node)| {
                Message::Ping(Ping { seq_no, node, source_addr, source_port, source_node })
            }
        ),
        (any::<u32>(), addr(), any::<u16>(), name(), any::<bool>(), opt_addr(), any::<u16>(), name()).prop_map(
            |(seq_no, target, port, node, nack, source_addr, source_port, source_node)| {
                Message::IndirectPing(IndirectPingReq {
                    seq_no,
                    target,
                    port,
                    node,
                    nack,
                    source_addr,
                    source_port,
                    source_node,
                })
            }
        ),
        (any::<u32>(), proptest::option::of(bytes(64)))
            .prop_map(|(seq_no, payload)| Message::Ack(AckResp { seq_no, payload })),
        any::<u32>().prop_map(|seq_no| Message::Nack(NackResp { seq_no })),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| Message::Suspect(Suspect {
            incarnation,
            node,
            from
        })),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| Message::Dead(Dead {
            incarnation,
            node,
            from
        })),
        (any::<u32>(), name(), addr(), any::<u16>(), proptest::option::of(bytes(600)), vsn()).prop_map(
            |(incarnation, node, addr, port, meta, vsn)| Message::Alive(Alive {
                incarnation,
                node,
                addr,
                port,
                meta,
                vsn
            })
        ),
        bytes(300).prop_map(Message::User),
        "[ -~]{0,80}".prop_map(|error| Message::Err(ErrResp { error })),
    ]
}

fn node_state() -> impl Strategy<Value = PushNodeState> {
    (name(), addr(), any::<u16>(), proptest::option::of(bytes(100)), any::<u32>(), 0i64..4, vsn()).prop_map(
        |(name, addr, port, meta, incarnation, state, vsn)| PushNodeState {
            name,
            addr,
            port,
            meta,
            incarnation,
            state,
            vsn,
        },
    )
}

fn stream_message() -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        (any::<bool>(), proptest::collection::vec(node_state(), 0..150), bytes(400))
            .prop_map(|(join, nodes, user_state)| StreamMessage::PushPull(PushPull { join, nodes, user_state })),
        bytes(2000).prop_map(StreamMessage::User),
        (any::<u32>(), name()).prop_map(|(seq_no, node)| StreamMessage::Ping(Ping {
            seq_no,
            node,
            ..Default::default()
        })),
        (any::<u32>(), proptest::option::of(bytes(20)))
            .prop_map(|(seq_no, payload)| StreamMessage::Ack(AckResp { seq_no, payload })),
        "[ -~]{0,80}".prop_map(|error| StreamMessage::Err(ErrResp { error })),
    ]
}

fn keyring(size: usize, extra: bool) -> Keyring {
    let mut keys = vec![];
    if extra {
        keys.push(Key::new(&vec![0xAA; size]).unwrap());
    }
    keys.push(Key::new(&vec![0x42; size]).unwrap());
    let primary = keys.pop().unwrap();
    Keyring::with_primary(primary, keys)
}

#[derive(Debug, Clone)]
struct Layers {
    label: String,
    compression: bool,
    crc: bool,
    encryption: Option<(usize, EncryptionVersion, bool)>,
}

fn layers() -> impl Strategy<Value = Layers> {
    (
        prop_oneof![Just(String::new()), "[a-z]{1,20}"],
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((
            prop_oneof![Just(16usize), Just(24), Just(32)],
            prop_oneof![Just(EncryptionVersion::V0), Just(EncryptionVersion::V1)],
            any::<bool>(),
        )),
    )
        .prop_map(|(label, compression, crc, encryption)| Layers { label, compression, crc, encryption })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips_alone(m in message()) {
        prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn packets_round_trip_through_every_layer(
        msgs in proptest::collection::vec(message(), 1..8),
        l in layers(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ring = l.encryption.map(|(size, _, extra)| keyring(size, extra));
        let encoded: Vec<Vec<u8>> = msgs.iter().map(Message::encode).collect();
        let body = with_piggyback(encoded[0].clone(), &encoded[1..]).unwrap();
        let seal = SealConfig {
            label: &l.label,
            enable_compression: l.compression,
            algorithm: memberlist_proto::wire::Compression::Lzw,
            keyring: ring.as_ref(),
            encryption_version: l.encryption.map_or(EncryptionVersion::V1, |e| e.1),
        };
        let packet = seal_packet(body, l.crc, &seal, &mut rng).unwrap();
        let open = OpenConfig { label: &l.label, keyring: ring.as_ref(), ..Default::default() };
        let opened = open_packet(&packet, &open).unwrap();
        prop_assert_eq!(opened.crc.is_some(), l.crc);
        prop_assert_eq!(opened.encryption.is_some(), ring.is_some());
        let (got, errs) = opened.payload.into_messages();
        prop_assert!(errs.is_empty());
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn streams_round_trip_through_every_layer_in_any_chunking(
        m in stream_message(),
        l in layers(),
        seed in any::<u64>(),
        chunk in 1usize..700,
        signed in any::<bool>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ring = l.encryption.map(|(size, _, extra)| keyring(size, extra));
        let ints = if signed { IntEncoding::Signed } else { IntEncoding::Unsigned };
        let seal = StreamSealConfig {
            label: &l.label,
            enable_compression: l.compression,
            algorithm: memberlist_proto::wire::Compression::Lzw,
            keyring: ring.as_ref(),
            encryption_version: l.encryption.map_or(EncryptionVersion::V1, |e| e.1),
        };
        for dialer in [true, false] {
            let bytes = seal_stream(&m.encode(ints), dialer, &seal, &mut rng).unwrap();
            let cfg = StreamOpenConfig {
                label: l.label.clone(),
                expect_label_header: dialer,
                keyring: ring.clone(),
                ..Default::default()
            };
            let mut dec = StreamDecoder::new(cfg);
            let mut got = None;
            for c in bytes.chunks(chunk) {
                prop_assert!(got.is_none());
                dec.push(c);
                got = dec.poll().unwrap();
            }
            let frame = got.expect("complete after the last byte");
            prop_assert_eq!(&frame.message, &m);
            prop_assert_eq!(frame.encryption.is_some(), ring.is_some());
        }
    }

    #[test]
    fn compounds_split_and_rejoin(n in 0usize..700) {
        let m = Message::Nack(NackResp { seq_no: 1 }).encode();
        let parts: Vec<&[u8]> = (0..n).map(|_| m.as_slice()).collect();
        let cs = encode_compounds(&parts).unwrap();
        let total: usize = cs.iter().map(|c| decode_compound(&c[1..]).unwrap().parts.len()).sum();
        prop_assert_eq!(total, n);
        prop_assert!(cs.iter().all(|c| c[1] as usize <= 255));
    }

    #[test]
    fn lzw_agrees_with_weezl_both_ways(data in proptest::collection::vec(any::<u8>(), 0..20_000), small in proptest::collection::vec(0u8..4, 0..30_000)) {
        for d in [&data, &small] {
            let ours = lzw::compress(d);
            let mut wz = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8);
            prop_assert_eq!(&wz.decode(&ours).unwrap(), d);
            let theirs = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8).encode(d).unwrap();
            prop_assert_eq!(&lzw::decompress(&theirs, usize::MAX).unwrap(), d);
            prop_assert_eq!(&lzw::decompress(&ours, usize::MAX).unwrap(), d);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(data in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let limits = Limits::default();
        let _ = Message::decode(&data);
        let _ = Payload::decode(&data, &limits);
        let _ = decode_compound(&data);
        let _ = lzw::decompress(&data, 1 << 20);
        let ring = keyring(16, true);
        for keyring in [None, Some(&ring)] {
            for verify in [true, false] {
                let cfg = OpenConfig { keyring, gossip_verify_incoming: verify, ..Default::default() };
                let _ = open_packet(&data, &cfg);
                let mut dec = StreamDecoder::new(StreamOpenConfig {
                    keyring: keyring.cloned(),
                    gossip_verify_incoming: verify,
                    ..Default::default()
                });
                for c in data.chunks(chunk) {
                    dec.push(c);
                    if dec.poll().is_err() {
                        break;
                    }
                }
                let _ = dec.finish();
            }
        }
        let opts = InspectOptions { keyring: Some(ring.clone()), ..Default::default() };
        let _ = inspect_packet(&data, &opts);
        let _ = inspect_stream(&data, &opts);
        let _ = inspect_packet(&data, &InspectOptions::default());
        let _ = inspect_stream(&data, &InspectOptions::default());
    }

    #[test]
    fn mutated_valid_packets_never_panic(m in message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut b = with_piggyback(m.encode(), &[Message::Nack(NackResp { seq_no: 3 }).encode()]).unwrap();
        for (i, x) in flips {
            let n = b.len();
            b[i % n] ^= x;
        }
        let keep = cut % (b.len() + 1);
        let _ = Payload::decode(&b[..keep], &Limits::default());
        let _ = open_packet(&b, &OpenConfig::default());
    }
}

#[test]
fn hostile_declared_sizes_are_refused_before_allocation() {
    // A push/pull header declaring 10M nodes and one declaring 30 MiB of user state.
    for (nodes, user) in [(10_000_000u32, 0u32), (1, 30 << 20)] {
        let mut b = vec![6u8];
        PushPullHeader { join: false, nodes, user_state_len: user }.encode_into(&mut b, IntEncoding::Signed);
        let mut dec = StreamDecoder::new(StreamOpenConfig::default());
        dec.push(&b);
        assert!(matches!(dec.poll(), Err(DecodeError::LimitExceeded { .. })), "{nodes} {user}");
    }
    // A user message declaring 21 MiB.
    let mut b = vec![8u8];
    UserMsgHeader { user_msg_len: 21 << 20 }.encode_into(&mut b, IntEncoding::Signed);
    let mut dec = StreamDecoder::new(StreamOpenConfig::default());
    dec.push(&b);
    assert!(matches!(dec.poll(), Err(DecodeError::LimitExceeded { .. })));
    // An encrypted frame declaring 4 GiB.
    let ring = keyring(16, false);
    let mut dec = StreamDecoder::new(StreamOpenConfig { keyring: Some(ring), ..Default::default() });
    dec.push(&[10, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(dec.poll(), Err(DecodeError::LimitExceeded { .. })));
    // A decompression bomb: 5 MB of zeros compress to a few KB; a 1 MB limit refuses them.
    let bomb = compress::compress_message(&vec![0u8; 5_000_000]);
    assert!(bomb.len() < 100_000);
    let limits = Limits { max_decompressed_bytes: 1 << 20, ..Limits::default() };
    assert!(matches!(Payload::decode(&bomb, &limits), Err(DecodeError::LimitExceeded { .. })));
}

#[test]
fn stream_encryption_rules_match_go() {
    let ring = keyring(32, false);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let msg = StreamMessage::User(b"x".to_vec()).encode(IntEncoding::Signed);
    let plain_cfg = StreamSealConfig {
        label: "",
        enable_compression: false,
        algorithm: memberlist_proto::wire::Compression::Lzw,
        keyring: None,
        encryption_version: EncryptionVersion::V1,
    };
    let plain = seal_stream(&msg, true, &plain_cfg, &mut rng).unwrap();
    let enc_cfg = StreamSealConfig { keyring: Some(&ring), ..plain_cfg };
    let encrypted = seal_stream(&msg, true, &enc_cfg, &mut rng).unwrap();
    let open = |bytes: &[u8], keyring: Option<Keyring>, verify: bool| {
        let mut d =
            StreamDecoder::new(StreamOpenConfig { keyring, gossip_verify_incoming: verify, ..Default::default() });
        d.push(bytes);
        d.poll()
    };
    assert_eq!(open(&encrypted, None, true), Err(DecodeError::EncryptionNotConfigured));
    assert_eq!(open(&plain, Some(ring.clone()), true), Err(DecodeError::NotEncrypted));
    assert!(open(&plain, Some(ring.clone()), false).unwrap().is_some());
    assert!(open(&encrypted, Some(ring), true).unwrap().is_some());
}

//! Golden tests against bytes captured from live Go memberlist peers (0.2.2 from Debian, and
//! v0.5.0 for the label vectors): every vector must decode to exactly the tree the Go test peer
//! recorded, and every vector must re-encode byte for byte from its decoded form (encrypted ones
//! with their recorded nonce).

use memberlist_proto::wire::crc::split_crc;
use memberlist_proto::wire::inspect::{inspect_packet, inspect_stream, InspectOptions};
use memberlist_proto::wire::label::split_label;
use memberlist_proto::wire::security::{encrypt, EncryptionVersion};
use memberlist_proto::wire::{
    open_packet, open_packet_parts, seal_packet, seal_stream, IntEncoding, Key, Keyring, Message, OpenConfig,
    SealConfig, StreamDecoder, StreamOpenConfig, StreamSealConfig,
};
use serde_json::Value;

struct Vector {
    id: String,
    raw: Value,
    bytes: Vec<u8>,
    keyring: Option<Keyring>,
    label: String,
}

impl Vector {
    fn is_packet(&self) -> bool {
        self.raw["dir"].as_str().unwrap().starts_with("udp")
    }
    /// Streams we dialed start with the label header; replies never carry one.
    fn dialer_side(&self) -> bool {
        self.raw["dir"].as_str().unwrap() == "tcp-dialed/sent"
    }
}

fn vectors() -> Vec<Vector> {
    let all: Vec<Value> = serde_json::from_str(include_str!("data/wire-vectors.json")).unwrap();
    all.into_iter()
        .map(|raw| Vector {
            id: raw["id"].as_str().unwrap().to_owned(),
            bytes: hex::decode(raw["hex"].as_str().unwrap()).unwrap(),
            keyring: raw["key_hex"]
                .as_str()
                .map(|k| Keyring::new(vec![Key::new(&hex::decode(k).unwrap()).unwrap()]).unwrap()),
            label: raw["label"].as_str().unwrap_or("").to_owned(),
            raw,
        })
        .collect()
}

struct NoRng;
impl rand_core::TryRng for NoRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("plaintext vectors need no randomness")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("plaintext vectors need no randomness")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
        unreachable!("plaintext vectors need no randomness")
    }
}

#[test]
fn there_are_25_vectors() {
    assert_eq!(vectors().len(), 25);
}

#[test]
fn every_vector_decodes_to_its_recorded_tree() {
    let mut failures = Vec::new();
    for v in vectors() {
        let opts = InspectOptions { keyring: v.keyring.clone(), label: v.label.clone(), ..Default::default() };
        let got = if v.is_packet() { inspect_packet(&v.bytes, &opts) } else { inspect_stream(&v.bytes, &opts) };
        if let Some(e) = &got.error {
            failures.push(format!("{}: error {e}", v.id));
        } else if got.to_json() != v.raw["decoded"] {
            failures.push(format!("{}:\n  got  {}\n  want {}", v.id, got.to_json(), v.raw["decoded"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn plaintext_packets_pass_the_receive_pipeline_and_re_encode_identically() {
    for v in vectors().into_iter().filter(|v| v.is_packet() && v.keyring.is_none()) {
        let cfg = OpenConfig { label: &v.label, ..Default::default() };
        let opened = open_packet(&v.bytes, &cfg).unwrap_or_else(|e| panic!("{}: {e}", v.id));
        let body = opened.payload.encode().unwrap();
        let seal = SealConfig { label: &v.label, enable_compression: false, ..Default::default() };
        let again = seal_packet(body, opened.crc.is_some(), &seal, &mut NoRng).unwrap();
        assert_eq!(hex::encode(again), hex::encode(&v.bytes), "{}", v.id);
    }
}

#[test]
fn plaintext_streams_decode_incrementally_and_re_encode_identically() {
    for v in vectors().into_iter().filter(|v| !v.is_packet() && v.keyring.is_none()) {
        // Feed the stream one byte at a time: the decoder must wait, never fail, until the end.
        let cfg = StreamOpenConfig {
            label: v.label.clone(),
            expect_label_header: v.dialer_side(),
            gossip_verify_incoming: true,
            ..Default::default()
        };
        let mut dec = StreamDecoder::new(cfg);
        let mut frame = None;
        for (i, b) in v.bytes.iter().enumerate() {
            dec.push(std::slice::from_ref(b));
            match dec.poll() {
                Ok(Some(f)) => {
                    assert_eq!(i + 1, v.bytes.len(), "{}: finished early", v.id);
                    frame = Some(f);
                }
                Ok(None) => {}
                Err(e) => panic!("{}: {e} at byte {i}", v.id),
            }
        }
        let frame = frame.unwrap_or_else(|| panic!("{}: never completed", v.id));
        let msg = frame.message.encode(IntEncoding::Unsigned);
        let seal = StreamSealConfig {
            label: &v.label,
            enable_compression: frame.compression.is_some(),
            algorithm: memberlist_proto::wire::Compression::Lzw,
            keyring: None,
            encryption_version: EncryptionVersion::V1,
        };
        let again = seal_stream(&msg, v.dialer_side(), &seal, &mut NoRng).unwrap();
        assert_eq!(hex::encode(again), hex::encode(&v.bytes), "{}", v.id);
    }
}

#[test]
fn the_message_walk_yields_exactly_what_the_full_decode_does() {
    // The endpoint's receive path takes messages out without decoding the tree first: on every
    // packet vector (plain, CRC, compound, compressed, encrypted, labelled) and on damaged copies
    // it must see the same messages and the same errors as `open_packet`.
    let mut parts = memberlist_proto::wire::PacketParts::default();
    let mut seen = 0;
    for v in vectors().into_iter().filter(Vector::is_packet) {
        let cfg = OpenConfig { label: &v.label, keyring: v.keyring.as_ref(), ..Default::default() };
        let mut inputs = vec![v.bytes.clone()];
        for cut in [1, v.bytes.len() / 2, v.bytes.len().saturating_sub(3)] {
            inputs.push(v.bytes[..cut.min(v.bytes.len())].to_vec());
        }
        let mut flipped = v.bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x5a;
        inputs.push(flipped);
        for bytes in inputs {
            let full = open_packet(&bytes, &cfg);
            let walked = open_packet_parts(&bytes, &cfg, &mut parts);
            match full {
                Err(e) => {
                    // A message that does not decode fails the whole tree, not the walk.
                    let walk_err = walked.err().map(|w| w.to_string());
                    let msg_err = parts.messages().find_map(|m| Message::decode(m).err()).map(|e| e.to_string());
                    assert_eq!(Some(e.to_string()), walk_err.or(msg_err), "{}", v.id);
                }
                Ok(opened) => {
                    walked.unwrap_or_else(|e| panic!("{}: {e}", v.id));
                    let (msgs, errors) = opened.payload.into_messages();
                    let mut decoded = Vec::new();
                    let mut errs: Vec<String> = parts.errors.iter().map(ToString::to_string).collect();
                    for m in parts.messages() {
                        match Message::decode(m) {
                            Ok(m) => decoded.push(m),
                            Err(e) => errs.push(e.to_string()),
                        }
                    }
                    assert_eq!(decoded, msgs, "{}", v.id);
                    let mut want: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    want.sort();
                    errs.sort();
                    assert_eq!(errs, want, "{}", v.id);
                    seen += msgs.len();
                }
            }
        }
    }
    assert!(seen > 20, "{seen} messages compared");
}

#[test]
fn encrypted_vectors_re_encrypt_identically_with_their_nonce() {
    let mut checked = 0;
    for v in vectors().into_iter().filter(|v| v.keyring.is_some()) {
        let key = hex::decode(v.raw["key_hex"].as_str().unwrap()).unwrap();
        let plain = hex::decode(v.raw["plain_hex"].as_str().unwrap()).unwrap();
        let (label, rest) = split_label(&v.bytes).unwrap();
        let (blob, aad, prefix_len) = if v.is_packet() {
            (rest, label.to_vec(), v.bytes.len() - rest.len())
        } else {
            let aad = hex::decode(v.raw["aad_hex"].as_str().unwrap()).unwrap();
            (&rest[5..], aad, v.bytes.len() - rest.len() + 5)
        };
        let version = if blob[0] == 0 { EncryptionVersion::V0 } else { EncryptionVersion::V1 };
        let nonce: [u8; 12] = blob[1..13].try_into().unwrap();
        let again = encrypt(version, &key, nonce, &plain, &aad);
        assert_eq!(hex::encode(&again), hex::encode(&v.bytes[prefix_len..]), "{}", v.id);
        // And the whole receive pipeline accepts the packets with the right label and key.
        if v.is_packet() {
            let cfg = OpenConfig { label: &v.label, keyring: v.keyring.as_ref(), ..Default::default() };
            let opened = open_packet(&v.bytes, &cfg).unwrap();
            assert_eq!(opened.encryption.unwrap().plaintext, plain);
            assert!(split_crc(&plain).is_none() || opened.crc.is_some());
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn go_drop_rules_hold_on_real_packets() {
    let vs = vectors();
    let enc = vs.iter().find(|v| v.id == "enc-ping").unwrap();
    // Wrong key: dropped with verification on, read as (invalid) plaintext with it off.
    let wrong = Keyring::new(vec![Key::new(&[9u8; 16]).unwrap()]).unwrap();
    let cfg = OpenConfig { keyring: Some(&wrong), ..Default::default() };
    assert!(open_packet(&enc.bytes, &cfg).is_err());
    // Encrypted label vector: a different label refuses it, no label refuses it.
    let lab = vs.iter().find(|v| v.id == "label-enc-ping").unwrap();
    for label in ["L2", ""] {
        let cfg = OpenConfig { label, keyring: lab.keyring.as_ref(), ..Default::default() };
        assert!(open_packet(&lab.bytes, &cfg).is_err(), "label {label:?}");
    }
    // A flipped payload byte of a CRC packet fails the CRC.
    let crc = vs.iter().find(|v| v.id == "alive-crc").unwrap();
    let mut bad = crc.bytes.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(open_packet(&bad, &OpenConfig::default()).is_err());
    // A plaintext node (no keys) cannot read encrypted packets.
    assert!(open_packet(&enc.bytes, &OpenConfig::default()).is_err());
}

/// Packets Grafana's memberlist fork compressed with snappy (compression type 1), captured
/// from real dskit nodes: they pass the receive pipeline, and what they carry re-encodes to
/// the bytes the fork compressed.
#[test]
fn snappy_packets_from_grafanas_fork_decode() {
    let v: Value = serde_json::from_str(include_str!("data/snappy-vectors.json")).unwrap();
    let packets = v["packets"].as_array().unwrap();
    assert!(packets.len() >= 10, "{} vectors", packets.len());
    for (i, p) in packets.iter().enumerate() {
        let bytes = hex::decode(p.as_str().unwrap()).unwrap();
        let opened = open_packet(&bytes, &OpenConfig::default()).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        let memberlist_proto::wire::Payload::Compressed(c) = &opened.payload else {
            panic!("vector {i} is not compressed")
        };
        assert_eq!(c.compress.algo, 1, "vector {i}: snappy");
        assert_eq!(c.inner.encode().unwrap(), c.decompressed, "vector {i} re-encodes to what was compressed");
        // Our snappy encoder's output of the same message decodes to it too.
        let again = memberlist_proto::wire::compress::compress_message_with(
            &c.decompressed,
            memberlist_proto::wire::Compression::Snappy,
        );
        assert!(open_packet(&again, &OpenConfig::default()).is_ok(), "vector {i}");
        let (messages, errors) = opened.payload.into_messages();
        assert!(errors.is_empty() && !messages.is_empty(), "vector {i}: {errors:?}");
    }
}

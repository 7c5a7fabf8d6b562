//! A decode tree of a captured packet or stream, as JSON, for people and golden tests.
//!
//! The tree is a list of layers, outermost first, ending with the message. Layers: `label`,
//! `encryption` (key index, version, nonce, tag, plaintext), `hasCrc` (carried CRC and whether it
//! matches), `stream-encryption` (frame length, then the decryption with its additional data),
//! `compress`. Messages appear with their type number, their name, and their body under Go's
//! field names. Byte fields that hold addresses, versions or compressed data are shown as
//! `0x…` hex; metadata, payloads and user data as text when they are UTF-8, else as hex.
//! Metadata in Serf's tag encoding is also shown decoded, as `Tags`.
//!
//! Unlike the receive pipelines, inspection does not enforce a label or a CRC: it reports them.

use serde_json::{json, Map, Value};

use super::crc::split_crc;
use super::error::DecodeError;
use super::keyring::Keyring;
use super::label::split_label;
use super::limits::Limits;
use super::messages::{Message, PushNodeState};
use super::packet::Payload;
use super::security::{decrypt, Decrypted};
use super::stream::{StreamDecoder, StreamEncryption, StreamFrame, StreamMessage, StreamOpenConfig};

/// What to decode with.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Keys to try on encrypted input.
    pub keyring: Option<Keyring>,
    /// The label to use as additional data when the input carries no label header (stream
    /// replies and packets of nodes with a label always use their configured label).
    pub label: String,
    /// Decoding limits.
    pub limits: Limits,
}

/// The result of an inspection: the layers decoded, and the error that stopped decoding, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// Layers decoded, outermost first.
    pub layers: Vec<Value>,
    /// Why decoding stopped early.
    pub error: Option<DecodeError>,
}

impl Inspection {
    /// The layers as one JSON array.
    pub fn to_json(&self) -> Value {
        Value::Array(self.layers.clone())
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

fn hex0x(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex(b)))
}

fn text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => hex0x(b),
    }
}

fn opt_text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, text)
}

fn label_layer(label: &[u8]) -> Value {
    json!({"layer": "label", "label": text(label)})
}

fn encryption_layer(d: &Decrypted) -> Value {
    json!({
        "layer": "encryption",
        "key_index": d.key_index,
        "vsn": d.version as u8,
        "nonce": hex(&d.nonce),
        "tag": hex(&d.tag),
        "plain_hex": hex(&d.plaintext),
    })
}

/// Decodes a packet (one UDP datagram).
pub fn inspect_packet(buf: &[u8], opts: &InspectOptions) -> Inspection {
    let mut layers = Vec::new();
    let error = inspect_packet_into(buf, opts, &mut layers).err();
    Inspection { layers, error }
}

fn inspect_packet_into(buf: &[u8], opts: &InspectOptions, layers: &mut Vec<Value>) -> Result<(), DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (label, rest) = split_label(buf)?;
    if !label.is_empty() {
        layers.push(label_layer(label));
    }
    let aad = if label.is_empty() { opts.label.as_bytes() } else { label };
    let plaintext;
    let mut plain = rest;
    if let Some(keyring) = &opts.keyring {
        let d = decrypt(keyring, rest, aad)?;
        layers.push(encryption_layer(&d));
        plaintext = d.plaintext;
        plain = &plaintext;
    }
    if let Some((check, inner)) = split_crc(plain) {
        layers.push(json!({
            "layer": "hasCrc",
            "crc": format!("{:08x}", check.expected),
            "crc_ok": check.ok(),
        }));
        plain = inner;
    }
    let payload = Payload::decode(plain, &opts.limits)?;
    layers.push(payload_json(&payload));
    Ok(())
}

/// The tree of a decoded payload.
pub fn payload_json(p: &Payload) -> Value {
    match p {
        Payload::Message(m) => message_json(m),
        Payload::Compound(c) => {
            let parts: Vec<Value> = c
                .parts
                .iter()
                .map(|p| match p {
                    Ok(p) => payload_json(p),
                    Err(e) => json!({"error": e.to_string()}),
                })
                .collect();
            let mut v = json!({
                "type": 7,
                "name": "compound",
                "count": c.lengths.len(),
                "lengths": c.lengths,
                "parts": parts,
            });
            if let (true, Value::Object(map)) = (c.truncated > 0, &mut v) {
                map.insert("truncated".into(), json!(c.truncated));
            }
            v
        }
        Payload::Compressed(c) => json!({
            "type": 9,
            "name": "compress",
            "body": [{"Algo": c.compress.algo, "Buf": hex0x(&c.compress.buf)}],
            "plain_hex": hex(&c.decompressed),
            "inner": payload_json(&c.inner),
        }),
    }
}

fn with_source(body: &mut Map<String, Value>, addr: &[u8], node: &str, port: u16) {
    if !addr.is_empty() {
        body.insert("SourceAddr".into(), hex0x(addr));
    }
    if !node.is_empty() {
        body.insert("SourceNode".into(), json!(node));
    }
    if port != 0 {
        body.insert("SourcePort".into(), json!(port));
    }
}

/// The tree of one message.
pub fn message_json(m: &Message) -> Value {
    let ty = m.message_type();
    let body = match m {
        Message::User(data) => return json!({"type": ty as u8, "name": ty.name(), "data": text(data)}),
        Message::Ping(p) => {
            let mut b = Map::new();
            b.insert("Node".into(), json!(p.node));
            b.insert("SeqNo".into(), json!(p.seq_no));
            with_source(&mut b, &p.source_addr, &p.source_node, p.source_port);
            Value::Object(b)
        }
        Message::IndirectPing(p) => {
            let mut b = Map::new();
            b.insert("Nack".into(), json!(p.nack));
            b.insert("Node".into(), json!(p.node));
            b.insert("Port".into(), json!(p.port));
            b.insert("SeqNo".into(), json!(p.seq_no));
            b.insert("Target".into(), hex0x(&p.target));
            with_source(&mut b, &p.source_addr, &p.source_node, p.source_port);
            Value::Object(b)
        }
        Message::Ack(a) => json!({"Payload": opt_text(a.payload.as_deref()), "SeqNo": a.seq_no}),
        Message::Nack(n) => json!({"SeqNo": n.seq_no}),
        Message::Suspect(s) => json!({"From": s.from, "Incarnation": s.incarnation, "Node": s.node}),
        Message::Dead(d) => json!({"From": d.from, "Incarnation": d.incarnation, "Node": d.node}),
        Message::Alive(a) => with_tags(
            json!({
                "Addr": hex0x(&a.addr),
                "Incarnation": a.incarnation,
                "Meta": opt_text(a.meta.as_deref()),
                "Node": a.node,
                "Port": a.port,
                "Vsn": hex0x(&a.vsn.to_bytes()),
            }),
            a.meta.as_deref(),
        ),
        Message::Err(e) => json!({"Error": e.error}),
    };
    json!({"type": ty as u8, "name": ty.name(), "body": body})
}

fn node_json(n: &PushNodeState) -> Value {
    let v = json!({
        "Addr": hex0x(&n.addr),
        "Incarnation": n.incarnation,
        "Meta": opt_text(n.meta.as_deref()),
        "Name": n.name,
        "Port": n.port,
        "State": n.state,
        "Vsn": hex0x(&n.vsn.to_bytes()),
    });
    with_tags(v, n.meta.as_deref())
}

/// Adds `Tags` (an object, or `{"error": …}`) beside `Meta` when the metadata is in Serf's tag
/// encoding.
fn with_tags(mut body: Value, meta: Option<&[u8]>) -> Value {
    let Some(decoded) = meta.and_then(crate::serf_tags::decode) else { return body };
    let tags = match decoded {
        Ok(t) => json!(t),
        Err(e) => json!({"error": e.to_string()}),
    };
    if let Value::Object(map) = &mut body {
        map.insert("Tags".into(), tags);
    }
    body
}

/// The tree of one stream message.
pub fn stream_message_json(m: &StreamMessage) -> Value {
    match m {
        StreamMessage::PushPull(p) => json!({
            "type": 6,
            "name": "pushPull",
            "header": {"Join": p.join, "Nodes": p.nodes.len(), "UserStateLen": p.user_state.len()},
            "nodes": p.nodes.iter().map(node_json).collect::<Vec<_>>(),
            "user_state": text(&p.user_state),
        }),
        StreamMessage::User(data) => json!({
            "type": 8,
            "name": "user",
            "header": {"UserMsgLen": data.len()},
            "data": text(data),
        }),
        StreamMessage::Ping(p) => message_json(&Message::Ping(p.clone())),
        StreamMessage::Ack(a) => message_json(&Message::Ack(a.clone())),
        StreamMessage::Err(e) => message_json(&Message::Err(e.clone())),
    }
}

/// Decodes everything one side wrote on a stream (TCP connection).
pub fn inspect_stream(buf: &[u8], opts: &InspectOptions) -> Inspection {
    let mut layers = Vec::new();
    let error = inspect_stream_into(buf, opts, &mut layers).err();
    Inspection { layers, error }
}

fn inspect_stream_into(buf: &[u8], opts: &InspectOptions, layers: &mut Vec<Value>) -> Result<(), DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (label, rest) = split_label(buf)?;
    if !label.is_empty() {
        layers.push(label_layer(label));
    }
    let label = if label.is_empty() { opts.label.as_bytes() } else { label };
    let cfg = StreamOpenConfig {
        label: String::from_utf8_lossy(label).into_owned(),
        expect_label_header: false,
        skip_inbound_label_check: false,
        keyring: opts.keyring.clone(),
        gossip_verify_incoming: false,
        limits: opts.limits,
    };
    let mut dec = StreamDecoder::new(cfg);
    dec.push(rest);
    let frame: StreamFrame = dec.finish()?;
    if let Some(StreamEncryption { len, decrypted: d }) = &frame.encryption {
        layers.push(json!({"layer": "stream-encryption", "len": len}));
        let mut aad = vec![10u8];
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(label);
        layers.push(json!({
            "aad": hex(&aad),
            "key_index": d.key_index,
            "nonce": hex(&d.nonce),
            "plain_hex": hex(&d.plaintext),
            "vsn": d.version as u8,
        }));
    }
    if let Some(c) = &frame.compression {
        layers.push(json!({"layer": "compress", "algo": c.compress.algo, "plain_hex": hex(&c.decompressed)}));
    }
    layers.push(stream_message_json(&frame.message));
    Ok(())
}

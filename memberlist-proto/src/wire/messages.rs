//! Message types and bodies, mapped field by field onto Go memberlist's structs (`net.go`).
//!
//! A message is one type byte followed by a msgpack map of the body (user messages carry raw
//! bytes instead). Keys are written in Go's sorted field order; `omitempty` fields (the `Source*`
//! fields of pings) are left out when zero. Byte fields keep Go's nil / empty distinction where
//! it shows on the wire (`Meta`, `Payload`: `None` is nil `0xc0`, `Some(vec![])` is `0xa0`).

use super::error::DecodeError;
use super::msgpack::{read_struct, IntEncoding, Reader, Writer};
use crate::node::Vsn;

pub use super::message_type::MessageType;

/// `ping`: a probe of `node`, asking for an ack to `source_addr:source_port` when those are set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// Sequence number the ack must echo.
    pub seq_no: u32,
    /// Name of the node this ping is meant for; the receiver drops it if that is not its name.
    pub node: String,
    /// Where to send the ack (omitted when empty).
    pub source_addr: Vec<u8>,
    /// Port for the ack (omitted when 0).
    pub source_port: u16,
    /// Name of the pinging node (omitted when empty).
    pub source_node: String,
}

/// `indirectPingReq`: asks a relay to probe `target:port` (named `node`) on our behalf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPingReq {
    /// Sequence number the relayed ack must carry.
    pub seq_no: u32,
    /// IP of the node to probe.
    pub target: Vec<u8>,
    /// Port of the node to probe.
    pub port: u16,
    /// Name of the node to probe.
    pub node: String,
    /// Whether the relay should answer with a nack when the target is silent (protocol ≥ 4).
    pub nack: bool,
    /// Where to send the forwarded ack (omitted when empty).
    pub source_addr: Vec<u8>,
    /// Port for the forwarded ack (omitted when 0).
    pub source_port: u16,
    /// Name of the requesting node (omitted when empty).
    pub source_node: String,
}

/// `ackResp`: the answer to a ping, with an optional payload from the ping delegate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckResp {
    /// The ping's sequence number.
    pub seq_no: u32,
    /// Delegate payload; `None` is written as nil.
    pub payload: Option<Vec<u8>>,
}

/// `nackResp`: a relay tried the target of an indirect ping and got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NackResp {
    /// The indirect ping's sequence number.
    pub seq_no: u32,
}

/// `errResp`: an error reported on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrResp {
    /// The error text.
    pub error: String,
}

/// `suspect`: `from` suspects `node` at `incarnation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    /// Incarnation of the suspected node.
    pub incarnation: u32,
    /// The suspected node.
    pub node: String,
    /// Who suspects it.
    pub from: String,
}

/// `alive`: `node` is alive at `incarnation`, reachable at `addr:port`, with its meta and Vsn.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    /// Incarnation; never 0 on a real alive.
    pub incarnation: u32,
    /// Node name.
    pub node: String,
    /// IP address, 4 or 16 bytes.
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Node metadata; `None` is written as nil.
    pub meta: Option<Vec<u8>>,
    /// Protocol versions, always six bytes on the wire.
    pub vsn: Vsn,
}

/// `dead`: `from` declares `node` dead at `incarnation`; `from == node` means it left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    /// Incarnation of the dead node.
    pub incarnation: u32,
    /// The dead node.
    pub node: String,
    /// Who declares it.
    pub from: String,
}

/// `pushPullHeader`: the start of a push/pull exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushPullHeader {
    /// Number of node states that follow.
    pub nodes: u32,
    /// Number of raw user-state bytes after the node states.
    pub user_state_len: u32,
    /// Whether this exchange is a join.
    pub join: bool,
}

/// `pushNodeState`: one entry of a node table in a push/pull.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeState {
    /// Node name.
    pub name: String,
    /// IP address, 4 or 16 bytes.
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Metadata; `None` is written as nil.
    pub meta: Option<Vec<u8>>,
    /// Incarnation.
    pub incarnation: u32,
    /// Go's state code (0 alive, 1 suspect, 2 dead, 3 left); other values are kept as they are
    /// and ignored by the merge, as Go does.
    pub state: i64,
    /// Protocol versions.
    pub vsn: Vsn,
}

/// `userMsgHeader`: the length of a user message sent on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserMsgHeader {
    /// Length of the raw bytes that follow.
    pub user_msg_len: u32,
}

/// `compress`: an LZW-compressed message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compress {
    /// Algorithm; 0 (LZW) is the only one defined.
    pub algo: u8,
    /// The compressed bytes.
    pub buf: Vec<u8>,
}

/// A message that can travel in a packet, one type byte plus its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A probe.
    Ping(Ping),
    /// A request to probe through a relay.
    IndirectPing(IndirectPingReq),
    /// An ack.
    Ack(AckResp),
    /// A nack.
    Nack(NackResp),
    /// A suspicion.
    Suspect(Suspect),
    /// An alive.
    Alive(Alive),
    /// A death or a leave.
    Dead(Dead),
    /// Application bytes (`[8]` followed by the raw bytes).
    User(Vec<u8>),
    /// An error reply (streams only in practice).
    Err(ErrResp),
}

impl Message {
    /// The type byte of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::Ack(_) => MessageType::AckResp,
            Message::Nack(_) => MessageType::NackResp,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
            Message::Err(_) => MessageType::Err,
        }
    }

    /// Appends the type byte and the body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.message_type() as u8);
        let mut w = Writer::new(out);
        match self {
            Message::Ping(m) => m.encode(&mut w),
            Message::IndirectPing(m) => m.encode(&mut w),
            Message::Ack(m) => m.encode(&mut w),
            Message::Nack(m) => m.encode(&mut w),
            Message::Suspect(m) => m.encode(&mut w),
            Message::Alive(m) => m.encode(&mut w),
            Message::Dead(m) => m.encode(&mut w),
            Message::Err(m) => m.encode(&mut w),
            Message::User(data) => out.extend_from_slice(data),
        }
    }

    /// The type byte and the body as a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes one message of a type that may appear in a packet. The whole of `buf` belongs to
    /// the message; bytes after the msgpack body are ignored, as Go does.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&t, body) = buf.split_first().ok_or(DecodeError::Empty)?;
        let ty = MessageType::from_u8(t).ok_or(DecodeError::UnknownMessageType(t))?;
        let mut r = Reader::new(body);
        Ok(match ty {
            MessageType::Ping => Message::Ping(Ping::decode(&mut r)?),
            MessageType::IndirectPing => Message::IndirectPing(IndirectPingReq::decode(&mut r)?),
            MessageType::AckResp => Message::Ack(AckResp::decode(&mut r)?),
            MessageType::NackResp => Message::Nack(NackResp::decode(&mut r)?),
            MessageType::Suspect => Message::Suspect(Suspect::decode(&mut r)?),
            MessageType::Alive => Message::Alive(Alive::decode(&mut r)?),
            MessageType::Dead => Message::Dead(Dead::decode(&mut r)?),
            MessageType::Err => Message::Err(ErrResp::decode(&mut r)?),
            MessageType::User => Message::User(body.to_vec()),
            other => {
                return Err(DecodeError::UnexpectedMessageType {
                    found: other as u8,
                    context: "as a plain packet message",
                })
            }
        })
    }
}

fn vsn_from(b: &[u8]) -> Result<Vsn, DecodeError> {
    Vsn::from_slice(b).ok_or(DecodeError::ShortVsn(b.len()))
}

fn check_addr(field: &'static str, addr: &[u8]) -> Result<(), DecodeError> {
    match addr.len() {
        4 | 16 => Ok(()),
        len => Err(DecodeError::BadAddress { field, len }),
    }
}

/// How many of the `omitempty` reply-address fields of a ping or indirect ping are written.
fn source_field_count(addr: &[u8], node: &str, port: u16) -> u32 {
    u32::from(!addr.is_empty()) + u32::from(!node.is_empty()) + u32::from(port != 0)
}

/// Writes the `omitempty` reply-address fields `SourceAddr`, `SourceNode`, `SourcePort` (in
/// sorted key order) of a ping or indirect ping, leaving out the empty ones.
fn write_source(w: &mut Writer<'_>, addr: &[u8], node: &str, port: u16) {
    if !addr.is_empty() {
        w.key("SourceAddr");
        w.bytes(addr);
    }
    if !node.is_empty() {
        w.key("SourceNode");
        w.str(node);
    }
    if port != 0 {
        w.key("SourcePort");
        w.uint(port.into());
    }
}

impl Ping {
    fn encode(&self, w: &mut Writer<'_>) {
        let n = 2 + source_field_count(&self.source_addr, &self.source_node, self.source_port);
        w.map_len(n);
        w.key("Node");
        w.str(&self.node);
        w.key("SeqNo");
        w.uint(self.seq_no.into());
        write_source(w, &self.source_addr, &self.source_node, self.source_port);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Ping::default();
        read_struct(r, "ping", &[b"SeqNo", b"Node", b"SourceAddr", b"SourcePort", b"SourceNode"], |k, r| {
            match k {
                b"Node" => m.node = r.string("ping.Node")?,
                b"SeqNo" => m.seq_no = r.int("ping.SeqNo")?,
                b"SourceAddr" => m.source_addr = r.bytes("ping.SourceAddr")?.to_vec(),
                b"SourceNode" => m.source_node = r.string("ping.SourceNode")?,
                b"SourcePort" => m.source_port = r.int("ping.SourcePort")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl IndirectPingReq {
    fn encode(&self, w: &mut Writer<'_>) {
        let n = 5 + source_field_count(&self.source_addr, &self.source_node, self.source_port);
        w.map_len(n);
        w.key("Nack");
        w.bool(self.nack);
        w.key("Node");
        w.str(&self.node);
        w.key("Port");
        w.uint(self.port.into());
        w.key("SeqNo");
        w.uint(self.seq_no.into());
        write_source(w, &self.source_addr, &self.source_node, self.source_port);
        w.key("Target");
        w.bytes_or_nil(&self.target);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = IndirectPingReq::default();
        read_struct(
            r,
            "indirectPingReq",
            &[b"SeqNo", b"Target", b"Port", b"Node", b"Nack", b"SourceAddr", b"SourcePort", b"SourceNode"],
            |k, r| {
                match k {
                    b"Nack" => m.nack = r.bool("indirectPingReq.Nack")?,
                    b"Node" => m.node = r.string("indirectPingReq.Node")?,
                    b"Port" => m.port = r.int("indirectPingReq.Port")?,
                    b"SeqNo" => m.seq_no = r.int("indirectPingReq.SeqNo")?,
                    b"SourceAddr" => m.source_addr = r.bytes("indirectPingReq.SourceAddr")?.to_vec(),
                    b"SourceNode" => m.source_node = r.string("indirectPingReq.SourceNode")?,
                    b"SourcePort" => m.source_port = r.int("indirectPingReq.SourcePort")?,
                    b"Target" => m.target = r.bytes("indirectPingReq.Target")?.to_vec(),
                    _ => return Ok(false),
                }
                Ok(true)
            },
        )?;
        check_addr("indirectPingReq.Target", &m.target)?;
        Ok(m)
    }
}

impl AckResp {
    fn encode(&self, w: &mut Writer<'_>) {
        w.map_len(2);
        w.key("Payload");
        w.opt_bytes(self.payload.as_deref());
        w.key("SeqNo");
        w.uint(self.seq_no.into());
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = AckResp::default();
        read_struct(r, "ackResp", &[b"SeqNo", b"Payload"], |k, r| {
            match k {
                b"Payload" => m.payload = r.opt_bytes("ackResp.Payload")?.map(<[u8]>::to_vec),
                b"SeqNo" => m.seq_no = r.int("ackResp.SeqNo")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl NackResp {
    fn encode(&self, w: &mut Writer<'_>) {
        w.map_len(1);
        w.key("SeqNo");
        w.uint(self.seq_no.into());
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = NackResp::default();
        read_struct(r, "nackResp", &[b"SeqNo"], |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.int("nackResp.SeqNo")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl ErrResp {
    fn encode(&self, w: &mut Writer<'_>) {
        w.map_len(1);
        w.key("Error");
        w.str(&self.error);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = ErrResp::default();
        read_struct(r, "errResp", &[b"Error"], |k, r| {
            match k {
                b"Error" => m.error = r.string("errResp.Error")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

/// Suspect and dead share one shape: `From`, `Incarnation`, `Node`.
fn encode_accusation(w: &mut Writer<'_>, from: &str, incarnation: u32, node: &str) {
    w.map_len(3);
    w.key("From");
    w.str(from);
    w.key("Incarnation");
    w.uint(incarnation.into());
    w.key("Node");
    w.str(node);
}

fn decode_accusation(r: &mut Reader<'_>, what: &'static str) -> Result<(String, u32, String), DecodeError> {
    let (mut from, mut inc, mut node) = (String::new(), 0u32, String::new());
    read_struct(r, what, &[b"Incarnation", b"Node", b"From"], |k, r| {
        match k {
            b"From" => from = r.string(what)?,
            b"Incarnation" => inc = r.int(what)?,
            b"Node" => node = r.string(what)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((from, inc, node))
}

impl Suspect {
    fn encode(&self, w: &mut Writer<'_>) {
        encode_accusation(w, &self.from, self.incarnation, &self.node);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = decode_accusation(r, "suspect")?;
        Ok(Suspect { incarnation, node, from })
    }
}

impl Dead {
    fn encode(&self, w: &mut Writer<'_>) {
        encode_accusation(w, &self.from, self.incarnation, &self.node);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = decode_accusation(r, "dead")?;
        Ok(Dead { incarnation, node, from })
    }

    /// Whether this dead message is a graceful leave (`From == Node`).
    pub fn is_leave(&self) -> bool {
        self.from == self.node
    }
}

impl Alive {
    fn encode(&self, w: &mut Writer<'_>) {
        w.map_len(6);
        w.key("Addr");
        w.bytes_or_nil(&self.addr);
        w.key("Incarnation");
        w.uint(self.incarnation.into());
        w.key("Meta");
        w.opt_bytes(self.meta.as_deref());
        w.key("Node");
        w.str(&self.node);
        w.key("Port");
        w.uint(self.port.into());
        w.key("Vsn");
        w.bytes(&self.vsn.to_bytes());
    }

    /// Decodes the msgpack body. The address must be 4 or 16 bytes and the Vsn at least six.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        AliveRef::decode(r).map(|a| a.to_owned())
    }
}

/// An alive message read in place, its strings borrowed from the packet: the receive path
/// checks gossip that repeats what a node already knows without allocating (see
/// [`Alive::decode`], which is this plus the copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliveRef<'a> {
    /// Incarnation.
    pub incarnation: u32,
    /// Node name.
    pub node: &'a str,
    /// IP address, 4 or 16 bytes.
    pub addr: &'a [u8],
    /// Port.
    pub port: u16,
    /// Node metadata (`None` for nil).
    pub meta: Option<&'a [u8]>,
    /// Protocol versions.
    pub vsn: Vsn,
}

impl<'a> AliveRef<'a> {
    /// Decodes the msgpack body, as [`Alive::decode`] does.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let (mut incarnation, mut node, mut addr, mut port, mut meta) = (0, "", &[][..], 0, None);
        let mut vsn: &[u8] = &[];
        read_struct(r, "alive", &[b"Incarnation", b"Node", b"Addr", b"Port", b"Meta", b"Vsn"], |k, r| {
            match k {
                b"Addr" => addr = r.bytes("alive.Addr")?,
                b"Incarnation" => incarnation = r.int("alive.Incarnation")?,
                b"Meta" => meta = r.opt_bytes("alive.Meta")?,
                b"Node" => {
                    node = std::str::from_utf8(r.bytes("alive.Node")?)
                        .map_err(|_| DecodeError::InvalidUtf8 { field: "alive.Node" })?;
                }
                b"Port" => port = r.int("alive.Port")?,
                b"Vsn" => vsn = r.bytes("alive.Vsn")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let vsn = vsn_from(vsn)?;
        check_addr("alive.Addr", addr)?;
        Ok(AliveRef { incarnation, node, addr, port, meta, vsn })
    }

    /// The alive message of a whole message `buf` (type byte first), if it is one that decodes.
    pub fn from_message(buf: &'a [u8]) -> Option<Self> {
        match buf.split_first() {
            Some((&t, body)) if t == MessageType::Alive as u8 => Self::decode(&mut Reader::new(body)).ok(),
            _ => None,
        }
    }

    /// The owned message.
    pub fn to_owned(&self) -> Alive {
        Alive {
            incarnation: self.incarnation,
            node: self.node.to_owned(),
            addr: self.addr.to_vec(),
            port: self.port,
            meta: self.meta.map(<[u8]>::to_vec),
            vsn: self.vsn,
        }
    }
}

impl PushPullHeader {
    /// Appends the msgpack body (no type byte) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>, ints: IntEncoding) {
        let mut w = Writer::new(out);
        w.map_len(3);
        w.key("Join");
        w.bool(self.join);
        w.key("Nodes");
        w.int(self.nodes.into(), ints);
        w.key("UserStateLen");
        w.int(self.user_state_len.into(), ints);
    }

    /// Decodes the msgpack body, enforcing `max_nodes` and `max_user_state` before anything is
    /// allocated from the counts.
    pub fn decode(r: &mut Reader<'_>, max_nodes: u32, max_user_state: u32) -> Result<Self, DecodeError> {
        let (mut join, mut nodes, mut user) = (false, 0i64, 0i64);
        read_struct(r, "pushPullHeader", &[b"Nodes", b"UserStateLen", b"Join"], |k, r| {
            match k {
                b"Join" => join = r.bool("pushPullHeader.Join")?,
                b"Nodes" => nodes = r.int("pushPullHeader.Nodes")?,
                b"UserStateLen" => user = r.int("pushPullHeader.UserStateLen")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(PushPullHeader {
            join,
            nodes: check_limit("push/pull node count", nodes, max_nodes)?,
            user_state_len: check_limit("push/pull user state length", user, max_user_state)?,
        })
    }
}

/// Checks a Go `int` count from the wire against `0..=limit`.
pub(crate) fn check_limit(what: &'static str, value: i64, limit: u32) -> Result<u32, DecodeError> {
    match u32::try_from(value) {
        Ok(v) if v <= limit => Ok(v),
        _ => Err(DecodeError::LimitExceeded { what, value, limit: limit.into() }),
    }
}

impl PushNodeState {
    /// Appends the msgpack body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>, ints: IntEncoding) {
        let mut w = Writer::new(out);
        w.map_len(7);
        w.key("Addr");
        w.bytes_or_nil(&self.addr);
        w.key("Incarnation");
        w.uint(self.incarnation.into());
        w.key("Meta");
        w.opt_bytes(self.meta.as_deref());
        w.key("Name");
        w.str(&self.name);
        w.key("Port");
        w.uint(self.port.into());
        w.key("State");
        w.int(self.state, ints);
        w.key("Vsn");
        w.bytes(&self.vsn.to_bytes());
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = PushNodeState::default();
        let mut vsn: &[u8] = &[];
        read_struct(
            r,
            "pushNodeState",
            &[b"Name", b"Addr", b"Port", b"Meta", b"Incarnation", b"State", b"Vsn"],
            |k, r| {
                match k {
                    b"Addr" => m.addr = r.bytes("pushNodeState.Addr")?.to_vec(),
                    b"Incarnation" => m.incarnation = r.int("pushNodeState.Incarnation")?,
                    b"Meta" => m.meta = r.opt_bytes("pushNodeState.Meta")?.map(<[u8]>::to_vec),
                    b"Name" => m.name = r.string("pushNodeState.Name")?,
                    b"Port" => m.port = r.int("pushNodeState.Port")?,
                    b"State" => m.state = r.int("pushNodeState.State")?,
                    b"Vsn" => vsn = r.bytes("pushNodeState.Vsn")?,
                    _ => return Ok(false),
                }
                Ok(true)
            },
        )?;
        m.vsn = vsn_from(vsn)?;
        check_addr("pushNodeState.Addr", &m.addr)?;
        Ok(m)
    }
}

impl UserMsgHeader {
    /// Appends the msgpack body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>, ints: IntEncoding) {
        let mut w = Writer::new(out);
        w.map_len(1);
        w.key("UserMsgLen");
        w.int(self.user_msg_len.into(), ints);
    }

    /// Decodes the msgpack body, enforcing `max_len`.
    pub fn decode(r: &mut Reader<'_>, max_len: u32) -> Result<Self, DecodeError> {
        let mut len = 0i64;
        read_struct(r, "userMsgHeader", &[b"UserMsgLen"], |k, r| {
            match k {
                b"UserMsgLen" => len = r.int("userMsgHeader.UserMsgLen")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(UserMsgHeader { user_msg_len: check_limit("user message length", len, max_len)? })
    }
}

impl Compress {
    /// Appends the msgpack body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.map_len(2);
        w.key("Algo");
        w.uint(self.algo.into());
        w.key("Buf");
        w.bytes_or_nil(&self.buf);
    }

    /// Decodes the msgpack body.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Compress::default();
        read_struct(r, "compress", &[b"Algo", b"Buf"], |k, r| {
            match k {
                b"Algo" => m.algo = r.int("compress.Algo")?,
                b"Buf" => m.buf = r.bytes("compress.Buf")?.to_vec(),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn ping_without_source_fields_matches_go() {
        let m = Message::Ping(Ping { seq_no: 100, ..Default::default() });
        assert_eq!(m.encode(), hex("00 82 a4 4e 6f 64 65 a0 a5 53 65 71 4e 6f 64"));
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn alive_and_err_match_go() {
        let m = Message::Alive(Alive {
            incarnation: 1,
            node: "node-a".into(),
            addr: vec![10, 0, 0, 1],
            port: 7946,
            meta: None,
            vsn: Vsn::new(2, 0, 0, 0),
        });
        let want = hex("04 86 a4 41 64 64 72 a4 0a 00 00 01 ab 49 6e 63 61 72 6e 61 74 69 6f 6e 01
             a4 4d 65 74 61 c0 a4 4e 6f 64 65 a6 6e 6f 64 65 2d 61
             a4 50 6f 72 74 cd 1f 0a a3 56 73 6e a6 01 05 02 00 00 00");
        assert_eq!(m.encode(), want);
        let e = Message::Err(ErrResp { error: "boom".into() });
        assert_eq!(e.encode(), hex("0d 81 a5 45 72 72 6f 72 a4 62 6f 6f 6d"));
    }

    #[test]
    fn push_pull_header_in_both_int_styles() {
        let h = PushPullHeader { join: true, nodes: 200, user_state_len: 0 };
        let mut v2 = Vec::new();
        h.encode_into(&mut v2, IntEncoding::Signed);
        assert_eq!(
            v2,
            hex("83 a4 4a 6f 69 6e c3 a5 4e 6f 64 65 73 d1 00 c8 ac 55 73 65 72 53 74 61 74 65 4c 65 6e 00")
        );
        let mut v05 = Vec::new();
        h.encode_into(&mut v05, IntEncoding::Unsigned);
        assert_eq!(v05, hex("83 a4 4a 6f 69 6e c3 a5 4e 6f 64 65 73 cc c8 ac 55 73 65 72 53 74 61 74 65 4c 65 6e 00"));
        for b in [v2, v05] {
            assert_eq!(PushPullHeader::decode(&mut Reader::new(&b), 1 << 20, 20 << 20).unwrap(), h);
        }
    }

    #[test]
    fn push_pull_header_limits_are_checked() {
        let mut b = Vec::new();
        PushPullHeader { join: false, nodes: 10_000_000, user_state_len: 0 }.encode_into(&mut b, IntEncoding::Signed);
        assert!(matches!(
            PushPullHeader::decode(&mut Reader::new(&b), 1 << 20, 20 << 20),
            Err(DecodeError::LimitExceeded { .. })
        ));
        // A negative count (Go int) is refused too.
        let neg = hex("81 a5 4e 6f 64 65 73 ff");
        assert!(matches!(
            PushPullHeader::decode(&mut Reader::new(&neg), 1 << 20, 20 << 20),
            Err(DecodeError::LimitExceeded { value: -1, .. })
        ));
    }

    #[test]
    fn decoding_is_lenient_about_order_unknown_and_missing_keys() {
        // suspect with keys reversed, an unknown key holding a nested map, and no From.
        let b = hex("03 83 a4 4e 6f 64 65 a1 63 a3 58 59 5a 81 a1 61 91 01 ab 49 6e 63 61 72 6e 61 74 69 6f 6e 05");
        let m = Message::decode(&b).unwrap();
        assert_eq!(m, Message::Suspect(Suspect { incarnation: 5, node: "c".into(), from: String::new() }));
    }

    #[test]
    fn structs_as_arrays_decode_in_declaration_order() {
        // alive as [Incarnation, Node, Addr, Port, Meta, Vsn], as go-msgpack accepts it.
        let b = hex("04 96 07 a1 61 a4 7f 00 00 01 cd 1f 0a c0 a6 01 05 02 00 00 00");
        let m = Message::decode(&b).unwrap();
        let Message::Alive(a) = m else { panic!("not an alive") };
        assert_eq!((a.incarnation, a.node.as_str(), a.port, a.meta), (7, "a", 7946, None));
        assert_eq!(a.addr, vec![127, 0, 0, 1]);
    }

    #[test]
    fn short_vsn_and_bad_addresses_are_errors() {
        let mut a = Alive { incarnation: 1, node: "a".into(), addr: vec![127, 0, 0, 1], ..Default::default() };
        let mut b = Message::Alive(a.clone()).encode();
        // Replace the 6-byte Vsn (a6 + 6) by a 3-byte one.
        let n = b.len();
        b.truncate(n - 7);
        b.extend_from_slice(&[0xa3, 1, 5, 2]);
        assert_eq!(Message::decode(&b), Err(DecodeError::ShortVsn(3)));
        a.addr = vec![1, 2, 3];
        let b = Message::Alive(a).encode();
        assert!(matches!(Message::decode(&b), Err(DecodeError::BadAddress { len: 3, .. })));
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Message::decode(&[200]), Err(DecodeError::UnknownMessageType(200)));
    }
}

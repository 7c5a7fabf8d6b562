//! Streams (TCP): one message per direction per connection.
//!
//! The dialer may start with a label header; replies on the same connection carry none. Then
//! comes one of: an encrypted frame `[10][len: u32 BE][blob]` whose additional data is those five
//! header bytes followed by the connection's label; a compress message; or a plaintext message.
//! Plaintext msgpack has no length prefix, so [`StreamDecoder`] decodes incrementally as bytes
//! arrive, keeping the push/pull node states it has already read instead of re-reading them.
//!
//! Messages: push/pull (`[6]` header, node states, raw user state), user (`[8]` header, raw
//! bytes), ping (`[0]`, the TCP fallback probe), ack (`[2]`, its reply), err (`[13]`).

use rand_core::Rng;

use super::compress::{compress_message_with, decompress, Compression};
use super::error::{DecodeError, EncodeError};
use super::keyring::Keyring;
use super::label::{check_label, write_label_header};
use super::limits::Limits;
use super::messages::{AckResp, Compress, ErrResp, MessageType, Ping, PushNodeState, PushPullHeader, UserMsgHeader};
use super::msgpack::{IntEncoding, Reader};
use super::security::{decrypt, encrypt, Decrypted, EncryptionVersion, NONCE_SIZE};

/// Size of the encrypted frame header: the type byte and the u32 length.
pub const ENCRYPT_HEADER_SIZE: usize = 5;

/// A full push/pull message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    /// Whether this exchange is a join.
    pub join: bool,
    /// Every node state, dead, left and the sender itself included.
    pub nodes: Vec<PushNodeState>,
    /// The delegate's opaque state.
    pub user_state: Vec<u8>,
}

/// A message that travels on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// A state exchange.
    PushPull(PushPull),
    /// A reliable user message.
    User(Vec<u8>),
    /// A TCP fallback ping.
    Ping(Ping),
    /// The ack to a TCP ping.
    Ack(AckResp),
    /// An error reply.
    Err(ErrResp),
}

impl StreamMessage {
    /// Encodes the message (type byte included); `ints` picks how Go `int` fields above 127 are
    /// written.
    pub fn encode(&self, ints: IntEncoding) -> Vec<u8> {
        use super::messages::Message;
        match self {
            StreamMessage::PushPull(p) => {
                let mut out = vec![MessageType::PushPull as u8];
                let header = PushPullHeader {
                    join: p.join,
                    nodes: u32::try_from(p.nodes.len()).unwrap_or(u32::MAX),
                    user_state_len: u32::try_from(p.user_state.len()).unwrap_or(u32::MAX),
                };
                header.encode_into(&mut out, ints);
                for n in &p.nodes {
                    n.encode_into(&mut out, ints);
                }
                out.extend_from_slice(&p.user_state);
                out
            }
            StreamMessage::User(data) => {
                let mut out = vec![MessageType::User as u8];
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                UserMsgHeader { user_msg_len: len }.encode_into(&mut out, ints);
                out.extend_from_slice(data);
                out
            }
            StreamMessage::Ping(p) => Message::Ping(p.clone()).encode(),
            StreamMessage::Ack(a) => Message::Ack(a.clone()).encode(),
            StreamMessage::Err(e) => Message::Err(e.clone()).encode(),
        }
    }

    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            StreamMessage::PushPull(_) => MessageType::PushPull,
            StreamMessage::User(_) => MessageType::User,
            StreamMessage::Ping(_) => MessageType::Ping,
            StreamMessage::Ack(_) => MessageType::AckResp,
            StreamMessage::Err(_) => MessageType::Err,
        }
    }
}

/// Send-side settings for streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamSealConfig<'a> {
    /// The connection's label: written as a header by the dialer, and part of the additional
    /// data of encrypted frames in both directions.
    pub label: &'a str,
    /// Compress every stream message.
    pub enable_compression: bool,
    /// With what.
    pub algorithm: Compression,
    /// Keys to encrypt with, when encryption and outgoing verification are on.
    pub keyring: Option<&'a Keyring>,
    /// Encryption format.
    pub encryption_version: EncryptionVersion,
}

/// Wraps one encoded stream message for the wire: compress (always, when on), encrypt into a
/// frame, and put the label header first when `dialer` (replies carry none).
pub fn seal_stream(
    msg: &[u8],
    dialer: bool,
    cfg: &StreamSealConfig<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<u8>, EncodeError> {
    if msg.is_empty() {
        return Err(EncodeError::Empty);
    }
    let mut out = Vec::new();
    if dialer {
        write_label_header(&mut out, cfg.label)?;
    }
    let compressed;
    let body: &[u8] = if cfg.enable_compression {
        compressed = compress_message_with(msg, cfg.algorithm);
        &compressed
    } else {
        msg
    };
    match cfg.keyring {
        Some(keyring) => {
            let len = cfg.encryption_version.encrypted_len(body.len());
            let len32 = u32::try_from(len).map_err(|_| EncodeError::TooLarge(len))?;
            let mut aad = Vec::with_capacity(ENCRYPT_HEADER_SIZE + cfg.label.len());
            aad.push(MessageType::Encrypt as u8);
            aad.extend_from_slice(&len32.to_be_bytes());
            aad.extend_from_slice(cfg.label.as_bytes());
            let mut nonce = [0u8; NONCE_SIZE];
            rng.fill_bytes(&mut nonce);
            let blob = encrypt(cfg.encryption_version, keyring.primary().as_bytes(), nonce, body, &aad);
            out.extend_from_slice(aad.get(..ENCRYPT_HEADER_SIZE).unwrap_or_default());
            out.extend_from_slice(&blob);
        }
        None => out.extend_from_slice(body),
    }
    Ok(out)
}

/// Receive-side settings for one stream.
#[derive(Debug, Clone)]
pub struct StreamOpenConfig {
    /// This node's label.
    pub label: String,
    /// Whether the input may start with a label header: true on accepted connections, false when
    /// reading the reply on a connection we dialed.
    pub expect_label_header: bool,
    /// Accept input without checking labels.
    pub skip_inbound_label_check: bool,
    /// Keys, when encryption is on.
    pub keyring: Option<Keyring>,
    /// With keys set: refuse plaintext streams (true) or accept them (false).
    pub gossip_verify_incoming: bool,
    /// Decoding limits.
    pub limits: Limits,
}

impl Default for StreamOpenConfig {
    fn default() -> Self {
        StreamOpenConfig {
            label: String::new(),
            expect_label_header: true,
            skip_inbound_label_check: false,
            keyring: None,
            gossip_verify_incoming: true,
            limits: Limits::default(),
        }
    }
}

/// The encryption layer of a stream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEncryption {
    /// The length the frame header declared.
    pub len: u32,
    /// The decryption.
    pub decrypted: Decrypted,
}

/// The compression layer of a stream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCompression {
    /// The compress struct as it travelled.
    pub compress: Compress,
    /// What it decompressed to.
    pub decompressed: Vec<u8>,
}

/// A decoded stream message with the layers it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// The label that applied.
    pub label: Vec<u8>,
    /// The encryption layer, when encrypted.
    pub encryption: Option<StreamEncryption>,
    /// The compression layer, when compressed.
    pub compression: Option<StreamCompression>,
    /// The message.
    pub message: StreamMessage,
}

#[derive(Debug)]
enum Stage {
    Label,
    Envelope,
    PushPullNodes { header: PushPullHeader, nodes: Vec<PushNodeState> },
    Done,
}

/// Incremental decoder of one stream message. Feed bytes with [`push`](Self::push) as they
/// arrive and call [`poll`](Self::poll) after each: it returns `Ok(None)` while more bytes are
/// needed, the frame once complete, or an error (after which the connection should be closed).
#[derive(Debug)]
pub struct StreamDecoder {
    cfg: StreamOpenConfig,
    buf: Vec<u8>,
    pos: usize,
    label: Vec<u8>,
    stage: Stage,
}

impl StreamDecoder {
    /// A decoder for a new connection.
    pub fn new(cfg: StreamOpenConfig) -> Self {
        let stage = if cfg.expect_label_header { Stage::Label } else { Stage::Envelope };
        let label = cfg.label.as_bytes().to_vec();
        StreamDecoder { cfg, buf: Vec::new(), pos: 0, label, stage }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Advances as far as the buffered bytes allow.
    pub fn poll(&mut self) -> Result<Option<StreamFrame>, DecodeError> {
        if self.buffered() > self.cfg.limits.max_stream_bytes {
            return Err(DecodeError::LimitExceeded {
                what: "buffered stream bytes",
                value: i64::try_from(self.buffered()).unwrap_or(i64::MAX),
                limit: self.cfg.limits.max_stream_bytes as u64,
            });
        }
        match self.step() {
            Err(e) if e.is_truncated() => Ok(None),
            other => other,
        }
    }

    /// Tells the decoder the peer closed its side: a partial message becomes an error.
    pub fn finish(&mut self) -> Result<StreamFrame, DecodeError> {
        match self.step()? {
            Some(frame) => Ok(frame),
            None => Err(DecodeError::Truncated { what: "stream message" }),
        }
    }

    fn step(&mut self) -> Result<Option<StreamFrame>, DecodeError> {
        loop {
            match &mut self.stage {
                Stage::Label => {
                    let rest = self.rest();
                    let (&first, _) = rest.split_first().ok_or(DecodeError::Truncated { what: "stream" })?;
                    let consumed;
                    (self.label, consumed) = if first == MessageType::HasLabel as u8 {
                        let (label, after) = check_label(rest, &self.cfg.label, self.cfg.skip_inbound_label_check)?;
                        (label, rest.len() - after.len())
                    } else {
                        let (label, _) = check_label(&[], &self.cfg.label, self.cfg.skip_inbound_label_check)?;
                        (label, 0)
                    };
                    self.pos += consumed;
                    self.stage = Stage::Envelope;
                }
                Stage::Envelope => return self.envelope(),
                Stage::PushPullNodes { .. } => return self.push_pull_nodes(),
                Stage::Done => return Err(DecodeError::Truncated { what: "a finished stream" }),
            }
        }
    }

    fn envelope(&mut self) -> Result<Option<StreamFrame>, DecodeError> {
        let rest = self.rest();
        let (&t, _) = rest.split_first().ok_or(DecodeError::Truncated { what: "stream message type" })?;
        let encrypted = t == MessageType::Encrypt as u8;
        match (&self.cfg.keyring, encrypted) {
            (None, true) => return Err(DecodeError::EncryptionNotConfigured),
            (Some(_), false) if self.cfg.gossip_verify_incoming => return Err(DecodeError::NotEncrypted),
            _ => {}
        }
        if encrypted {
            let header: [u8; ENCRYPT_HEADER_SIZE] = rest
                .get(..ENCRYPT_HEADER_SIZE)
                .and_then(|h| h.try_into().ok())
                .ok_or(DecodeError::Truncated { what: "encrypted stream header" })?;
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            if len > self.cfg.limits.max_encrypted_stream_bytes {
                return Err(DecodeError::LimitExceeded {
                    what: "encrypted stream length",
                    value: len.into(),
                    limit: self.cfg.limits.max_encrypted_stream_bytes.into(),
                });
            }
            let end = ENCRYPT_HEADER_SIZE + len as usize;
            let blob = rest.get(ENCRYPT_HEADER_SIZE..end).ok_or(DecodeError::Truncated { what: "encrypted stream" })?;
            let mut aad = header.to_vec();
            aad.extend_from_slice(&self.label);
            let keyring = self.cfg.keyring.as_ref().ok_or(DecodeError::EncryptionNotConfigured)?;
            let decrypted = decrypt(keyring, blob, &aad)?;
            self.pos += end;
            let (compression, message) = decode_complete(&decrypted.plaintext, &self.cfg.limits)?;
            self.stage = Stage::Done;
            return Ok(Some(StreamFrame {
                label: self.label.clone(),
                encryption: Some(StreamEncryption { len, decrypted }),
                compression,
                message,
            }));
        }
        if t == MessageType::Compress as u8 {
            let mut r = Reader::new(rest.get(1..).unwrap_or_default());
            let c = Compress::decode(&mut r)?;
            let used = 1 + r.position();
            let plain = decompress(&c, self.cfg.limits.max_decompressed_bytes)?;
            let message = decode_plain_complete(&plain, &self.cfg.limits)?;
            self.pos += used;
            self.stage = Stage::Done;
            return Ok(Some(StreamFrame {
                label: self.label.clone(),
                encryption: None,
                compression: Some(StreamCompression { compress: c, decompressed: plain }),
                message,
            }));
        }
        // Plaintext: push/pull is read node by node, anything else in one go.
        let mut r = Reader::new(rest.get(1..).unwrap_or_default());
        if t == MessageType::PushPull as u8 {
            let header = PushPullHeader::decode(
                &mut r,
                self.cfg.limits.max_push_state_nodes,
                self.cfg.limits.max_push_state_bytes,
            )?;
            self.pos += 1 + r.position();
            let cap = (header.nodes as usize).min(1024);
            self.stage = Stage::PushPullNodes { header, nodes: Vec::with_capacity(cap) };
            return self.push_pull_nodes();
        }
        let message = decode_other(t, &mut r, &self.cfg.limits)?;
        self.pos += 1 + r.position();
        self.stage = Stage::Done;
        Ok(Some(StreamFrame { label: self.label.clone(), encryption: None, compression: None, message }))
    }

    fn push_pull_nodes(&mut self) -> Result<Option<StreamFrame>, DecodeError> {
        let Stage::PushPullNodes { header, nodes } = &mut self.stage else {
            return Err(DecodeError::Truncated { what: "push/pull" });
        };
        let buf = self.buf.get(self.pos..).unwrap_or_default();
        let mut used = 0;
        let result = read_nodes_and_state(buf, &mut used, header, nodes);
        self.pos += used;
        let user_state = result?;
        let Stage::PushPullNodes { header, nodes } = std::mem::replace(&mut self.stage, Stage::Done) else {
            return Err(DecodeError::Truncated { what: "push/pull" });
        };
        Ok(Some(StreamFrame {
            label: self.label.clone(),
            encryption: None,
            compression: None,
            message: StreamMessage::PushPull(PushPull { join: header.join, nodes, user_state }),
        }))
    }
}

/// Reads the node states still missing and then the user state, recording in `used` how many
/// bytes of `buf` the node states that were completely read took.
fn read_nodes_and_state(
    buf: &[u8],
    used: &mut usize,
    header: &PushPullHeader,
    nodes: &mut Vec<PushNodeState>,
) -> Result<Vec<u8>, DecodeError> {
    let mut r = Reader::new(buf);
    while nodes.len() < header.nodes as usize {
        nodes.push(PushNodeState::decode(&mut r)?);
        *used = r.position();
    }
    let state = r.raw(header.user_state_len as usize, "push/pull user state")?;
    *used = r.position();
    Ok(state.to_vec())
}

/// Decodes a whole plaintext stream message of a type other than push/pull.
fn decode_other(t: u8, r: &mut Reader<'_>, limits: &Limits) -> Result<StreamMessage, DecodeError> {
    match MessageType::from_u8(t) {
        Some(MessageType::User) => {
            let h = UserMsgHeader::decode(r, limits.max_user_msg_bytes)?;
            let data = r.raw(h.user_msg_len as usize, "user message")?;
            Ok(StreamMessage::User(data.to_vec()))
        }
        Some(MessageType::Ping) => Ok(StreamMessage::Ping(Ping::decode(r)?)),
        Some(MessageType::AckResp) => Ok(StreamMessage::Ack(AckResp::decode(r)?)),
        Some(MessageType::Err) => Ok(StreamMessage::Err(ErrResp::decode(r)?)),
        Some(_) => Err(DecodeError::UnexpectedMessageType { found: t, context: "on a stream" }),
        None => Err(DecodeError::UnknownMessageType(t)),
    }
}

/// Decodes a complete plaintext stream message (after decryption or decompression).
fn decode_plain_complete(buf: &[u8], limits: &Limits) -> Result<StreamMessage, DecodeError> {
    let (&t, body) = buf.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(body);
    let msg = if t == MessageType::PushPull as u8 {
        let header = PushPullHeader::decode(&mut r, limits.max_push_state_nodes, limits.max_push_state_bytes)?;
        let mut nodes = Vec::with_capacity((header.nodes as usize).min(1024));
        let mut used = 0;
        let user_state = read_nodes_and_state(r.rest(), &mut used, &header, &mut nodes)?;
        StreamMessage::PushPull(PushPull { join: header.join, nodes, user_state })
    } else {
        decode_other(t, &mut r, limits)?
    };
    Ok(msg)
}

/// Decodes the plaintext of an encrypted frame: a compress message or a plain message.
fn decode_complete(plain: &[u8], limits: &Limits) -> Result<(Option<StreamCompression>, StreamMessage), DecodeError> {
    match plain.split_first() {
        Some((&t, body)) if t == MessageType::Compress as u8 => {
            let c = Compress::decode(&mut Reader::new(body))?;
            let inner = decompress(&c, limits.max_decompressed_bytes)?;
            let msg = decode_plain_complete(&inner, limits)?;
            Ok((Some(StreamCompression { compress: c, decompressed: inner }), msg))
        }
        _ => Ok((None, decode_plain_complete(plain, limits)?)),
    }
}

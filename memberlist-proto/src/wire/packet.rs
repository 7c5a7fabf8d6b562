//! Packets (UDP datagrams): the send pipeline and the receive pipeline, in Go's order.
//!
//! Send: message → piggyback gossip into a compound within the byte budget → compress if that
//! makes it strictly smaller → hasCrc when the peer is known with protocol max ≥ 5 → encrypt with
//! the primary key (additional data = label) → label header.
//!
//! Receive, in reverse, with Go's drop rules: a label other than ours drops the packet; a
//! packet no key decrypts is dropped when incoming verification is on (and read as plaintext
//! when it is off); a CRC mismatch drops the packet; then compound and compress messages are
//! unpacked recursively. A bad part of a compound is reported on its own while the other parts
//! are still delivered, as Go does.

use rand_core::Rng;

use super::compound::{decode_compound, encode_compound, COMPOUND_HEADER_OVERHEAD};
use super::compress::{compress_if_smaller, decompress_body};
use super::crc::{add_crc, split_crc, CrcCheck};
use super::error::{DecodeError, EncodeError};
use super::keyring::Keyring;
use super::label::{check_label, label_overhead, write_label_header};
use super::limits::Limits;
use super::messages::{Compress, Message, MessageType};
use super::msgpack::Reader;
use super::security::{decrypt, encrypt, Decrypted, EncryptionVersion, NONCE_SIZE};

/// How deep compound and compress messages may nest inside one another.
pub const MAX_NESTING: usize = 4;

/// The decoded content of a packet after its outer layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One message.
    Message(Message),
    /// A compound message.
    Compound(CompoundPayload),
    /// A compressed message.
    Compressed(CompressedPayload),
}

/// A decoded compound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundPayload {
    /// The declared part lengths.
    pub lengths: Vec<u16>,
    /// Every complete part, decoded or with the reason it could not be.
    pub parts: Vec<Result<Payload, DecodeError>>,
    /// Declared parts that did not fit in the packet.
    pub truncated: usize,
}

/// A decoded compress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedPayload {
    /// The compress struct as it travelled.
    pub compress: Compress,
    /// The decompressed bytes.
    pub decompressed: Vec<u8>,
    /// What they decode to.
    pub inner: Box<Payload>,
}

impl Payload {
    /// Decodes a message, compound or compress message.
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        Self::decode_nested(buf, limits, 0)
    }

    fn decode_nested(buf: &[u8], limits: &Limits, depth: usize) -> Result<Self, DecodeError> {
        if depth > MAX_NESTING {
            return Err(DecodeError::TooDeep);
        }
        let (&t, body) = buf.split_first().ok_or(DecodeError::Empty)?;
        if t == MessageType::Compound as u8 {
            let c = decode_compound(body)?;
            let parts = c.parts.iter().map(|p| Self::decode_nested(p, limits, depth + 1)).collect();
            Ok(Payload::Compound(CompoundPayload { lengths: c.lengths, parts, truncated: c.truncated }))
        } else if t == MessageType::Compress as u8 {
            let (compress, decompressed) = decompress_body(&mut Reader::new(body), limits.max_decompressed_bytes)?;
            let inner = Box::new(Self::decode_nested(&decompressed, limits, depth + 1)?);
            Ok(Payload::Compressed(CompressedPayload { compress, decompressed, inner }))
        } else {
            Message::decode(buf).map(Payload::Message)
        }
    }

    /// Re-encodes the payload: compound parts in order, compressed payloads recompressed.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        match self {
            Payload::Message(m) => Ok(m.encode()),
            Payload::Compound(c) => {
                let parts = c
                    .parts
                    .iter()
                    .filter_map(|p| p.as_ref().ok())
                    .map(Payload::encode)
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                encode_compound(&refs)
            }
            Payload::Compressed(c) => Ok(super::compress::compress_message(&c.inner.encode()?)),
        }
    }

    /// Visits every message, depth first, and every part that failed to decode.
    pub fn for_each<'s>(&'s self, f: &mut impl FnMut(Result<&'s Message, &'s DecodeError>)) {
        match self {
            Payload::Message(m) => f(Ok(m)),
            Payload::Compound(c) => {
                for p in &c.parts {
                    match p {
                        Ok(p) => p.for_each(f),
                        Err(e) => f(Err(e)),
                    }
                }
            }
            Payload::Compressed(c) => c.inner.for_each(f),
        }
    }

    /// Every message in the payload, in order.
    pub fn messages(&self) -> Vec<&Message> {
        let mut out = Vec::new();
        self.for_each(&mut |m| {
            if let Ok(m) = m {
                out.push(m)
            }
        });
        out
    }

    /// Moves every message out of the payload, in order, with the errors of parts that failed.
    pub fn into_messages(self) -> (Vec<Message>, Vec<DecodeError>) {
        let mut msgs = Vec::new();
        let mut errs = Vec::new();
        self.drain_into(&mut msgs, &mut errs);
        (msgs, errs)
    }

    fn drain_into(self, msgs: &mut Vec<Message>, errs: &mut Vec<DecodeError>) {
        match self {
            Payload::Message(m) => msgs.push(m),
            Payload::Compound(c) => {
                for p in c.parts {
                    match p {
                        Ok(p) => p.drain_into(msgs, errs),
                        Err(e) => errs.push(e),
                    }
                }
            }
            Payload::Compressed(c) => c.inner.drain_into(msgs, errs),
        }
    }
}

/// Receive-side settings, as Go's Config fields of the same names.
#[derive(Debug, Clone, Copy)]
pub struct OpenConfig<'a> {
    /// This node's label ("" for none).
    pub label: &'a str,
    /// Accept input without checking labels (a label present on input is then an error).
    pub skip_inbound_label_check: bool,
    /// Keys to decrypt with; `None` when encryption is off.
    pub keyring: Option<&'a Keyring>,
    /// With keys set: drop what does not decrypt (true) or read it as plaintext (false).
    pub gossip_verify_incoming: bool,
    /// Decoding limits.
    pub limits: Limits,
}

impl Default for OpenConfig<'_> {
    fn default() -> Self {
        OpenConfig {
            label: "",
            skip_inbound_label_check: false,
            keyring: None,
            gossip_verify_incoming: true,
            limits: Limits::default(),
        }
    }
}

/// A received packet with its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPacket {
    /// The label that applied ("" for none).
    pub label: Vec<u8>,
    /// The encryption layer, when the packet was encrypted.
    pub encryption: Option<Decrypted>,
    /// The CRC layer, when present (always matching here: a mismatch is an error).
    pub crc: Option<CrcCheck>,
    /// The content.
    pub payload: Payload,
}

/// Runs the receive pipeline on one datagram.
pub fn open_packet(buf: &[u8], cfg: &OpenConfig<'_>) -> Result<OpenedPacket, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (label, rest) = check_label(buf, cfg.label, cfg.skip_inbound_label_check)?;
    let mut encryption = None;
    let plain_storage;
    let mut plain: &[u8] = rest;
    if let Some(keyring) = cfg.keyring {
        match decrypt(keyring, rest, &label) {
            Ok(d) => {
                plain_storage = d.plaintext.clone();
                plain = &plain_storage;
                encryption = Some(d);
            }
            Err(e) if cfg.gossip_verify_incoming => return Err(e),
            Err(_) => {}
        }
    }
    let mut crc = None;
    if let Some((check, inner)) = split_crc(plain) {
        if !check.ok() {
            return Err(DecodeError::CrcMismatch { expected: check.expected, actual: check.actual });
        }
        crc = Some(check);
        plain = inner;
    }
    let payload = Payload::decode(plain, &cfg.limits)?;
    Ok(OpenedPacket { label, encryption, crc, payload })
}

/// Send-side settings, as Go's Config fields of the same names.
#[derive(Debug, Clone, Copy)]
pub struct SealConfig<'a> {
    /// Label written on every packet ("" for none).
    pub label: &'a str,
    /// Compress packets when that makes them smaller.
    pub enable_compression: bool,
    /// Keys to encrypt with, when encryption is on and outgoing verification is on.
    pub keyring: Option<&'a Keyring>,
    /// Encryption format (version 0 only for protocol version 1 senders).
    pub encryption_version: EncryptionVersion,
}

impl Default for SealConfig<'_> {
    fn default() -> Self {
        SealConfig { label: "", enable_compression: true, keyring: None, encryption_version: EncryptionVersion::V1 }
    }
}

impl SealConfig<'_> {
    /// Bytes available for messages in one packet of `udp_buffer_size` bytes once the compound
    /// header, the label header and the encryption overhead are taken off:
    /// `udp_buffer_size − 2 − label_overhead − encryption_overhead` (Go's gossip budget).
    pub fn packet_budget(&self, udp_buffer_size: usize) -> usize {
        let enc = self.keyring.map_or(0, |_| self.encryption_version.overhead());
        udp_buffer_size.saturating_sub(COMPOUND_HEADER_OVERHEAD + label_overhead(self.label) + enc)
    }

    /// Bytes left for piggybacked gossip next to a message of `msg_len` bytes (Go's `sendMsg`
    /// budget): `packet_budget − msg_len`.
    pub fn piggyback_budget(&self, udp_buffer_size: usize, msg_len: usize) -> usize {
        self.packet_budget(udp_buffer_size).saturating_sub(msg_len)
    }
}

/// Puts `msg` and the piggybacked `extras` into one packet body: `msg` alone when there are no
/// extras, else a compound of all of them.
pub fn with_piggyback(msg: Vec<u8>, extras: &[Vec<u8>]) -> Result<Vec<u8>, EncodeError> {
    if extras.is_empty() {
        return Ok(msg);
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + extras.len());
    parts.push(&msg);
    parts.extend(extras.iter().map(Vec::as_slice));
    encode_compound(&parts)
}

/// Runs the send pipeline on a packet body: compress, CRC (when `with_crc`), encrypt, label.
pub fn seal_packet(
    body: Vec<u8>,
    with_crc: bool,
    cfg: &SealConfig<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<u8>, EncodeError> {
    if body.is_empty() {
        return Err(EncodeError::Empty);
    }
    let mut msg = if cfg.enable_compression { compress_if_smaller(body) } else { body };
    if with_crc {
        msg = add_crc(&msg)?;
    }
    if let Some(keyring) = cfg.keyring {
        let mut nonce = [0u8; NONCE_SIZE];
        rng.fill_bytes(&mut nonce);
        msg = encrypt(cfg.encryption_version, keyring.primary().as_bytes(), nonce, &msg, cfg.label.as_bytes());
    }
    if cfg.label.is_empty() {
        return Ok(msg);
    }
    let mut out = Vec::with_capacity(label_overhead(cfg.label) + msg.len());
    write_label_header(&mut out, cfg.label)?;
    out.extend_from_slice(&msg);
    Ok(out)
}

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

use super::compound::{decode_compound, encode_compound, COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD};
use super::compress::{compress_if_smaller_with, decompress_body, Compression};
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
            let limit = limits.max_packet_decompressed_bytes.min(limits.max_decompressed_bytes);
            let (compress, decompressed) = decompress_body(&mut Reader::new(body), limit)?;
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
    let mut storage = None;
    let (label, encryption, crc, plain) = open_layers(buf, cfg, &mut storage)?;
    let payload = Payload::decode(plain, &cfg.limits)?;
    Ok(OpenedPacket { label, encryption, crc, payload })
}

/// The messages of one datagram, still encoded: compound parts in order, compressed payloads
/// decompressed. Filled by [`open_packet_parts`]; kept by the caller to reuse its buffers.
#[derive(Debug, Default, Clone)]
pub struct PacketParts {
    bytes: Vec<u8>,
    parts: Vec<std::ops::Range<usize>>,
    /// Parts that could not be opened (bad compound tables, bad compression, too deep).
    pub errors: Vec<DecodeError>,
}

impl PacketParts {
    /// Each message's bytes, type byte first, for [`Message::decode`].
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.iter().map(|r| self.bytes.get(r.clone()).unwrap_or_default())
    }
}

/// [`open_packet`] without decoding the messages: the same layers are checked (label,
/// encryption, CRC) and the same nesting is opened, and `out` receives the message bytes, so
/// that a receiver can look at a message before it pays for decoding it. A message that does
/// not decode is for the caller to count; a packet whose layers fail is an error, as in
/// [`open_packet`].
pub fn open_packet_parts(buf: &[u8], cfg: &OpenConfig<'_>, out: &mut PacketParts) -> Result<(), DecodeError> {
    out.bytes.clear();
    out.parts.clear();
    out.errors.clear();
    let mut storage = None;
    let (_, _, _, plain) = open_layers(buf, cfg, &mut storage)?;
    walk_payload(plain, &cfg.limits, 0, out)
}

fn walk_payload(buf: &[u8], limits: &Limits, depth: usize, out: &mut PacketParts) -> Result<(), DecodeError> {
    if depth > MAX_NESTING {
        return Err(DecodeError::TooDeep);
    }
    let (&t, body) = buf.split_first().ok_or(DecodeError::Empty)?;
    if t == MessageType::Compound as u8 {
        for part in decode_compound(body)?.parts {
            if let Err(e) = walk_payload(part, limits, depth + 1, out) {
                out.errors.push(e);
            }
        }
    } else if t == MessageType::Compress as u8 {
        let limit = limits.max_packet_decompressed_bytes.min(limits.max_decompressed_bytes);
        let (_, decompressed) = decompress_body(&mut Reader::new(body), limit)?;
        walk_payload(&decompressed, limits, depth + 1, out)?;
    } else {
        let start = out.bytes.len();
        out.bytes.extend_from_slice(buf);
        out.parts.push(start..out.bytes.len());
    }
    Ok(())
}

type Layers<'b> = (Vec<u8>, Option<Decrypted>, Option<CrcCheck>, &'b [u8]);

/// Label, decryption and CRC of a datagram; the plaintext is `buf` itself or, when it was
/// encrypted, kept in `storage`.
fn open_layers<'b>(
    buf: &'b [u8],
    cfg: &OpenConfig<'_>,
    storage: &'b mut Option<Vec<u8>>,
) -> Result<Layers<'b>, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (label, rest) = check_label(buf, cfg.label, cfg.skip_inbound_label_check)?;
    let mut encryption = None;
    let mut plain: &'b [u8] = rest;
    if let Some(keyring) = cfg.keyring {
        match decrypt(keyring, rest, &label) {
            Ok(d) => {
                let text: &'b [u8] = storage.insert(d.plaintext.clone());
                plain = text;
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
    Ok((label, encryption, crc, plain))
}

/// Send-side settings, as Go's Config fields of the same names.
#[derive(Debug, Clone, Copy)]
pub struct SealConfig<'a> {
    /// Label written on every packet ("" for none).
    pub label: &'a str,
    /// Compress packets when that makes them smaller.
    pub enable_compression: bool,
    /// With what.
    pub algorithm: Compression,
    /// Keys to encrypt with, when encryption is on and outgoing verification is on.
    pub keyring: Option<&'a Keyring>,
    /// Encryption format (version 0 only for protocol version 1 senders).
    pub encryption_version: EncryptionVersion,
}

impl Default for SealConfig<'_> {
    fn default() -> Self {
        SealConfig {
            label: "",
            enable_compression: true,
            algorithm: Compression::Lzw,
            keyring: None,
            encryption_version: EncryptionVersion::V1,
        }
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

/// Whether packets to a peer get the hasCrc wrapper: only when the peer is known and its
/// protocol max (`Vsn.pmax`) is at least 5, as Go decides it.
pub fn crc_for_peer(peer_pmax: Option<u8>) -> bool {
    peer_pmax.is_some_and(|pmax| pmax >= 5)
}

/// Builds the body of a packet carrying `msg` with gossip piggybacked, as Go's `sendMsg`:
/// `broadcasts(overhead, limit)` is asked for messages that fit in `limit` bytes, each costing
/// `overhead` (its compound length field) on top of its own length, where
/// `limit = udp_buffer_size − 2 − label_overhead − encryption_overhead − msg.len()`.
/// With nothing to piggyback the body is `msg` itself; otherwise a compound of all of them.
/// As in Go, neither the main message's own 2-byte compound length nor a CRC header is counted,
/// so a packet may exceed `udp_buffer_size` by up to 7 bytes (the buffer size is a budget, not a
/// receive limit: receivers accept 64 KiB).
pub fn assemble_with_piggyback(
    msg: Vec<u8>,
    udp_buffer_size: usize,
    cfg: &SealConfig<'_>,
    broadcasts: impl FnOnce(usize, usize) -> Vec<Vec<u8>>,
) -> Result<Vec<u8>, EncodeError> {
    let limit = cfg.piggyback_budget(udp_buffer_size, msg.len());
    let extras = broadcasts(COMPOUND_OVERHEAD, limit);
    with_piggyback(msg, &extras)
}

/// Builds the bodies of one gossip round to one peer, as Go's `gossip()`: the messages
/// `broadcasts(overhead, packet_budget)` returns, sent bare when there is one, as compounds of at
/// most 255 parts when there are more, and nothing when there are none.
pub fn assemble_gossip(
    udp_buffer_size: usize,
    cfg: &SealConfig<'_>,
    broadcasts: impl FnOnce(usize, usize) -> Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let msgs = broadcasts(COMPOUND_OVERHEAD, cfg.packet_budget(udp_buffer_size));
    match msgs.len() {
        0 => Ok(Vec::new()),
        1 => Ok(msgs),
        _ => {
            let parts: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            super::compound::encode_compounds(&parts)
        }
    }
}

/// Puts `msg` and the piggybacked `extras` into one packet body: `msg` alone when there are no
/// extras, else a compound of all of them.
pub fn with_piggyback<B: AsRef<[u8]>>(msg: Vec<u8>, extras: &[B]) -> Result<Vec<u8>, EncodeError> {
    if extras.is_empty() {
        return Ok(msg);
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + extras.len());
    parts.push(&msg);
    parts.extend(extras.iter().map(AsRef::as_ref));
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
    let mut msg = if cfg.enable_compression { compress_if_smaller_with(body, cfg.algorithm) } else { body };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::keyring::Key;
    use crate::wire::messages::{NackResp, Ping};

    fn nack(seq_no: u32) -> Vec<u8> {
        Message::Nack(NackResp { seq_no }).encode()
    }

    /// A stand-in for the broadcast queue: hands out 9-byte nacks while they fit.
    fn queue(n: usize) -> impl FnOnce(usize, usize) -> Vec<Vec<u8>> {
        move |overhead, limit| {
            let mut used = 0;
            (0..n as u32)
                .map(nack)
                .take_while(|m| {
                    used += overhead + m.len();
                    used <= limit
                })
                .collect()
        }
    }

    #[test]
    fn piggyback_budget_matches_go() {
        let ring = Keyring::new(vec![Key::new(&[1; 16]).unwrap()]).unwrap();
        let plain = SealConfig::default();
        assert_eq!(plain.packet_budget(1400), 1398);
        assert_eq!(plain.piggyback_budget(1400, 59), 1339);
        let labelled = SealConfig { label: "L1", ..SealConfig::default() };
        assert_eq!(labelled.packet_budget(1400), 1394);
        let v1 = SealConfig { keyring: Some(&ring), ..SealConfig::default() };
        assert_eq!(v1.packet_budget(1400), 1400 - 2 - 29);
        let v0 =
            SealConfig { keyring: Some(&ring), encryption_version: EncryptionVersion::V0, ..SealConfig::default() };
        assert_eq!(v0.packet_budget(1400), 1400 - 2 - 45);
        assert_eq!(plain.piggyback_budget(10, 59), 0);
    }

    #[test]
    fn piggybacked_packets_stay_within_the_buffer() {
        let ping = Message::Ping(Ping { seq_no: 1, node: "n".into(), ..Default::default() }).encode();
        for udp in [64usize, 200, 1400] {
            let cfg = SealConfig { enable_compression: false, label: "lab", ..SealConfig::default() };
            let body = assemble_with_piggyback(ping.clone(), udp, &cfg, queue(1000)).unwrap();
            let sealed = seal_packet(body.clone(), true, &cfg, &mut rand_core::UnwrapErr(Zero)).unwrap();
            // Go leaves two things out of the budget: the CRC header (5 bytes) and the compound
            // length field of the main message (2 bytes).
            assert!(sealed.len() <= udp + 7, "{udp}: {}", sealed.len());
            assert!(sealed.len() > udp - 11, "{udp}: {} leaves room for another nack", sealed.len());
            let opened = open_packet(&sealed, &OpenConfig { label: "lab", ..OpenConfig::default() }).unwrap();
            assert_eq!(opened.payload.messages()[0], &Message::decode(&ping).unwrap());
        }
        // Nothing to piggyback: the message goes bare.
        let body = assemble_with_piggyback(ping.clone(), 1400, &SealConfig::default(), queue(0)).unwrap();
        assert_eq!(body, ping);
    }

    #[test]
    fn gossip_is_bare_for_one_message_and_compound_for_more() {
        let cfg = SealConfig::default();
        assert!(assemble_gossip(1400, &cfg, queue(0)).unwrap().is_empty());
        assert_eq!(assemble_gossip(1400, &cfg, queue(1)).unwrap(), vec![nack(0)]);
        let many = assemble_gossip(1400, &cfg, queue(5)).unwrap();
        assert_eq!(many.len(), 1);
        assert_eq!(many[0][..2], [7, 5]);
        // 300 tiny messages with a huge buffer: two compounds (255 + 45).
        let split = assemble_gossip(1 << 20, &cfg, queue(300)).unwrap();
        assert_eq!(split.iter().map(|c| c[1]).collect::<Vec<_>>(), vec![255, 45]);
    }

    #[test]
    fn crc_only_for_protocol_5_peers() {
        assert!(!crc_for_peer(None));
        assert!(!crc_for_peer(Some(4)));
        assert!(crc_for_peer(Some(5)));
    }

    struct Zero;
    impl rand_core::TryRng for Zero {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(0)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(0)
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
            d.fill(0);
            Ok(())
        }
    }
}

//! The message type byte that starts every plaintext message, and the label header byte.

/// The first byte of every plaintext message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `pingMsg`: a probe.
    Ping = 0,
    /// `indirectPingMsg`: a request to probe a node for us.
    IndirectPing = 1,
    /// `ackRespMsg`: the answer to a ping.
    AckResp = 2,
    /// `suspectMsg`: gossip that a node is suspected.
    Suspect = 3,
    /// `aliveMsg`: gossip that a node is alive.
    Alive = 4,
    /// `deadMsg`: gossip that a node is dead, or left when `From == Node`.
    Dead = 5,
    /// `pushPullMsg`: full state exchange on a stream.
    PushPull = 6,
    /// `compoundMsg`: several messages in one packet.
    Compound = 7,
    /// `userMsg`: application data.
    User = 8,
    /// `compressMsg`: an LZW-compressed message.
    Compress = 9,
    /// `encryptMsg`: an encrypted stream frame.
    Encrypt = 10,
    /// `nackRespMsg`: a relay could not reach the target of an indirect ping.
    NackResp = 11,
    /// `hasCrcMsg`: a CRC32 over the rest of the packet.
    HasCrc = 12,
    /// `errMsg`: an error reply on a stream.
    Err = 13,
    /// `hasLabelMsg`: the label header (0xF4), outermost on packets and streams.
    HasLabel = 244,
}

impl MessageType {
    /// The type for a type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        use MessageType::*;
        Some(match b {
            0 => Ping,
            1 => IndirectPing,
            2 => AckResp,
            3 => Suspect,
            4 => Alive,
            5 => Dead,
            6 => PushPull,
            7 => Compound,
            8 => User,
            9 => Compress,
            10 => Encrypt,
            11 => NackResp,
            12 => HasCrc,
            13 => Err,
            244 => HasLabel,
            _ => return None,
        })
    }

    /// The name used in decode trees (`ping`, `indirectPing`, `ack`, …).
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Ping => "ping",
            IndirectPing => "indirectPing",
            AckResp => "ack",
            Suspect => "suspect",
            Alive => "alive",
            Dead => "dead",
            PushPull => "pushPull",
            Compound => "compound",
            User => "user",
            Compress => "compress",
            Encrypt => "encrypt",
            NackResp => "nack",
            HasCrc => "hasCrc",
            Err => "err",
            HasLabel => "hasLabel",
        }
    }
}

//! Counters a driver turns into metrics (Go's `memberlist.msg.alive`, `memberlist.degraded.*`,
//! `memberlist.udp.*`, …) and that tests and the simulator read directly.

use crate::wire::DecodeError;

/// Monotonic counters since the endpoint started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams handed to `handle_packet`.
    pub packets_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Datagrams queued for sending.
    pub packets_sent: u64,
    /// Their bytes (`memberlist.udp.sent`).
    pub bytes_sent: u64,
    /// Stream bytes queued for writing (`memberlist.tcp.sent`).
    pub stream_bytes_sent: u64,
    /// Input dropped for a label other than ours.
    pub dropped_label: u64,
    /// Input dropped because no key decrypted it (or it was plaintext while encryption is
    /// required).
    pub dropped_decrypt: u64,
    /// Packets dropped for a CRC mismatch.
    pub dropped_crc: u64,
    /// Input (or compound parts) that did not decode.
    pub dropped_malformed: u64,
    /// Input over a size limit.
    pub dropped_limit: u64,
    /// Input from, or alives for, addresses outside `cidrs_allowed`.
    pub dropped_not_allowed: u64,
    /// Pings meant for another node name.
    pub dropped_wrong_node: u64,
    /// Acks, nacks and errors nobody waited for.
    pub dropped_unexpected: u64,
    /// Alives with impossible protocol versions.
    pub dropped_bad_vsn: u64,
    /// Messages a driver dropped because its hand-off queue was full.
    pub dropped_handoff: u64,
    /// Messages taken out of datagrams and handled (every part of a compound counts).
    pub messages_received: u64,
    /// Alive messages applied (`memberlist.msg.alive`).
    pub msg_alive: u64,
    /// Suspect messages applied (`memberlist.msg.suspect`).
    pub msg_suspect: u64,
    /// Dead messages applied (`memberlist.msg.dead`).
    pub msg_dead: u64,
    /// Probes run with a health-scaled interval (`memberlist.degraded.probe`).
    pub degraded_probe: u64,
    /// Suspicions that expired with fewer confirmations than expected
    /// (`memberlist.degraded.timeout`).
    pub degraded_timeout: u64,
    /// Probes started (`memberlist.probeNode`).
    pub probes: u64,
    /// Probes that ended in a suspicion.
    pub probes_failed: u64,
    /// Accusations sent straight to the accused member, which announced itself below them
    /// (`Config::tell_the_accused`).
    pub accusations_told: u64,
    /// Stale accusations against this node (below its incarnation) answered with its alive,
    /// straight to their sender.
    pub accusations_answered: u64,
    /// Refutations of accusations against this node.
    pub refutes: u64,
    /// Changes of the health score (`memberlist.health.score` updates).
    pub health_changes: u64,
    /// Gossip rounds (`memberlist.gossip`).
    pub gossip_rounds: u64,
    /// Push/pulls started (`memberlist.pushPullNode`, `memberlist.tcp.connect`).
    pub push_pulls: u64,
    /// Push/pulls that failed.
    pub push_pull_failures: u64,
    /// Push/pull or join states refused by this node: protocol or delegate versions out of
    /// range, or the application's merge veto (Go logs "Failed push/pull merge").
    pub push_pull_rejected: u64,
    /// Streams accepted (`memberlist.tcp.accept`).
    pub streams_accepted: u64,
    /// Received packets compressed with LZW.
    pub compressed_lzw_received: u64,
    /// Received packets compressed with snappy (Grafana's fork).
    pub compressed_snappy_received: u64,
}

impl Stats {
    /// Counts a dropped input under its reason.
    pub fn count_drop(&mut self, e: &DecodeError) {
        match e {
            DecodeError::LabelMismatch { .. } | DecodeError::UnexpectedLabel(_) | DecodeError::EmptyLabel => {
                self.dropped_label += 1
            }
            DecodeError::NoKeyDecrypts
            | DecodeError::EncryptedTooShort(_)
            | DecodeError::UnsupportedEncryptionVersion(_)
            | DecodeError::BadPadding
            | DecodeError::EncryptionNotConfigured
            | DecodeError::NotEncrypted => self.dropped_decrypt += 1,
            DecodeError::CrcMismatch { .. } => self.dropped_crc += 1,
            DecodeError::LimitExceeded { .. } => self.dropped_limit += 1,
            _ => self.dropped_malformed += 1,
        }
    }
}

/// A measurement of one protocol step, for the timer and sample metrics Go emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sample {
    /// A probe, from its ping to its ack or to its failure at the end of the probe interval
    /// (Go's `memberlist.probeNode`).
    Probe(std::time::Duration),
    /// A push/pull this node started, from the dial to the merged reply or the failure (Go's
    /// `memberlist.pushPullNode`).
    PushPull(std::time::Duration),
    /// The bytes of a push/pull received, in either direction (Go's `memberlist.size.remote`,
    /// which Go samples only on encrypted streams).
    RemoteStateSize(usize),
}

/// Samples kept for the driver to collect; past this many the oldest are dropped, so a driver
/// that never collects costs a fixed amount of memory.
pub const SAMPLES_KEPT: usize = 256;

/// The samples not yet collected.
#[derive(Debug, Default)]
pub(crate) struct Samples(std::collections::VecDeque<Sample>);

impl Samples {
    pub(crate) fn record(&mut self, sample: Sample) {
        if self.0.len() >= SAMPLES_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(sample);
    }

    pub(crate) fn pop(&mut self) -> Option<Sample> {
        self.0.pop_front()
    }
}

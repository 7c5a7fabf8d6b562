//! What the core reports to its driver: membership changes with the member's real state, user
//! messages, and the completion of joins, leaves and probes. Every event owns its data.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::node::{NodeState, Vsn};
use crate::state::broadcast::BroadcastId;
use crate::state::members::NodeEntry;

/// A snapshot of one member. It is a copy: it never changes after it is handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// IP address (IPv4-mapped IPv6 addresses are shown as IPv4).
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Metadata.
    pub meta: Vec<u8>,
    /// The real state: alive, suspect, dead or left (Go's `Node.State` always says alive).
    pub state: NodeState,
    /// Incarnation.
    pub incarnation: u32,
    /// Protocol versions.
    pub vsn: Vsn,
}

impl Member {
    /// `addr:port`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// The member's name, as Go's `Node.String`.
impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&NodeEntry> for Member {
    fn from(e: &NodeEntry) -> Self {
        Member {
            name: e.name.to_string(),
            addr: e.socket_addr().ip(),
            port: e.port,
            meta: e.meta.clone().unwrap_or_default(),
            state: e.state,
            incarnation: e.incarnation,
            vsn: e.vsn,
        }
    }
}

/// Identifies a join started with [`crate::Endpoint::join`].
pub type JoinId = u64;

/// Something the driver should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A node joined, or came back from dead or left (Go's `NotifyJoin`). Also fires for this
    /// node when it starts.
    NodeJoined(Member),
    /// A node failed (`state == Dead`) or left gracefully (`state == Left`) (Go's `NotifyLeave`,
    /// which cannot tell the two apart).
    NodeLeft(Member),
    /// An alive or suspect node changed its metadata (Go's `NotifyUpdate`).
    NodeUpdated(Member),
    /// A node became suspect (Go has no such event).
    NodeSuspected(Member),
    /// Application data from a peer, by packet or by stream.
    UserMessage {
        /// The peer's address as seen on the socket.
        from: SocketAddr,
        /// The data.
        data: Vec<u8>,
    },
    /// An alive message named a known node at another address, and the name could not be
    /// reclaimed (Go's `ConflictDelegate`).
    Conflict {
        /// What the table holds.
        existing: Member,
        /// What the alive message claims.
        other: Member,
    },
    /// A direct probe succeeded (Go's `PingDelegate.NotifyPingComplete`).
    PingComplete {
        /// The probed node.
        node: Member,
        /// From sending the ping to receiving the ack.
        rtt: Duration,
        /// The payload of the ack.
        payload: Vec<u8>,
    },
    /// The reply to [`crate::Endpoint::ping`].
    PingResult {
        /// The sequence number `ping` returned.
        seq_no: u32,
        /// The round-trip time, or `None` when no ack came within the probe timeout.
        rtt: Option<Duration>,
    },
    /// Every seed of a join has answered or failed.
    JoinCompleted {
        /// The join.
        join: JoinId,
        /// Seeds whose state was exchanged and merged.
        contacted: usize,
        /// Seeds that failed, with the reason.
        errors: Vec<(SocketAddr, String)>,
    },
    /// A broadcast started by [`crate::Endpoint::leave`] or [`crate::Endpoint::update_meta`] has
    /// been sent as often as the transmit limit asks (or there is nobody to send it to).
    BroadcastDone(BroadcastId),
    /// A periodic push/pull failed (Go #264: TCP broken while UDP works).
    PushPullFailed {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        error: String,
    },
    /// A probe reached its node over TCP only: UDP may be blocked between the two.
    TcpFallbackSucceeded {
        /// The node.
        node: String,
    },
}

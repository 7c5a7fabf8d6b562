//! Node identity pieces shared by the codec and the state machine: the membership state of a
//! node and the protocol version ranges (`Vsn`) every node advertises.

use std::fmt;

/// The lowest memberlist protocol version this implementation speaks.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// The protocol version Go memberlist uses by default (`ProtocolVersion2Compatible`).
pub const PROTOCOL_VERSION_DEFAULT: u8 = 2;
/// The highest memberlist protocol version this implementation speaks.
pub const PROTOCOL_VERSION_MAX: u8 = 5;

/// The state of a node in the members table, with Go's numbering (it travels in push/pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum NodeState {
    /// Answering probes.
    #[default]
    Alive = 0,
    /// Failed a probe; dead unless it refutes before the suspicion timeout.
    Suspect = 1,
    /// Declared failed.
    Dead = 2,
    /// Left the cluster on purpose.
    Left = 3,
}

impl NodeState {
    /// The state for Go's integer code, if it is one of the four.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(NodeState::Alive),
            1 => Some(NodeState::Suspect),
            2 => Some(NodeState::Dead),
            3 => Some(NodeState::Left),
            _ => None,
        }
    }

    /// Go's integer code.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// Lower-case name: alive, suspect, dead, left.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
            NodeState::Left => "left",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six protocol version numbers a node advertises, in Go's wire order
/// `[pmin, pmax, pcur, dmin, dmax, dcur]`: memberlist protocol min/max/current, then the
/// delegate (application) protocol min/max/current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vsn {
    /// Lowest memberlist protocol version understood.
    pub pmin: u8,
    /// Highest memberlist protocol version understood; selects per-peer features (TCP ping ≥ 3,
    /// nacks ≥ 4, CRC ≥ 5).
    pub pmax: u8,
    /// Memberlist protocol version spoken.
    pub pcur: u8,
    /// Lowest delegate protocol version understood.
    pub dmin: u8,
    /// Highest delegate protocol version understood.
    pub dmax: u8,
    /// Delegate protocol version spoken.
    pub dcur: u8,
}

impl Vsn {
    /// The Vsn of a node speaking `protocol_version` with the given delegate versions, as Go's
    /// `BuildVsnArray`: `[1, 5, protocol_version, dmin, dmax, dcur]`.
    pub fn new(protocol_version: u8, dmin: u8, dmax: u8, dcur: u8) -> Self {
        Vsn { pmin: PROTOCOL_VERSION_MIN, pmax: PROTOCOL_VERSION_MAX, pcur: protocol_version, dmin, dmax, dcur }
    }

    /// The six bytes as they travel.
    pub fn to_bytes(self) -> [u8; 6] {
        [self.pmin, self.pmax, self.pcur, self.dmin, self.dmax, self.dcur]
    }

    /// Reads the first six bytes; `None` when there are fewer.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        match b {
            [pmin, pmax, pcur, dmin, dmax, dcur, ..] => {
                Some(Vsn { pmin: *pmin, pmax: *pmax, pcur: *pcur, dmin: *dmin, dmax: *dmax, dcur: *dcur })
            }
            _ => None,
        }
    }
}

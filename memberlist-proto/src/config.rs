//! Protocol configuration: every Go `Config` field that shapes the protocol, with Go's three
//! presets ([`Config::lan`], [`Config::wan`], [`Config::local`]) and validation into typed errors.
//!
//! Fields that belong to sockets and threads (bind address, hand-off queue depth, DNS) live in
//! the driver's configuration, not here.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::node::{Vsn, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use crate::wire::label::LABEL_MAX_SIZE;
use crate::wire::{IntEncoding, Keyring};

/// Go's `MetaMaxSize`: the default limit on node metadata.
pub const META_MAX_SIZE: usize = 512;

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid config field {field}: {reason}")]
pub struct ConfigError {
    /// The field, with Go's name in snake case.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The largest `udp_buffer_size` accepted: 16 MiB, for transports that carry packets over TCP.
pub const MAX_PACKET_BUFFER: usize = 16 * 1024 * 1024;

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { field, reason: reason.into() }
}

/// An IP network in CIDR notation, for [`Config::cidrs_allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `v6::/n`; a bare address is a single host.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr =
            ip.trim().parse().map_err(|_| err("cidrs_allowed", format!("{s:?} is not an IP network")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| err("cidrs_allowed", format!("{s:?} has a bad prefix length")))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A predicate naming nodes that must not get TCP fallback pings (Go's `DisableTcpPingsForNode`).
#[derive(Clone)]
pub struct NodePredicate(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl fmt::Debug for NodePredicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodePredicate(..)")
    }
}

/// Protocol configuration. Start from a preset and change what you need:
///
/// ```
/// use memberlist_proto::Config;
/// use std::time::Duration;
/// let mut cfg = Config::lan("node-a");
/// cfg.probe_interval = Duration::from_millis(500);
/// cfg.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name; unique in the cluster.
    pub name: String,
    /// Label written on every packet and stream and required on everything received ("" = none).
    pub label: String,
    /// Accept input without checking its label.
    pub skip_inbound_label_check: bool,
    /// Memberlist protocol version spoken (1–5; Go's default 2). Version 1 selects encryption
    /// version 0 and ignores ports in messages.
    pub protocol_version: u8,
    /// Delegate (application) protocol version spoken.
    pub delegate_protocol_version: u8,
    /// Lowest delegate protocol version understood.
    pub delegate_protocol_min: u8,
    /// Highest delegate protocol version understood.
    pub delegate_protocol_max: u8,
    /// Deadline of every stream (push/pull, reliable message, error replies).
    pub tcp_timeout: Duration,
    /// Relays asked to probe a node that did not answer directly.
    pub indirect_checks: usize,
    /// Broadcasts are sent `retransmit_mult · ⌈log10(n + 1)⌉` times.
    pub retransmit_mult: usize,
    /// Suspicion lasts at least `suspicion_mult · max(1, log10 n) · probe_interval`.
    pub suspicion_mult: usize,
    /// Suspicion lasts at most `suspicion_max_timeout_mult` times the minimum.
    pub suspicion_max_timeout_mult: usize,
    /// Full state exchange with one random node this often, scaled up with cluster size; zero
    /// disables it.
    pub push_pull_interval: Duration,
    /// Probe one node this often; also the deadline of the whole probe.
    pub probe_interval: Duration,
    /// Wait this long for a direct ack before asking relays (not scaled by awareness).
    pub probe_timeout: Duration,
    /// Never fall back to TCP pings.
    pub disable_tcp_pings: bool,
    /// Nodes that never get TCP fallback pings.
    pub disable_tcp_pings_for_node: Option<NodePredicate>,
    /// Lifeguard local health: probe interval and timeout are scaled by up to this factor.
    pub awareness_max_multiplier: u32,
    /// Gossip to `gossip_nodes` random nodes this often; zero disables gossip rounds.
    pub gossip_interval: Duration,
    /// Nodes per gossip round.
    pub gossip_nodes: usize,
    /// Keep gossiping to dead nodes this long, and keep dead and left nodes in the table this
    /// long before reaping them.
    pub gossip_to_the_dead_time: Duration,
    /// With keys set: drop what does not decrypt (true) or also accept plaintext (false).
    pub gossip_verify_incoming: bool,
    /// With keys set: encrypt what is sent (true) or send plaintext (false).
    pub gossip_verify_outgoing: bool,
    /// Compress packets when it helps, and every stream.
    pub enable_compression: bool,
    /// What to compress with (Grafana's fork's `CompressionAlgorithm`): LZW, which every Go
    /// memberlist reads, or snappy, which only the fork (dskit: Mimir, Loki, Tempo) reads.
    /// Both are always decoded.
    pub compression_algorithm: crate::wire::Compression,
    /// Encryption keys; `None` disables encryption.
    pub keyring: Option<Keyring>,
    /// Byte budget of one gossip packet.
    pub udp_buffer_size: usize,
    /// A dead node's name may be taken by another address after this long; zero never.
    pub dead_node_reclaim_time: Duration,
    /// Only nodes whose address is in one of these networks may join; `None` or empty allows all.
    pub cidrs_allowed: Option<Vec<Cidr>>,
    /// Largest node metadata accepted from the application (Go: 512, fixed).
    pub meta_max_size: usize,
    /// Share of each packet's gossip budget (percent) kept for application broadcasts while
    /// they are queued, so that system gossip cannot starve them (Go #299). Whatever either side
    /// leaves unused goes to the other. 0 gives Go's behaviour: system gossip first.
    pub user_broadcast_share_percent: u8,
    /// Every this often, exchange state with a seed or a reaped member that is not in the table
    /// as alive, so that the halves of a long partition find each other again (Go #222).
    /// `None` (the default, as Go) never re-joins on its own.
    pub auto_rejoin_interval: Option<Duration>,
    /// When a member announces itself (an alive) at or below the incarnation at which this node
    /// holds it dead or suspect, send it that accusation directly — at most once per probe
    /// interval per member — so that it refutes. A node restarted with fresh state comes back
    /// at a low incarnation, and without this the claims against it may never reach it, so it
    /// stays dead at some observers for good (Go #311, fixed the same way in Go PR #345). The
    /// other way round too: an accusation against this node below its current incarnation
    /// (someone missed the refutation) is answered with this node's alive, straight to the
    /// sender, at most once per probe interval per sender. Only standard alive, dead and suspect
    /// messages are sent. `false` gives Go's behaviour.
    pub tell_the_accused: bool,
    /// How Go `int` fields above 127 are written (both forms are always read).
    pub int_encoding: IntEncoding,
    /// Ask relays of indirect probes for nacks (Lifeguard; Go always does with protocol ≥ 4
    /// peers). Off only for experiments against plain SWIM.
    pub request_nacks: bool,
    /// Limits on what is read from the network (Go's 2026 hardening values by default).
    pub limits: crate::wire::Limits,
    /// Send the suspicion along with pings to suspect nodes (Lifeguard's buddy system; Go always
    /// does). Off only for experiments against plain SWIM.
    pub buddy_system: bool,
}

impl Config {
    /// Go's `DefaultLANConfig`.
    pub fn lan(name: impl Into<String>) -> Self {
        Config {
            name: name.into(),
            label: String::new(),
            skip_inbound_label_check: false,
            protocol_version: 2,
            delegate_protocol_version: 0,
            delegate_protocol_min: 0,
            delegate_protocol_max: 0,
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            disable_tcp_pings: false,
            disable_tcp_pings_for_node: None,
            awareness_max_multiplier: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead_time: Duration::from_secs(30),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            enable_compression: true,
            compression_algorithm: crate::wire::Compression::Lzw,
            keyring: None,
            udp_buffer_size: 1400,
            dead_node_reclaim_time: Duration::ZERO,
            cidrs_allowed: None,
            meta_max_size: META_MAX_SIZE,
            user_broadcast_share_percent: 50,
            auto_rejoin_interval: None,
            tell_the_accused: true,
            int_encoding: IntEncoding::Signed,
            request_nacks: true,
            buddy_system: true,
            limits: crate::wire::Limits::default(),
        }
    }

    /// Go's `DefaultWANConfig`: slower probes, longer timeouts.
    pub fn wan(name: impl Into<String>) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Config::lan(name)
        }
    }

    /// Go's `DefaultLocalConfig`: one machine or a fast local network.
    pub fn local(name: impl Into<String>) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Config::lan(name)
        }
    }

    /// The Vsn this configuration advertises (Go's `BuildVsnArray`).
    pub fn vsn(&self) -> Vsn {
        Vsn::new(
            self.protocol_version,
            self.delegate_protocol_min,
            self.delegate_protocol_max,
            self.delegate_protocol_version,
        )
    }

    /// Whether `ip` may be a member (Go's `IPAllowed`).
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        match &self.cidrs_allowed {
            Some(nets) if !nets.is_empty() => nets.iter().any(|n| n.contains(ip)),
            _ => true,
        }
    }

    /// Whether a TCP fallback ping may go to `node`.
    pub fn tcp_pings_allowed(&self, node: &str) -> bool {
        !self.disable_tcp_pings && !self.disable_tcp_pings_for_node.as_ref().is_some_and(|p| (p.0)(node))
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(err("name", "a node needs a name"));
        }
        if self.label.len() > LABEL_MAX_SIZE {
            return Err(err("label", format!("{} bytes, at most {LABEL_MAX_SIZE}", self.label.len())));
        }
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return Err(err(
                "protocol_version",
                format!("{} is outside [{PROTOCOL_VERSION_MIN}, {PROTOCOL_VERSION_MAX}]", self.protocol_version),
            ));
        }
        if self.delegate_protocol_min > self.delegate_protocol_max
            || !(self.delegate_protocol_min..=self.delegate_protocol_max).contains(&self.delegate_protocol_version)
        {
            return Err(err(
                "delegate_protocol_version",
                "must satisfy delegate_protocol_min <= version <= delegate_protocol_max",
            ));
        }
        let positive = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("tcp_timeout", self.tcp_timeout),
        ];
        for (field, d) in positive {
            if d.is_zero() {
                return Err(err(field, "must be greater than zero"));
            }
        }
        if self.probe_timeout > self.probe_interval {
            return Err(err("probe_timeout", "must not be longer than probe_interval"));
        }
        if self.suspicion_mult == 0 {
            return Err(err("suspicion_mult", "must be at least 1"));
        }
        if self.suspicion_max_timeout_mult == 0 {
            return Err(err("suspicion_max_timeout_mult", "must be at least 1"));
        }
        if self.retransmit_mult == 0 {
            return Err(err("retransmit_mult", "must be at least 1"));
        }
        if self.awareness_max_multiplier == 0 {
            return Err(err("awareness_max_multiplier", "must be at least 1"));
        }
        // 65 507 bytes is a UDP datagram's limit; transports that carry packets over TCP
        // (dskit's packs up to 10 MiB) may allow more, up to MAX_PACKET_BUFFER, and the driver
        // checks the value against its transport.
        if self.udp_buffer_size < 64 || self.udp_buffer_size > MAX_PACKET_BUFFER {
            return Err(err(
                "udp_buffer_size",
                format!("{} is outside [64, {MAX_PACKET_BUFFER}] (65507 over UDP)", self.udp_buffer_size),
            ));
        }
        if self.user_broadcast_share_percent > 100 {
            return Err(err("user_broadcast_share_percent", "is a percentage: at most 100"));
        }
        if self.auto_rejoin_interval.is_some_and(|d| d.is_zero()) {
            return Err(err("auto_rejoin_interval", "must be greater than zero when set"));
        }
        if self.meta_max_size > u16::MAX as usize {
            return Err(err("meta_max_size", "must fit a packet"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_go() {
        let lan = Config::lan("a");
        assert_eq!(lan.probe_interval, Duration::from_secs(1));
        assert_eq!(lan.probe_timeout, Duration::from_millis(500));
        assert_eq!((lan.indirect_checks, lan.retransmit_mult, lan.suspicion_mult), (3, 4, 4));
        assert_eq!(lan.suspicion_max_timeout_mult, 6);
        assert_eq!((lan.gossip_nodes, lan.gossip_interval), (3, Duration::from_millis(200)));
        assert_eq!(lan.push_pull_interval, Duration::from_secs(30));
        assert_eq!(lan.gossip_to_the_dead_time, Duration::from_secs(30));
        assert_eq!(lan.tcp_timeout, Duration::from_secs(10));
        assert_eq!((lan.awareness_max_multiplier, lan.udp_buffer_size, lan.protocol_version), (8, 1400, 2));
        let wan = Config::wan("a");
        assert_eq!((wan.probe_interval, wan.probe_timeout), (Duration::from_secs(5), Duration::from_secs(3)));
        assert_eq!((wan.suspicion_mult, wan.gossip_nodes), (6, 4));
        assert_eq!((wan.gossip_interval, wan.tcp_timeout), (Duration::from_millis(500), Duration::from_secs(30)));
        assert_eq!(
            (wan.push_pull_interval, wan.gossip_to_the_dead_time),
            (Duration::from_secs(60), Duration::from_secs(60))
        );
        let local = Config::local("a");
        assert_eq!((local.indirect_checks, local.retransmit_mult, local.suspicion_mult), (1, 2, 3));
        assert_eq!(
            (local.probe_timeout, local.gossip_interval),
            (Duration::from_millis(200), Duration::from_millis(100))
        );
        assert_eq!(
            (local.push_pull_interval, local.gossip_to_the_dead_time),
            (Duration::from_secs(15), Duration::from_secs(15))
        );
        assert_eq!(local.tcp_timeout, Duration::from_secs(1));
        for c in [lan, wan, local] {
            c.validate().unwrap();
            assert_eq!(c.vsn().to_bytes(), [1, 5, 2, 0, 0, 0]);
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = Config::lan("a");
        c.protocol_version = 6;
        assert_eq!(c.validate().unwrap_err().field, "protocol_version");
        let mut c = Config::lan("");
        assert_eq!(c.validate().unwrap_err().field, "name");
        c.name = "a".into();
        c.probe_timeout = Duration::from_secs(2);
        assert_eq!(c.validate().unwrap_err().field, "probe_timeout");
        let mut c = Config::lan("a");
        c.label = "x".repeat(256);
        assert_eq!(c.validate().unwrap_err().field, "label");
        let mut c = Config::lan("a");
        c.delegate_protocol_version = 3;
        assert_eq!(c.validate().unwrap_err().field, "delegate_protocol_version");
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let mut cfg = Config::lan("a");
        assert!(cfg.ip_allowed("1.2.3.4".parse().unwrap()));
        cfg.cidrs_allowed = Some(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(!cfg.ip_allowed("1.2.3.4".parse().unwrap()));
        assert!(cfg.ip_allowed("127.0.0.9".parse().unwrap()));
    }
}

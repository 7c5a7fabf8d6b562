//! Node options: the protocol configuration of [`memberlist_proto::Config`] plus what belongs to
//! sockets and tasks (bind and advertise addresses, connection limits, read deadlines).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use memberlist_proto::wire::{Key, Keyring};
use memberlist_proto::{Config, ConfigError, Hooks};

/// Go's default `BindPort` and `AdvertisePort`.
pub const GO_BIND_PORT: u16 = 7946;

/// Everything needed to start a node.
pub struct Options {
    /// The protocol configuration (Go's `Config` fields that shape the protocol).
    pub config: Config,
    /// Address to bind UDP and TCP on; port 0 lets the kernel pick one (the same for both).
    pub bind: SocketAddr,
    /// Address other nodes use to reach this one (port 0: the bound port). `None` chooses as Go
    /// does: the bound address, or, when bound to `0.0.0.0`, this host's private IPv4 address
    /// (RFC 1918 or RFC 6598, the default-route interface first) on the bound port; starting
    /// fails when there is none. Bound to `::`, the private IPv6 address (Go would advertise
    /// `::` itself). See [`crate::private_ip`].
    pub advertise: Option<SocketAddr>,
    /// This node's metadata.
    pub meta: Option<Vec<u8>>,
    /// Application callbacks the protocol needs answers from at once.
    pub hooks: Box<dyn Hooks>,
    /// Most inbound TCP connections served at once; more are closed at once.
    pub max_inbound_streams: usize,
    /// Seed for the protocol's random choices; `None` draws one from the operating system.
    pub seed: Option<u64>,
    /// Application callbacks (replaces `hooks` when set).
    pub delegate: Option<std::sync::Arc<dyn crate::Delegate>>,
    /// Messages each hand-off queue (alive; suspect, dead and user) holds before new ones are
    /// dropped (Go's `HandoffQueueDepth`).
    pub handoff_queue_depth: usize,
    /// Carry datagrams over TCP too, for networks that block UDP (Go #226). Every node of the
    /// cluster must use it; Go nodes cannot.
    pub tcp_only: bool,
    /// Use Grafana dskit's TCP transport (Loki, Mimir, Tempo, Pyroscope) with these settings
    /// instead of UDP and TCP; see [`Options::dskit`].
    pub dskit: Option<crate::DskitConfig>,
    /// Labels added to every metric this node emits (Go's `MetricLabels`), for telling apart
    /// several nodes or clusters in one process or one dashboard.
    pub metric_labels: Vec<(String, String)>,
    /// How often `memberlist.queue.broadcasts` is sampled (Go's `QueueCheckInterval`, 30 s).
    pub queue_check_interval: std::time::Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.config.name)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options from a protocol configuration, bound to 127.0.0.1 on a kernel-chosen port (the
    /// presets [`Options::lan`] and [`Options::wan`] bind where Go binds).
    pub fn new(config: Config) -> Self {
        Options {
            config,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertise: None,
            meta: None,
            hooks: Box::new(crate::delegate::NoApplication),
            max_inbound_streams: 256,
            seed: None,
            delegate: None,
            tcp_only: false,
            dskit: None,
            handoff_queue_depth: 1024,
            metric_labels: Vec::new(),
            queue_check_interval: std::time::Duration::from_secs(30),
        }
    }

    /// Go's `DefaultLANConfig` for a node named `name`, bound where Go binds it: `0.0.0.0:7946`,
    /// advertising this host's private IP (see [`Options::advertise`]).
    pub fn lan(name: impl Into<String>) -> Self {
        Options::new(Config::lan(name)).bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), GO_BIND_PORT))
    }

    /// Go's `DefaultWANConfig`, bound to `0.0.0.0:7946` as Go binds it.
    pub fn wan(name: impl Into<String>) -> Self {
        Options::new(Config::wan(name)).bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), GO_BIND_PORT))
    }

    /// Go's `DefaultLocalConfig` timings, bound to `127.0.0.1` on a kernel-chosen port. This is a
    /// deliberate difference from Go (whose local preset binds `0.0.0.0:7946` too): it is
    /// meant for tests and demos on one machine, where many nodes share the loopback
    /// interface and none should be reachable from outside.
    pub fn local(name: impl Into<String>) -> Self {
        Options::new(Config::local(name))
    }

    /// Binds to `addr`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Advertises `addr` to other nodes.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// Sets the node's metadata.
    pub fn meta(mut self, meta: impl Into<Vec<u8>>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    /// Sets the cluster label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.config.label = label.into();
        self
    }

    /// Encrypts with `primary` (16, 24 or 32 bytes) and also accepts `others`.
    pub fn keys(mut self, primary: &[u8], others: &[&[u8]]) -> Result<Self, ConfigError> {
        let key = |k: &[u8]| Key::new(k).map_err(|e| ConfigError { field: "keyring", reason: e.to_string() });
        let others = others.iter().map(|k| key(k)).collect::<Result<Vec<_>, _>>()?;
        self.config.keyring = Some(Keyring::with_primary(key(primary)?, others));
        Ok(self)
    }

    /// Sets the application hooks.
    pub fn hooks(mut self, hooks: impl Hooks + 'static) -> Self {
        self.hooks = Box::new(hooks);
        self
    }

    /// Sets the application's delegate.
    pub fn delegate(mut self, delegate: impl crate::Delegate) -> Self {
        self.delegate = Some(std::sync::Arc::new(delegate));
        self
    }

    /// Carries datagrams over TCP too (see [`Options::tcp_only`]).
    pub fn tcp_only(mut self, on: bool) -> Self {
        self.tcp_only = on;
        self
    }

    /// Joins a Grafana dskit memberlist cluster: dskit's TCP-only transport
    /// ([`crate::DskitTransport`]) and the protocol settings dskit gives memberlist — packets of
    /// up to 10 MiB (its `UDPBufferSize`) and no TCP fallback pings (every probe is TCP
    /// already).
    pub fn dskit(mut self, cfg: crate::DskitConfig) -> Self {
        self.config.udp_buffer_size = cfg.max_packet_size;
        self.config.disable_tcp_pings = true;
        self.dskit = Some(cfg);
        self
    }

    /// Fixes the seed of the protocol's random choices.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a label to every metric this node emits (Go's `MetricLabels`).
    pub fn metric_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metric_labels.push((key.into(), value.into()));
        self
    }

    /// Changes the protocol configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_bind_where_go_binds() {
        let any: SocketAddr = "0.0.0.0:7946".parse().unwrap();
        assert_eq!(Options::lan("a").bind, any);
        assert_eq!(Options::wan("a").bind, any);
        // The deliberate difference: local stays on loopback with a kernel-chosen port.
        assert_eq!(Options::local("a").bind, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
        assert_eq!(Options::lan("a").advertise, None);
    }
}

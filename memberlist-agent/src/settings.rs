//! The agent's settings: flags, the same names in a TOML file (flags win), and defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist::{serf_tags, Options};
use serde::Deserialize;

use crate::join::Joins;
use crate::keys::parse_key;

/// Default HTTP API address: loopback only.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7947";

#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// Node name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Address and port for gossip, UDP and TCP (default 127.0.0.1:7946, reachable from this
    /// machine only). In a container or on a LAN use 0.0.0.0:7946: the node then advertises
    /// this host's private IP (10/8, 172.16/12, 192.168/16 or 100.64/10, the default-route
    /// interface first), as Go memberlist does, and refuses to start when there is none.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Address other nodes reach this one at, `IP` or `IP:PORT` (default: see --bind; the port
    /// defaults to the bound one). Needed behind NAT or with no private address.
    #[arg(long, value_name = "IP[:PORT]")]
    advertise: Option<String>,
    /// Seeds to join once at start: `[name/]host[:port]`, an IP or a DNS name (every address
    /// it resolves to is tried); a missing port means the bind port. Comma-separated or
    /// repeated. A failure is logged and the agent keeps running.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Seeds to keep joining until one join succeeds (Consul's -retry-join): same forms as
    /// --join, names resolved again on every attempt, so peers may start in any order.
    #[arg(long, value_delimiter = ',', value_name = "SEED")]
    retry_join: Vec<String>,
    /// Seconds between --retry-join attempts (default 30, as Consul).
    #[arg(long, value_name = "SECS")]
    retry_interval: Option<u64>,
    /// Give up and exit with an error after this many failed --retry-join attempts
    /// (default 0: retry forever).
    #[arg(long, value_name = "N")]
    retry_max: Option<u32>,
    /// How nodes reach each other: `udp` (UDP and TCP on one port, as Go memberlist), `tcp-only`
    /// (datagrams over TCP too; memberlist-rs nodes only), or `dskit` (Grafana dskit's TCP
    /// transport, to join a Loki, Mimir, Tempo or Pyroscope memberlist cluster; its cluster
    /// label is --label).
    #[arg(long, value_name = "udp|tcp-only|dskit")]
    transport: Option<String>,
    /// TLS on dskit's transport (dskit's -memberlist.tls-enabled); needs --tls-cert and
    /// --tls-key to accept connections, and --tls-ca (or --tls-insecure-skip-verify) to dial.
    #[arg(long)]
    tls: bool,
    /// CA certificates (PEM) to verify servers with.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// This node's certificate chain (PEM), served and offered as a client certificate.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    /// The name servers' certificates must carry (default: the IP dialed).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Accept any server certificate: encryption without authentication (tests only).
    #[arg(long)]
    tls_insecure_skip_verify: bool,
    /// What to compress with: `lzw` (every Go memberlist reads it) or `snappy` (only Grafana's
    /// fork, as dskit uses, reads it). Both are always read.
    #[arg(long, value_name = "lzw|snappy")]
    compression: Option<String>,
    /// Timing preset: lan, wan or local.
    #[arg(long = "config", value_name = "lan|wan|local")]
    preset: Option<String>,
    /// Encryption key (base64 or hex, 16/24/32 bytes); repeat for a keyring, the first is used.
    #[arg(long = "key", value_name = "BASE64")]
    keys: Vec<String>,
    /// Read the keys from this file instead, one per line, the first used (a Kubernetes
    /// Secret or a root-only file: keys on a command line show in `ps`).
    #[arg(long, value_name = "FILE", conflicts_with = "keys")]
    key_file: Option<std::path::PathBuf>,
    /// Cluster label.
    #[arg(long)]
    label: Option<String>,
    /// Every this many seconds, re-join a seed or a reaped member not seen alive, so the halves
    /// of a long partition find each other again (off by default, as in Go).
    #[arg(long, value_name = "SECS")]
    rejoin_interval: Option<u64>,
    /// A label K=V added to every metric this agent exports (Go's MetricLabels); repeatable.
    #[arg(long = "metric-label", value_name = "K=V")]
    metric_labels: Vec<String>,
    /// Node metadata entries K=V, sent as the raw bytes `k=v,k2=v2`; repeatable.
    #[arg(long = "meta", value_name = "K=V", conflicts_with = "tags")]
    meta: Vec<String>,
    /// A tag K=V, repeatable: the metadata is written in Serf's tag encoding (the byte 0xff and
    /// a msgpack map), so `serf members` and Consul show the tags. At most 512 bytes in all.
    #[arg(long = "tag", value_name = "K=V")]
    tags: Vec<String>,
    /// Delegate protocol version this node speaks (default 0, as Go memberlist). A Serf,
    /// Consul or Nomad gossip pool needs 5 (with --delegate-protocol-min 2 and
    /// --delegate-protocol-max 5): its nodes refuse a node whose range does not overlap theirs,
    /// and Serf nodes speak 5, so a node must accept up to 5.
    #[arg(long, value_name = "N")]
    delegate_protocol_version: Option<u8>,
    /// Lowest delegate protocol version this node accepts (default 0; Serf: 2).
    #[arg(long, value_name = "N")]
    delegate_protocol_min: Option<u8>,
    /// Highest delegate protocol version this node accepts (default 0; Serf: 5).
    #[arg(long, value_name = "N")]
    delegate_protocol_max: Option<u8>,
    /// HTTP API address (default 127.0.0.1:7947).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on the HTTP API, except `GET /v1/health`, which
    /// stays open for readiness probes.
    #[arg(long)]
    token: Option<String>,
    /// Read the API token from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
    /// A TOML file with any of these settings (flags win).
    #[arg(long, value_name = "FILE.toml")]
    config_file: Option<std::path::PathBuf>,
}

/// The same settings, from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    name: Option<String>,
    bind: Option<SocketAddr>,
    advertise: Option<String>,
    #[serde(default)]
    join: Vec<String>,
    #[serde(default)]
    retry_join: Vec<String>,
    retry_interval: Option<u64>,
    retry_max: Option<u32>,
    config: Option<String>,
    transport: Option<String>,
    compression: Option<String>,
    #[serde(default)]
    tls: bool,
    tls_ca: Option<std::path::PathBuf>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    tls_server_name: Option<String>,
    #[serde(default)]
    tls_insecure_skip_verify: bool,
    #[serde(default)]
    keys: Vec<String>,
    key_file: Option<std::path::PathBuf>,
    label: Option<String>,
    rejoin_interval: Option<u64>,
    #[serde(default)]
    meta: Vec<String>,
    metric_labels: Option<BTreeMap<String, String>>,
    tags: Option<BTreeMap<String, String>>,
    delegate_protocol_version: Option<u8>,
    delegate_protocol_min: Option<u8>,
    delegate_protocol_max: Option<u8>,
    http: Option<SocketAddr>,
    token: Option<String>,
    token_file: Option<std::path::PathBuf>,
    log_format: Option<String>,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("memberlist-{}", std::process::id()))
}

/// Node metadata from K=V entries, as `k=v` lines joined by commas.
pub fn encode_meta(entries: &[String]) -> Result<Vec<u8>> {
    for e in entries {
        if !e.contains('=') {
            bail!("--meta takes K=V, got {e:?}");
        }
    }
    Ok(entries.join(",").into_bytes())
}

/// Everything the agent needs, from flags over the settings file over defaults.
pub struct Settings {
    pub opts: Options,
    pub joins: Joins,
    pub http: SocketAddr,
    pub token: Option<String>,
    pub log_format: String,
}

impl Settings {
    pub fn from_args(args: AgentArgs) -> Result<Settings> {
        let file: FileConfig = match &args.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| "text".into());
        let name = args.name.or(file.name).unwrap_or_else(host_name);
        let preset = args.preset.or(file.config).unwrap_or_else(|| "lan".into());
        let mut opts = match preset.as_str() {
            "lan" => Options::lan(name.clone()),
            "wan" => Options::wan(name.clone()),
            "local" => Options::local(name.clone()),
            other => bail!("--config must be lan, wan or local, not {other:?}"),
        };
        opts = opts.bind(args.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:7946".parse().expect("valid")));
        if let Some(a) = args.advertise.or(file.advertise) {
            opts = opts.advertise(parse_advertise(&a)?);
        }
        if let Some(l) = args.label.or(file.label) {
            opts = opts.label(l);
        }
        match args.rejoin_interval.or(file.rejoin_interval) {
            Some(0) => bail!("--rejoin-interval must be at least 1 second"),
            Some(s) => opts.config.auto_rejoin_interval = Some(Duration::from_secs(s)),
            None => {}
        }
        let keys = match (args.key_file.or(file.key_file), args.keys.is_empty()) {
            (_, false) => args.keys,
            (Some(path), true) => crate::keys::read_key_file(&path)?,
            (None, true) => file.keys,
        };
        if let Some((first, rest)) = keys.split_first() {
            let primary = parse_key(first)?;
            let others = rest.iter().map(|k| parse_key(k)).collect::<Result<Vec<_>>>()?;
            let others: Vec<&[u8]> = others.iter().map(|k| k.as_bytes()).collect();
            opts = opts.keys(primary.as_bytes(), &others)?;
        }
        let labels = if args.metric_labels.is_empty() {
            file.metric_labels.unwrap_or_default()
        } else {
            parse_pairs("--metric-label", &args.metric_labels)?
        };
        for (k, v) in labels {
            let valid = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || k.starts_with(|c: char| c.is_ascii_digit()) {
                bail!("--metric-label {k:?}: a label name is letters, digits and _, not starting with a digit");
            }
            opts = opts.metric_label(k, v);
        }
        let meta = if args.meta.is_empty() { file.meta } else { args.meta };
        if !meta.is_empty() {
            opts = opts.meta(encode_meta(&meta)?);
        }
        let tag_entries = if args.tags.is_empty() { None } else { Some(parse_tags(&args.tags)?) };
        match (tag_entries.or(file.tags), meta.is_empty()) {
            (Some(_), false) => bail!("--tag and --meta both set the metadata: use one"),
            (Some(tags), true) => {
                let limit = opts.config.meta_max_size;
                opts = opts.meta(serf_tags::encode(&tags, limit).context("--tag")?);
            }
            (None, false) => opts = opts.meta(encode_meta(&meta)?),
            (None, true) => {}
        }
        let transport = args.transport.or(file.transport);
        if (args.tls || file.tls) && transport.as_deref() != Some("dskit") {
            bail!("--tls is for --transport dskit (dskit's TLS on its TCP transport)");
        }
        match transport.as_deref() {
            None | Some("udp") => {}
            Some("tcp-only") => opts = opts.tcp_only(true),
            Some("dskit") => {
                let mut cfg = memberlist::DskitConfig::default();
                if args.tls || file.tls {
                    let files = memberlist::TlsFiles {
                        ca_file: args.tls_ca.or(file.tls_ca),
                        cert_file: args.tls_cert.or(file.tls_cert),
                        key_file: args.tls_key.or(file.tls_key),
                        server_name: args.tls_server_name.or(file.tls_server_name),
                        insecure_skip_verify: args.tls_insecure_skip_verify || file.tls_insecure_skip_verify,
                    };
                    cfg.tls = Some(memberlist::DskitTls::from_files(&files).context("--tls")?);
                }
                opts = opts.dskit(cfg);
            }
            Some(other) => bail!("--transport must be udp, tcp-only or dskit, not {other:?}"),
        }
        opts.config.compression_algorithm = match args.compression.or(file.compression).as_deref() {
            None | Some("lzw") => memberlist::wire::Compression::Lzw,
            Some("snappy") => memberlist::wire::Compression::Snappy,
            Some(other) => bail!("--compression must be lzw or snappy, not {other:?}"),
        };
        let c = &mut opts.config;
        c.delegate_protocol_version = args.delegate_protocol_version.or(file.delegate_protocol_version).unwrap_or(0);
        c.delegate_protocol_min = args.delegate_protocol_min.or(file.delegate_protocol_min).unwrap_or(0);
        c.delegate_protocol_max = args.delegate_protocol_max.or(file.delegate_protocol_max).unwrap_or(0);
        let (dmin, dcur, dmax) = (c.delegate_protocol_min, c.delegate_protocol_version, c.delegate_protocol_max);
        if !(dmin <= dcur && dcur <= dmax) {
            bail!(
                "delegate protocol versions must satisfy --delegate-protocol-min ({dmin}) <= \
             --delegate-protocol-version ({dcur}) <= --delegate-protocol-max ({dmax}); a Serf pool needs 5 in [2, 5]"
            );
        }
        let joins = Joins {
            once: if args.join.is_empty() { file.join } else { args.join },
            retry: if args.retry_join.is_empty() { file.retry_join } else { args.retry_join },
            interval: Duration::from_secs(args.retry_interval.or(file.retry_interval).unwrap_or(30)),
            max: args.retry_max.or(file.retry_max).unwrap_or(0),
        };
        if joins.interval.is_zero() {
            bail!("--retry-interval must be at least 1 second");
        }
        let token = match args.token_file.or(file.token_file) {
            Some(path) if args.token.is_none() => Some(crate::keys::read_secret_file(&path)?),
            _ => args.token.or(file.token),
        };
        let http = args.http.or(file.http).unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid"));
        Ok(Settings { opts, joins, http, token, log_format })
    }
}

/// Tags from K=V entries.
fn parse_tags(entries: &[String]) -> Result<BTreeMap<String, String>> {
    parse_pairs("--tag", entries)
}

/// K=V entries of a repeatable flag.
fn parse_pairs(flag: &str, entries: &[String]) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for e in entries {
        let Some((k, v)) = e.split_once('=') else { bail!("{flag} takes K=V, got {e:?}") };
        if k.is_empty() {
            bail!("{flag} takes K=V with a non-empty K, got {e:?}");
        }
        tags.insert(k.to_owned(), v.to_owned());
    }
    Ok(tags)
}

/// `--advertise`: `IP` (the port is the bound one) or `IP:PORT`.
fn parse_advertise(text: &str) -> Result<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = text.trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 0)),
        Err(_) => bail!("--advertise takes an IP address or IP:PORT, not {text:?} (Go does not accept names either)"),
    }
}

//! `memberlist agent`: one node, an HTTP API, graceful leave on SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist::{Event, Member, Memberlist, NodeState, Options};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::http::{read_request, respond, Request};
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
    /// Node metadata entries K=V; repeatable.
    #[arg(long = "meta", value_name = "K=V")]
    meta: Vec<String>,
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
    #[serde(default)]
    keys: Vec<String>,
    key_file: Option<std::path::PathBuf>,
    label: Option<String>,
    rejoin_interval: Option<u64>,
    #[serde(default)]
    meta: Vec<String>,
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

pub fn member_json(m: &Member) -> Value {
    json!({
        "name": m.name,
        "addr": m.addr.to_string(),
        "port": m.port,
        "state": m.state.as_str(),
        "incarnation": m.incarnation,
        "meta": String::from_utf8_lossy(&m.meta),
        "protocol": {"min": m.vsn.pmin, "max": m.vsn.pmax, "cur": m.vsn.pcur},
        "delegate": {"min": m.vsn.dmin, "max": m.vsn.dmax, "cur": m.vsn.dcur},
    })
}

fn event_json(e: &Event) -> Option<(&'static str, Value)> {
    Some(match e {
        Event::NodeJoined(m) => ("join", member_json(m)),
        Event::NodeLeft(m) => ("leave", member_json(m)),
        Event::NodeUpdated(m) => ("update", member_json(m)),
        Event::NodeSuspected(m) => ("suspect", member_json(m)),
        Event::UserMessage { from, data } => {
            ("message", json!({"from": from.to_string(), "data": String::from_utf8_lossy(data)}))
        }
        _ => return None,
    })
}

pub async fn run(args: AgentArgs) -> Result<ExitCode> {
    let file: FileConfig = match &args.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| "text".into());
    init_logs(&log_format)?;
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
    let meta = if args.meta.is_empty() { file.meta } else { args.meta };
    if !meta.is_empty() {
        opts = opts.meta(encode_meta(&meta)?);
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let joins = Joins {
        once: if args.join.is_empty() { file.join } else { args.join },
        retry: if args.retry_join.is_empty() { file.retry_join } else { args.retry_join },
        interval: Duration::from_secs(args.retry_interval.or(file.retry_interval).unwrap_or(30)),
        max: args.retry_max.or(file.retry_max).unwrap_or(0),
    };
    if joins.interval.is_zero() {
        bail!("--retry-interval must be at least 1 second");
    }
    let bind = opts.bind;
    let node = Memberlist::create(opts).await.with_context(|| format!("starting the node (bound to {bind})"))?;
    tracing::info!(name = %node.name(), %bind, addr = %node.advertise_addr(), "node started");
    let http = args.http.or(file.http).unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid"));
    let listener = TcpListener::bind(http).await.with_context(|| format!("binding the HTTP API to {http}"))?;
    tracing::info!(%http, "HTTP API listening");
    let joined = Arc::new(AtomicBool::new(joins.once.is_empty() && joins.retry.is_empty()));
    let api = Arc::new(Api {
        node: node.clone(),
        token: match args.token_file.or(file.token_file) {
            Some(path) if args.token.is_none() => Some(crate::keys::read_secret_file(&path)?),
            _ => args.token.or(file.token),
        },
        metrics: recorder,
        joined: joined.clone(),
    });
    let server = tokio::spawn(serve(listener, api));
    let gave_up = crate::join::start(node.clone(), joins, joined);
    let exhausted = tokio::select! {
        r = wait_for_signal() => { r?; false }
        () = gave_up => true,
    };
    if exhausted {
        node.shutdown().await?;
        server.abort();
        bail!("max join retry exhausted, exiting");
    }
    tracing::info!("leaving");
    if let Err(e) = node.leave(Duration::from_secs(5)).await {
        tracing::warn!(error = %e, "leave did not finish");
    }
    node.shutdown().await?;
    server.abort();
    Ok(ExitCode::SUCCESS)
}

fn init_logs(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        "text" => builder.try_init().ok(),
        "json" => builder.json().try_init().ok(),
        other => bail!("--log-format must be text or json, not {other:?}"),
    };
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

struct Api {
    node: Memberlist,
    token: Option<String>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether a join has succeeded (or none was asked for): readiness.
    joined: Arc<AtomicBool>,
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

async fn serve(listener: TcpListener, api: Arc<Api>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let api = api.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            if let Ok(req) = read_request(&mut stream).await {
                let _ = handle(&api, req, &mut stream).await;
            }
        });
    }
}

async fn handle(api: &Api, req: Request, stream: &mut BufReader<tokio::net::TcpStream>) -> Result<()> {
    let path = req.path.split('?').next().unwrap_or("");
    let probe = req.method == "GET" && path == "/v1/health";
    if let Some(token) = api.token.as_ref().filter(|_| !probe) {
        let ok = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) == Some(token.as_str());
        if !ok {
            return respond(stream, 401, "application/json", br#"{"error":"missing or wrong bearer token"}"#).await;
        }
    }
    let json_ok = |v: Value| serde_json::to_vec_pretty(&v).unwrap_or_default();
    match (req.method.as_str(), path) {
        ("GET", "/v1/members") => {
            let list: Vec<Value> = api.node.all_members().iter().map(member_json).collect();
            respond(stream, 200, "application/json", &json_ok(Value::Array(list))).await
        }
        ("GET", "/v1/self") => {
            let me = api.node.local_node().map(|m| member_json(&m)).unwrap_or(Value::Null);
            respond(stream, 200, "application/json", &json_ok(me)).await
        }
        ("GET", "/v1/health") => {
            let (system, user) = api.node.queued_broadcasts();
            let members = api.node.all_members();
            let count = |s: NodeState| members.iter().filter(|m| m.state == s).count();
            let ready = api.joined.load(Ordering::Relaxed);
            let v = json!({
                "ready": ready,
                "health_score": api.node.health_score(),
                "queues": {"broadcasts": system, "user_broadcasts": user},
                "members": {"alive": count(NodeState::Alive), "suspect": count(NodeState::Suspect),
                            "dead": count(NodeState::Dead), "left": count(NodeState::Left)},
            });
            // A readiness probe: 503 until the first join succeeded, when seeds were given.
            respond(stream, if ready { 200 } else { 503 }, "application/json", &json_ok(v)).await
        }
        ("GET", "/metrics") => {
            let text = api.metrics.render();
            respond(stream, 200, "text/plain; version=0.0.4", text.as_bytes()).await
        }
        ("POST", "/v1/join") => {
            let seeds: Vec<String> = match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                Ok(Value::Object(o)) => o
                    .get("seeds")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if seeds.is_empty() {
                return respond(stream, 400, "application/json", br#"{"error":"body: [\"host:port\", ...]"}"#).await;
            }
            let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
            match api.node.join_hosts(&refs).await {
                Ok(n) => respond(stream, 200, "application/json", &json_ok(json!({"contacted": n}))).await,
                Err(e) => respond(stream, 400, "application/json", &json_ok(json!({"error": e.to_string()}))).await,
            }
        }
        ("POST", "/v1/leave") => {
            let r = api.node.leave(Duration::from_secs(5)).await;
            let v = match r {
                Ok(()) => json!({"left": true}),
                Err(e) => json!({"left": false, "error": e.to_string()}),
            };
            respond(stream, 200, "application/json", &json_ok(v)).await
        }
        ("POST", "/v1/broadcast") => {
            api.node.broadcast(req.body.clone(), None)?;
            respond(stream, 200, "application/json", br#"{"queued":true}"#).await
        }
        ("GET", "/v1/events") => {
            let mut events = api.node.events()?;
            let s = stream.get_mut();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")
                .await?;
            while let Some(e) = events.recv().await {
                if let Some((kind, v)) = event_json(&e) {
                    let line = format!("event: {kind}\ndata: {v}\n\n");
                    if s.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            Ok(())
        }
        (
            _,
            "/v1/members" | "/v1/self" | "/v1/health" | "/metrics" | "/v1/join" | "/v1/leave" | "/v1/broadcast"
            | "/v1/events",
        ) => respond(stream, 405, "application/json", br#"{"error":"method not allowed"}"#).await,
        _ => respond(stream, 404, "application/json", br#"{"error":"not found"}"#).await,
    }
}

//! `memberlist agent`: one node, an HTTP API, graceful leave on SIGINT / SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use memberlist::{serf_tags, Event, Member, Memberlist, NodeState};
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::http::{read_request, respond, Request};
use crate::settings::{AgentArgs, Settings};

pub fn member_json(m: &Member) -> Value {
    json!({
        "name": m.name,
        "addr": m.addr.to_string(),
        "port": m.port,
        "state": m.state.as_str(),
        "incarnation": m.incarnation,
        "meta": String::from_utf8_lossy(&m.meta),
        "tags": tags_json(&m.meta),
        "protocol": {"min": m.vsn.pmin, "max": m.vsn.pmax, "cur": m.vsn.pcur},
        "delegate": {"min": m.vsn.dmin, "max": m.vsn.dmax, "cur": m.vsn.dcur},
    })
}

/// The tags of metadata in Serf's tag encoding; `null` for other metadata.
fn tags_json(meta: &[u8]) -> Value {
    match serf_tags::decode(meta) {
        Some(Ok(tags)) => json!(tags),
        Some(Err(e)) => json!({"error": e.to_string()}),
        None => Value::Null,
    }
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
    let Settings { opts, joins, http, token, log_format } = Settings::from_args(args)?;
    let dskit = opts.dskit.is_some();
    init_logs(&log_format)?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let bind = opts.bind;
    let node = Memberlist::create(opts).await.with_context(|| format!("starting the node (bound to {bind})"))?;
    tracing::info!(name = %node.name(), %bind, addr = %node.advertise_addr(), "node started");
    let listener = TcpListener::bind(http).await.with_context(|| format!("binding the HTTP API to {http}"))?;
    tracing::info!(%http, "HTTP API listening");
    let joined = Arc::new(AtomicBool::new(joins.once.is_empty() && joins.retry.is_empty()));
    let api = Arc::new(Api { node: node.clone(), token, metrics: recorder, joined: joined.clone(), dskit });
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
    /// On dskit's transport: every node reads user messages as dskit KV updates.
    dskit: bool,
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
        ("POST", "/v1/broadcast") if api.dskit => {
            // dskit nodes read every user message as a KV update and log the rest as invalid.
            let msg = br#"{"error":"a dskit cluster reads user messages as its KV updates: broadcasts are refused on --transport dskit"}"#;
            respond(stream, 409, "application/json", msg).await
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

//! The agent's HTTP API as an axum router: the routes and their JSON, server-sent events for
//! `/v1/events`, and bearer-token auth, a body-size limit and a request timeout as layers.
//! The server loop that runs it (connection limit, header timeout) is in `http.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use memberlist::{serf_tags, Event, Member, Memberlist, NodeState};
use serde_json::{json, Value};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted; larger ones are answered 413.
pub const MAX_BODY: usize = 1 << 20;
/// Longest a request may take from its headers to its response (a slow body included);
/// longer ones are answered 408. A join or a leave takes at most a few seconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
pub struct Api {
    pub node: Memberlist,
    /// The bearer token every request but the readiness probe must carry, if set.
    pub token: Option<String>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether a join has succeeded (or none was asked for): readiness.
    pub joined: Arc<AtomicBool>,
    /// On dskit's transport: every node reads user messages as dskit KV updates.
    pub dskit: bool,
}

/// The agent's routes with their layers.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/self", get(local))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
        .route("/v1/broadcast", post(broadcast))
        .route("/v1/events", get(events))
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(api.clone(), require_token))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(api)
}

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

/// An event as its SSE event name and JSON data; `None` for events the stream leaves out.
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

/// A pretty-printed JSON response.
fn reply(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    reply(status, &json!({ "error": message }))
}

/// Refuses requests without the configured bearer token, except `GET /v1/health`: kubelets and
/// load balancers probing readiness hold no token.
async fn require_token(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let probe = req.method() == Method::GET && req.uri().path() == "/v1/health";
    if let Some(token) = api.token.as_deref().filter(|_| !probe) {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        if given.and_then(|h| h.strip_prefix("Bearer ")) != Some(token) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(req).await
}

async fn members(State(api): State<Arc<Api>>) -> Response {
    let list: Vec<Value> = api.node.all_members().iter().map(member_json).collect();
    reply(StatusCode::OK, &Value::Array(list))
}

async fn local(State(api): State<Arc<Api>>) -> Response {
    let me = api.node.local_node().map(|m| member_json(&m)).unwrap_or(Value::Null);
    reply(StatusCode::OK, &me)
}

/// Health and readiness: 503 until the first join succeeded, when seeds were given.
async fn health(State(api): State<Arc<Api>>) -> Response {
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
    reply(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &v)
}

/// Prometheus' text exposition format.
async fn metrics(State(api): State<Arc<Api>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], api.metrics.render()).into_response()
}

/// Seeds to join, as `["host:port", …]` or `{"seeds": [...]}`.
fn seeds_of(body: &[u8]) -> Vec<String> {
    let strings = |a: &Vec<Value>| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => strings(&a),
        Ok(Value::Object(o)) => o.get("seeds").and_then(Value::as_array).map(strings).unwrap_or_default(),
        _ => Vec::new(),
    }
}

async fn join(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    let seeds = seeds_of(&body);
    if seeds.is_empty() {
        return error(StatusCode::BAD_REQUEST, "body: [\"host:port\", ...]");
    }
    let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
    match api.node.join_hosts(&refs).await {
        Ok(n) => reply(StatusCode::OK, &json!({ "contacted": n })),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn leave(State(api): State<Arc<Api>>) -> Response {
    let v = match api.node.leave(Duration::from_secs(5)).await {
        Ok(()) => json!({"left": true}),
        Err(e) => json!({"left": false, "error": e.to_string()}),
    };
    reply(StatusCode::OK, &v)
}

async fn broadcast(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    if api.dskit {
        // dskit nodes read every user message as a KV update and log the rest as invalid.
        let msg = "a dskit cluster reads user messages as its KV updates: broadcasts are refused on --transport dskit";
        return error(StatusCode::CONFLICT, msg);
    }
    match api.node.broadcast(body.to_vec(), None) {
        Ok(()) => reply(StatusCode::OK, &json!({"queued": true})),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Events an SSE client may fall behind by before its stream is closed: a client that stops
/// reading costs at most this many events of memory.
const EVENT_BACKLOG: usize = 4096;

/// Membership changes and user messages as they happen, one SSE event each
/// (`event: join|leave|update|suspect|message`, `data: <json>`), until the node shuts down,
/// the client goes away or falls [`EVENT_BACKLOG`] events behind. Comments keep idle
/// connections open through proxies.
async fn events(State(api): State<Arc<Api>>) -> Response {
    let events = match api.node.events() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let rx = forward(events, EVENT_BACKLOG);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|(kind, data)| (Ok::<_, Infallible>(SseEvent::default().event(kind).data(data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// Moves events, as (SSE event name, JSON), from the node's unbounded subscription into a
/// channel of `backlog`; when the reader falls that far behind, the channel is closed after
/// what it holds, and the subscription ends with it, as it does when the reader goes away.
fn forward<S>(mut events: S, backlog: usize) -> tokio::sync::mpsc::Receiver<(&'static str, String)>
where
    S: futures_util::Stream<Item = Event> + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(backlog);
    tokio::spawn(async move {
        loop {
            let e = tokio::select! {
                e = events.next() => e,
                () = tx.closed() => return,
            };
            let Some(e) = e else { return };
            let Some((kind, v)) = event_json(&e) else { continue };
            match tx.try_send((kind, v.to_string())) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(backlog, "an events client fell behind: closing its stream");
                    return;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: usize) -> Event {
        Event::UserMessage { from: "127.0.0.1:1".parse().unwrap(), data: format!("m{i}").into_bytes() }
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_gets_the_backlog_then_the_end() {
        let events = futures_util::stream::iter((0..100).map(message));
        let mut rx = forward(events, 5);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut got = Vec::new();
        while let Some((kind, data)) = rx.recv().await {
            assert_eq!(kind, "message");
            got.push(data);
        }
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].contains("\"m0\"") && got[4].contains("\"m4\""), "{got:?}");
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_gets_everything() {
        // Events come one at a time, as a node produces them; the reader takes each at once.
        let paced = futures_util::stream::iter((0..200).map(message)).then(|e| async {
            tokio::task::yield_now().await;
            e
        });
        let mut rx = forward(Box::pin(paced), 50);
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 200, "more than the backlog, none lost");
    }
}

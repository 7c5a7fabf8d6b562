//! HTTP/1.1 on hyper: the server loop that runs the agent's axum router, and the client the
//! command line uses to talk to a running agent (hyper-util's pooled client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest a client may take to send a request's headers; then the connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the command line waits to connect to an agent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the command line waits for an agent's whole answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `router` on `listener` until the task is dropped, each connection on its own task,
/// with keep-alive, at most [`MAX_CONNECTIONS`] at a time and [`HEADER_TIMEOUT`] for headers.
pub async fn serve(listener: TcpListener, router: Router) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
}

/// A GET or POST from the command line: returns the status and the body.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = hyper::Request::builder().method(method).uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).context("building the request")?;
    let answer = async {
        let res = client.request(req).await.with_context(|| format!("cannot reach the agent at {addr}"))?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.context("reading the agent's answer")?.to_bytes();
        Ok::<_, anyhow::Error>((status, body.to_vec()))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer).await.map_err(|_| anyhow!("the agent at {addr} did not answer"))?
}

//! `memberlist agent`: one node, an HTTP API, graceful leave on SIGINT / SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use memberlist::Memberlist;
use tokio::net::TcpListener;

use crate::api::{router, Api};
use crate::settings::{AgentArgs, Settings};

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
    let server = tokio::spawn(crate::http::serve(listener, router(api)));
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

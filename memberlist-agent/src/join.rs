//! The agent's joins: `--join` once at start, `--retry-join` until one succeeds, as Consul's
//! agent does (`retry_interval`, `retry_max`; 0 retries forever).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memberlist::Memberlist;

/// What to join and how persistently.
#[derive(Debug, Default)]
pub struct Joins {
    /// Seeds tried once.
    pub once: Vec<String>,
    /// Seeds tried until a join through them succeeds.
    pub retry: Vec<String>,
    /// Pause between retry attempts.
    pub interval: Duration,
    /// Failed attempts after which the agent gives up; 0 = never.
    pub max: u32,
}

/// Starts the joins in the background; `joined` turns true at the first success. The returned
/// future completes only if `--retry-max` attempts all failed.
pub fn start(node: Memberlist, joins: Joins, joined: Arc<AtomicBool>) -> impl Future<Output = ()> {
    let (gave_up_tx, gave_up) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if !joins.once.is_empty() && attempt(&node, &joins.once, "join").await {
            joined.store(true, Ordering::Relaxed);
        }
        if joins.retry.is_empty() {
            return;
        }
        let mut failures = 0u32;
        loop {
            if attempt(&node, &joins.retry, "retry-join").await {
                joined.store(true, Ordering::Relaxed);
                return;
            }
            failures += 1;
            if joins.max > 0 && failures >= joins.max {
                tracing::error!(attempts = failures, "retry-join: max join retry exhausted");
                let _ = gave_up_tx.send(());
                return;
            }
            tracing::info!(attempt = failures, retry_in = ?joins.interval, "retry-join: retrying");
            tokio::time::sleep(joins.interval).await;
        }
    });
    async move {
        // A dropped sender (the joins are over without giving up) never completes.
        if gave_up.await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One join through `seeds` (names resolved now); logs the outcome with every failure's reason.
async fn attempt(node: &Memberlist, seeds: &[String], what: &str) -> bool {
    let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
    match node.join_hosts(&refs).await {
        Ok(n) => {
            tracing::info!(contacted = n, seeds = %seeds.join(","), "{what}: joined the cluster");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, seeds = %seeds.join(","), "{what} failed");
            false
        }
    }
}

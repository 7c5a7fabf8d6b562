//! `cargo bench -p memberlist --bench large_state`: an 8 MB application state that takes 300 ms
//! to produce, exchanged by three nodes every 2 s while a fourth pings them, run with the state
//! on the streams' tasks (a `Delegate`) and on the node's task (`Hooks`, as delegates ran
//! before). Prints ack latency and suspicions for both.

#[path = "../tests/support/large_state.rs"]
mod large_state;

use large_state::{run, Mode};

fn main() {
    let secs = std::env::var("LARGE_STATE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("8 MB local_state taking 300 ms, 3 holders + 1 pinger, push/pull every 2 s, {secs} s per mode");
    println!(
        "| state runs on | pings | ack p50 | ack p99 | ack max | late (> probe timeout) | suspicions | exchanges |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for mode in [Mode::NodeTask, Mode::Delegate] {
        let r = rt.block_on(run(mode, secs));
        let name = match mode {
            Mode::NodeTask => "node task (before)",
            Mode::Delegate => "stream task (now)",
        };
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} | {} |",
            r.rtts.len() + r.unanswered,
            r.quantile(0.5).as_secs_f64() * 1e3,
            r.quantile(0.99).as_secs_f64() * 1e3,
            r.quantile(1.0).as_secs_f64() * 1e3,
            r.late(),
            r.suspicions,
            r.exchanges
        );
    }
}

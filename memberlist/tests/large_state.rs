//! An 8 MB application state that takes 300 ms to produce does not hold up the protocol: it is
//! produced and merged on the streams' tasks, so every ping is answered within the probe timeout
//! and nobody is suspected while the state goes back and forth.

mod support;

use support::large_state::{run, Mode, STATE_BYTES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mb_300_ms_local_state_delays_no_ack() {
    let r = run(Mode::Delegate, 8).await;
    eprintln!(
        "delegate: {} pings, p50 {:?}, p99 {:?}, max {:?}, late {}, suspicions {}, exchanges {}",
        r.rtts.len() + r.unanswered,
        r.quantile(0.5),
        r.quantile(0.99),
        r.quantile(1.0),
        r.late(),
        r.suspicions,
        r.exchanges
    );
    assert!(r.exchanges >= 4, "the state was exchanged several times ({} local_state calls)", r.exchanges);
    assert!(r.merged_bytes >= 4 * STATE_BYTES as u64, "and merged ({} bytes)", r.merged_bytes);
    assert!(r.rtts.len() >= 30, "the pinger kept pinging ({} answers)", r.rtts.len());
    assert_eq!(r.late(), 0, "every ping answered within {:?}; max {:?}", r.probe_timeout, r.quantile(1.0));
    assert_eq!(r.suspicions, 0, "nobody suspected");
}

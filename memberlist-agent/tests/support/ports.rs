//! What the agent test files share: free loopback ports and waiting for a condition.

use std::time::{Duration, Instant};

/// A loopback port free for both TCP and UDP, and never handed out before in this test
/// process: the kernel may give a port just released to the next `bind(0)`, and tests running
/// in parallel would then start two agents on one port (seen once: a test's HTTP request reached
/// another agent's memberlist listener, which reset the connection).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits up to `limit` for `ok`, polling every 200 ms, or panics naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

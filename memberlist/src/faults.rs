//! A transport wrapper that loses and delays datagrams on purpose, for fault tests.
//!
//! The kernels memberlist-rs is tested on often have no `netem`, so delay cannot come from the
//! network; it comes from here, as in the Go test peer's wrapping transport. [`FaultyTransport`]
//! wraps any [`Transport`]: every datagram sent or received is dropped with the configured
//! probability and otherwise held back by the configured delay, so the round trip to this node
//! grows by twice the delay. Streams pass through untouched. The knobs live in a shared
//! [`Faults`] handle and can be turned while the node runs.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::transport::{BoxConn, BoxFuture, Transport};

/// Datagrams received and waiting out their delay; more than this and new ones are dropped,
/// as a full socket buffer would.
const DELAY_QUEUE: usize = 4096;

/// The knobs of a [`FaultyTransport`], shared with whoever turns them.
#[derive(Debug)]
pub struct Faults {
    drop_ppm: AtomicU32,
    delay_us: AtomicU64,
    dropped: AtomicU64,
    rng: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Faults {
            drop_ppm: AtomicU32::new(0),
            delay_us: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rng: AtomicU64::new(t.as_nanos() as u64 | 1),
        }
    }
}

impl Faults {
    /// Drop this fraction (0.0 to 1.0) of datagrams in each direction.
    pub fn set_drop(&self, fraction: f64) {
        let ppm = (fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
        self.drop_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Hold every datagram back by `delay` in each direction.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us.store(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The current delay in each direction.
    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Datagrams dropped so far, both directions.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn drops_now(&self) -> bool {
        let ppm = self.drop_ppm.load(Ordering::Relaxed);
        let hit = ppm > 0 && self.next_random() % 1_000_000 < u64::from(ppm);
        if hit {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// SplitMix64 over an atomic counter: good enough to pick which datagrams to lose.
    fn next_random(&self) -> u64 {
        let mut z = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type Delayed = (Instant, Vec<u8>, SocketAddr);

/// Wraps a transport and applies [`Faults`] to its datagrams. Create it inside a tokio runtime:
/// it spawns a task that reads the inner transport and delays what arrives.
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    faults: Arc<Faults>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Delayed>>,
}

impl std::fmt::Debug for FaultyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport").field("faults", &self.faults).finish_non_exhaustive()
    }
}

impl FaultyTransport {
    /// Wraps `inner`; `faults` starts with no loss and no delay unless already set.
    pub fn new(inner: Arc<dyn Transport>, faults: Arc<Faults>) -> Self {
        let (tx, rx) = mpsc::channel(DELAY_QUEUE);
        let reader = inner.clone();
        let knobs = faults.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = match reader.recv_from(&mut buf).await {
                    Ok(r) => r,
                    Err(_) if tx.is_closed() => return,
                    Err(_) => continue,
                };
                if knobs.drops_now() {
                    continue;
                }
                let due = Instant::now() + knobs.delay();
                let Some(data) = buf.get(..n) else { continue };
                match tx.try_send((due, data.to_vec(), from)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        knobs.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        FaultyTransport { inner, faults, incoming: tokio::sync::Mutex::new(rx) }
    }

    /// The knobs.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }
}

impl Transport for FaultyTransport {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        if self.faults.drops_now() {
            return Ok(());
        }
        let delay = self.faults.delay();
        if delay.is_zero() {
            return self.inner.send_to(buf, to);
        }
        let inner = self.inner.clone();
        let data = buf.to_vec();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = inner.send_to(&data, to);
        });
        Ok(())
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.incoming.lock().await;
            let (due, data, from) = rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))?;
            tokio::time::sleep_until(due).await;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok((n, from))
        })
    }

    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
        self.inner.connect(to)
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
        self.inner.accept()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryNetwork;

    #[tokio::test]
    async fn delays_and_drops_datagrams_both_ways() {
        let net = MemoryNetwork::default();
        let a: Arc<dyn Transport> = Arc::new(net.transport());
        let b = net.transport();
        let faults = Arc::new(Faults::default());
        let fa = FaultyTransport::new(a, faults.clone());
        let mut buf = [0u8; 16];

        // No faults: straight through.
        fa.send_to(b"x", b.local_addr()).unwrap();
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"x");

        // Delay outgoing and incoming.
        faults.set_delay(Duration::from_millis(60));
        let t = Instant::now();
        fa.send_to(b"y", b.local_addr()).unwrap();
        b.recv_from(&mut buf).await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(60), "outgoing delayed: {:?}", t.elapsed());
        let t = Instant::now();
        b.send_to(b"z", fa.local_addr()).unwrap();
        let (n, _) = fa.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"z");
        assert!(t.elapsed() >= Duration::from_millis(60), "incoming delayed: {:?}", t.elapsed());

        // Drop everything: nothing arrives, both directions are counted.
        faults.set_delay(Duration::ZERO);
        faults.set_drop(1.0);
        fa.send_to(b"lost", b.local_addr()).unwrap();
        b.send_to(b"lost", fa.local_addr()).unwrap();
        let got = tokio::time::timeout(Duration::from_millis(100), b.recv_from(&mut buf)).await;
        assert!(got.is_err(), "outgoing dropped");
        let got = tokio::time::timeout(Duration::from_millis(100), fa.recv_from(&mut buf)).await;
        assert!(got.is_err(), "incoming dropped");
        assert_eq!(faults.dropped(), 2);
    }
}

//! Grafana dskit's memberlist transport (`kv/memberlist/tcp_transport.go`), as Loki, Mimir,
//! Tempo and Pyroscope run it: TCP only, a new connection for every operation, no UDP at all.
//!
//! Every connection starts with a type byte:
//!
//! - `1`, a **packet**: then the sender's advertise address as one length byte and that many
//!   bytes of text (`10.0.0.1:7946`), the datagram, and the MD5 digest of the datagram (16
//!   bytes); the sender closes the connection after the digest, so the datagram is everything
//!   between the address and the last 16 bytes. The receiver uses the address in the header as
//!   the packet's source, so replies go to the sender's listening port rather than to the
//!   connection's ephemeral one.
//! - `2`, a **stream**: then an ordinary memberlist stream (label, push/pull, user message, …).
//!
//! Bounds, as dskit sets them (its defaults) or where dskit has none: at most
//! `max_concurrent_writes` packets are written at once; a packet that cannot get a writer
//! within `acquire_writer_timeout` is dropped and counted, so a slow peer cannot hold up
//! gossip. Dials time out after `packet_dial_timeout`, writes after `packet_write_timeout`.
//! On the receiving side a connection must deliver its type byte, and a packet all of its
//! bytes, within `read_timeout`; a packet is at most `max_packet_size` bytes (dskit's
//! memberlist packs up to 10 MiB into one); at most `max_concurrent_reads` connections are
//! read at once and at most `queue_depth` packets wait for the node. Unknown type bytes, bad
//! digests, unreadable addresses, oversized and slow packets and full queues are counted drops
//! with a closed connection (see [`DskitStats`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::transport::{BoxConn, BoxFuture, Transport};

/// Type byte of a packet connection.
const PACKET: u8 = 1;
/// Type byte of a stream connection.
const STREAM: u8 = 2;
/// Bytes of the MD5 digest after a packet.
const DIGEST_LEN: usize = 16;

/// dskit's transport settings, with its defaults.
#[derive(Debug, Clone)]
pub struct DskitConfig {
    /// Timeout for connecting to send a packet (dskit `packet_dial_timeout`, 2 s).
    pub packet_dial_timeout: Duration,
    /// Timeout for writing a packet (dskit `packet_write_timeout`, 5 s).
    pub packet_write_timeout: Duration,
    /// Packets written at once (dskit `max_concurrent_writes`, 3).
    pub max_concurrent_writes: usize,
    /// How long a packet may wait for a writer before it is dropped (dskit
    /// `acquire_writer_timeout`, 250 ms).
    pub acquire_writer_timeout: Duration,
    /// Longest a received connection may take to send its type byte and, for a packet, all of
    /// it (5 s).
    pub read_timeout: Duration,
    /// Largest packet accepted (10 MiB, dskit's `UDPBufferSize`).
    pub max_packet_size: usize,
    /// Received connections read at once; more are closed at once (64).
    pub max_concurrent_reads: usize,
    /// Received packets waiting for the node; more are dropped (256).
    pub queue_depth: usize,
    /// TLS on every connection, as dskit's `tls_enabled` (off by default).
    pub tls: Option<crate::tls::DskitTls>,
}

impl Default for DskitConfig {
    fn default() -> Self {
        DskitConfig {
            packet_dial_timeout: Duration::from_secs(2),
            packet_write_timeout: Duration::from_secs(5),
            max_concurrent_writes: 3,
            acquire_writer_timeout: Duration::from_millis(250),
            read_timeout: Duration::from_secs(5),
            max_packet_size: 10 * 1024 * 1024,
            max_concurrent_reads: 64,
            queue_depth: 256,
            tls: None,
        }
    }
}

/// What the transport did and dropped, since it started.
#[derive(Debug, Default)]
pub struct DskitStats {
    /// Packets written.
    pub packets_sent: AtomicU64,
    /// Packets whose connection or write failed.
    pub packets_send_failed: AtomicU64,
    /// Packets dropped because no writer was free within `acquire_writer_timeout`.
    pub dropped_no_writer: AtomicU64,
    /// Packets received and handed on.
    pub packets_received: AtomicU64,
    /// Streams received.
    pub streams_received: AtomicU64,
    /// Connections whose first byte was neither 1 nor 2.
    pub dropped_unknown_type: AtomicU64,
    /// Packets whose digest did not match.
    pub dropped_bad_digest: AtomicU64,
    /// Packets with a sender address that does not parse, or shorter than a digest.
    pub dropped_malformed: AtomicU64,
    /// Packets over `max_packet_size`.
    pub dropped_oversized: AtomicU64,
    /// Connections that did not deliver in `read_timeout`, or broke off.
    pub dropped_slow: AtomicU64,
    /// Connections closed because `max_concurrent_reads` were being read.
    pub dropped_busy: AtomicU64,
    /// Packets dropped because `queue_depth` were waiting.
    pub dropped_queue_full: AtomicU64,
    /// Connections whose TLS handshake failed.
    pub dropped_tls: AtomicU64,
}

fn count(c: &AtomicU64, reason: &'static str) {
    c.fetch_add(1, Ordering::Relaxed);
    if !reason.is_empty() {
        metrics::counter!("memberlist.dskit.dropped", "reason" => reason).increment(1);
    }
}

/// dskit's TCP transport.
pub struct DskitTransport {
    local: SocketAddr,
    advertise: Mutex<String>,
    cfg: DskitConfig,
    writers: Arc<Semaphore>,
    stats: Arc<DskitStats>,
    datagrams: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    streams: tokio::sync::Mutex<mpsc::Receiver<(BoxConn, SocketAddr)>>,
    acceptor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for DskitTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DskitTransport").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Drop for DskitTransport {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            a.abort();
        }
    }
}

impl DskitTransport {
    /// Listens on `addr` (port 0 lets the kernel pick) with dskit's default settings.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        DskitTransport::bind_with(addr, DskitConfig::default()).await
    }

    /// Listens on `addr` with `cfg`.
    pub async fn bind_with(addr: SocketAddr, cfg: DskitConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (dtx, drx) = mpsc::channel(cfg.queue_depth.max(1));
        let (stx, srx) = mpsc::channel(cfg.queue_depth.max(1));
        let stats = Arc::new(DskitStats::default());
        let readers = Arc::new(Semaphore::new(cfg.max_concurrent_reads.max(1)));
        let acceptor = tokio::spawn(accept_loop(listener, cfg.clone(), readers, stats.clone(), dtx, stx));
        Ok(DskitTransport {
            local,
            advertise: Mutex::new(local.to_string()),
            writers: Arc::new(Semaphore::new(cfg.max_concurrent_writes.max(1))),
            cfg,
            stats,
            datagrams: tokio::sync::Mutex::new(drx),
            streams: tokio::sync::Mutex::new(srx),
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// What the transport sent, received and dropped.
    pub fn stats(&self) -> &DskitStats {
        &self.stats
    }
}

async fn accept_loop(
    listener: TcpListener,
    cfg: DskitConfig,
    readers: Arc<Semaphore>,
    stats: Arc<DskitStats>,
    datagrams: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    streams: mpsc::Sender<(BoxConn, SocketAddr)>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = Duration::from_millis(5);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "dskit transport: accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = readers.clone().try_acquire_owned() else {
            count(&stats.dropped_busy, "busy");
            continue;
        };
        let (cfg, stats, datagrams, streams) = (cfg.clone(), stats.clone(), datagrams.clone(), streams.clone());
        tokio::spawn(async move {
            let _permit = permit;
            classify(conn, peer, &cfg, &stats, &datagrams, &streams).await;
        });
    }
}

/// Reads a connection's type byte (after the TLS handshake, with TLS) and hands it on: a stream
/// to the node as it is, a packet read to its end and checked.
async fn classify(
    tcp: TcpStream,
    peer: SocketAddr,
    cfg: &DskitConfig,
    stats: &DskitStats,
    datagrams: &mpsc::Sender<(Vec<u8>, SocketAddr)>,
    streams: &mpsc::Sender<(BoxConn, SocketAddr)>,
) {
    let _ = tcp.set_nodelay(true);
    let mut conn: BoxConn = match &cfg.tls {
        None => Box::new(tcp),
        Some(tls) => match tokio::time::timeout(cfg.read_timeout, tls.accept(tcp)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "dskit transport: TLS handshake failed");
                return count(&stats.dropped_tls, "tls");
            }
            Err(_) => return count(&stats.dropped_slow, "slow"),
        },
    };
    let first = match tokio::time::timeout(cfg.read_timeout, conn.read_u8()).await {
        Ok(Ok(b)) => b,
        _ => return count(&stats.dropped_slow, "slow"),
    };
    match first {
        STREAM => {
            stats.streams_received.fetch_add(1, Ordering::Relaxed);
            if streams.try_send((conn, peer)).is_err() {
                count(&stats.dropped_queue_full, "queue_full");
            }
        }
        PACKET => match tokio::time::timeout(cfg.read_timeout, read_packet(&mut conn, cfg.max_packet_size)).await {
            Err(_) => count(&stats.dropped_slow, "slow"),
            Ok(Err(PacketError::Io)) => count(&stats.dropped_slow, "slow"),
            Ok(Err(PacketError::Oversized)) => count(&stats.dropped_oversized, "oversized"),
            Ok(Err(PacketError::Malformed)) => count(&stats.dropped_malformed, "malformed"),
            Ok(Err(PacketError::Digest)) => count(&stats.dropped_bad_digest, "bad_digest"),
            Ok(Ok((from, data))) => {
                stats.packets_received.fetch_add(1, Ordering::Relaxed);
                if datagrams.try_send((data, from)).is_err() {
                    count(&stats.dropped_queue_full, "queue_full");
                }
            }
        },
        other => {
            tracing::debug!(%peer, first = other, "dskit transport: unknown connection type");
            count(&stats.dropped_unknown_type, "unknown_type");
        }
    }
}

enum PacketError {
    Io,
    Oversized,
    Malformed,
    Digest,
}

/// The rest of a packet connection: the sender's address, the datagram and its digest.
async fn read_packet(conn: &mut BoxConn, max: usize) -> Result<(SocketAddr, Vec<u8>), PacketError> {
    let len = conn.read_u8().await.map_err(|_| PacketError::Io)?;
    let mut addr = vec![0u8; usize::from(len)];
    conn.read_exact(&mut addr).await.map_err(|_| PacketError::Io)?;
    let from = std::str::from_utf8(&addr).ok().and_then(|a| a.parse::<SocketAddr>().ok());
    // Read to the end, never holding more than the limit plus the digest.
    let cap = max.saturating_add(DIGEST_LEN);
    let mut body = Vec::new();
    let mut limited = (&mut *conn).take(cap as u64 + 1);
    limited.read_to_end(&mut body).await.map_err(|_| PacketError::Io)?;
    if body.len() > cap {
        return Err(PacketError::Oversized);
    }
    let Some(from) = from else { return Err(PacketError::Malformed) };
    if body.len() < DIGEST_LEN {
        return Err(PacketError::Malformed);
    }
    let digest = body.split_off(body.len() - DIGEST_LEN);
    if Md5::digest(&body).as_slice() != digest.as_slice() {
        return Err(PacketError::Digest);
    }
    Ok((from, body))
}

/// One packet connection: `[1][len][advertise address][data][md5(data)]`.
fn packet_frame(advertise: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let len = u8::try_from(advertise.len()).map_err(|_| io::Error::other("local address too long"))?;
    let mut out = Vec::with_capacity(2 + advertise.len() + data.len() + DIGEST_LEN);
    out.push(PACKET);
    out.push(len);
    out.extend_from_slice(advertise.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&Md5::digest(data));
    Ok(out)
}

/// Dials `to`, with the TLS handshake when TLS is on.
async fn dial(to: SocketAddr, tls: Option<&crate::tls::DskitTls>) -> io::Result<BoxConn> {
    let tcp = TcpStream::connect(to).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => t.connect(tcp, to).await,
    }
}

async fn write_packet(to: SocketAddr, frame: Vec<u8>, cfg: &DskitConfig) -> io::Result<()> {
    let mut conn = tokio::time::timeout(cfg.packet_dial_timeout, dial(to, cfg.tls.as_ref()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial timeout"))??;
    let write = async {
        conn.write_all(&frame).await?;
        conn.shutdown().await
    };
    tokio::time::timeout(cfg.packet_write_timeout, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timeout"))?
}

impl Transport for DskitTransport {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn set_advertise_addr(&self, addr: SocketAddr) {
        *self.advertise.lock().unwrap_or_else(|e| e.into_inner()) = addr.to_string();
    }

    fn max_packet_size(&self) -> usize {
        self.cfg.max_packet_size
    }

    /// Queues the packet for a writer; it is written on a connection of its own, or dropped
    /// and counted when no writer frees up within `acquire_writer_timeout`.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        let advertise = self.advertise.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let frame = packet_frame(&advertise, buf)?;
        let (writers, stats, cfg) = (self.writers.clone(), self.stats.clone(), self.cfg.clone());
        tokio::spawn(async move {
            let permit = tokio::time::timeout(cfg.acquire_writer_timeout, writers.acquire_owned()).await;
            let Ok(Ok(_permit)) = permit else {
                return count(&stats.dropped_no_writer, "no_writer");
            };
            match write_packet(to, frame, &cfg).await {
                Ok(()) => {
                    stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.packets_send_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%to, error = %e, "dskit transport: packet not sent");
                }
            }
        });
        Ok(())
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.datagrams.lock().await;
            let (data, from) = rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok((n, from))
        })
    }

    /// The datagram as the reader task read it off its connection.
    fn recv_packet(&self) -> BoxFuture<'_, io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.datagrams.lock().await;
            rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))
        })
    }

    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
        let tls = self.cfg.tls.clone();
        Box::pin(async move {
            let mut conn = dial(to, tls.as_ref()).await?;
            conn.write_all(&[STREAM]).await?;
            Ok(conn)
        })
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.streams.lock().await;
            rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let acceptor = self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).take();
        Box::pin(async move {
            if let Some(a) = acceptor {
                a.abort();
                let _ = a.await;
            }
        })
    }
}

/// What one captured dskit connection carries (the bytes its dialer wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DskitConnection<'a> {
    /// A packet: the sender's address as it wrote it, the datagram, and whether the digest
    /// after it matches.
    Packet {
        /// The sender's advertise address.
        from: String,
        /// The datagram.
        data: &'a [u8],
        /// Whether the MD5 digest matches the datagram.
        digest_ok: bool,
    },
    /// A stream: the memberlist stream after the type byte.
    Stream(&'a [u8]),
}

/// Splits a captured dskit connection into its framing and its memberlist content.
pub fn parse_connection(bytes: &[u8]) -> Result<DskitConnection<'_>, String> {
    match bytes.split_first() {
        Some((&STREAM, rest)) => Ok(DskitConnection::Stream(rest)),
        Some((&PACKET, rest)) => {
            let (&len, rest) = rest.split_first().ok_or("a packet with no address length")?;
            let len = usize::from(len);
            if rest.len() < len + DIGEST_LEN {
                return Err(format!(
                    "a packet of {} bytes after its header cannot hold a {len}-byte address and a digest",
                    rest.len()
                ));
            }
            let (addr, rest) = rest.split_at(len);
            let (data, digest) = rest.split_at(rest.len() - DIGEST_LEN);
            Ok(DskitConnection::Packet {
                from: String::from_utf8_lossy(addr).into_owned(),
                data,
                digest_ok: Md5::digest(data).as_slice() == digest,
            })
        }
        Some((other, _)) => Err(format!("unknown dskit connection type {other} (1 is a packet, 2 a stream)")),
        None => Err("empty input".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send_raw(to: SocketAddr, bytes: &[u8]) {
        let mut c = TcpStream::connect(to).await.unwrap();
        c.write_all(bytes).await.unwrap();
        c.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn packets_carry_the_sender_address_and_a_digest() {
        let a = DskitTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let b = DskitTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        b.set_advertise_addr("10.9.8.7:7946".parse().unwrap());
        b.send_to(b"hello dskit", a.local_addr()).unwrap();
        let mut buf = vec![0u8; a.max_packet_size()];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (b"hello dskit".as_slice(), "10.9.8.7:7946".parse().unwrap()));
        // The exact bytes dskit's writeTo sends.
        let frame = packet_frame("1.2.3.4:5", b"x").unwrap();
        let mut want = vec![1, 9];
        want.extend_from_slice(b"1.2.3.4:5x");
        want.extend_from_slice(&Md5::digest(b"x"));
        assert_eq!(frame, want);
    }

    #[tokio::test]
    async fn bad_connections_are_counted_drops() {
        let cfg = DskitConfig { read_timeout: Duration::from_millis(300), max_packet_size: 64, ..Default::default() };
        let t = DskitTransport::bind_with("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
        let to = t.local_addr();
        send_raw(to, &[7, 1, 2, 3]).await;
        let mut bad_digest = packet_frame("1.2.3.4:5", b"data").unwrap();
        let last = bad_digest.len() - 1;
        bad_digest[last] ^= 1;
        send_raw(to, &bad_digest).await;
        send_raw(to, &packet_frame("not an address", b"data").unwrap()).await;
        send_raw(to, &packet_frame("1.2.3.4:5", &[0u8; 100]).unwrap()).await;
        send_raw(to, &[1, 9, b'1']).await; // breaks off inside the address
                                           // A slow sender: the type byte, then nothing.
        let mut slow = TcpStream::connect(to).await.unwrap();
        slow.write_all(&[1]).await.unwrap();
        // One good packet after all that still arrives.
        send_raw(to, &packet_frame("1.2.3.4:5", b"ok").unwrap()).await;
        let mut buf = vec![0u8; 64];
        let (n, _) = t.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ok");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let s = t.stats();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(get(&s.dropped_unknown_type), 1);
        assert_eq!(get(&s.dropped_bad_digest), 1);
        assert_eq!(get(&s.dropped_malformed), 1);
        assert_eq!(get(&s.dropped_oversized), 1);
        assert_eq!(get(&s.dropped_slow), 2, "the broken-off packet and the slow sender");
        assert_eq!(get(&s.packets_received), 1);
        drop(slow);
    }

    #[tokio::test]
    async fn a_packet_that_gets_no_writer_in_time_is_dropped() {
        // A peer that accepts and never reads: every writer hangs until its write timeout.
        let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = sink.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = sink.accept().await {
                conns.push(c);
            }
        });
        let cfg = DskitConfig {
            max_concurrent_writes: 1,
            acquire_writer_timeout: Duration::from_millis(50),
            packet_write_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let t = DskitTransport::bind_with("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
        let big = vec![7u8; 8 * 1024 * 1024]; // more than the socket buffers hold
        t.send_to(&big, to).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        t.send_to(b"small", to).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(t.stats().dropped_no_writer.load(Ordering::Relaxed), 1);
        held.abort();
    }

    #[test]
    fn captured_connections_parse() {
        let frame = packet_frame("10.0.0.1:7946", b"\x08hi").unwrap();
        assert_eq!(
            parse_connection(&frame).unwrap(),
            DskitConnection::Packet { from: "10.0.0.1:7946".into(), data: b"\x08hi", digest_ok: true }
        );
        assert_eq!(parse_connection(&[2, 6, 1]).unwrap(), DskitConnection::Stream(&[6, 1]));
        assert!(parse_connection(&[1, 200, 1]).is_err());
        assert!(parse_connection(&[9]).unwrap_err().contains("unknown dskit connection type 9"));
        assert!(parse_connection(&[]).is_err());
    }

    #[tokio::test]
    async fn streams_start_with_the_stream_byte() {
        let a = DskitTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let b = DskitTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut out = b.connect(a.local_addr()).await.unwrap();
        out.write_all(b"memberlist stream").await.unwrap();
        out.shutdown().await.unwrap();
        let (mut conn, _) = a.accept().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"memberlist stream");
    }
}

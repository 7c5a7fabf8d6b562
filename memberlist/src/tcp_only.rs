//! A transport for networks that block UDP (Go #226): datagrams travel over TCP too.
//!
//! Each node keeps one outgoing TCP connection per destination for its datagrams. Such a
//! connection starts with the byte `0xF5` — never the first byte of a memberlist stream (those
//! start with a label `0xF4`, an encrypted frame `10`, a compress message `9` or a message type)
//! — followed by the sender's listening address (16-byte IP, 2-byte port), then one frame per
//! datagram: a 4-byte big-endian length and the datagram. Every other connection is an ordinary
//! memberlist stream. Only nodes using this transport understand it: Go nodes do not.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::transport::{connect_tcp, recv_queued, recv_queued_packet, BoxConn, BoxFuture, DatagramQueue, Transport};

/// First byte of a connection that carries datagrams.
const DATAGRAM_STREAM: u8 = 0xF5;
/// Largest datagram accepted over such a connection (Go's receive buffer).
const MAX_DATAGRAM: usize = 65_536;

/// Datagrams and streams, all over TCP.
pub struct TcpOnlyTransport {
    addr: SocketAddr,
    outgoing: Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>,
    datagrams: DatagramQueue,
    streams: tokio::sync::Mutex<mpsc::UnboundedReceiver<(BoxConn, SocketAddr)>>,
    acceptor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for TcpOnlyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpOnlyTransport").field("addr", &self.addr).finish()
    }
}

impl Drop for TcpOnlyTransport {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            a.abort();
        }
    }
}

fn addr_bytes(a: SocketAddr) -> [u8; 18] {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip.octets());
    out[16..].copy_from_slice(&a.port().to_be_bytes());
    out
}

fn addr_from(b: &[u8; 18]) -> SocketAddr {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[..16]);
    let v6 = std::net::Ipv6Addr::from(ip);
    let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    SocketAddr::new(ip, u16::from_be_bytes([b[16], b[17]]))
}

impl TcpOnlyTransport {
    /// Listens on `addr` (port 0 lets the kernel pick).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (dtx, drx) = mpsc::unbounded_channel();
        let (stx, srx) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((conn, peer)) = listener.accept().await else { continue };
                let (dtx, stx) = (dtx.clone(), stx.clone());
                tokio::spawn(async move {
                    let _ = classify(conn, peer, dtx, stx).await;
                });
            }
        });
        Ok(TcpOnlyTransport {
            addr: local,
            outgoing: Mutex::new(HashMap::new()),
            datagrams: tokio::sync::Mutex::new(drx),
            streams: tokio::sync::Mutex::new(srx),
            acceptor: Mutex::new(Some(acceptor)),
        })
    }
}

/// Reads the first byte of an accepted connection and routes it.
async fn classify(
    mut conn: TcpStream,
    peer: SocketAddr,
    datagrams: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    streams: mpsc::UnboundedSender<(BoxConn, SocketAddr)>,
) -> io::Result<()> {
    let first = conn.read_u8().await?;
    if first != DATAGRAM_STREAM {
        let _ = streams.send((Box::new(Prefixed { first: Some(first), inner: conn }), peer));
        return Ok(());
    }
    let mut from = [0u8; 18];
    conn.read_exact(&mut from).await?;
    let from = addr_from(&from);
    loop {
        let len = conn.read_u32().await? as usize;
        if len > MAX_DATAGRAM {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "datagram too large"));
        }
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf).await?;
        if datagrams.send((buf, from)).is_err() {
            return Ok(());
        }
    }
}

impl Transport for TcpOnlyTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        let frame = {
            let mut f = Vec::with_capacity(buf.len() + 4);
            f.extend_from_slice(&u32::try_from(buf.len()).unwrap_or(u32::MAX).to_be_bytes());
            f.extend_from_slice(buf);
            f
        };
        if let Some(tx) = out.get(&to) {
            if tx.send(frame.clone()).is_ok() {
                return Ok(());
            }
        }
        // A new datagram connection: it connects, introduces itself and writes frames until
        // an error, after which the next datagram opens a fresh one.
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let _ = tx.send(frame);
        out.insert(to, tx);
        let me = addr_bytes(self.addr);
        tokio::spawn(async move {
            let Ok(mut conn) = TcpStream::connect(to).await else { return };
            let _ = conn.set_nodelay(true);
            let mut hello = vec![DATAGRAM_STREAM];
            hello.extend_from_slice(&me);
            if conn.write_all(&hello).await.is_err() {
                return;
            }
            while let Some(frame) = rx.recv().await {
                if conn.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(recv_queued(&self.datagrams, buf))
    }

    fn recv_packet(&self) -> BoxFuture<'_, io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(recv_queued_packet(&self.datagrams))
    }

    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
        Box::pin(connect_tcp(to))
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.streams.lock().await;
            rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))
        })
    }

    /// Stops the acceptor and waits until it is gone: the listener is closed when this returns.
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

/// A connection whose first byte was already read.
struct Prefixed {
    first: Option<u8>,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(b) = self.first.take() {
            if buf.remaining() > 0 {
                buf.put_slice(&[b]);
                return Poll::Ready(Ok(()));
            }
            self.first = Some(b);
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

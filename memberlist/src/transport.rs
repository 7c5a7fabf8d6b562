//! Transports: how a node sends datagrams and opens streams.
//!
//! [`NetTransport`] is the default: UDP and TCP on the same port, as Go's `NetTransport`.
//! [`MemoryNetwork`] connects nodes inside one process without sockets, for tests. Bring your
//! own by implementing [`Transport`] (NAT traversal, a proxy, a custom network).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reliable byte stream (a TCP connection or its equivalent).
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn for T {}

/// A boxed stream.
pub type BoxConn = Box<dyn Conn>;

/// What a node needs from the network.
pub trait Transport: Send + Sync + 'static {
    /// The address this transport was bound to.
    fn local_addr(&self) -> SocketAddr;
    /// Sends one datagram, best effort, without waiting.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()>;
    /// Receives the next datagram into `buf`.
    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>>;
    /// Receives the next datagram as a buffer of its own size; the node's reader calls this.
    /// The default receives through [`recv_from`](Self::recv_from) into a buffer of
    /// [`max_packet_size`](Self::max_packet_size) allocated per datagram. Override it when the
    /// transport can do better: the built-in ones wait without holding a buffer (a node that
    /// held 64 KiB while it waited cost a 1000-node process 64 MiB) or hand over the datagram
    /// they already hold.
    fn recv_packet(&self) -> BoxFuture<'_, io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(async move {
            let mut buf = vec![0u8; self.max_packet_size()];
            let (n, from) = self.recv_from(&mut buf).await?;
            buf.truncate(n);
            buf.shrink_to_fit();
            Ok((buf, from))
        })
    }
    /// Opens a stream to `to`.
    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>>;
    /// Waits for the next incoming stream.
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>>;
    /// The address the node advertises, once it is chosen (a transport that names its sender
    /// in every packet, as dskit's does, needs it). The default ignores it.
    fn set_advertise_addr(&self, _addr: SocketAddr) {}
    /// Largest datagram [`recv_from`](Self::recv_from) may deliver (64 KiB, a UDP datagram's
    /// limit, by default).
    fn max_packet_size(&self) -> usize {
        65_536
    }
    /// Stops tasks of the transport's own, so that its sockets close when it is dropped; the
    /// node calls it once when it shuts down. The default does nothing.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// UDP and TCP on one port (Go's `NetTransport`).
#[derive(Debug)]
pub struct NetTransport {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl NetTransport {
    /// Binds TCP, then UDP on the same port; with port 0 it retries until the port the kernel
    /// picked for TCP is free for UDP too.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..10 {
            let tcp = TcpListener::bind(addr).await?;
            let port = tcp.local_addr()?.port();
            match bind_udp(SocketAddr::new(addr.ip(), port)) {
                Ok(udp) => return Ok(NetTransport { udp, tcp }),
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
    }
}

thread_local! {
    /// The receive buffer of [`NetTransport::recv_packet`], one per thread: a UDP datagram's
    /// largest payload fits.
    static RECV_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 65_536]);
}

/// Go's `udpRecvBufSize`: the receive buffer asked for, halved until the kernel accepts it.
const UDP_RECV_BUF_SIZE: usize = 2 * 1024 * 1024;

/// Binds a UDP socket with a large receive buffer, as Go's `NetTransport` does, so that bursts
/// queue in the kernel instead of being dropped there.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let mut size = UDP_RECV_BUF_SIZE;
    while size >= 64 * 1024 && sock.set_recv_buffer_size(size).is_err() {
        size /= 2;
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

impl Transport for NetTransport {
    fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// Tokio's `try_send_to`, and a plain non-blocking `sendto` when it says WouldBlock: tokio
    /// refuses until its reactor has once seen the socket writable, which dropped a fresh node's
    /// first datagrams. If the plain send would block too, the socket buffer is full and the
    /// datagram is dropped, as UDP may.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        match self.udp.try_send_to(buf, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket2::SockRef::from(&self.udp).send_to(buf, &to.into()).map(|_| ())
            }
            sent => sent.map(|_| ()),
        }
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(self.udp.recv_from(buf))
    }

    /// Waits until the socket is readable, then receives into a buffer of the worker
    /// thread's and copies the datagram out, so that a waiting node holds no buffer.
    fn recv_packet(&self) -> BoxFuture<'_, io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(async move {
            loop {
                self.udp.readable().await?;
                let got = RECV_BUF.with_borrow_mut(|buf| {
                    self.udp.try_recv_from(buf).map(|(n, from)| (buf.get(..n).unwrap_or_default().to_vec(), from))
                });
                match got {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    got => return got,
                }
            }
        })
    }

    /// A UDP datagram's largest payload.
    fn max_packet_size(&self) -> usize {
        65_507
    }

    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
        Box::pin(connect_tcp(to))
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let (s, peer) = self.tcp.accept().await?;
            Ok((Box::new(s) as BoxConn, peer))
        })
    }
}

/// Opens a TCP stream with Nagle off (memberlist writes whole messages at once).
pub(crate) async fn connect_tcp(to: SocketAddr) -> io::Result<BoxConn> {
    let s = TcpStream::connect(to).await?;
    let _ = s.set_nodelay(true);
    Ok(Box::new(s) as BoxConn)
}

/// Datagrams handed over through a channel, as in-process transports receive them.
pub(crate) type DatagramQueue = tokio::sync::Mutex<mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>>;

/// Receives the next queued datagram into `buf` (truncating, like a UDP socket).
pub(crate) async fn recv_queued(queue: &DatagramQueue, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    let mut rx = queue.lock().await;
    let (data, from) = rx.recv().await.ok_or_else(|| io::Error::other("transport closed"))?;
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    Ok((n, from))
}

/// The next queued datagram, as it was queued.
pub(crate) async fn recv_queued_packet(queue: &DatagramQueue) -> io::Result<(Vec<u8>, SocketAddr)> {
    queue.lock().await.recv().await.ok_or_else(|| io::Error::other("transport closed"))
}

struct Port {
    datagrams: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    streams: mpsc::UnboundedSender<(DuplexStream, SocketAddr)>,
}

/// An in-process network: transports created from it reach each other by address, with no
/// sockets. Addresses are 127.0.0.1 with ports 1, 2, 3, … in creation order.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    ports: Arc<Mutex<HashMap<SocketAddr, Port>>>,
    next: Arc<Mutex<u16>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryNetwork")
    }
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        MemoryNetwork::default()
    }

    /// A transport on a fresh address.
    pub fn transport(&self) -> MemoryTransport {
        let port = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let (dtx, drx) = mpsc::unbounded_channel();
        let (stx, srx) = mpsc::unbounded_channel();
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).insert(addr, Port { datagrams: dtx, streams: stx });
        MemoryTransport {
            addr,
            net: self.clone(),
            datagrams: tokio::sync::Mutex::new(drx),
            streams: tokio::sync::Mutex::new(srx),
        }
    }

    /// Takes `addr` off the network, as if its host went away.
    pub fn disconnect(&self, addr: SocketAddr) {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).remove(&addr);
    }
}

/// One node's attachment to a [`MemoryNetwork`].
pub struct MemoryTransport {
    addr: SocketAddr,
    net: MemoryNetwork,
    datagrams: DatagramQueue,
    streams: tokio::sync::Mutex<mpsc::UnboundedReceiver<(DuplexStream, SocketAddr)>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").field("addr", &self.addr).finish()
    }
}

impl Transport for MemoryTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        let ports = self.net.ports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = ports.get(&to) {
            let _ = p.datagrams.send((buf.to_vec(), self.addr));
        }
        Ok(())
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(recv_queued(&self.datagrams, buf))
    }

    fn recv_packet(&self) -> BoxFuture<'_, io::Result<(Vec<u8>, SocketAddr)>> {
        Box::pin(recv_queued_packet(&self.datagrams))
    }

    fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
        let target = {
            let ports = self.net.ports.lock().unwrap_or_else(|e| e.into_inner());
            ports.get(&to).map(|p| p.streams.clone())
        };
        let from = self.addr;
        Box::pin(async move {
            let target = target.ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, "no such node"))?;
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            target.send((theirs, from)).map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "node gone"))?;
            Ok(Box::new(ours) as BoxConn)
        })
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let mut rx = self.streams.lock().await;
            let (s, peer) = rx.recv().await.ok_or_else(|| io::Error::other("network gone"))?;
            Ok((Box::new(s) as BoxConn, peer))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams of every size up to UDP's limit arrive whole and exact through the
    /// thread's shared buffer, one after another, with their sender.
    #[tokio::test]
    async fn net_transport_delivers_each_datagram_whole_without_a_buffer_of_its_own() {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let (rx, tx) = (NetTransport::bind(any).await.unwrap(), NetTransport::bind(any).await.unwrap());
        let sizes = [1usize, 1400, 9000, 65_507, 3];
        for (i, &n) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
            tx.send_to(&bytes, rx.local_addr()).unwrap();
        }
        for (i, &n) in sizes.iter().enumerate() {
            let (got, from) = rx.recv_packet().await.unwrap();
            assert_eq!(got.len(), n);
            assert!(got.iter().enumerate().all(|(b, &v)| v == (b * 7 + i) as u8), "datagram {i} changed");
            assert_eq!(from.port(), tx.local_addr().port());
        }
    }

    /// The in-process network hands the queued datagram over as it is, and the default
    /// `recv_packet` of a transport that only has `recv_from` returns exactly the datagram.
    #[tokio::test]
    async fn queued_and_default_recv_packet_return_the_datagram_exactly() {
        struct OnlyRecvFrom(MemoryTransport);
        impl Transport for OnlyRecvFrom {
            fn local_addr(&self) -> SocketAddr {
                self.0.local_addr()
            }
            fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
                self.0.send_to(buf, to)
            }
            fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
                self.0.recv_from(buf)
            }
            fn connect(&self, to: SocketAddr) -> BoxFuture<'static, io::Result<BoxConn>> {
                self.0.connect(to)
            }
            fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConn, SocketAddr)>> {
                self.0.accept()
            }
        }
        let net = MemoryNetwork::new();
        let (a, b) = (net.transport(), OnlyRecvFrom(net.transport()));
        a.send_to(b"first", b.local_addr()).unwrap();
        a.send_to(&[9u8; 2000], b.local_addr()).unwrap();
        b.send_to(b"back", a.local_addr()).unwrap();
        assert_eq!(b.recv_packet().await.unwrap(), (b"first".to_vec(), a.local_addr()));
        let (big, _) = b.recv_packet().await.unwrap();
        assert_eq!(big, vec![9u8; 2000]);
        assert_eq!(a.recv_packet().await.unwrap(), (b"back".to_vec(), b.local_addr()));
    }
}

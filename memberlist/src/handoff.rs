//! Receiving datagrams off the node task, and Go's hand-off queues.
//!
//! A reader task receives every datagram, runs the receive pipeline (label, decryption, CRC,
//! decompression, compound) and sorts the messages as Go's packet listener does: pings, indirect
//! pings, acks and nacks go to the node task at once; alive messages wait in a high-priority
//! queue and suspect, dead and user messages in a low-priority one. Each queue holds at most
//! `handoff_queue_depth` messages — when one is full the new message is dropped and counted —
//! and the node task takes the newest first, high queue first (Go #159: under overload the
//! freshest news about liveness wins).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use memberlist_proto::wire::{open_packet, DecodeError, Keyring, Message, OpenConfig, Payload};
use memberlist_proto::Config;
use tokio::sync::{mpsc, Notify};

use crate::transport::Transport;

/// What the reader hands to the node task at once.
pub(crate) enum Inline {
    /// A datagram arrived: its size, its urgent messages, and why parts of it were dropped.
    Packet { from: SocketAddr, bytes: usize, urgent: Vec<Message>, errors: Vec<DecodeError>, compressed: Option<u8> },
    /// Messages dropped because a queue was full.
    HandoffDrops(u64),
    /// A datagram from an address outside `cidrs_allowed`.
    NotAllowed { bytes: usize },
}

/// The two bounded queues.
#[derive(Default)]
pub(crate) struct Queues {
    high: VecDeque<(SocketAddr, Message)>,
    low: VecDeque<(SocketAddr, Message)>,
}

impl Queues {
    /// The next message to handle: the newest alive, else the newest other.
    /// Once both are empty, a queue grown by a burst gives its memory back, down to
    /// [`Queues::KEEP`] messages.
    pub(crate) fn pop(&mut self) -> Option<(SocketAddr, Message)> {
        let next = self.high.pop_back().or_else(|| self.low.pop_back());
        if next.is_none() {
            self.high.shrink_to(Self::KEEP);
            self.low.shrink_to(Self::KEEP);
        }
        next
    }

    /// Messages' room each queue keeps when empty (a message takes about 100 bytes).
    const KEEP: usize = 64;
}

/// The receive settings the reader needs; the keyring changes at run time.
pub(crate) struct Filter {
    pub cfg: Config,
    pub keyring: Arc<RwLock<Option<Keyring>>>,
}

/// Runs the reader until the transport fails or the node task goes away.
pub(crate) async fn read_loop(
    transport: Arc<dyn Transport>,
    filter: Filter,
    depth: usize,
    queues: Arc<Mutex<Queues>>,
    wake: Arc<Notify>,
    inline: mpsc::UnboundedSender<Inline>,
) {
    loop {
        let Ok((buf, from)) = transport.recv_packet().await else { return };
        let n = buf.len();
        if n == 0 {
            continue;
        }
        if !filter.cfg.ip_allowed(from.ip()) {
            if inline.send(Inline::NotAllowed { bytes: n }).is_err() {
                return;
            }
            continue;
        }
        let keyring = filter.keyring.read().map(|k| k.clone()).unwrap_or(None);
        let open = OpenConfig {
            label: &filter.cfg.label,
            skip_inbound_label_check: filter.cfg.skip_inbound_label_check,
            keyring: keyring.as_ref(),
            gossip_verify_incoming: filter.cfg.gossip_verify_incoming,
            limits: filter.cfg.limits,
        };
        let mut compressed = None;
        let (messages, mut errors) = match open_packet(&buf, &open) {
            Ok(p) => {
                if let Payload::Compressed(c) = &p.payload {
                    compressed = Some(c.compress.algo);
                }
                p.payload.into_messages()
            }
            Err(e) => (Vec::new(), vec![e]),
        };
        let mut urgent = Vec::new();
        let mut queued = false;
        let mut drops = 0;
        {
            let Ok(mut q) = queues.lock() else { return };
            for m in messages {
                match m {
                    Message::Ping(_) | Message::IndirectPing(_) | Message::Ack(_) | Message::Nack(_) => urgent.push(m),
                    Message::Alive(_) if q.high.len() < depth => {
                        q.high.push_back((from, m));
                        queued = true;
                    }
                    Message::Suspect(_) | Message::Dead(_) | Message::User(_) if q.low.len() < depth => {
                        q.low.push_back((from, m));
                        queued = true;
                    }
                    Message::Err(_) => {
                        errors.push(DecodeError::UnexpectedMessageType { found: 13, context: "in a packet" })
                    }
                    _ => drops += 1,
                }
            }
        }
        if inline.send(Inline::Packet { from, bytes: n, urgent, errors, compressed }).is_err() {
            return;
        }
        if drops > 0 && inline.send(Inline::HandoffDrops(drops)).is_err() {
            return;
        }
        if queued {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MemoryNetwork;
    use memberlist_proto::wire::{Alive, Ping, Suspect};
    use memberlist_proto::Vsn;

    fn alive(inc: u32) -> Vec<u8> {
        Message::Alive(Alive {
            incarnation: inc,
            node: "n".into(),
            addr: vec![127, 0, 0, 1],
            port: 1,
            meta: None,
            vsn: Vsn::new(2, 0, 0, 0),
        })
        .encode()
    }

    #[tokio::test]
    async fn queues_are_bounded_newest_first_alive_first() {
        let net = MemoryNetwork::new();
        let reader: Arc<dyn Transport> = Arc::new(net.transport());
        let sender = net.transport();
        let queues = Arc::new(Mutex::new(Queues::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let filter = Filter { cfg: Config::lan("r"), keyring: Arc::new(RwLock::new(None)) };
        let task = tokio::spawn(read_loop(reader.clone(), filter, 2, queues.clone(), Arc::new(Notify::new()), tx));
        let suspect = Message::Suspect(Suspect { incarnation: 1, node: "n".into(), from: "x".into() }).encode();
        for inc in 1..=5 {
            sender.send_to(&alive(inc), reader.local_addr()).unwrap();
        }
        sender.send_to(&suspect, reader.local_addr()).unwrap();
        sender.send_to(&Message::Ping(Ping::default()).encode(), reader.local_addr()).unwrap();
        let (mut packets, mut drops, mut urgent) = (0, 0, 0);
        while packets < 7 {
            match rx.recv().await.unwrap() {
                Inline::Packet { urgent: u, .. } => {
                    packets += 1;
                    urgent += u.len();
                }
                Inline::HandoffDrops(n) => drops += n,
                Inline::NotAllowed { .. } => unreachable!(),
            }
        }
        while let Ok(m) = rx.try_recv() {
            if let Inline::HandoffDrops(n) = m {
                drops += n;
            }
        }
        assert_eq!((urgent, drops), (1, 3), "the ping goes straight through; 3 alives did not fit");
        let mut q = queues.lock().unwrap();
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|(_, m)| match m {
                Message::Alive(a) => format!("alive{}", a.incarnation),
                Message::Suspect(_) => "suspect".into(),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(order, ["alive2", "alive1", "suspect"], "newest alive first, then the rest");
        task.abort();
    }

    /// A burst's room is given back once the queues are empty.
    #[test]
    fn emptied_queues_give_their_memory_back() {
        let mut q = Queues::default();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..1000 {
            q.high.push_back((from, Message::Ping(Ping::default())));
            q.low.push_back((from, Message::Ping(Ping::default())));
        }
        let mut popped = 0;
        while q.pop().is_some() {
            popped += 1;
            assert!(q.high.capacity() + q.low.capacity() >= 1000, "room is kept while messages wait");
        }
        assert_eq!(popped, 2000);
        assert!(q.high.capacity() <= Queues::KEEP && q.low.capacity() <= Queues::KEEP);
    }
}

//! The receive path of datagrams: layers opened, messages taken out one by one, and the
//! commonest message of all — gossip repeating an alive this node already knows — recognised
//! in place, without the allocations of a full decode (in a 1000-node bootstrap that is most of
//! the 16 million messages every node receives in all).

use std::net::SocketAddr;

use crate::endpoint::Endpoint;
use crate::state::members::ip_from_bytes;
use crate::time::Instant;
use crate::wire::{open_packet_parts, AliveRef, Message, OpenConfig};

impl Endpoint {
    /// A datagram arrived from `from` at `now`.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.stats.packets_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if !self.cfg.ip_allowed(from.ip()) {
            self.stats.dropped_not_allowed += 1;
            return;
        }
        let open = OpenConfig {
            label: &self.cfg.label,
            skip_inbound_label_check: self.cfg.skip_inbound_label_check,
            keyring: self.cfg.keyring.as_ref(),
            gossip_verify_incoming: self.cfg.gossip_verify_incoming,
            limits: self.cfg.limits,
        };
        let mut parts = std::mem::take(&mut self.rx_parts);
        if let Err(e) = open_packet_parts(bytes, &open, &mut parts) {
            self.stats.count_drop(&e);
            tracing::debug!(node = %self.cfg.name, %from, error = %e, "dropping packet");
            self.rx_parts = parts;
            return;
        }
        for e in &parts.errors {
            self.stats.count_drop(e);
        }
        // Gossip is mostly alives about members already known: fetch their entries together
        // first (see `Members::warm`); this changes nothing but what is in the cache.
        let alives: Vec<Option<AliveRef<'_>>> = parts.messages().map(AliveRef::from_message).collect();
        std::hint::black_box(self.members.warm(alives.iter().flatten().map(|a| a.node)));
        for (part, alive) in parts.messages().zip(&alives) {
            if alive.is_some_and(|a| self.known_alive(a, now)) {
                continue;
            }
            match Message::decode(part) {
                Ok(msg) => self.handle_message(from, msg, now),
                Err(e) => {
                    self.stats.count_drop(&e);
                    tracing::debug!(node = %self.cfg.name, %from, error = %e, "dropping message");
                }
            }
        }
        self.rx_parts = parts;
    }

    /// Whether `part` is an alive that [`handle_message`](Self::handle_message) would end in
    /// `alive_node`'s first check — another node, valid versions and address, known at that
    /// address and port with an incarnation at least as high — and so changes nothing but the
    /// counters, which are then kept as that path keeps them. Anything else goes the full way.
    fn known_alive(&mut self, a: AliveRef<'_>, now: Instant) -> bool {
        if a.node == self.cfg.name || a.port == 0 || self.cfg.protocol_version < 2 {
            return false;
        }
        if a.vsn.pmin == 0 || a.vsn.pmax == 0 || a.vsn.pmin > a.vsn.pmax || ip_from_bytes(a.addr).is_none() {
            return false;
        }
        if !self.drop_known_alive(a.node, a.incarnation, a.addr, a.port, now) {
            return false;
        }
        self.stats.messages_received += 1;
        self.realign_idle_gossip(now);
        true
    }
}

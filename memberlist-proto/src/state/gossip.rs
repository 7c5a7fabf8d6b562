//! Gossip rounds: every `gossip_interval`, up to `gossip_nodes` random nodes — alive, suspect,
//! or dead for less than `gossip_to_the_dead_time`, so that a node wrongly declared dead still
//! hears about it and can refute — each get a packet of queued broadcasts. Each node gets its
//! own selection from the queue, so a broadcast spreads to different nodes in one round.

use crate::node::NodeState;
use crate::time::Instant;
use crate::wire::compound::{encode_compounds, COMPOUND_OVERHEAD};
use crate::wire::crc_for_peer;
use crate::Endpoint;

impl Endpoint {
    /// One gossip round (Go's `gossip`).
    pub(crate) fn gossip(&mut self, now: Instant) {
        self.stats.gossip_rounds += 1;
        let me = self.cfg.name.clone();
        let to_the_dead = self.cfg.gossip_to_the_dead_time;
        let targets = self.members.k_random(self.cfg.gossip_nodes, &mut self.rng, |e| {
            *e.name == *me
                || match e.state {
                    NodeState::Alive | NodeState::Suspect => false,
                    NodeState::Dead => now - e.state_change > to_the_dead,
                    NodeState::Left => true,
                }
        });
        let budget = self.seal_config().packet_budget(self.cfg.udp_buffer_size);
        let num_nodes = self.members.len();
        let share = self.cfg.user_broadcast_share_percent;
        for node in targets {
            let msgs = self.collect_broadcasts(COMPOUND_OVERHEAD, budget, num_nodes, share);
            if msgs.is_empty() {
                return;
            }
            let crc = crc_for_peer(Some(node.vsn.pmax));
            let bodies = if let [only] = msgs.as_slice() {
                vec![only.to_vec()]
            } else {
                let refs: Vec<&[u8]> = msgs.iter().map(|m| &**m).collect();
                match encode_compounds(&refs) {
                    Ok(c) => c,
                    Err(_) => continue,
                }
            };
            for body in bodies {
                self.send_packet(node.socket_addr(), body, crc);
            }
        }
    }
}

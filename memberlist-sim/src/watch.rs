//! Invariants checked while a simulation runs (the fault search turns this on).
//!
//! For every observer and every member in its table, the watch follows what the observer's
//! events say about the member and the dead messages the observer receives about it:
//!
//! * **incarnations never go down**: while an observer keeps an entry, each event about it
//!   carries an incarnation at least as high as the one before (an entry that was dead long
//!   enough to be reaped from the table starts afresh);
//! * **no resurrection at an older incarnation**: once an observer holds a member dead, it
//!   accepts the member alive again only above every incarnation at which it was told the member
//!   is dead — the event that declared it, and any later dead message about it. A later dead
//!   message at a higher incarnation says the member reached that incarnation, so any alive at
//!   or below it is stale gossip.
//!
//! Dead messages are seen in the datagrams as delivered (push/pull states travel on streams and
//! are not looked at: the check is a lower bound on what the observer knew). The watch also
//! keeps every death with whose judgment it was: the sender of the dead message the observer
//! applied, or the observer itself when its own suspicion ran out (or when the claim came by
//! push/pull, which the watch does not see).

use std::collections::HashMap;

use memberlist_proto::wire::Message;
use memberlist_proto::wire::{open_packet_parts, MessageType, OpenConfig, PacketParts};
use memberlist_proto::{Event, Instant};

/// What one observer's events say about one member.
#[derive(Debug, Clone, Copy)]
struct View {
    /// Incarnation of the last event.
    incarnation: u32,
    /// The last event declared the member dead or left.
    dead: bool,
    /// While dead: the highest incarnation the observer was told it is dead at.
    dead_at: u32,
    /// While dead: since when.
    dead_since: Instant,
}

/// A death an observer declared or accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// When.
    pub at: Instant,
    /// Who holds the subject dead now.
    pub observer: usize,
    /// Its name.
    pub subject: String,
    /// Whose judgment it is: the sender of the dead message the observer applied, or the
    /// observer itself when its own suspicion ran out.
    pub judged_by: String,
}

/// The watch of one simulation.
#[derive(Debug, Default)]
pub struct Watch {
    /// Every death event, with whose judgment it was.
    pub deaths: Vec<Death>,
    /// Per observer, the dead messages of the datagram it processed last: subject → sender.
    claims: HashMap<usize, Vec<(String, String)>>,
    /// Dead entries are reaped once dead this long (`gossip_to_the_dead_time`): an entry dead
    /// for longer may have left the table, and what comes next is a new entry.
    pub reap_after: std::time::Duration,
    views: HashMap<(usize, String), View>,
    parts: PacketParts,
    /// What broke, in order: time (ns of virtual time) and a description.
    pub violations: Vec<(Instant, String)>,
}

impl Watch {
    /// A watch for nodes whose `gossip_to_the_dead_time` is `reap_after`.
    pub fn new(reap_after: std::time::Duration) -> Self {
        Watch { reap_after, ..Watch::default() }
    }

    /// `observer`'s timers ran: the deaths that follow are its own judgment.
    pub fn timers(&mut self, observer: usize) {
        self.claims.remove(&observer);
    }

    /// A datagram `bytes` that `observer` processed at `at`.
    pub fn packet(&mut self, observer: usize, bytes: &[u8]) {
        self.claims.remove(&observer);
        let mut parts = std::mem::take(&mut self.parts);
        if open_packet_parts(bytes, &OpenConfig::default(), &mut parts).is_ok() {
            for m in parts.messages() {
                let Some(&t) = m.first() else { continue };
                if t != MessageType::Dead as u8 {
                    continue;
                }
                if let Ok(Message::Dead(d)) = Message::decode(m) {
                    self.claims.entry(observer).or_default().push((d.node.clone(), d.from.clone()));
                    if let Some(v) = self.views.get_mut(&(observer, d.node.clone())) {
                        if v.dead {
                            v.dead_at = v.dead_at.max(d.incarnation);
                        }
                    }
                }
            }
        }
        self.parts = parts;
    }

    /// An event at `observer`.
    pub fn event(&mut self, at: Instant, observer: usize, e: &Event) {
        let (m, dead, joined) = match e {
            Event::NodeJoined(m) => (m, false, true),
            Event::NodeLeft(m) => (m, true, false),
            Event::NodeUpdated(m) | Event::NodeSuspected(m) => (m, false, false),
            _ => return,
        };
        if dead {
            let claim = self.claims.get(&observer).and_then(|c| c.iter().rev().find(|(s, _)| *s == m.name));
            let judged_by = claim.map_or_else(|| crate::sim::node_name(observer), |(_, from)| from.clone());
            self.deaths.push(Death { at, observer, subject: m.name.clone(), judged_by });
        }
        let key = (observer, m.name.clone());
        let reap_after = self.reap_after;
        let before = self.views.get(&key).copied().filter(|v| !(v.dead && at - v.dead_since >= reap_after));
        if let Some(v) = before {
            if m.incarnation < v.incarnation {
                self.violations.push((
                    at,
                    format!(
                        "incarnation went down: node-{observer} holds {} at {} after {}",
                        m.name, m.incarnation, v.incarnation
                    ),
                ));
            }
            if joined && v.dead && m.incarnation <= v.dead_at {
                self.violations.push((
                    at,
                    format!(
                        "resurrected at an older incarnation: node-{observer} took {} alive at {} after it was \
                         told the node is dead at {}",
                        m.name, m.incarnation, v.dead_at
                    ),
                ));
            }
        }
        // Suspected and updated members are alive.
        let was_dead = before.filter(|v| v.dead);
        let dead_at = if dead { m.incarnation.max(was_dead.map_or(0, |v| v.dead_at)) } else { 0 };
        let dead_since = was_dead.map_or(at, |v| v.dead_since);
        self.views.insert(key, View { incarnation: m.incarnation, dead, dead_at, dead_since });
    }

    /// Forgets everything `observer` knew (it restarted with an empty table).
    pub fn forget_observer(&mut self, observer: usize) {
        self.views.retain(|(o, _), _| *o != observer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memberlist_proto::wire::Dead;
    use memberlist_proto::{Member, NodeState, Vsn};
    use std::time::Duration;

    fn member(inc: u32, state: NodeState) -> Member {
        Member {
            name: "b".into(),
            addr: [10, 0, 0, 2].into(),
            port: 7946,
            meta: Vec::new(),
            state,
            incarnation: inc,
            vsn: Vsn::new(2, 0, 0, 0),
        }
    }

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    fn dead(inc: u32) -> Vec<u8> {
        Message::Dead(Dead { incarnation: inc, node: "b".into(), from: "c".into() }).encode()
    }

    #[test]
    fn a_stale_alive_after_a_higher_dead_is_a_resurrection() {
        let mut w = Watch::new(Duration::from_secs(30));
        w.event(at(1), 0, &Event::NodeJoined(member(1, NodeState::Alive)));
        w.event(at(2), 0, &Event::NodeLeft(member(1, NodeState::Dead)));
        w.packet(0, &dead(10));
        w.packet(1, &dead(20)); // another observer's mail
        w.event(at(3), 0, &Event::NodeJoined(member(2, NodeState::Alive)));
        assert_eq!(w.violations.len(), 1, "{:?}", w.violations);
        assert!(w.violations[0].1.contains("dead at 10"), "{:?}", w.violations);
        // Above every dead claim is a refutation, not a resurrection.
        w.event(at(4), 0, &Event::NodeLeft(member(2, NodeState::Dead)));
        w.event(at(5), 0, &Event::NodeJoined(member(3, NodeState::Alive)));
        assert_eq!(w.violations.len(), 1);
    }

    #[test]
    fn incarnations_may_not_go_down_unless_the_entry_could_have_been_reaped() {
        let mut w = Watch::new(Duration::from_secs(30));
        w.event(at(1), 0, &Event::NodeJoined(member(5, NodeState::Alive)));
        w.event(at(2), 0, &Event::NodeSuspected(member(4, NodeState::Suspect)));
        assert_eq!(w.violations.len(), 1, "{:?}", w.violations);
        assert!(w.violations[0].1.contains("went down"));
        // Dead for longer than the reap time: a new entry may start low.
        w.event(at(3), 0, &Event::NodeLeft(member(6, NodeState::Dead)));
        w.event(at(40), 0, &Event::NodeJoined(member(1, NodeState::Alive)));
        assert_eq!(w.violations.len(), 1, "{:?}", w.violations);
    }
}

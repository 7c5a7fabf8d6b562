//! The transmit-limited broadcast queue (Go's `TransmitLimitedQueue`).
//!
//! Every queued message is piggybacked on outgoing packets until it has been sent
//! `retransmit_mult · ⌈log10(n + 1)⌉` times, `n` being the number of known nodes. Messages sent
//! the fewest times go first; within the same count, the largest message that still fits the
//! remaining space, and among equals the newest. A message queued under a name replaces any
//! message already queued under that name (memberlist's own alive / suspect / dead messages are
//! named after the node they are about), so only the newest news about a node travels.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// Go's `retransmitLimit`: `mult · ⌈log10(n + 1)⌉`, which for n ≥ 1 is `mult` times the number
/// of decimal digits of n.
pub fn retransmit_limit(retransmit_mult: usize, n: usize) -> usize {
    let mut digits = 0;
    let mut rest = n;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    retransmit_mult * digits
}

/// An identifier to learn when a broadcast is finished (sent enough times, replaced or dropped).
pub type BroadcastId = u64;

/// Ordering key: fewest transmits first, then longest message, then newest.
type Key = (usize, Reverse<usize>, Reverse<u64>);

#[derive(Debug, Clone)]
struct Item {
    msg: Vec<u8>,
    name: Option<String>,
    notify: Option<BroadcastId>,
}

/// A queue of broadcasts, each sent a limited number of times.
#[derive(Debug, Clone)]
pub struct TransmitLimitedQueue {
    retransmit_mult: usize,
    items: BTreeMap<Key, Item>,
    by_name: HashMap<String, Key>,
    last_id: u64,
    finished: Vec<BroadcastId>,
}

impl TransmitLimitedQueue {
    /// An empty queue.
    pub fn new(retransmit_mult: usize) -> Self {
        TransmitLimitedQueue {
            retransmit_mult,
            items: BTreeMap::new(),
            by_name: HashMap::new(),
            last_id: 0,
            finished: Vec::new(),
        }
    }

    /// Queues `msg`. With a `name`, it replaces the message queued under that name (which counts
    /// as finished). `notify` is reported by [`take_finished`](Self::take_finished) once the
    /// message is done.
    pub fn queue(&mut self, msg: Vec<u8>, name: Option<String>, notify: Option<BroadcastId>) {
        self.last_id += 1;
        if let Some(old) = name.as_ref().and_then(|n| self.by_name.get(n).copied()) {
            self.remove(old);
        }
        let key = (0, Reverse(msg.len()), Reverse(self.last_id));
        if let Some(n) = &name {
            self.by_name.insert(n.clone(), key);
        }
        self.items.insert(key, Item { msg, name, notify });
    }

    fn remove(&mut self, key: Key) {
        if let Some(item) = self.items.remove(&key) {
            if let Some(n) = &item.name {
                self.by_name.remove(n);
            }
            self.finished.extend(item.notify);
        }
        if self.items.is_empty() {
            self.last_id = 0;
        }
    }

    /// Takes messages for one packet: each costs `overhead` bytes plus its length, and together
    /// they fit in `limit` bytes. `num_nodes` sets the transmit limit.
    pub fn get_broadcasts(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<Vec<u8>> {
        let transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes);
        let (Some(min_tr), Some(max_tr)) =
            (self.items.keys().next().map(|k| k.0), self.items.keys().last().map(|k| k.0))
        else {
            return Vec::new();
        };
        let mut used = 0usize;
        let mut out = Vec::new();
        let mut reinsert = Vec::new();
        let mut transmits = min_tr;
        while transmits <= max_tr {
            let Some(free) = limit.checked_sub(used + overhead).filter(|f| *f > 0) else {
                break;
            };
            // The first key at or after (transmits, len = free) is the largest message that fits.
            let start = (transmits, Reverse(free), Reverse(u64::MAX));
            let end = (transmits + 1, Reverse(usize::MAX), Reverse(u64::MAX));
            let Some(key) = self.items.range(start..end).next().map(|(k, _)| *k) else {
                transmits += 1;
                continue;
            };
            let Some(item) = self.items.remove(&key) else { break };
            used += overhead + item.msg.len();
            out.push(item.msg.clone());
            if key.0 + 1 >= transmit_limit {
                if let Some(n) = &item.name {
                    self.by_name.remove(n);
                }
                self.finished.extend(item.notify);
            } else {
                reinsert.push(((key.0 + 1, key.1, key.2), item));
            }
        }
        for (key, item) in reinsert {
            if let Some(slot) = item.name.as_ref().and_then(|n| self.by_name.get_mut(n)) {
                *slot = key;
            }
            self.items.insert(key, item);
        }
        if self.items.is_empty() {
            self.last_id = 0;
        }
        out
    }

    /// Whether anything is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Drops the most-transmitted messages until at most `max_retain` remain.
    pub fn prune(&mut self, max_retain: usize) {
        while self.items.len() > max_retain {
            let Some(key) = self.items.keys().last().copied() else { break };
            self.remove(key);
        }
    }

    /// Drops everything.
    pub fn reset(&mut self) {
        let keys: Vec<Key> = self.items.keys().copied().collect();
        for k in keys {
            self.remove(k);
        }
    }

    /// Broadcasts that finished since the last call.
    pub fn take_finished(&mut self) -> Vec<BroadcastId> {
        std::mem::take(&mut self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_retransmit_limits() {
        assert_eq!(retransmit_limit(3, 0), 0);
        assert_eq!(retransmit_limit(3, 1), 3);
        assert_eq!(retransmit_limit(3, 99), 6);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 10_000), 20);
    }

    #[test]
    fn byte_budget_like_go() {
        // Four 18-byte messages, limit 80: overhead 2 fits all four, overhead 3 three.
        for (overhead, want) in [(2, 4), (3, 3)] {
            let mut q = TransmitLimitedQueue::new(3);
            for i in 0..4 {
                q.queue(format!("test message {i:05}").into_bytes(), Some(format!("n{i}")), None);
            }
            assert_eq!(q.get_broadcasts(overhead, 80, 10).len(), want, "overhead {overhead}");
        }
    }

    #[test]
    fn transmit_limit_expires_messages_like_go() {
        // Go's TestTransmitLimited_GetBroadcasts_Limit: mult 1 and 10 nodes give a limit of 2
        // transmits; four 18-byte messages with overhead 3 in 80 bytes come out 3, 3, 2, 0.
        let mut q = TransmitLimitedQueue::new(1);
        for (i, name) in ["test", "foo", "bar", "baz"].into_iter().enumerate() {
            q.queue(format!("{}. this is a test.", i + 1).into_bytes(), Some(name.into()), Some(i as u64));
        }
        assert_eq!(q.get_broadcasts(3, 80, 10).len(), 3);
        assert_eq!(q.last_id, 4, "ids do not restart until the queue is empty");
        assert_eq!(q.get_broadcasts(3, 80, 10).len(), 3);
        assert_eq!(q.get_broadcasts(3, 80, 10).len(), 2);
        assert_eq!(q.last_id, 0, "ids restart once the queue is empty");
        assert_eq!(q.get_broadcasts(3, 80, 10).len(), 0);
        let mut done = q.take_finished();
        done.sort();
        assert_eq!(done, vec![0, 1, 2, 3]);
    }

    #[test]
    fn fewest_transmits_then_largest_then_newest() {
        let mut q = TransmitLimitedQueue::new(10);
        q.queue(vec![1; 10], None, None);
        q.queue(vec![2; 30], None, None);
        q.queue(vec![3; 10], None, None);
        // Room for one 30-byte message: the largest goes first.
        assert_eq!(q.get_broadcasts(0, 30, 100), vec![vec![2; 30]]);
        // Now the untransmitted 10-byte ones go first, newest first.
        assert_eq!(q.get_broadcasts(0, 10, 100), vec![vec![3; 10]]);
        assert_eq!(q.get_broadcasts(0, 10, 100), vec![vec![1; 10]]);
        assert_eq!(q.get_broadcasts(0, 30, 100), vec![vec![2; 30]]);
    }

    #[test]
    fn names_invalidate() {
        let mut q = TransmitLimitedQueue::new(3);
        q.queue(b"alive a 1".to_vec(), Some("a".into()), Some(1));
        q.queue(b"other".to_vec(), Some("b".into()), None);
        q.queue(b"alive a 2".to_vec(), Some("a".into()), Some(2));
        assert_eq!(q.len(), 2);
        assert_eq!(q.take_finished(), vec![1]);
        let got = q.get_broadcasts(0, 1000, 1);
        assert!(got.contains(&b"alive a 2".to_vec()) && !got.contains(&b"alive a 1".to_vec()));
        // Unnamed messages never replace each other.
        q.queue(b"x".to_vec(), None, None);
        q.queue(b"x".to_vec(), None, None);
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn prune_drops_most_transmitted_first() {
        let mut q = TransmitLimitedQueue::new(10);
        q.queue(vec![1; 5], None, Some(1));
        q.get_broadcasts(0, 100, 100);
        q.queue(vec![2; 5], None, Some(2));
        q.prune(1);
        assert_eq!(q.take_finished(), vec![1]);
        assert_eq!(q.get_broadcasts(0, 100, 100), vec![vec![2; 5]]);
        q.reset();
        assert!(q.is_empty());
        assert_eq!(q.take_finished(), vec![2]);
    }
}

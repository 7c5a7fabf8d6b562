//! The transmit-limited broadcast queue (Go's `TransmitLimitedQueue`).
//!
//! Every queued message is piggybacked on outgoing packets until it has been sent
//! `retransmit_mult · ⌈log10(n + 1)⌉` times, `n` being the number of known nodes. Messages sent
//! the fewest times go first; within the same count, the largest message that still fits the
//! remaining space, and among equals the newest. A message queued under a name replaces any
//! message already queued under that name (memberlist's own alive / suspect / dead messages are
//! named after the node they are about), so only the newest news about a node travels.
//!
//! Layout: the ordered index holds only (key → slot) pairs and the messages sit in a slab, so
//! taking a message for a packet moves 32 bytes in the index instead of the message. A short
//! message (every alive, suspect and dead without large metadata) is held in its slot itself
//! ([`QueuedMsg`]): taking it reads one place in memory, where a shared buffer cost a second
//! cache miss for its reference count — half of this queue's time in a 1000-node simulation.
//! Longer ones are shared (`Arc`) with the packets being built. Taking `k` messages from a queue
//! of `m` costs O((k + levels) · log m), `levels` ≤ the transmit limit.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::name_hash::{name_map, NameMap};

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

/// Ordering key: rank first — `2 · transmits`, plus one for an ordinary message, so that an
/// urgent message goes before ordinary ones sent as often and the order among ordinary messages
/// is Go's — then longest message, then newest.
type Key = (usize, Reverse<usize>, Reverse<u64>);

/// The number of transmits a rank stands for.
fn transmits_of(rank: usize) -> usize {
    rank / 2
}

/// A message's bytes as the queue holds and hands them out: in place up to
/// [`QueuedMsg::INLINE`] bytes, shared beyond. 88 bytes either way.
#[derive(Clone)]
pub enum QueuedMsg {
    /// Up to `INLINE` bytes: the length and the bytes.
    Inline(u8, [u8; QueuedMsg::INLINE]),
    /// Longer messages.
    Shared(Arc<[u8]>),
}

impl QueuedMsg {
    /// The longest message held in place: a memberlist alive without metadata is 56–60 bytes
    /// plus its node's name (IPv4), a suspect or dead 27–31 plus two names.
    pub const INLINE: usize = 86;

    /// The bytes, held in place when they fit.
    pub fn new(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= Self::INLINE => {
                let mut inline = [0u8; Self::INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                QueuedMsg::Inline(len, inline)
            }
            _ => QueuedMsg::Shared(bytes.into()),
        }
    }
}

impl From<Arc<[u8]>> for QueuedMsg {
    fn from(shared: Arc<[u8]>) -> Self {
        if shared.len() <= Self::INLINE {
            QueuedMsg::new(&shared)
        } else {
            QueuedMsg::Shared(shared)
        }
    }
}

impl From<Vec<u8>> for QueuedMsg {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= Self::INLINE {
            QueuedMsg::new(&bytes)
        } else {
            QueuedMsg::Shared(bytes.into())
        }
    }
}

impl std::ops::Deref for QueuedMsg {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            QueuedMsg::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            QueuedMsg::Shared(shared) => shared,
        }
    }
}

impl AsRef<[u8]> for QueuedMsg {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for QueuedMsg {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for QueuedMsg {}

impl std::fmt::Debug for QueuedMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QueuedMsg").field(&&**self).finish()
    }
}

#[derive(Debug, Clone)]
struct Item {
    /// Where the item sits in the order (kept here so that a send updates no name index).
    key: Key,
    msg: QueuedMsg,
    name: Option<Arc<str>>,
    notify: Option<BroadcastId>,
}

/// A queue of broadcasts, each sent a limited number of times.
#[derive(Debug, Clone)]
pub struct TransmitLimitedQueue {
    retransmit_mult: usize,
    /// Order of transmission → slot in `slots`.
    items: BTreeMap<Key, u32>,
    slots: Vec<Option<Item>>,
    free: Vec<u32>,
    /// Name → slot; slots do not move while their item is queued.
    by_name: NameMap<Arc<str>, u32>,
    last_id: u64,
    finished: Vec<BroadcastId>,
}

impl TransmitLimitedQueue {
    /// An empty queue.
    pub fn new(retransmit_mult: usize) -> Self {
        Self::with_hash_seed(retransmit_mult, 0)
    }

    /// An empty queue whose name index hashes with `seed` (see [`name_hash`](super::name_hash)).
    pub fn with_hash_seed(retransmit_mult: usize, seed: u64) -> Self {
        TransmitLimitedQueue {
            retransmit_mult,
            items: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_name: name_map(seed),
            last_id: 0,
            finished: Vec::new(),
        }
    }

    /// Queues `msg`. With a `name`, it replaces the message queued under that name (which counts
    /// as finished). `notify` is reported by [`take_finished`](Self::take_finished) once the
    /// message is done.
    pub fn queue(&mut self, msg: Vec<u8>, name: Option<String>, notify: Option<BroadcastId>) {
        self.queue_shared(msg, name.map(Arc::from), notify);
    }

    /// [`queue`](Self::queue) for a name already shared (and bytes shared or not).
    pub fn queue_shared(&mut self, msg: impl Into<QueuedMsg>, name: Option<Arc<str>>, notify: Option<BroadcastId>) {
        self.queue_ranked(msg.into(), name, notify, 1);
    }

    /// [`queue_shared`](Self::queue_shared) ahead of every ordinary message sent as often: for
    /// this node's refutations, which must outrun the suspicions they answer even when a join
    /// has just queued an alive for every member.
    pub fn queue_urgent(&mut self, msg: impl Into<QueuedMsg>, name: Option<Arc<str>>, notify: Option<BroadcastId>) {
        self.queue_ranked(msg.into(), name, notify, 0);
    }

    fn queue_ranked(&mut self, msg: QueuedMsg, name: Option<Arc<str>>, notify: Option<BroadcastId>, rank: usize) {
        self.last_id += 1;
        let old = name.as_ref().and_then(|n| self.by_name.get(&**n)).and_then(|&s| self.key_of(s));
        if let Some(old) = old {
            self.remove(old);
        }
        let key = (rank, Reverse(msg.len()), Reverse(self.last_id));
        let named = name.clone();
        let item = Some(Item { key, msg, name, notify });
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(cell) = self.slots.get_mut(s as usize) {
                    *cell = item;
                }
                s
            }
            None => {
                self.slots.push(item);
                (self.slots.len() - 1) as u32
            }
        };
        self.items.insert(key, slot);
        if let Some(n) = named {
            self.by_name.insert(n, slot);
        }
    }

    fn key_of(&self, slot: u32) -> Option<Key> {
        self.slots.get(slot as usize).and_then(Option::as_ref).map(|i| i.key)
    }

    fn take_slot(&mut self, slot: u32) -> Option<Item> {
        let item = self.slots.get_mut(slot as usize).and_then(Option::take);
        self.free.push(slot);
        item
    }

    fn remove(&mut self, key: Key) {
        if let Some(slot) = self.items.remove(&key) {
            if let Some(item) = self.take_slot(slot) {
                if let Some(n) = &item.name {
                    self.by_name.remove(&**n);
                }
                self.finished.extend(item.notify);
            }
        }
        self.after_change();
    }

    /// Ids restart once the queue is empty (as Go's); the slab and the name index give back
    /// the room a burst grew them to (a join queues an alive per member).
    fn after_change(&mut self) {
        if self.items.is_empty() {
            self.last_id = 0;
            self.slots.clear();
            self.free.clear();
            self.slots.shrink_to(Self::ROOM_KEPT);
            self.free.shrink_to(Self::ROOM_KEPT);
            self.by_name.shrink_to(Self::ROOM_KEPT);
        }
    }

    /// Messages' room an emptied queue keeps.
    const ROOM_KEPT: usize = 32;

    /// Takes messages for one packet: each costs `overhead` bytes plus its length, and together
    /// they fit in `limit` bytes. `num_nodes` sets the transmit limit.
    pub fn get_broadcasts(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<Vec<u8>> {
        self.get_broadcasts_shared(overhead, limit, num_nodes).iter().map(|m| m.to_vec()).collect()
    }

    /// [`get_broadcasts`](Self::get_broadcasts) without an allocation per message: short
    /// messages are copied out of their slots, longer ones stay shared with the queue.
    pub fn get_broadcasts_shared(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<QueuedMsg> {
        let transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes);
        let (Some(min_rank), Some(max_rank)) =
            (self.items.keys().next().map(|k| k.0), self.items.keys().next_back().map(|k| k.0))
        else {
            return Vec::new();
        };
        let mut used = 0usize;
        let mut out = Vec::new();
        let mut reinsert: Vec<(Key, u32)> = Vec::new();
        let mut rank = min_rank;
        while rank <= max_rank {
            let Some(free) = limit.checked_sub(used + overhead).filter(|f| *f > 0) else {
                break;
            };
            // When the queue's first message fits, it is the one: every message left in a lower
            // rank is larger than the room was then and is now, and in its own rank it is the
            // largest (then newest) — taken from the front with no search.
            let (key, slot) = match self.items.first_key_value() {
                Some((&key, _)) if (key.1).0 <= free => {
                    rank = key.0;
                    let Some((_, slot)) = self.items.pop_first() else { break };
                    (key, slot)
                }
                _ => {
                    // Otherwise the first key at or after (rank, len = free) is the largest
                    // message that fits.
                    let start = (rank, Reverse(free), Reverse(u64::MAX));
                    let end = (rank + 1, Reverse(usize::MAX), Reverse(u64::MAX));
                    let Some((&key, &slot)) = self.items.range(start..end).next() else {
                        rank += 1;
                        continue;
                    };
                    self.items.remove(&key);
                    (key, slot)
                }
            };
            let Some(item) = self.slots.get(slot as usize).and_then(Option::as_ref) else { break };
            used += overhead + item.msg.len();
            out.push(item.msg.clone());
            if transmits_of(key.0) + 1 >= transmit_limit {
                if let Some(item) = self.take_slot(slot) {
                    if let Some(n) = &item.name {
                        self.by_name.remove(&**n);
                    }
                    self.finished.extend(item.notify);
                }
            } else {
                reinsert.push(((key.0 + 2, key.1, key.2), slot));
            }
        }
        for (key, slot) in reinsert {
            if let Some(item) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
                item.key = key;
            }
            self.items.insert(key, slot);
        }
        self.after_change();
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
            let Some(key) = self.items.keys().next_back().copied() else { break };
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

    /// Short messages sit in their slot, longer ones stay shared; either way a message comes out
    /// of the queue byte for byte as it went in, whatever way it was handed over.
    #[test]
    fn messages_come_out_as_they_went_in_held_in_place_or_shared() {
        for len in [0, 1, 70, QueuedMsg::INLINE - 1, QueuedMsg::INLINE, QueuedMsg::INLINE + 1, 255, 256, 1300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for m in
                [QueuedMsg::new(&bytes), QueuedMsg::from(bytes.clone()), QueuedMsg::from(Arc::<[u8]>::from(&bytes[..]))]
            {
                assert_eq!(&*m, &bytes[..], "{len} bytes");
                assert_eq!(matches!(m, QueuedMsg::Inline(..)), len <= QueuedMsg::INLINE, "{len} bytes");
            }
            let mut q = TransmitLimitedQueue::new(1);
            q.queue(bytes.clone(), Some("n".into()), None);
            assert_eq!(q.get_broadcasts(2, 1400, 1), vec![bytes.clone()], "{len} bytes");
        }
        assert_eq!(std::mem::size_of::<QueuedMsg>(), 88);
    }

    /// A burst's room is given back once every message has been sent its share of times.
    #[test]
    fn an_emptied_queue_gives_its_room_back() {
        let mut q = TransmitLimitedQueue::new(1);
        for i in 0..1000 {
            q.queue(format!("alive {i:04}").into_bytes(), Some(format!("n{i}")), None);
        }
        assert!(q.slots.capacity() >= 1000 && q.by_name.capacity() >= 1000);
        let mut sent = 0;
        while !q.is_empty() {
            sent += q.get_broadcasts(2, 1400, 10).len();
        }
        assert_eq!(sent, 1000 * retransmit_limit(1, 10));
        assert!(q.slots.capacity() <= TransmitLimitedQueue::ROOM_KEPT);
        assert!(q.free.capacity() <= TransmitLimitedQueue::ROOM_KEPT);
        assert!(q.by_name.capacity() <= 2 * TransmitLimitedQueue::ROOM_KEPT);
        // And it still works.
        q.queue(b"again".to_vec(), Some("n1".into()), None);
        assert_eq!(q.get_broadcasts(2, 1400, 10), vec![b"again".to_vec()]);
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
    fn urgent_messages_go_ahead_of_ordinary_ones_sent_as_often() {
        let mut q = TransmitLimitedQueue::new(10);
        for i in 0..5u8 {
            q.queue(vec![i; 40], None, None);
        }
        q.queue_urgent(Arc::from(vec![9u8; 10]), None, None);
        // Room for two: the urgent one, though shorter and older than nothing, goes first.
        let first = q.get_broadcasts(2, 60, 10);
        assert_eq!(first.first().map(|m| m[0]), Some(9), "{first:?}");
        // Sent once, it waits for the ordinary messages not sent yet, then leads those sent once.
        let mut order = Vec::new();
        for _ in 0..4 {
            order.extend(q.get_broadcasts(2, 45, 10).into_iter().map(|m| m[0]));
        }
        assert_eq!(order, vec![3, 2, 1, 0], "the rest of the unsent ones, newest first");
        assert_eq!(q.get_broadcasts(2, 45, 10).first().map(|m| m[0]), Some(9));
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

    /// The queue picks exactly what a plain reading of Go's rule picks — ranks in order, in
    /// each the largest (then newest) message that still fits, until nothing fits — over
    /// random mixes of sizes, urgent messages, replacements and packet sizes.
    #[test]
    fn selection_matches_a_plain_model_of_gos_rule() {
        // The model: (rank, len, id, name, bytes) of every queued message.
        struct Model {
            items: Vec<(usize, usize, u64, String, Vec<u8>)>,
            last_id: u64,
        }
        let mut x: u64 = 0x9e37_79b9;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..40 {
            let mut q = TransmitLimitedQueue::new(2);
            let mut m = Model { items: Vec::new(), last_id: 0 };
            for step in 0..300 {
                if rnd(3) > 0 {
                    let len = 1 + rnd(if round % 2 == 0 { 90 } else { 8 }) as usize;
                    let name = format!("n{}", rnd(40));
                    let urgent = rnd(10) == 0;
                    // Two bytes of the step: every message is told apart from the others.
                    let mut msg = vec![(step % 251) as u8; len];
                    msg[0] = (step / 251) as u8;
                    if urgent {
                        q.queue_urgent(Arc::from(msg.clone()), Some(name.as_str().into()), None);
                    } else {
                        q.queue(msg.clone(), Some(name.clone()), None);
                    }
                    m.items.retain(|i| i.3 != name);
                    m.last_id += 1;
                    m.items.push((usize::from(!urgent), len, m.last_id, name, msg));
                } else if rnd(8) == 0 {
                    // Pruning drops the last in the order first.
                    let keep = rnd(30) as usize;
                    q.prune(keep);
                    while m.items.len() > keep {
                        let last = (0..m.items.len())
                            .max_by_key(|&k| (m.items[k].0, Reverse(m.items[k].1), Reverse(m.items[k].2)));
                        let Some(k) = last else { break };
                        m.items.remove(k);
                    }
                    if m.items.is_empty() {
                        m.last_id = 0;
                    }
                } else {
                    let (overhead, limit, nodes) = (1 + rnd(3) as usize, 20 + rnd(300) as usize, 1 + rnd(500) as usize);
                    let got = q.get_broadcasts(overhead, limit, nodes);
                    let transmit_limit = retransmit_limit(2, nodes);
                    let mut want = Vec::new();
                    let mut used = 0;
                    let max_rank = m.items.iter().map(|i| i.0).max().unwrap_or(0);
                    let mut taken: Vec<usize> = Vec::new();
                    for rank in 0..=max_rank {
                        loop {
                            let free = limit.saturating_sub(used + overhead);
                            let best = (0..m.items.len())
                                .filter(|&k| {
                                    !taken.contains(&k) && m.items[k].0 == rank && m.items[k].1 <= free && free > 0
                                })
                                .min_by_key(|&k| (Reverse(m.items[k].1), Reverse(m.items[k].2)));
                            let Some(k) = best else { break };
                            taken.push(k);
                            used += overhead + m.items[k].1;
                            want.push(m.items[k].4.clone());
                        }
                    }
                    let mut kept = Vec::new();
                    for (k, mut item) in m.items.drain(..).enumerate() {
                        if taken.contains(&k) {
                            if item.0 / 2 + 1 >= transmit_limit {
                                continue;
                            }
                            item.0 += 2;
                        }
                        kept.push(item);
                    }
                    m.items = kept;
                    if m.items.is_empty() {
                        m.last_id = 0;
                    }
                    assert_eq!(got, want, "round {round} step {step}");
                }
                assert_eq!(q.len(), m.items.len(), "round {round} step {step}");
            }
        }
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

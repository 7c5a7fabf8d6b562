//! Application broadcasts as Go models them: a [`Broadcast`] trait (Go's `Broadcast`,
//! `NamedBroadcast` and `UniqueBroadcast` in one) and a thread-safe [`BroadcastQueue`] (Go's
//! `TransmitLimitedQueue`) that a `&self` delegate can hold without a mutex of its own.
//!
//! Each queued broadcast is sent `retransmit_mult · ⌈log10(n + 1)⌉` times, `n` being the
//! number of members (see [`memberlist_proto::state::broadcast::retransmit_limit`]); the ones
//! sent fewest times go first and, within a tier, the largest that still fits, then the newest.
//! Queuing a broadcast with a name replaces the one queued under that name; queuing one that is
//! neither named nor unique removes every plain broadcast it
//! [`invalidates`](Broadcast::invalidates) (a scan, as in Go). Every broadcast hears
//! [`finished`](Broadcast::finished) exactly once: sent enough times, replaced, invalidated,
//! pruned or reset.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use memberlist_proto::state::broadcast::retransmit_limit;

/// One application broadcast.
pub trait Broadcast: Send + Sync + 'static {
    /// The bytes to gossip (must not change while queued).
    fn message(&self) -> &[u8];
    /// Whether this broadcast makes an older, queued one obsolete (Go's `Invalidates`); asked
    /// only of broadcasts that are neither named nor unique, about other plain ones.
    fn invalidates(&self, _older: &dyn Broadcast) -> bool {
        false
    }
    /// A name: a broadcast replaces the one queued under the same name, without a scan (Go's
    /// `NamedBroadcast`).
    fn name(&self) -> Option<&str> {
        None
    }
    /// Never invalidates nor is invalidated, so queuing it scans nothing (Go's
    /// `UniqueBroadcast`).
    fn is_unique(&self) -> bool {
        false
    }
    /// Called once when the broadcast will not be sent again (Go's `Finished`).
    fn finished(&self) {}
}

/// A ready-made broadcast: bytes, an optional name, and an optional channel that hears when
/// it is finished.
pub struct SimpleBroadcast {
    data: Vec<u8>,
    name: Option<String>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SimpleBroadcast {
    /// A plain broadcast.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        SimpleBroadcast { data: data.into(), name: None, done: Mutex::new(None) }
    }

    /// A broadcast that replaces whatever is queued under `name`.
    pub fn named(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        SimpleBroadcast { data: data.into(), name: Some(name.into()), done: Mutex::new(None) }
    }

    /// Adds a receiver that completes when the broadcast is finished.
    pub fn notify(self) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut d) = self.done.lock() {
            *d = Some(tx);
        }
        (self, rx)
    }
}

impl Broadcast for SimpleBroadcast {
    fn message(&self) -> &[u8] {
        &self.data
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn finished(&self) {
        if let Some(tx) = self.done.lock().ok().and_then(|mut d| d.take()) {
            let _ = tx.send(());
        }
    }
}

/// Ordering key: fewest transmits, then longest, then newest.
type Key = (usize, Reverse<usize>, Reverse<u64>);

struct Queued {
    broadcast: Box<dyn Broadcast>,
    name: Option<String>,
}

#[derive(Default)]
struct Inner {
    tree: BTreeMap<Key, Queued>,
    names: HashMap<String, Key>,
    next_id: u64,
}

impl Inner {
    fn remove(&mut self, key: &Key) -> Option<Queued> {
        let q = self.tree.remove(key)?;
        if let Some(n) = &q.name {
            self.names.remove(n);
        }
        Some(q)
    }

    fn insert(&mut self, key: Key, q: Queued) {
        if let Some(n) = &q.name {
            self.names.insert(n.clone(), key);
        }
        self.tree.insert(key, q);
    }
}

/// How the queue learns the cluster size.
type NumNodes = Box<dyn Fn() -> usize + Send + Sync>;

/// A thread-safe transmit-limited queue of [`Broadcast`]s (Go's `TransmitLimitedQueue`).
pub struct BroadcastQueue {
    retransmit_mult: usize,
    num_nodes: Mutex<NumNodes>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for BroadcastQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastQueue").field("queued", &self.num_queued()).finish()
    }
}

impl BroadcastQueue {
    /// A queue that sends each broadcast `retransmit_mult · ⌈log10(n + 1)⌉` times (Go's
    /// default multiplier is 4), `n` from `num_nodes`.
    pub fn new(retransmit_mult: usize, num_nodes: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        BroadcastQueue { retransmit_mult, num_nodes: Mutex::new(Box::new(num_nodes)), inner: Mutex::default() }
    }

    /// Counts members with `node` from now on, as Go's `NumNodes: m.NumMembers` does. The queue
    /// holds only a weak reference, so a delegate that owns the queue does not keep the node
    /// alive.
    pub fn count_members_of(&self, node: &crate::Memberlist) {
        let weak: Weak<crate::driver::Shared> = Arc::downgrade(node.shared());
        let count = move || weak.upgrade().map_or(1, |s| crate::driver::live_members(&s));
        if let Ok(mut n) = self.num_nodes.lock() {
            *n = Box::new(count);
        }
    }

    /// Queues a broadcast (Go's `QueueBroadcast`).
    pub fn queue(&self, b: impl Broadcast) {
        self.queue_boxed(Box::new(b));
    }

    /// Queues a boxed broadcast.
    pub fn queue_boxed(&self, b: Box<dyn Broadcast>) {
        let mut finished = Vec::new();
        if let Ok(mut q) = self.inner.lock() {
            q.next_id += 1;
            let key = (0, Reverse(b.message().len()), Reverse(q.next_id));
            let name = b.name().map(str::to_owned);
            if let Some(n) = &name {
                if let Some(old) = q.names.get(n).copied() {
                    finished.extend(q.remove(&old));
                }
            } else if !b.is_unique() {
                let stale: Vec<Key> = q
                    .tree
                    .iter()
                    .filter(|(_, cur)| cur.name.is_none() && !cur.broadcast.is_unique())
                    .filter(|(_, cur)| b.invalidates(cur.broadcast.as_ref()))
                    .map(|(k, _)| *k)
                    .collect();
                for k in stale {
                    finished.extend(q.remove(&k));
                }
            }
            q.insert(key, Queued { broadcast: b, name });
        }
        // Outside the lock, so `finished` may queue again.
        for f in finished {
            f.broadcast.finished();
        }
    }

    /// Broadcasts for one packet (Go's `GetBroadcasts`): each costs `overhead` plus its length,
    /// all within `limit`; fewest transmits first, the largest that fits within a tier.
    pub fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.num_nodes.lock().map(|f| f()).unwrap_or(1);
        let transmit_limit = retransmit_limit(self.retransmit_mult, n);
        let mut out = Vec::new();
        let mut finished = Vec::new();
        let Ok(mut q) = self.inner.lock() else { return out };
        let (Some(min), Some(max)) = (q.tree.keys().next().map(|k| k.0), q.tree.keys().next_back().map(|k| k.0)) else {
            return out;
        };
        let mut used = 0;
        let mut reinsert = Vec::new();
        let mut tier = min;
        while tier <= max {
            let free = limit.saturating_sub(used + overhead);
            if free == 0 {
                break;
            }
            // The first key of this tier whose message fits: the largest that fits, newest first.
            let found = q
                .tree
                .range((tier, Reverse(free), Reverse(u64::MAX))..(tier + 1, Reverse(usize::MAX), Reverse(u64::MAX)))
                .next()
                .map(|(k, _)| *k);
            let Some(key) = found else {
                tier += 1;
                continue;
            };
            let Some(item) = q.remove(&key) else { break };
            used += overhead + item.broadcast.message().len();
            out.push(item.broadcast.message().to_vec());
            if key.0 + 1 >= transmit_limit {
                finished.push(item);
            } else {
                reinsert.push(((key.0 + 1, key.1, key.2), item));
            }
        }
        for (k, item) in reinsert {
            q.insert(k, item);
        }
        drop(q);
        for f in finished {
            f.broadcast.finished();
        }
        out
    }

    /// How many broadcasts are queued (Go's `NumQueued`).
    pub fn num_queued(&self) -> usize {
        self.inner.lock().map(|q| q.tree.len()).unwrap_or(0)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.num_queued() == 0
    }

    /// Keeps the `max_retain` freshest broadcasts, finishing the rest (Go's `Prune`).
    pub fn prune(&self, max_retain: usize) {
        let mut finished = Vec::new();
        if let Ok(mut q) = self.inner.lock() {
            while q.tree.len() > max_retain {
                let Some(k) = q.tree.keys().next_back().copied() else { break };
                finished.extend(q.remove(&k));
            }
        }
        for f in finished {
            f.broadcast.finished();
        }
    }

    /// Finishes and drops everything queued (Go's `Reset`).
    pub fn reset(&self) {
        let old = self.inner.lock().map(|mut q| std::mem::take(&mut *q)).unwrap_or_default();
        for (_, f) in old.tree {
            f.broadcast.finished();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A plain broadcast about one key that invalidates older ones about the same key.
    struct Put {
        key: &'static str,
        msg: Vec<u8>,
        finished: Arc<AtomicUsize>,
    }

    impl Broadcast for Put {
        fn message(&self) -> &[u8] {
            &self.msg
        }
        fn invalidates(&self, older: &dyn Broadcast) -> bool {
            older.message().starts_with(self.key.as_bytes())
        }
        fn finished(&self) {
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn put(key: &'static str, value: &str, finished: &Arc<AtomicUsize>) -> Put {
        Put { key, msg: format!("{key}={value}").into_bytes(), finished: finished.clone() }
    }

    #[test]
    fn invalidated_broadcasts_are_finished_and_not_sent() {
        let f = Arc::new(AtomicUsize::new(0));
        let q = BroadcastQueue::new(4, || 1);
        q.queue(put("a", "1", &f));
        q.queue(put("b", "1", &f));
        q.queue(put("a", "2", &f));
        assert_eq!(f.load(Ordering::Relaxed), 1, "a=1 finished when a=2 was queued");
        assert_eq!(q.num_queued(), 2);
        let sent = q.get_broadcasts(2, 1400);
        assert_eq!(sent, [b"a=2".to_vec(), b"b=1".to_vec()], "same length: newest first");
    }

    #[test]
    fn names_replace_and_unique_ones_are_left_alone() {
        let q = BroadcastQueue::new(4, || 1);
        let (first, done) = SimpleBroadcast::named("k", "v1").notify();
        q.queue(first);
        q.queue(SimpleBroadcast::named("k", "v2"));
        q.queue(SimpleBroadcast::new("plain"));
        let mut done = done;
        assert!(done.try_recv().is_ok(), "the replaced broadcast heard finished");
        assert_eq!(q.num_queued(), 2);
    }

    #[test]
    fn each_broadcast_goes_out_the_transmit_limit_then_finishes() {
        // 9 members: ⌈log10(10)⌉ = 1, × 3 = 3 transmits.
        let q = BroadcastQueue::new(3, || 9);
        let (m, mut done) = SimpleBroadcast::new("hello").notify();
        q.queue(m);
        for round in 0..3 {
            assert_eq!(q.get_broadcasts(2, 100), [b"hello".to_vec()], "round {round}");
        }
        assert!(q.is_empty());
        assert!(done.try_recv().is_ok());
        assert!(q.get_broadcasts(2, 100).is_empty());
    }

    #[test]
    fn the_limit_is_respected_and_the_largest_that_fits_goes_first() {
        let q = BroadcastQueue::new(4, || 1);
        q.queue(SimpleBroadcast::new(vec![b'x'; 50]));
        q.queue(SimpleBroadcast::new(vec![b'y'; 30]));
        q.queue(SimpleBroadcast::new(vec![b'z'; 10]));
        let sent = q.get_broadcasts(5, 50);
        let lens: Vec<usize> = sent.iter().map(Vec::len).collect();
        assert_eq!(lens, [30, 10], "50 + 5 does not fit in 50; 30 + 5 then 10 + 5 do");
    }

    #[test]
    fn prune_keeps_the_freshest_and_reset_finishes_all() {
        let f = Arc::new(AtomicUsize::new(0));
        let q = BroadcastQueue::new(4, || 1);
        for k in ["a", "b", "c", "d"] {
            q.queue(put(k, "1", &f));
        }
        q.get_broadcasts(0, 3); // a=1 .. d=1 are 3 bytes: one goes out, moves to tier 1
        q.prune(2);
        assert_eq!((q.num_queued(), f.load(Ordering::Relaxed)), (2, 2));
        q.reset();
        assert_eq!((q.num_queued(), f.load(Ordering::Relaxed)), (0, 4));
    }
}

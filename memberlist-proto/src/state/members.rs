//! The members table: every node this node knows of, alive or not, in probe order.
//!
//! The order is the order of Go's `nodes` slice: new nodes are inserted at a random position
//! (swapped with the node there), the probe walks it front to back, and when it wraps around dead
//! and left nodes older than `GossipToTheDeadTime` are reaped and the rest is shuffled
//! (randomized round-robin). Lookups by name go through an index that is never iterated, so
//! nothing observable depends on hash order.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use rand_core::Rng;

use hashbrown::HashTable;

use super::name_hash::NameHasher;
use crate::node::{NodeState, Vsn};
use crate::time::Instant;

/// What this node knows about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Node name, shared with the tables and queues that mention it.
    pub name: Arc<str>,
    /// Address bytes as they travel (4 bytes, or 16 for IPv6 and for IPv4 written in 16-byte
    /// form by some Go nodes); kept as received so that they are gossiped on unchanged.
    pub addr: WireAddr,
    /// Port.
    pub port: u16,
    /// Metadata; `None` when it travelled as nil.
    pub meta: Option<Vec<u8>>,
    /// Protocol versions.
    pub vsn: Vsn,
    /// Last known incarnation.
    pub incarnation: u32,
    /// State.
    pub state: NodeState,
    /// When the state last changed.
    pub state_change: Instant,
}

/// Address bytes as received, held inline up to 16 bytes (every real IP address) so that a
/// table entry needs no allocation for them; anything longer (a peer may send any byte string)
/// is kept on the heap, unchanged.
#[derive(Clone, PartialEq, Eq)]
pub enum WireAddr {
    /// Up to 16 bytes: the length and the bytes.
    Inline(u8, [u8; 16]),
    /// Longer than 16 bytes.
    Heap(Box<[u8]>),
}

impl WireAddr {
    /// The bytes as a vector, as messages carry them.
    pub fn to_vec(&self) -> Vec<u8> {
        self.deref().to_vec()
    }
}

impl From<&[u8]> for WireAddr {
    fn from(bytes: &[u8]) -> Self {
        let mut inline = [0u8; 16];
        match inline.get_mut(..bytes.len()) {
            Some(head) => {
                head.copy_from_slice(bytes);
                WireAddr::Inline(bytes.len() as u8, inline)
            }
            None => WireAddr::Heap(bytes.into()),
        }
    }
}

impl From<Vec<u8>> for WireAddr {
    fn from(bytes: Vec<u8>) -> Self {
        WireAddr::from(bytes.as_slice())
    }
}

impl Deref for WireAddr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WireAddr::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            WireAddr::Heap(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for WireAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The IP address in `bytes` (4 or 16 bytes; IPv4-mapped IPv6 becomes IPv4).
pub fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| {
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }),
        _ => None,
    }
}

/// The wire form of an IP address: 4 bytes for IPv4, 16 for IPv6.
pub fn ip_to_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

impl NodeEntry {
    /// The node's IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        ip_from_bytes(&self.addr)
    }

    /// The node's socket address (unspecified IPv4 when its address is unusable).
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), self.port)
    }

    /// Dead or left.
    pub fn dead_or_left(&self) -> bool {
        matches!(self.state, NodeState::Dead | NodeState::Left)
    }
}

/// A uniformly random index below `n` as Go's `randomOffset` (`rand.Uint32() % n`); 0 for 0.
pub fn random_offset(rng: &mut impl Rng, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (rng.next_u32() as usize) % n
}

/// Fisher–Yates shuffle.
pub fn shuffle<T>(rng: &mut impl Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = random_offset(rng, i + 1);
        items.swap(i, j);
    }
}

/// The table.
#[derive(Debug, Clone)]
pub struct Members {
    nodes: Vec<NodeEntry>,
    /// Positions in `nodes`, found by the hash of the name there.
    index: HashTable<Slot>,
    hasher: NameHasher,
    /// With [`track_changes`](Members::track_changes) on, the names whose entries were added,
    /// handed out to change or reaped since the last [`take_changes`](Members::take_changes)
    /// (a name may repeat); `None` when off, as in the simulator, which never reads it.
    changed: Option<Vec<Arc<str>>>,
}

/// One entry of the name index: a position in the table and the head of the name there, so
/// that a lookup compares a short name without following the entry's pointer to its name —
/// memory a large table rarely has in cache (that miss cost a tenth of a 1000-node
/// simulation). 16 bytes per member plus hashbrown's control byte, where a map from the shared
/// name to the position took 24: in a simulation of 10 000 nodes there are 10⁸ members.
#[derive(Debug, Clone, Copy)]
struct Slot {
    pos: u32,
    /// The name's length, 255 for 255 and more.
    len: u8,
    head: [u8; Slot::HEAD],
}

impl Slot {
    const HEAD: usize = 11;

    fn new(pos: usize, name: &str) -> Self {
        let b = name.as_bytes();
        let mut head = [0u8; Slot::HEAD];
        let n = b.len().min(Slot::HEAD);
        head[..n].copy_from_slice(&b[..n]);
        Slot { pos: pos as u32, len: u8::try_from(b.len()).unwrap_or(u8::MAX), head }
    }

    /// Whether this slot holds `name` (`nodes` holds the full names of long ones).
    fn holds(&self, name: &str, nodes: &[NodeEntry]) -> bool {
        let b = name.as_bytes();
        let n = b.len().min(Slot::HEAD);
        if usize::from(self.len) != b.len().min(255) || self.head[..n] != b[..n] {
            return false;
        }
        b.len() <= Slot::HEAD || nodes.get(self.pos as usize).is_some_and(|e| *e.name == *name)
    }
}

impl Default for Members {
    fn default() -> Self {
        Members::with_hash_seed(0)
    }
}

impl Members {
    /// An empty table.
    pub fn new() -> Self {
        Members::default()
    }

    /// An empty table whose name index hashes with `seed` (see
    /// [`name_hash`](super::name_hash)).
    pub fn with_hash_seed(seed: u64) -> Self {
        Members { nodes: Vec::new(), index: HashTable::new(), hasher: NameHasher::with_seed(seed), changed: None }
    }

    /// From now on, remembers which names change, so that a copy of the table kept elsewhere
    /// (a driver's view for its handles) can follow it at the cost of the changes alone rather
    /// than of a full copy per change.
    pub fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// The names added, changed or reaped since the last call, in order, with repeats; empty
    /// unless [`track_changes`](Self::track_changes) is on. A name may be listed although
    /// nothing about it changed (it was handed out to change): the reader looks each one up.
    pub fn take_changes(&mut self) -> Vec<Arc<str>> {
        self.changed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note_change(changed: &mut Option<Vec<Arc<str>>>, name: &Arc<str>) {
        if let Some(c) = changed {
            c.push(name.clone());
        }
    }

    fn hash(hasher: &NameHasher, name: &str) -> u64 {
        hasher.hash_one(name.as_bytes())
    }

    fn position(&self, name: &str) -> Option<usize> {
        let nodes = &self.nodes;
        let hash = Self::hash(&self.hasher, name);
        self.index.find(hash, |slot| slot.holds(name, nodes)).map(|slot| slot.pos as usize)
    }

    /// Indexes the entry at `position` (its name must not be in the index yet).
    fn index_insert(&mut self, position: usize) {
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        let Some(e) = nodes.get(position) else { return };
        let rehash = |slot: &Slot| nodes.get(slot.pos as usize).map_or(0, |e| Self::hash(hasher, &e.name));
        self.index.insert_unique(Self::hash(hasher, &e.name), Slot::new(position, &e.name), rehash);
    }

    /// Number of entries of every state (Go's `estNumNodes`).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All entries in probe order.
    pub fn iter(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.iter()
    }

    /// The entry at probe position `i`.
    pub fn at(&self, i: usize) -> Option<&NodeEntry> {
        self.nodes.get(i)
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&NodeEntry> {
        self.position(name).and_then(|i| self.nodes.get(i))
    }

    /// Looks up every name of `names` and reads its incarnation, only to bring the index slots
    /// and entries into the cache: lookups that do not depend on each other let the processor
    /// wait for their memory at the same time, where handling a packet's messages one by one
    /// waits for each message's two cache misses in turn (in a large simulation, most of the
    /// time spent on a known alive). Returns the incarnations folded together, for the caller
    /// to pass to [`std::hint::black_box`] so that the reads are not optimized away.
    pub fn warm<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u32 {
        names.into_iter().filter_map(|n| self.get(n)).fold(0, |acc, e| acc ^ e.incarnation)
    }

    /// The entry for `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut NodeEntry> {
        let e = self.position(name).and_then(|i| self.nodes.get_mut(i))?;
        Self::note_change(&mut self.changed, &e.name);
        Some(e)
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.nodes.reserve_exact(additional);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index.reserve(additional, |slot| nodes.get(slot.pos as usize).map_or(0, |e| Self::hash(hasher, &e.name)));
    }

    /// Adds a node at a random position: appended, then swapped with the node at a random index
    /// in `[0, n)` (Go's insertion, which keeps the failure-detection bound low on average). The
    /// caller makes sure the name is not in the table yet.
    pub fn insert(&mut self, entry: NodeEntry, rng: &mut impl Rng) {
        Self::note_change(&mut self.changed, &entry.name);
        let n = self.nodes.len();
        let offset = random_offset(rng, n);
        self.nodes.push(entry);
        if offset == n {
            self.index_insert(n);
            return;
        }
        // The entry at `offset` moves to the end and the new one takes its place.
        let moved = self.nodes.get(offset).map_or(0, |e| Self::hash(&self.hasher, &e.name));
        if let Ok(slot) = self.index.find_entry(moved, |slot| slot.pos as usize == offset) {
            slot.remove();
        }
        self.nodes.swap(offset, n);
        self.index_insert(offset);
        self.index_insert(n);
    }

    /// Adds every entry of `entries` whose name is not in the table yet, then shuffles the
    /// whole table: a bulk start, not Go's one-by-one random insertion.
    pub fn extend_shuffled(&mut self, entries: impl IntoIterator<Item = NodeEntry>, rng: &mut impl Rng) {
        for e in entries {
            if self.position(&e.name).is_none() {
                Self::note_change(&mut self.changed, &e.name);
                self.nodes.push(e);
                self.index_insert(self.nodes.len() - 1);
            }
        }
        shuffle(rng, &mut self.nodes);
        self.reindex();
    }

    /// Reaps dead and left nodes whose state changed more than `gossip_to_the_dead` ago and
    /// shuffles the rest (Go's `resetNodes`). Returns the reaped entries.
    pub fn reap_and_shuffle(
        &mut self,
        now: Instant,
        gossip_to_the_dead: Duration,
        rng: &mut impl Rng,
    ) -> Vec<NodeEntry> {
        let (keep, reaped): (Vec<NodeEntry>, Vec<NodeEntry>) = std::mem::take(&mut self.nodes)
            .into_iter()
            .partition(|n| !(n.dead_or_left() && now - n.state_change > gossip_to_the_dead));
        self.nodes = keep;
        for r in &reaped {
            Self::note_change(&mut self.changed, &r.name);
        }
        shuffle(rng, &mut self.nodes);
        self.reindex();
        reaped
    }

    fn reindex(&mut self) {
        self.index.clear();
        for i in 0..self.nodes.len() {
            self.index_insert(i);
        }
    }

    /// Up to `k` distinct random nodes for which `exclude` is false (Go's `kRandomNodes`): in a
    /// small table (fewer than 3k entries) an exhaustive walk of a shuffled copy, otherwise up to
    /// 3n random picks.
    pub fn k_random(&self, k: usize, rng: &mut impl Rng, exclude: impl Fn(&NodeEntry) -> bool) -> Vec<NodeEntry> {
        let n = self.nodes.len();
        let mut out: Vec<NodeEntry> = Vec::with_capacity(k);
        if n < k * 3 {
            let mut order: Vec<usize> = (0..n).collect();
            shuffle(rng, &mut order);
            for i in order {
                if out.len() >= k {
                    break;
                }
                if let Some(e) = self.nodes.get(i).filter(|e| !exclude(e)) {
                    out.push(e.clone());
                }
            }
            return out;
        }
        for _ in 0..3 * n {
            if out.len() >= k {
                break;
            }
            let Some(e) = self.nodes.get(random_offset(rng, n)) else { continue };
            if exclude(e) || out.iter().any(|o| o.name == e.name) {
                continue;
            }
            out.push(e.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn entry(name: &str, state: NodeState, changed: u64) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            addr: WireAddr::from(&[127u8, 0, 0, 1][..]),
            port: 7946,
            meta: None,
            vsn: Vsn::new(2, 0, 0, 0),
            incarnation: 1,
            state,
            state_change: Instant::from_nanos(changed * 1_000_000_000),
        }
    }

    #[test]
    fn warming_reads_the_known_names_and_skips_the_rest() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut m = Members::new();
        for (i, inc) in [(0, 0b0011), (1, 0b0101), (2, 0b1000)] {
            m.insert(NodeEntry { incarnation: inc, ..entry(&format!("node-{i}"), NodeState::Alive, 0) }, &mut rng);
        }
        assert_eq!(m.warm(["node-0", "node-1", "nobody", "node-2"]), 0b1110);
        assert_eq!(m.warm(["nobody"]), 0);
        assert_eq!(m.len(), 3, "nothing added");
    }

    #[test]
    fn the_index_follows_every_swap_of_a_large_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut m = Members::with_hash_seed(99);
        for i in 0..500 {
            m.insert(entry(&format!("node-{i}"), NodeState::Alive, 0), &mut rng);
            if i % 97 == 0 {
                for e in m.iter() {
                    assert_eq!(m.get(&e.name).map(|f| &f.name), Some(&e.name));
                }
            }
        }
        // A bulk start skips names already present and keeps every name findable.
        let more = (400..900).map(|i| entry(&format!("node-{i}"), NodeState::Suspect, 1));
        m.extend_shuffled(more, &mut rng);
        assert_eq!(m.len(), 900);
        assert_eq!(m.get("node-450").map(|e| e.state), Some(NodeState::Alive), "not replaced");
        assert_eq!(m.get("node-850").map(|e| e.state), Some(NodeState::Suspect));
        for (i, e) in m.iter().enumerate() {
            assert_eq!(m.at(i), Some(e));
            assert_eq!(m.get(&e.name), Some(e));
        }
        assert!(m.get("node-900").is_none() && m.get("").is_none());
        // Names longer than the index's inline head, alike in their first bytes.
        let long = |i: usize| format!("ingester-zone-a-{i}.example.internal");
        for i in 0..50 {
            m.insert(entry(&long(i), NodeState::Alive, 2), &mut rng);
        }
        for i in 0..50 {
            assert_eq!(*m.get(&long(i)).unwrap().name, long(i));
        }
        assert!(m.get(&long(50)).is_none() && m.get("ingester-zone-a-").is_none());
        m.get_mut("node-7").unwrap().incarnation = 42;
        assert_eq!(m.get("node-7").unwrap().incarnation, 42);
    }

    #[test]
    fn insert_lookup_and_reap() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut m = Members::new();
        for (i, state) in [NodeState::Alive, NodeState::Dead, NodeState::Left, NodeState::Dead, NodeState::Suspect]
            .into_iter()
            .enumerate()
        {
            m.insert(entry(&format!("n{i}"), state, i as u64 * 10), &mut rng);
        }
        for i in 0..5 {
            assert_eq!(*m.get(&format!("n{i}")).unwrap().name, format!("n{i}"));
        }
        // At t = 55 s with a 30 s window: n1 (dead at 10 s) and n2 (left at 20 s) go; n3 (dead at
        // 30 s, 25 s ago) stays.
        let reaped = m.reap_and_shuffle(Instant::from_nanos(55_000_000_000), Duration::from_secs(30), &mut rng);
        let mut names: Vec<_> = reaped.iter().map(|e| &*e.name).collect();
        names.sort();
        assert_eq!(names, ["n1", "n2"]);
        assert_eq!(m.len(), 3);
        assert!(m.get("n1").is_none() && m.get("n3").is_some());
        for e in m.iter() {
            assert_eq!(m.get(&e.name), Some(e));
        }
    }

    #[test]
    fn wire_addresses_are_kept_byte_for_byte() {
        for bytes in [vec![], vec![127, 0, 0, 1], vec![0xfe; 16], (0..17).collect::<Vec<u8>>(), vec![9; 300]] {
            let a = WireAddr::from(bytes.as_slice());
            assert_eq!(&*a, bytes.as_slice());
            assert_eq!(a.to_vec(), bytes);
            assert_eq!(matches!(a, WireAddr::Inline(..)), bytes.len() <= 16);
        }
        assert_eq!(ip_from_bytes(&WireAddr::from(&[10u8, 0, 0, 7][..])), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
        assert_eq!(ip_from_bytes(&WireAddr::from(&[1u8, 2, 3, 4, 5][..])), None);
    }

    #[test]
    fn k_random_is_exhaustive_in_small_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut m = Members::new();
        m.insert(entry("self", NodeState::Alive, 0), &mut rng);
        m.insert(entry("target", NodeState::Alive, 0), &mut rng);
        m.insert(entry("peer", NodeState::Alive, 0), &mut rng);
        // Go #350: with 3 nodes the single eligible peer must always be found.
        for _ in 0..1000 {
            let got = m.k_random(3, &mut rng, |e| &*e.name == "self" || &*e.name == "target");
            assert_eq!(got.len(), 1);
            assert_eq!(&*got[0].name, "peer");
        }
        let mut big = Members::new();
        for i in 0..100 {
            big.insert(entry(&format!("n{i}"), NodeState::Alive, 0), &mut rng);
        }
        let got = big.k_random(3, &mut rng, |_| false);
        assert_eq!(got.len(), 3);
        assert!(got[0].name != got[1].name && got[1].name != got[2].name && got[0].name != got[2].name);
    }

    #[test]
    fn addresses() {
        assert_eq!(ip_from_bytes(&[10, 0, 0, 1]), Some("10.0.0.1".parse().unwrap()));
        let mapped = "::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(ip_from_bytes(&mapped), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
        assert_eq!(ip_to_bytes("::1".parse().unwrap()).len(), 16);
    }
}

//! The hash of the tables' name indexes (members, broadcast queue).
//!
//! foldhash instead of std's SipHash: node names are short, and a lookup by name is on the path
//! of every message received, where SipHash cost 4 % of a 500-node simulation. The hasher is
//! keyed per endpoint from the endpoint's seed, so a peer that does not know the seed cannot
//! pick names that collide (the driver seeds endpoints from the OS), and a simulation stays a
//! function of its seed. Nothing iterates these maps: they are indexes only, so no observable
//! order depends on the hash.

use std::collections::HashMap;

/// The hasher builder of every name index.
pub type NameHasher = foldhash::fast::FixedState;

/// A map keyed by node name (or anything hashed the same way).
pub type NameMap<K, V> = HashMap<K, V, NameHasher>;

/// An empty [`NameMap`] keyed with `seed`.
pub fn name_map<K, V>(seed: u64) -> NameMap<K, V> {
    HashMap::with_hasher(NameHasher::with_seed(seed))
}

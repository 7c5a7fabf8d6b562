//! The copy of the members table that handles read without asking the node task.
//!
//! The node task keeps it equal to the core's table by applying
//! [`Endpoint::take_member_changes`](memberlist_proto::Endpoint::take_member_changes) after
//! every step: the cost is that of the members that changed, not of the table. (Copying the
//! whole table after every event made a node's cost grow with the cluster's size: a
//! 1000-node process spent most of its time copying tables, one per probe and per join.)
//! Members are listed in the order they were first seen; a reaped member's place is taken by
//! the last one.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use memberlist_proto::{Member, NodeState, Vsn};

/// How many members a view holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Alive members (this node included).
    pub alive: usize,
    /// Suspect members.
    pub suspect: usize,
    /// Members that failed and are not reaped yet.
    pub dead: usize,
    /// Members that left and are not reaped yet.
    pub left: usize,
}

impl StateCounts {
    /// Alive or suspect: Go's `NumMembers`.
    pub fn live(&self) -> usize {
        self.alive + self.suspect
    }

    /// Every member of any state.
    pub fn total(&self) -> usize {
        self.alive + self.suspect + self.dead + self.left
    }

    fn slot(&mut self, state: NodeState) -> &mut usize {
        match state {
            NodeState::Alive => &mut self.alive,
            NodeState::Suspect => &mut self.suspect,
            NodeState::Dead => &mut self.dead,
            NodeState::Left => &mut self.left,
        }
    }
}

/// A member as the view holds it: the name is the core's own (shared, not copied) and the
/// metadata a boxed slice, 64 bytes in all where a [`Member`] and its index entry took
/// 150. At 1000 members per node and 1000 nodes in a process, that is 86 MB.
#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    meta: Box<[u8]>,
    addr: IpAddr,
    port: u16,
    vsn: Vsn,
    incarnation: u32,
    state: NodeState,
}

impl Entry {
    fn new(name: Arc<str>, m: Member) -> Entry {
        let Member { name: _, addr, port, meta, state, incarnation, vsn } = m;
        Entry { name, meta: meta.into_boxed_slice(), addr, port, vsn, incarnation, state }
    }

    fn member(&self) -> Member {
        Member {
            name: self.name.to_string(),
            addr: self.addr,
            port: self.port,
            meta: self.meta.to_vec(),
            state: self.state,
            incarnation: self.incarnation,
            vsn: self.vsn,
        }
    }
}

/// The members, a name index into them and the count per state.
#[derive(Debug, Default)]
pub(crate) struct MemberView {
    list: Vec<Entry>,
    /// Positions in `list`, found by the hash of the name there (names come from peers:
    /// the hasher is std's keyed one).
    index: HashTable<u32>,
    hasher: RandomState,
    counts: StateCounts,
}

impl MemberView {
    /// A view of `members` (the table as it is when change tracking starts).
    pub(crate) fn new(members: Vec<Member>) -> MemberView {
        let mut view = MemberView::default();
        for m in members {
            view.apply(Arc::from(m.name.as_str()), Some(m));
        }
        view
    }

    fn position(&self, name: &str) -> Option<usize> {
        let list = &self.list;
        let found =
            self.index.find(self.hasher.hash_one(name), |&i| list.get(i as usize).is_some_and(|e| *e.name == *name));
        found.map(|&i| i as usize)
    }

    /// Puts the member `name` as it now is (`None`: it is gone).
    pub(crate) fn apply(&mut self, name: Arc<str>, now: Option<Member>) {
        match (self.position(&name), now) {
            (Some(i), Some(m)) => {
                let Some(slot) = self.list.get_mut(i) else { return };
                *self.counts.slot(slot.state) -= 1;
                *self.counts.slot(m.state) += 1;
                *slot = Entry::new(name, m);
            }
            (None, Some(m)) => {
                *self.counts.slot(m.state) += 1;
                let (hasher, list) = (&self.hasher, &self.list);
                let hash = hasher.hash_one(&*name);
                self.index.insert_unique(hash, list.len() as u32, |&i| {
                    list.get(i as usize).map_or(0, |e| hasher.hash_one(&*e.name))
                });
                self.list.push(Entry::new(name, m));
            }
            (Some(i), None) => {
                if let Ok(slot) = self.index.find_entry(self.hasher.hash_one(&*name), |&p| p as usize == i) {
                    slot.remove();
                }
                let gone = self.list.swap_remove(i);
                *self.counts.slot(gone.state) -= 1;
                // The last entry moved into place `i`: its index slot follows it.
                if let Some(moved) = self.list.get(i) {
                    let last = self.list.len();
                    if let Some(p) = self.index.find_mut(self.hasher.hash_one(&*moved.name), |&p| p as usize == last) {
                        *p = i as u32;
                    }
                }
            }
            (None, None) => {}
        }
    }

    /// Every member, in the order they were first seen (with reaped places refilled).
    pub(crate) fn members(&self) -> Vec<Member> {
        self.list.iter().map(Entry::member).collect()
    }

    /// The members in a live state (alive or suspect).
    pub(crate) fn live_members(&self) -> Vec<Member> {
        let live = |e: &&Entry| matches!(e.state, NodeState::Alive | NodeState::Suspect);
        self.list.iter().filter(live).map(Entry::member).collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Member> {
        self.position(name).and_then(|i| self.list.get(i)).map(Entry::member)
    }

    pub(crate) fn counts(&self) -> StateCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn member(name: &str, state: NodeState, incarnation: u32) -> Member {
        Member {
            name: name.into(),
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 7946,
            meta: Vec::new(),
            state,
            incarnation,
            vsn: memberlist_proto::Vsn::new(2, 0, 0, 0),
        }
    }

    fn check(view: &MemberView) {
        let mut counts = StateCounts::default();
        for (i, m) in view.members().iter().enumerate() {
            *counts.slot(m.state) += 1;
            assert_eq!(view.position(&m.name), Some(i), "{} indexed at its place", m.name);
            assert_eq!(view.get(&m.name).as_ref(), Some(m));
        }
        assert_eq!(view.index.len(), view.list.len());
        assert_eq!(view.counts(), counts);
    }

    #[test]
    fn changes_and_removals_keep_the_index_and_the_counts_right() {
        let mut v = MemberView::new(vec![member("a", NodeState::Alive, 1), member("b", NodeState::Alive, 1)]);
        v.apply("c".into(), Some(member("c", NodeState::Suspect, 3)));
        check(&v);
        v.apply("b".into(), Some(member("b", NodeState::Dead, 1)));
        assert_eq!(v.counts(), StateCounts { alive: 1, suspect: 1, dead: 1, left: 0 });
        check(&v);
        // Removing the first moves the last into its place.
        v.apply("a".into(), None);
        check(&v);
        assert_eq!(v.members().iter().map(|m| m.name.clone()).collect::<Vec<_>>(), ["c", "b"]);
        v.apply("c".into(), None);
        v.apply("c".into(), None);
        v.apply("zz".into(), None);
        check(&v);
        assert_eq!(v.get("b").map(|m| m.state), Some(NodeState::Dead));
        assert_eq!(v.counts().total(), 1);
    }
}

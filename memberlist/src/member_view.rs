//! The copy of the members table that handles read without asking the node task.
//!
//! The node task keeps it equal to the core's table by applying
//! [`Endpoint::take_member_changes`](memberlist_proto::Endpoint::take_member_changes) after
//! every step: the cost is that of the members that changed, not of the table. (Copying the
//! whole table after every event made a node's cost grow with the cluster's size: a
//! 1000-node process spent most of its time copying tables, one per probe and per join.)
//! Members are listed in the order they were first seen; a reaped member's place is taken by
//! the last one.

use std::collections::HashMap;
use std::sync::Arc;

use memberlist_proto::{Member, NodeState};

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

/// The members, a name index into them and the count per state.
#[derive(Debug, Default)]
pub(crate) struct MemberView {
    list: Vec<Member>,
    index: HashMap<Arc<str>, usize>,
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

    /// Puts the member `name` as it now is (`None`: it is gone).
    pub(crate) fn apply(&mut self, name: Arc<str>, now: Option<Member>) {
        match (self.index.get(&name).copied(), now) {
            (Some(i), Some(m)) => {
                let Some(slot) = self.list.get_mut(i) else { return };
                *self.counts.slot(slot.state) -= 1;
                *self.counts.slot(m.state) += 1;
                *slot = m;
            }
            (None, Some(m)) => {
                *self.counts.slot(m.state) += 1;
                self.index.insert(name, self.list.len());
                self.list.push(m);
            }
            (Some(i), None) => {
                self.index.remove(&name);
                let gone = self.list.swap_remove(i);
                *self.counts.slot(gone.state) -= 1;
                if let Some(moved) = self.list.get(i) {
                    if let Some(pos) = self.index.get_mut(moved.name.as_str()) {
                        *pos = i;
                    }
                }
            }
            (None, None) => {}
        }
    }

    pub(crate) fn list(&self) -> &[Member] {
        &self.list
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        self.index.get(name).and_then(|&i| self.list.get(i))
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
        for (i, m) in view.list().iter().enumerate() {
            *counts.slot(m.state) += 1;
            assert_eq!(view.index.get(m.name.as_str()), Some(&i), "{} indexed at its place", m.name);
        }
        assert_eq!(view.index.len(), view.list().len());
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
        assert_eq!(v.list().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        v.apply("c".into(), None);
        v.apply("c".into(), None);
        v.apply("zz".into(), None);
        check(&v);
        assert_eq!(v.get("b").map(|m| m.state), Some(NodeState::Dead));
        assert_eq!(v.counts().total(), 1);
    }
}

//! The application's push/pull state run by the driver (`Hooks::defers_state`): the core hands
//! out `WriteState` / `MergeState` and never calls `local_state` / `merge_remote_state`; the
//! bytes on the wire are the ones the core would have written itself.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memberlist_proto::{Config, Endpoint, Event, Hooks, Instant, StreamAction};
use support::{name, Net};

/// Defers its state; counts any call the core should not make.
#[derive(Clone, Default)]
struct Deferring {
    wrong_calls: Arc<AtomicUsize>,
}

impl Hooks for Deferring {
    fn defers_state(&self) -> bool {
        true
    }
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        self.wrong_calls.fetch_add(1, Ordering::Relaxed);
        b"called on the protocol thread".to_vec()
    }
    fn merge_remote_state(&mut self, _state: &[u8], _join: bool) {
        self.wrong_calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// The core's own way: a fixed state, merged states recorded.
struct Inline(Vec<u8>, Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Hooks for Inline {
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        self.0.clone()
    }
    fn merge_remote_state(&mut self, state: &[u8], _join: bool) {
        self.1.lock().unwrap().push(state.to_vec());
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

fn endpoint(name: &str, i: u8, hooks: Box<dyn Hooks>) -> Endpoint {
    Endpoint::new(Config::lan(name), addr(i), None, hooks, 7, Instant::ZERO).unwrap()
}

fn actions(ep: &mut Endpoint) -> Vec<StreamAction> {
    std::iter::from_fn(|| ep.poll_stream()).collect()
}

#[test]
fn a_cluster_exchanges_deferred_state_both_ways() {
    let hooks = Deferring::default();
    let mut net = Net::new();
    for _ in 0..3 {
        net.add(Config::lan("x"), Box::new(hooks.clone()), None);
    }
    net.join(1, 0);
    net.join(2, 0);
    net.run_for(Duration::from_secs(3));
    assert!(net.converged());
    let merges = &net.deferred_merges;
    for (node, state) in [(1, name(0)), (0, name(1)), (0, name(2)), (2, name(0))] {
        let want = (node, format!("deferred-state-of-{state}"), true);
        assert!(merges.contains(&want), "{want:?} not in {merges:?}");
    }
    assert_eq!(hooks.wrong_calls.load(Ordering::Relaxed), 0, "the core called the application itself");
    let joins = net.events.iter().filter(|(_, _, e)| matches!(e, Event::JoinCompleted { contacted: 1, .. })).count();
    assert_eq!(joins, 2);
}

#[test]
fn a_join_completes_only_once_the_driver_has_merged_the_peers_state() {
    let merged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut a = endpoint("a", 1, Box::new(Deferring::default()));
    let mut b = endpoint("b", 2, Box::new(Inline(b"state of b".to_vec(), merged.clone())));
    a.join(&[addr(2)], Instant::ZERO);
    let out = actions(&mut a);
    let (id, state) = match &out[..] {
        [StreamAction::Connect { id, .. }, StreamAction::WriteState { id: w, state }] if id == w => {
            (*id, state.clone())
        }
        other => panic!("expected connect + write-state, got {other:?}"),
    };
    assert!(state.join());
    assert_eq!(state.nodes(), 1, "a's table: itself");
    let request = state.seal(b"state of a".to_vec()).unwrap();

    let now = Instant::from_nanos(1_000_000);
    let bid = b.handle_stream_accepted(addr(1), now);
    b.handle_stream_data(bid, &request, now);
    assert_eq!(*merged.lock().unwrap(), [b"state of a".to_vec()], "b merged a's deferred state");
    let reply = match &actions(&mut b)[..] {
        [StreamAction::Write { bytes, .. }, StreamAction::Close { .. }] => bytes.clone(),
        other => panic!("expected b's reply, got {other:?}"),
    };

    a.handle_stream_data(id, &reply, now);
    match &actions(&mut a)[..] {
        [StreamAction::MergeState { id: m, state, join: true }, StreamAction::Close { id: c }] => {
            assert_eq!((*m, *c), (id, id));
            assert_eq!(state, b"state of b");
        }
        other => panic!("expected merge-state then close, got {other:?}"),
    }
    assert_eq!(a.num_members(), 2, "b's table is merged at once");
    let done = |ep: &mut Endpoint| {
        std::iter::from_fn(|| ep.poll_event()).any(|e| matches!(e, Event::JoinCompleted { contacted: 1, .. }))
    };
    assert!(!done(&mut a), "the join must wait for the application's merge");
    a.handle_state_merged(id, now);
    assert!(done(&mut a), "the join completes after the merge");
}

#[test]
fn deferred_state_seals_to_the_bytes_the_core_writes_itself() {
    let state = b"the same application state".to_vec();
    let mut inline = endpoint("a", 1, Box::new(Inline(state.clone(), Default::default())));
    let mut deferred = endpoint("a", 1, Box::new(Deferring::default()));
    inline.join(&[addr(2)], Instant::ZERO);
    deferred.join(&[addr(2)], Instant::ZERO);
    let written = match &actions(&mut inline)[..] {
        [StreamAction::Connect { .. }, StreamAction::Write { bytes, .. }] => bytes.clone(),
        other => panic!("{other:?}"),
    };
    let sealed = match actions(&mut deferred).pop() {
        Some(StreamAction::WriteState { state: s, .. }) => s.seal(state).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(sealed, written);
}

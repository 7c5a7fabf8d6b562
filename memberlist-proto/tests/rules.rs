//! The state and incarnation rules of Go memberlist (reference §4.1–4.2), one by one, on a
//! single endpoint fed crafted messages from imaginary peers.

use std::net::SocketAddr;
use std::time::Duration;

use memberlist_proto::wire::{open_packet, Alive, Dead, Message, OpenConfig, Suspect};
use memberlist_proto::{Cidr, Config, Endpoint, Event, Instant, NodeState, Vsn};

const T0: Instant = Instant::from_nanos(1_000_000_000);

fn at(secs: f64) -> Instant {
    T0 + Duration::from_secs_f64(secs)
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 7946))
}

fn endpoint(cfg: Config) -> Endpoint {
    Endpoint::new(cfg, addr(1), None, Box::new(()), 7, T0).unwrap()
}

fn me() -> Endpoint {
    let mut ep = endpoint(Config::lan("me"));
    events(&mut ep);
    ep
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn transmits(ep: &mut Endpoint) -> Vec<(SocketAddr, Vec<Message>)> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| {
            let opened = open_packet(&t.bytes, &OpenConfig::default()).unwrap();
            (t.to, opened.payload.into_messages().0)
        })
        .collect()
}

fn alive(name: &str, last: u8, inc: u32, meta: Option<&[u8]>) -> Message {
    Message::Alive(Alive {
        incarnation: inc,
        node: name.into(),
        addr: vec![10, 0, 0, last],
        port: 7946,
        meta: meta.map(<[u8]>::to_vec),
        vsn: Vsn::new(2, 0, 0, 0),
    })
}

fn suspect(name: &str, inc: u32, from: &str) -> Message {
    Message::Suspect(Suspect { incarnation: inc, node: name.into(), from: from.into() })
}

fn dead(name: &str, inc: u32, from: &str) -> Message {
    Message::Dead(Dead { incarnation: inc, node: name.into(), from: from.into() })
}

fn feed(ep: &mut Endpoint, msg: Message, now: Instant) {
    ep.handle_packet(addr(200), &msg.encode(), now);
}

fn state(ep: &Endpoint, name: &str) -> Option<(NodeState, u32)> {
    ep.member(name).map(|m| (m.state, m.incarnation))
}

#[test]
fn starting_node_is_alive_with_incarnation_1_and_joins_itself() {
    let mut ep = endpoint(Config::lan("me"));
    assert_eq!(state(&ep, "me"), Some((NodeState::Alive, 1)));
    let ev = events(&mut ep);
    assert!(matches!(&ev[..], [Event::NodeJoined(m)] if m.name == "me"));
}

#[test]
fn alive_rules_for_other_nodes() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 1)));
    assert!(matches!(&events(&mut ep)[..], [Event::NodeJoined(m)] if m.name == "a"));
    // Equal and lower incarnations change nothing.
    feed(&mut ep, alive("a", 2, 1, Some(b"x")), T0);
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.member("a").unwrap().meta, b"");
    // A higher incarnation with new meta is an update.
    feed(&mut ep, alive("a", 2, 3, Some(b"role=db")), T0);
    assert!(matches!(&events(&mut ep)[..], [Event::NodeUpdated(m)] if m.meta == b"role=db" && m.incarnation == 3));
    feed(&mut ep, alive("a", 2, 2, None), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 3)));
}

#[test]
fn incarnation_zero_for_an_unknown_node_leaves_a_dead_entry() {
    let mut ep = me();
    feed(&mut ep, alive("zombie", 3, 0, None), T0);
    assert_eq!(state(&ep, "zombie"), Some((NodeState::Dead, 0)));
    assert!(events(&mut ep).is_empty());
}

#[test]
fn alive_with_impossible_versions_is_dropped() {
    let mut ep = me();
    let Message::Alive(mut a) = alive("a", 2, 1, None) else { unreachable!() };
    a.vsn.pmin = 0;
    feed(&mut ep, Message::Alive(a), T0);
    assert_eq!(state(&ep, "a"), None);
    assert_eq!(ep.stats().dropped_bad_vsn, 1);
}

#[test]
fn another_address_for_a_known_name_is_a_conflict() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    events(&mut ep);
    feed(&mut ep, alive("a", 9, 5, None), T0);
    let ev = events(&mut ep);
    assert!(matches!(&ev[..], [Event::Conflict { existing, other }]
        if existing.addr.to_string() == "10.0.0.2" && other.addr.to_string() == "10.0.0.9"));
    assert_eq!(ep.member("a").unwrap().addr.to_string(), "10.0.0.2");
}

#[test]
fn a_left_name_can_move_and_a_dead_one_after_the_reclaim_time() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    feed(&mut ep, dead("a", 1, "a"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Left, 1)));
    // Left: the new address is taken at once, even with an equal incarnation.
    feed(&mut ep, alive("a", 9, 1, None), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 1)));
    assert_eq!(ep.member("a").unwrap().addr.to_string(), "10.0.0.9");

    // Dead, without a reclaim time: a conflict.
    feed(&mut ep, alive("b", 3, 1, None), T0);
    feed(&mut ep, dead("b", 1, "me"), T0);
    events(&mut ep);
    feed(&mut ep, alive("b", 4, 2, None), at(100.0));
    assert!(matches!(&events(&mut ep)[..], [Event::Conflict { .. }]));

    // Dead with DeadNodeReclaimTime = 5 s: refused before, accepted after.
    let mut ep = endpoint(Config { dead_node_reclaim_time: Duration::from_secs(5), ..Config::lan("me") });
    feed(&mut ep, alive("b", 3, 1, None), T0);
    feed(&mut ep, dead("b", 1, "me"), T0);
    feed(&mut ep, alive("b", 4, 1, None), at(4.0));
    assert_eq!(ep.member("b").unwrap().addr.to_string(), "10.0.0.3");
    feed(&mut ep, alive("b", 4, 1, None), at(6.0));
    assert_eq!(ep.member("b").unwrap().addr.to_string(), "10.0.0.4");
    assert_eq!(ep.member("b").unwrap().state, NodeState::Alive);
}

#[test]
fn suspect_rules() {
    let mut ep = me();
    // Unknown node: ignored.
    feed(&mut ep, suspect("ghost", 1, "x"), T0);
    assert_eq!(state(&ep, "ghost"), None);
    feed(&mut ep, alive("a", 2, 5, None), T0);
    // Older incarnation: ignored.
    feed(&mut ep, suspect("a", 4, "x"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 5)));
    events(&mut ep);
    // Equal (or newer) incarnation: suspect.
    feed(&mut ep, suspect("a", 5, "x"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Suspect, 5)));
    assert!(matches!(&events(&mut ep)[..], [Event::NodeSuspected(m)] if m.name == "a"));
    // An alive with a higher incarnation clears the suspicion.
    feed(&mut ep, alive("a", 2, 6, None), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 6)));
    // A newer incarnation in the suspect is taken over.
    feed(&mut ep, suspect("a", 9, "x"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Suspect, 9)));
}

#[test]
fn accusations_against_this_node_are_refuted() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    transmits(&mut ep);
    let health = ep.health_score();
    feed(&mut ep, suspect("me", 7, "a"), T0);
    let (st, inc) = state(&ep, "me").unwrap();
    assert_eq!(st, NodeState::Alive);
    assert_eq!(inc, 8, "refutation beats the accused incarnation");
    assert_eq!(ep.health_score(), health + 1, "refuting costs health");
    feed(&mut ep, dead("me", 8, "a"), T0);
    assert_eq!(state(&ep, "me").unwrap(), (NodeState::Alive, 9));
    // An alive about ourselves with our incarnation but other meta is refuted too (restart with
    // another configuration); with the same meta it is ignored.
    feed(&mut ep, alive("me", 1, 9, None), T0);
    assert_eq!(state(&ep, "me").unwrap().1, 9);
    feed(&mut ep, alive("me", 1, 9, Some(b"old")), T0);
    assert_eq!(state(&ep, "me").unwrap().1, 10);
    // The refutation is gossiped.
    ep.handle_timeout(at(1.0));
    let sent: Vec<Message> = transmits(&mut ep).into_iter().flat_map(|(_, m)| m).collect();
    assert!(sent.iter().any(|m| matches!(m, Message::Alive(a) if a.node == "me" && a.incarnation == 10)));
}

#[test]
fn dead_rules() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 3, None), T0);
    events(&mut ep);
    feed(&mut ep, dead("a", 2, "x"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Alive, 3)), "older incarnation ignored");
    feed(&mut ep, suspect("a", 3, "x"), T0);
    feed(&mut ep, dead("a", 3, "x"), T0);
    assert_eq!(state(&ep, "a"), Some((NodeState::Dead, 3)));
    let ev = events(&mut ep);
    assert!(matches!(ev.last(), Some(Event::NodeLeft(m)) if m.state == NodeState::Dead));
    // Already dead: no event, but (unlike Go) the higher incarnation is kept, so an alive at 4
    // is stale now (see the resurrection test below).
    feed(&mut ep, dead("a", 4, "y"), T0);
    assert!(events(&mut ep).is_empty());
    assert_eq!(state(&ep, "a"), Some((NodeState::Dead, 4)));
    feed(&mut ep, alive("a", 2, 4, None), T0);
    assert!(events(&mut ep).is_empty());
    // An alive with a higher incarnation brings it back as a join.
    feed(&mut ep, alive("a", 2, 5, None), T0);
    assert!(matches!(&events(&mut ep)[..], [Event::NodeJoined(m)] if m.name == "a"));
    // From == Node is a leave.
    feed(&mut ep, dead("a", 5, "a"), T0);
    assert!(matches!(&events(&mut ep)[..], [Event::NodeLeft(m)] if m.state == NodeState::Left));
}

#[test]
fn after_leaving_alives_about_ourselves_are_ignored() {
    let mut ep = me();
    ep.leave(T0);
    assert_eq!(state(&ep, "me"), Some((NodeState::Left, 1)));
    assert!(events(&mut ep).contains(&Event::BroadcastDone(1)), "nobody to tell: done at once");
    feed(&mut ep, alive("me", 1, 5, None), T0);
    assert_eq!(state(&ep, "me"), Some((NodeState::Left, 1)));
}

#[test]
fn merging_a_remote_dead_only_suspects() {
    use memberlist_proto::wire::{PushNodeState, PushPull, StreamMessage};
    let mut ep = me();
    let node = |name: &str, last: u8, state: NodeState| PushNodeState {
        name: name.into(),
        addr: vec![10, 0, 0, last],
        port: 7946,
        meta: None,
        incarnation: 1,
        state: state.code(),
        vsn: Vsn::new(2, 0, 0, 0),
    };
    feed(&mut ep, alive("d", 4, 1, None), T0);
    feed(&mut ep, alive("l", 5, 1, None), T0);
    let msg = StreamMessage::PushPull(PushPull {
        join: false,
        nodes: vec![node("peer", 2, NodeState::Alive), node("d", 4, NodeState::Dead), node("l", 5, NodeState::Left)],
        user_state: vec![],
    });
    let id = ep.handle_stream_accepted(addr(2), T0);
    ep.handle_stream_data(id, &msg.encode(memberlist_proto::wire::IntEncoding::Signed), T0);
    assert_eq!(state(&ep, "peer"), Some((NodeState::Alive, 1)));
    assert_eq!(state(&ep, "d"), Some((NodeState::Suspect, 1)), "a remote dead only makes us suspect");
    assert_eq!(state(&ep, "l"), Some((NodeState::Left, 1)));
    // The acceptor answered with its own state.
    let actions: Vec<_> = std::iter::from_fn(|| ep.poll_stream()).collect();
    assert!(actions.iter().any(|a| matches!(a, memberlist_proto::StreamAction::Write { id: i, .. } if *i == id)));
}

#[test]
fn cidrs_allowed_keeps_strangers_out() {
    let cfg = Config { cidrs_allowed: Some(vec![Cidr::parse("10.0.0.0/24").unwrap()]), ..Config::lan("me") };
    let mut ep = endpoint(cfg);
    // A peer inside the network announcing a node outside it.
    let Message::Alive(mut a) = alive("outsider", 2, 1, None) else { unreachable!() };
    a.addr = vec![192, 168, 1, 1];
    feed(&mut ep, Message::Alive(a), T0);
    assert_eq!(state(&ep, "outsider"), None);
    // A packet from outside the network.
    ep.handle_packet(SocketAddr::from(([172, 16, 0, 1], 7946)), &alive("a", 2, 1, None).encode(), T0);
    assert_eq!(state(&ep, "a"), None);
    assert_eq!(ep.stats().dropped_not_allowed, 2);
}

#[test]
fn pings_are_acked_to_their_source_and_others_names_dropped() {
    use memberlist_proto::wire::Ping;
    let mut ep = me();
    let ping = |node: &str| {
        Message::Ping(Ping {
            seq_no: 9,
            node: node.into(),
            source_addr: vec![10, 0, 0, 77],
            source_port: 8000,
            source_node: "x".into(),
        })
    };
    feed(&mut ep, ping("someone-else"), T0);
    assert!(transmits(&mut ep).is_empty());
    assert_eq!(ep.stats().dropped_wrong_node, 1);
    feed(&mut ep, ping("me"), T0);
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, SocketAddr::from(([10, 0, 0, 77], 8000)));
    assert!(matches!(sent[0].1[0], Message::Ack(ref a) if a.seq_no == 9 && a.payload.is_none()));
}

#[test]
fn probing_a_suspect_carries_the_suspicion_buddy_system() {
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    feed(&mut ep, suspect("a", 1, "other"), T0);
    transmits(&mut ep);
    // Run until the probe goes to the suspect.
    let found = loop {
        let t = ep.poll_timeout().unwrap();
        ep.handle_timeout(t);
        let sent = transmits(&mut ep);
        if let Some((_, msgs)) =
            sent.into_iter().find(|(to, msgs)| *to == addr(2) && msgs.iter().any(|m| matches!(m, Message::Ping(_))))
        {
            break msgs;
        }
        assert!(t < at(5.0), "never probed");
    };
    assert!(
        matches!(&found[..], [Message::Ping(p), Message::Suspect(s)] if p.node == "a" && s.node == "a" && s.from == "me")
    );
}

#[test]
fn a_failed_probe_costs_health_by_missed_nacks() {
    // Three peers: a target that never answers and two relays that answer nothing either
    // (they speak protocol 5, so nacks are expected): health +2 after the failed probe.
    let mut ep = me();
    for (n, last) in [("t", 2), ("r1", 3), ("r2", 4)] {
        feed(&mut ep, alive(n, last, 1, None), T0);
    }
    while ep.stats().probes_failed == 0 {
        let t = ep.poll_timeout().unwrap();
        ep.handle_timeout(t);
        transmits(&mut ep);
        while ep.poll_stream().is_some() {}
        assert!(t < at(10.0));
    }
    assert_eq!(ep.health_score(), 2, "two relays, no nack from either");
    assert_eq!(ep.scaled_probe_interval(), Duration::from_secs(3));
}

#[test]
fn payload_piggybacks_gossip_on_acks() {
    use memberlist_proto::wire::Ping;
    let mut ep = me();
    feed(&mut ep, alive("a", 2, 1, None), T0);
    transmits(&mut ep);
    feed(&mut ep, Message::Ping(Ping { seq_no: 1, node: "me".into(), ..Default::default() }), T0);
    let sent = transmits(&mut ep);
    // The ack carries the queued alive messages (ours and a's).
    assert!(matches!(sent[0].1[0], Message::Ack(_)));
    assert!(sent[0].1.iter().any(|m| matches!(m, Message::Alive(a) if a.node == "a")));
}

#[test]
fn application_broadcasts_get_their_share_of_a_full_packet() {
    // 100 nodes' alive messages fill far more than one packet. With Go's order (share 0) the
    // first gossip packets carry none of the application's data; with the default share they
    // carry it at once (Go #299).
    for (share, expect_user) in [(0u8, false), (50, true)] {
        let mut ep = endpoint(Config { user_broadcast_share_percent: share, ..Config::lan("me") });
        feed(&mut ep, alive("a", 2, 1, None), T0);
        for i in 0..100u8 {
            feed(&mut ep, alive(&format!("node-with-a-long-name-{i:03}"), 10 + i, 1, None), T0);
        }
        transmits(&mut ep);
        ep.queue_broadcast(b"app data", None);
        let mut first_gossip = None;
        while first_gossip.is_none() {
            let t = ep.poll_timeout().unwrap();
            ep.handle_timeout(t);
            first_gossip =
                transmits(&mut ep).into_iter().find(|(_, msgs)| msgs.iter().all(|m| !matches!(m, Message::Ping(_))));
        }
        let msgs = first_gossip.unwrap().1;
        let has_user = msgs.iter().any(|m| matches!(m, Message::User(d) if d == b"app data"));
        assert_eq!(has_user, expect_user, "share {share}");
        assert!(msgs.len() > 5, "the packet is full of system gossip either way");
    }
}

#[test]
fn idle_nodes_skip_empty_gossip_rounds_and_gossip_when_there_is_news() {
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 1, None), T0);
    // Let the queued broadcasts (our own alive, b's) run out on rounds gossiping to b.
    let mut now = T0;
    for _ in 0..200 {
        now = ep.poll_timeout().unwrap().max(now);
        ep.handle_timeout(now);
        while ep.poll_transmit().is_some() {}
    }
    // With nothing queued and no application broadcasts, the next wake-up is a probe tick or
    // the push/pull, never a 200 ms gossip round.
    let cfg = Config::lan("me");
    let next = ep.poll_timeout().unwrap();
    assert!(next - now > cfg.gossip_interval, "woke for an empty gossip round: {:?}", next - now);
    // News arrives: a round is due within one gossip interval (at once if ticks were skipped).
    feed(&mut ep, alive("c", 3, 1, None), now);
    assert!(ep.poll_timeout().unwrap() <= now + cfg.gossip_interval, "gossip within a round");
}

#[test]
fn the_first_periodic_push_pull_comes_one_interval_after_the_stagger_as_in_go() {
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 1, None), T0);
    let interval = Config::lan("me").push_pull_interval;
    let mut first = None;
    let mut now = T0;
    let mut inc = 1;
    while now < T0 + interval * 3 && first.is_none() {
        now = ep.poll_timeout().unwrap().max(now);
        ep.handle_timeout(now);
        // b cannot answer probes here; fresh alives keep it alive (a push/pull needs a peer).
        inc += 1;
        feed(&mut ep, alive("b", 2, inc, None), now);
        while ep.poll_transmit().is_some() {}
        while ep.poll_stream().is_some() {}
        if ep.stats().push_pulls > 0 {
            first = Some(now - T0);
        }
    }
    // Go waits a random stagger (< interval) and then a whole interval before the first one.
    let first = first.expect("a push/pull happens");
    assert!(first >= interval && first < interval * 2, "first push/pull after {first:?}");
}

#[test]
fn a_dead_node_keeps_the_highest_dead_incarnation_so_stale_alives_cannot_resurrect_it() {
    // The hole Go's deadNode leaves: alive@1, dead@1, then a dead@10 that changes no state is
    // dropped without raising the stored incarnation, so a delayed alive@2 resurrects the node.
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 1, None), at(0.0));
    feed(&mut ep, dead("b", 1, "c"), at(0.1));
    assert_eq!(state(&ep, "b"), Some((NodeState::Dead, 1)));
    events(&mut ep);
    transmits(&mut ep);
    feed(&mut ep, dead("b", 10, "c"), at(0.2));
    assert_eq!(state(&ep, "b"), Some((NodeState::Dead, 10)));
    assert!(events(&mut ep).is_empty(), "no new event: the node was dead already");
    ep.handle_timeout(at(0.4));
    let resent: usize = transmits(&mut ep)
        .iter()
        .map(|(_, msgs)| msgs.iter().filter(|m| matches!(m, Message::Dead(d) if d.incarnation == 10)).count())
        .sum();
    assert_eq!(resent, 0, "and nothing is re-gossiped, as in Go");
    // The stale alive is ignored; a real refutation above 10 revives the node.
    feed(&mut ep, alive("b", 2, 2, None), at(0.5));
    assert_eq!(state(&ep, "b"), Some((NodeState::Dead, 10)));
    assert!(events(&mut ep).is_empty());
    feed(&mut ep, alive("b", 2, 11, None), at(0.6));
    assert_eq!(state(&ep, "b"), Some((NodeState::Alive, 11)));
    assert!(matches!(&events(&mut ep)[..], [Event::NodeJoined(m)] if m.name == "b" && m.incarnation == 11));
    // A lower dead changes nothing either.
    feed(&mut ep, dead("b", 3, "c"), at(0.7));
    assert_eq!(state(&ep, "b"), Some((NodeState::Alive, 11)));
}

#[test]
fn a_member_announcing_itself_below_an_accusation_is_told_of_it_directly() {
    // Go #311: b restarted with fresh state and gossips alive@1 while we hold it dead at 5;
    // unless someone tells it, it never refutes and stays dead here for good.
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 5, None), at(0.0));
    feed(&mut ep, dead("b", 5, "c"), at(0.1));
    events(&mut ep);
    transmits(&mut ep);
    let told = |ep: &mut Endpoint| -> Vec<Message> {
        transmits(ep).into_iter().filter(|(to, _)| *to == addr(2)).flat_map(|(_, m)| m).collect()
    };
    feed(&mut ep, alive("b", 2, 1, None), at(0.2));
    assert_eq!(state(&ep, "b"), Some((NodeState::Dead, 5)), "the stale alive changes nothing");
    let sent = told(&mut ep);
    assert!(
        matches!(&sent[..], [Message::Dead(d)] if d.node == "b" && d.incarnation == 5 && d.from == "me"),
        "{sent:?}"
    );
    assert_eq!(ep.stats().accusations_told, 1);
    // Once per probe interval.
    feed(&mut ep, alive("b", 2, 1, None), at(0.5));
    assert!(told(&mut ep).is_empty());
    feed(&mut ep, alive("b", 2, 1, None), at(1.3));
    assert_eq!(told(&mut ep).len(), 1);
    // Its refutation above the accusation brings it back.
    feed(&mut ep, alive("b", 2, 6, None), at(1.4));
    assert_eq!(state(&ep, "b"), Some((NodeState::Alive, 6)));

    // A suspicion is told as a suspicion.
    feed(&mut ep, suspect("b", 6, "c"), at(2.5));
    transmits(&mut ep);
    feed(&mut ep, alive("b", 2, 6, None), at(2.6));
    let sent = told(&mut ep);
    assert!(matches!(&sent[..], [Message::Suspect(s)] if s.node == "b" && s.incarnation == 6), "{sent:?}");

    // Go's behaviour when turned off.
    let mut cfg = Config::lan("me");
    cfg.tell_the_accused = false;
    let mut go = endpoint(cfg);
    feed(&mut go, alive("b", 2, 5, None), at(0.0));
    feed(&mut go, dead("b", 5, "c"), at(0.1));
    transmits(&mut go);
    feed(&mut go, alive("b", 2, 1, None), at(0.2));
    assert!(told(&mut go).is_empty());
}

#[test]
fn a_restarted_node_told_it_is_dead_refutes_above_the_accusation() {
    // The accused's side: a dead message about itself at 5 while it is at 1.
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 1, None), at(0.0));
    feed(&mut ep, dead("me", 5, "c"), at(0.1));
    assert_eq!(state(&ep, "me"), Some((NodeState::Alive, 6)));
    ep.handle_timeout(at(0.3));
    let refuted = transmits(&mut ep)
        .into_iter()
        .flat_map(|(_, m)| m)
        .any(|m| matches!(m, Message::Alive(a) if a.node == "me" && a.incarnation == 6));
    assert!(refuted, "the refutation is gossiped");
}

#[test]
fn a_stale_accusation_is_answered_with_the_current_alive_to_its_sender() {
    // We are at 6; someone passes on a suspicion at 1 that missed our refutation.
    let mut ep = me();
    feed(&mut ep, alive("b", 2, 1, None), at(0.0));
    feed(&mut ep, dead("me", 5, "c"), at(0.1));
    assert_eq!(state(&ep, "me"), Some((NodeState::Alive, 6)));
    transmits(&mut ep);
    feed(&mut ep, suspect("me", 1, "c"), at(0.2));
    let to_sender: Vec<Message> =
        transmits(&mut ep).into_iter().filter(|(to, _)| *to == addr(200)).flat_map(|(_, m)| m).collect();
    assert!(matches!(&to_sender[..], [Message::Alive(a)] if a.node == "me" && a.incarnation == 6), "{to_sender:?}");
    assert_eq!(state(&ep, "me"), Some((NodeState::Alive, 6)), "no new refutation");
    // Once per probe interval per sender.
    feed(&mut ep, dead("me", 2, "c"), at(0.4));
    assert!(transmits(&mut ep).iter().all(|(to, _)| *to != addr(200)));
    assert_eq!(ep.stats().accusations_answered, 1);
}

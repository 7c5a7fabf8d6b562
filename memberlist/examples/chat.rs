//! A chat room on memberlist: lines typed in one terminal reach every member by gossip
//! (`broadcast`), and `/to <name> <text>` goes to one member over TCP (`send_reliable`).
//! Joins and leaves are announced from the node's events.
//!
//! ```text
//! cargo run -p memberlist --example chat -- --name ada --bind 127.0.0.1:7101
//! cargo run -p memberlist --example chat -- --name bob --bind 127.0.0.1:7102 --join 127.0.0.1:7101
//! cargo run -p memberlist --example chat -- --name cy  --bind 127.0.0.1:7103 --join 127.0.0.1:7101
//! ```
//!
//! `--self-test` starts three members in one process, has each say something to the room and
//! one whisper to another, and checks who heard what; `cargo test` runs the same check.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use memberlist::{Event, Events, Memberlist, NodeState, Options};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What a line on the wire says: `room <from> <text>` or `whisper <from> <text>`.
fn line(kind: &str, from: &str, text: &str) -> Vec<u8> {
    format!("{kind} {from} {text}").into_bytes()
}

/// A received message as (kind, from, text).
fn parse(data: &[u8]) -> Option<(String, String, String)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut parts = text.splitn(3, ' ');
    Some((parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// Sends `text` to the member called `to` over a TCP stream, delivered or an error.
async fn whisper(node: &Memberlist, to: &str, text: &str) -> Result<(), String> {
    let peer = node.members().into_iter().find(|m| m.name == to).ok_or_else(|| format!("no member called {to}"))?;
    let addr = SocketAddr::new(peer.addr, peer.port);
    node.send_reliable(addr, line("whisper", node.name(), text)).await.map_err(|e| e.to_string())
}

/// Says `text` to the whole room by gossip.
fn say(node: &Memberlist, text: &str) -> Result<(), String> {
    node.broadcast(line("room", node.name(), text), None).map_err(|e| e.to_string())
}

/// What a member does with a message it received: a room line heard for the first time is
/// passed on by gossip once more, as Serf relays user events, and shown; repeats and this
/// member's own lines (relayed back to it) are not. A broadcast is sent only a few times —
/// memberlist's retransmit limit is 2 in a three-member local cluster, and every ping and ack
/// carries it too — so without the relay a member missed a line now and then.
fn receive(node: &Memberlist, seen: &mut HashSet<Vec<u8>>, data: &[u8]) -> Option<(String, String, String)> {
    let msg = parse(data)?;
    if msg.1 == node.name() || !seen.insert(data.to_vec()) {
        return None;
    }
    if msg.0 == "room" {
        let _ = node.broadcast(data.to_vec(), Some(String::from_utf8_lossy(data).into_owned()));
    }
    Some(msg)
}

/// Collects the messages `node` receives on `events` until `want` of them came or 20 s passed.
async fn hear(node: &Memberlist, events: &mut Events, want: usize) -> Vec<(String, String, String)> {
    let (mut got, mut seen) = (Vec::new(), HashSet::new());
    let end = Instant::now() + Duration::from_secs(20);
    while got.len() < want {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(Event::UserMessage { data, .. })) => got.extend(receive(node, &mut seen, &data)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// The local preset, with every broadcast sent as often as on a LAN. The local preset's
/// retransmit multiplier is 2 (Go's `DefaultLocalConfig`), so in a room of three a line — or the
/// alive of a member who just joined — is sent twice, and when a ping's piggyback takes the
/// first send, both can go to the same member: the third hears of it only at the next push/pull,
/// which comes 15–30 s after start. Twice that many sends (Go's `DefaultLANConfig`, what Serf
/// runs with) make a miss all but impossible.
fn room_options(name: &str) -> Options {
    let mut options = Options::local(name);
    options.config.retransmit_mult = 4;
    options
}

async fn self_test() -> Result<String, String> {
    let started = Instant::now();
    let mut nodes = Vec::new();
    let mut inboxes = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let node = Memberlist::create(room_options(name)).await.map_err(|e| e.to_string())?;
        inboxes.push(node.events().map_err(|e| e.to_string())?);
        nodes.push(node);
    }
    let seed = nodes[0].advertise_addr();
    for n in &nodes[1..] {
        n.join(&[seed]).await.map_err(|e| format!("join: {e}"))?;
    }
    // Gossip tells everyone of everyone within a second; the first periodic push/pull, which
    // repairs what gossip missed, comes 15–30 s after start (one stagger and one interval).
    let end = Instant::now() + Duration::from_secs(35);
    while nodes.iter().any(|n| n.members().iter().filter(|m| m.state == NodeState::Alive).count() < 3) {
        if Instant::now() > end {
            return Err("the three never saw each other".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in &nodes {
        say(n, &format!("hello from {}", n.name()))?;
    }
    whisper(&nodes[0], "cy", "psst, cy").await?;
    // Everyone hears the two others in the room; cy also hears ada's whisper. All listen (and
    // relay) at once.
    let mut listening = Vec::new();
    for (node, mut inbox) in nodes.iter().cloned().zip(inboxes) {
        let want = if node.name() == "cy" { 3 } else { 2 };
        listening.push(tokio::spawn(async move { hear(&node, &mut inbox, want).await }));
    }
    for (node, heard) in nodes.iter().zip(listening) {
        let me = node.name().to_owned();
        let mut got = heard.await.map_err(|e| e.to_string())?;
        got.sort();
        let mut expected: Vec<(String, String, String)> = nodes
            .iter()
            .filter(|n| n.name() != me)
            .map(|n| ("room".into(), n.name().to_owned(), format!("hello from {}", n.name())))
            .collect();
        if me == "cy" {
            expected.push(("whisper".into(), "ada".into(), "psst, cy".into()));
        }
        expected.sort();
        if got != expected {
            return Err(format!("{me} heard {got:?}, expected {expected:?}"));
        }
    }
    for n in &nodes {
        n.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(format!("3 members heard the room and the whisper within {:?}", started.elapsed()))
}

async fn interactive(name: String, bind: SocketAddr, join: Option<SocketAddr>) -> Result<(), String> {
    let node = Memberlist::create(room_options(&name).bind(bind)).await.map_err(|e| e.to_string())?;
    let mut events = node.events().map_err(|e| e.to_string())?;
    if let Some(seed) = join {
        node.join(&[seed]).await.map_err(|e| format!("joining {seed}: {e}"))?;
    }
    println!("{name} at {}; type to talk, /to <name> <text> to whisper, /who, /quit", node.advertise_addr());
    let relay = node.clone();
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        while let Some(e) = events.recv().await {
            match e {
                Event::UserMessage { data, .. } => match receive(&relay, &mut seen, &data) {
                    Some((kind, from, text)) if kind == "whisper" => println!("({from} whispers) {text}"),
                    Some((_, from, text)) => println!("<{from}> {text}"),
                    None => {}
                },
                Event::NodeJoined(m) => println!("* {} joined", m.name),
                Event::NodeLeft(m) => println!("* {} {}", m.name, m.state.as_str()),
                _ => {}
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(input)) = lines.next_line().await {
        let result = match input.split_once(' ').unwrap_or((input.as_str(), "")) {
            ("/quit", _) => break,
            ("/who", _) => {
                node.members().iter().for_each(|m| println!("{m}"));
                Ok(())
            }
            ("/to", rest) => match rest.split_once(' ') {
                Some((to, text)) => whisper(&node, to, text).await,
                None => Err("/to <name> <text>".into()),
            },
            _ if input.trim().is_empty() => Ok(()),
            _ => say(&node, &input),
        };
        if let Err(e) = result {
            println!("! {e}");
        }
    }
    node.leave(Duration::from_secs(2)).await.map_err(|e| e.to_string())?;
    node.shutdown().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
    let result = if args.iter().any(|a| a == "--self-test") {
        self_test().await.map(|summary| println!("self-test ok: {summary}"))
    } else {
        let name = flag("--name").unwrap_or_else(|| "ada".into());
        let parse = |s: String| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}"));
        match (parse(flag("--bind").unwrap_or_else(|| "127.0.0.1:7101".into())), flag("--join").map(parse).transpose())
        {
            (Ok(bind), Ok(join)) => interactive(name, bind, join).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_members_hear_the_room_and_a_whisper() {
        let summary = super::self_test().await.unwrap();
        println!("{summary}");
    }
}

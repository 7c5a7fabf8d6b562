//! A replicated key-value store on memberlist, the way Go applications build one.
//!
//! Every write is gossiped as a named broadcast (the key is the name, so a newer write of a key
//! replaces an older one still queued), and push/pull carries the whole store for
//! anti-entropy: a node that missed a broadcast, or joins late, gets the store from
//! `local_state` / `merge_remote_state`. Conflicts resolve by last writer wins on a Lamport
//! clock, ties broken by the writer's name, so every node ends with the same store.
//!
//! Three terminals:
//!
//! ```text
//! cargo run -p memberlist --example kv -- --name n1 --bind 127.0.0.1:7001
//! cargo run -p memberlist --example kv -- --name n2 --bind 127.0.0.1:7002 --join 127.0.0.1:7001
//! cargo run -p memberlist --example kv -- --name n3 --bind 127.0.0.1:7003 --join 127.0.0.1:7001
//! ```
//!
//! then type `set colour blue` in one, `get colour` in another, `list`, `members`, `quit`.
//! `cargo run -p memberlist --example kv -- --self-test` starts three nodes in one process and
//! checks that they converge; `cargo test` runs the same check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberlist::{Broadcast, BroadcastQueue, Delegate, Memberlist, Options};
use tokio::io::{AsyncBufReadExt, BufReader};

/// One key's value with the Lamport time and the writer that decide which write wins.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    clock: u64,
    writer: String,
    value: String,
}

impl Entry {
    /// Last writer wins: the higher clock, then the greater writer name.
    fn newer_than(&self, other: &Entry) -> bool {
        (self.clock, &self.writer) > (other.clock, &other.writer)
    }
}

/// A write as it travels: `key \t clock \t writer \t value` (keys and writers hold no tabs).
fn encode(key: &str, e: &Entry) -> String {
    format!("{key}\t{}\t{}\t{}", e.clock, e.writer, e.value)
}

fn decode(line: &str) -> Option<(String, Entry)> {
    let mut parts = line.splitn(4, '\t');
    let key = parts.next()?.to_owned();
    let clock = parts.next()?.parse().ok()?;
    let writer = parts.next()?.to_owned();
    let value = parts.next()?.to_owned();
    Some((key, Entry { clock, writer, value }))
}

/// A queued write, named by its key: queuing a newer write of the key replaces it.
struct Put {
    key: String,
    msg: Vec<u8>,
}

impl Broadcast for Put {
    fn message(&self) -> &[u8] {
        &self.msg
    }
    fn name(&self) -> Option<&str> {
        Some(&self.key)
    }
}

/// The store and the delegate that replicates it.
struct Store {
    name: String,
    data: Mutex<BTreeMap<String, Entry>>,
    queue: BroadcastQueue,
}

impl Store {
    fn new(name: &str) -> Arc<Store> {
        // The member count is filled in once the node exists (see `count_members_of`).
        Arc::new(Store { name: name.to_owned(), data: Mutex::default(), queue: BroadcastQueue::new(4, || 1) })
    }

    /// A local write: a clock above every clock seen for the key, applied and gossiped.
    fn set(&self, key: &str, value: &str) {
        let entry = {
            let mut data = self.data.lock().unwrap();
            let clock = data.values().map(|e| e.clock).max().unwrap_or(0) + 1;
            let e = Entry { clock, writer: self.name.clone(), value: value.to_owned() };
            data.insert(key.to_owned(), e.clone());
            e
        };
        self.queue.queue(Put { key: key.to_owned(), msg: encode(key, &entry).into_bytes() });
    }

    fn get(&self, key: &str) -> Option<String> {
        self.data.lock().unwrap().get(key).map(|e| e.value.clone())
    }

    fn snapshot(&self) -> BTreeMap<String, String> {
        self.data.lock().unwrap().iter().map(|(k, e)| (k.clone(), e.value.clone())).collect()
    }

    /// Applies a remote write if it is newer; true when it changed the store.
    fn apply(&self, key: String, e: Entry) -> bool {
        let mut data = self.data.lock().unwrap();
        match data.get(&key) {
            Some(old) if !e.newer_than(old) => false,
            _ => {
                data.insert(key, e);
                true
            }
        }
    }
}

impl Delegate for Store {
    fn notify_msg(&self, _from: SocketAddr, msg: &[u8]) {
        let Some((key, e)) = std::str::from_utf8(msg).ok().and_then(decode) else { return };
        // Gossip it on only when it was news here, so a write spreads like memberlist's own
        // messages and then stops.
        if self.apply(key.clone(), e) {
            self.queue.queue(Put { key, msg: msg.to_vec() });
        }
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.queue.get_broadcasts(overhead, limit)
    }
    fn has_broadcasts(&self) -> bool {
        !self.queue.is_empty()
    }
    fn local_state(&self, _join: bool) -> Vec<u8> {
        let data = self.data.lock().unwrap();
        data.iter().map(|(k, e)| encode(k, e)).collect::<Vec<_>>().join("\n").into_bytes()
    }
    fn merge_remote_state(&self, state: &[u8], _join: bool) {
        for (key, e) in String::from_utf8_lossy(state).lines().filter_map(decode) {
            self.apply(key, e);
        }
    }
}

/// Starts a node holding `store`, bound to `bind`.
async fn start(name: &str, bind: SocketAddr, store: Arc<Store>) -> Memberlist {
    let node = Memberlist::create(Options::local(name).bind(bind).delegate(store.clone()))
        .await
        .unwrap_or_else(|e| panic!("starting {name} on {bind}: {e}"));
    store.queue.count_members_of(&node);
    node
}

/// Three nodes in this process: writes on each, a conflicting write of one key, a fourth
/// node that joins late and gets everything by push/pull. Returns what it saw, or why not.
async fn self_test() -> Result<String, String> {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut stores = Vec::new();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let store = Store::new(&format!("n{i}"));
        nodes.push(start(&format!("n{i}"), any, store.clone()).await);
        stores.push(store);
    }
    let seed = nodes[0].advertise_addr();
    for n in &nodes[1..] {
        n.join(&[seed]).await.map_err(|e| format!("join: {e}"))?;
    }
    let started = Instant::now();
    for (i, s) in stores.iter().enumerate() {
        for k in 0..10 {
            s.set(&format!("key-{i}-{k}"), &format!("from n{}", i + 1));
        }
    }
    // The same key written on two nodes at once: both converge on one winner.
    stores[0].set("colour", "blue");
    stores[2].set("colour", "green");
    let agree = |stores: &[Arc<Store>]| {
        let first = stores[0].snapshot();
        first.len() == 31 && stores.iter().all(|s| s.snapshot() == first)
    };
    wait(|| agree(&stores), "the three stores agree").await?;
    let converged = started.elapsed();
    let colour = stores[0].get("colour").unwrap_or_default();
    // A late joiner gets the store by push/pull alone: the broadcasts are long finished.
    let late = Store::new("n4");
    let n4 = start("n4", any, late.clone()).await;
    n4.join(&[seed]).await.map_err(|e| format!("join: {e}"))?;
    stores.push(late);
    wait(|| agree(&stores), "the late joiner has the store").await?;
    for n in nodes.iter().chain([&n4]) {
        n.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(format!(
        "3 nodes agree on 31 keys after {converged:?} (colour = {colour}); a late joiner got them all by push/pull"
    ))
}

async fn wait(ok: impl Fn() -> bool, what: &str) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(20);
    while !ok() {
        if Instant::now() > end {
            return Err(format!("timed out waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One node with a command prompt on standard input.
async fn interactive(name: String, bind: SocketAddr, join: Option<SocketAddr>) -> Result<(), String> {
    let store = Store::new(&name);
    let node = start(&name, bind, store.clone()).await;
    if let Some(seed) = join {
        node.join(&[seed]).await.map_err(|e| format!("joining {seed}: {e}"))?;
    }
    println!("{name} at {}; commands: set <key> <value>, get <key>, list, members, quit", node.advertise_addr());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["set", key, value @ ..] if !value.is_empty() && !key.contains('\t') => {
                store.set(key, &value.join(" "));
                println!("ok");
            }
            ["get", key] => println!("{}", store.get(key).unwrap_or_else(|| "(not set)".into())),
            ["list"] => {
                for (k, v) in store.snapshot() {
                    println!("{k} = {v}");
                }
            }
            ["members"] => {
                for m in node.members() {
                    println!("{m}");
                }
            }
            ["quit"] => break,
            [] => {}
            _ => println!("commands: set <key> <value>, get <key>, list, members, quit"),
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
        let name = flag("--name").unwrap_or_else(|| "n1".into());
        let parse = |s: String| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}"));
        match (parse(flag("--bind").unwrap_or_else(|| "127.0.0.1:7001".into())), flag("--join").map(parse).transpose())
        {
            (Ok(bind), Ok(join)) => interactive(name, bind, join).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_converge_on_one_store() {
        let summary = super::self_test().await.unwrap();
        println!("{summary}");
    }
}

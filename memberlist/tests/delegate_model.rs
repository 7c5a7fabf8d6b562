//! Go's delegate model: `node_meta(limit)`, broadcasts with invalidation and a finished
//! notification from a `&self` delegate, keyring read-back, `protocol_version`, `Display`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist::{Broadcast, BroadcastQueue, Delegate, Error, Memberlist, SimpleBroadcast};
use support::{eventually, fast};

#[derive(Default)]
struct App {
    meta: Mutex<Vec<u8>>,
    limits_seen: Mutex<Vec<usize>>,
    queue: Option<Arc<BroadcastQueue>>,
    got: Mutex<Vec<Vec<u8>>>,
}

impl Delegate for App {
    fn node_meta(&self, limit: usize) -> Option<Vec<u8>> {
        self.limits_seen.lock().unwrap().push(limit);
        Some(self.meta.lock().unwrap().clone())
    }
    fn notify_msg(&self, _from: std::net::SocketAddr, msg: &[u8]) {
        self.got.lock().unwrap().push(msg.to_vec());
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.queue.as_ref().map(|q| q.get_broadcasts(overhead, limit)).unwrap_or_default()
    }
    fn has_broadcasts(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| !q.is_empty())
    }
}

fn meta_of(node: &Memberlist, name: &str) -> Option<Vec<u8>> {
    node.members().into_iter().find(|m| m.name == name).map(|m| m.meta)
}

#[tokio::test]
async fn node_meta_is_asked_at_start_and_by_update_node() {
    let app = Arc::new(App { meta: Mutex::new(b"role=a".to_vec()), ..App::default() });
    let a = Memberlist::create(fast("a").meta("ignored").delegate(app.clone())).await.unwrap();
    let b = Memberlist::create(fast("b")).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    assert_eq!(meta_of(&b, "a").as_deref(), Some(&b"role=a"[..]), "the delegate's metadata wins over Options::meta");
    *app.meta.lock().unwrap() = b"role=b".to_vec();
    a.update_node(Duration::from_secs(5)).await.unwrap();
    eventually("b sees the new metadata", || meta_of(&b, "a").as_deref() == Some(&b"role=b"[..])).await;
    assert_eq!(*app.limits_seen.lock().unwrap(), [512, 512], "asked with Go's MetaMaxSize, at start and update");

    // Longer than the limit: refused at start and on update, the old metadata kept.
    *app.meta.lock().unwrap() = vec![b'x'; 513];
    assert!(matches!(a.update_node(Duration::from_secs(1)).await, Err(Error::Config(_))));
    assert_eq!(meta_of(&a, "a").as_deref(), Some(&b"role=b"[..]));
    let big = Arc::new(App { meta: Mutex::new(vec![b'x'; 513]), ..App::default() });
    let err = Memberlist::create(fast("c").delegate(big)).await.unwrap_err();
    assert!(err.to_string().contains("meta_max_size"), "{err}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A write of one key: a newer write of the same key invalidates it.
struct Put {
    key: String,
    msg: Vec<u8>,
    finished: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Broadcast for Put {
    fn message(&self) -> &[u8] {
        &self.msg
    }
    fn invalidates(&self, older: &dyn Broadcast) -> bool {
        older.message().starts_with(format!("{}=", self.key).as_bytes())
    }
    fn finished(&self) {
        let _ = self.finished.send(String::from_utf8_lossy(&self.msg).into_owned());
    }
}

#[tokio::test]
async fn broadcasts_from_a_shared_delegate_invalidate_and_finish() {
    let queue = Arc::new(BroadcastQueue::new(4, || 1));
    let app = Arc::new(App { queue: Some(queue.clone()), ..App::default() });
    let receiver = Arc::new(App::default());
    let a = Memberlist::create(fast("a").delegate(app.clone())).await.unwrap();
    queue.count_members_of(&a);
    let b = Memberlist::create(fast("b").delegate(receiver.clone())).await.unwrap();
    b.join(&[a.advertise_addr()]).await.unwrap();
    eventually("a counts b", || a.num_members() == 2).await;

    let (tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let put = |v: &str| Put { key: "k".into(), msg: format!("k={v}").into_bytes(), finished: tx.clone() };
    queue.queue(put("1"));
    queue.queue(put("2"));
    assert_eq!(finished.recv().await.as_deref(), Some("k=1"), "k=1 invalidated by k=2 at once");
    let (last, done) = SimpleBroadcast::named("n", "named").notify();
    queue.queue(last);
    eventually("b got k=2 and the named one", || {
        let got = receiver.got.lock().unwrap();
        got.contains(&b"k=2".to_vec()) && got.contains(&b"named".to_vec())
    })
    .await;
    assert!(!receiver.got.lock().unwrap().contains(&b"k=1".to_vec()), "the invalidated write never went out");
    tokio::time::timeout(Duration::from_secs(10), done).await.expect("finished in time").unwrap();
    assert_eq!(finished.recv().await.as_deref(), Some("k=2"), "k=2 finished after its transmits");
    assert!(queue.is_empty());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn keyring_read_back_and_go_answers() {
    let k1 = [1u8; 16];
    let k2 = [2u8; 32];
    let n = Memberlist::create(fast("enc").keys(&k1, &[]).unwrap()).await.unwrap();
    assert_eq!(n.keys(), [k1.to_vec()]);
    assert_eq!(n.primary_key(), Some(k1.to_vec()));
    n.install_key(&k2).await.unwrap();
    n.install_key(&k2).await.unwrap(); // again: nothing to do, as in Go
    assert_eq!(n.keys(), [k1.to_vec(), k2.to_vec()]);
    n.use_key(&k2).await.unwrap();
    assert_eq!(n.primary_key(), Some(k2.to_vec()));
    assert_eq!(n.keys()[0], k2.to_vec(), "primary first");
    assert!(n.remove_key(&k2).await.is_err(), "not the primary");
    n.remove_key(&[9u8; 16]).await.expect("an unknown key: nothing to do, as Go answers");
    n.remove_key(&k1).await.unwrap();
    assert_eq!(n.keys(), [k2.to_vec()]);
    assert_eq!(n.protocol_version(), 2, "Go's default ProtocolVersion");

    let plain = Memberlist::create(fast("plain")).await.unwrap();
    let err = plain.install_key(&k1).await.unwrap_err();
    assert!(err.to_string().contains("without encryption"), "{err}");
    assert!(plain.keys().is_empty() && plain.primary_key().is_none(), "still plaintext");
    let peer = Memberlist::create(fast("peer")).await.unwrap();
    peer.join(&[plain.advertise_addr()]).await.expect("a plaintext peer still joins");
    let me = plain.local_node().unwrap();
    assert_eq!(me.to_string(), "plain", "Display is the name, as Go's Node.String");
    for x in [n, plain, peer] {
        x.shutdown().await.unwrap();
    }
}

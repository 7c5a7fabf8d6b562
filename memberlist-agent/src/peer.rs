//! `memberlist peer`: one node driven line by line, for fault tests across network namespaces.
//!
//! The Rust twin of the Go test peer in `interop/gopeer`: commands arrive one per line on stdin,
//! events leave as one JSON object per line on stdout, so a test harness drives Rust and Go
//! nodes the same way through pipes, even when each runs in its own network namespace. The
//! node's datagrams go through a [`FaultyTransport`] (with `--faults`, `--udp-drop` or
//! `--udp-delay-ms`) whose loss and delay can be set at start and changed at run time (delay
//! cannot come from the kernel where `netem` is missing); otherwise through the plain transport.
//!
//! Commands: `members`, `join <addr,...>`, `leave`, `udp-drop <fraction>`, `udp-delay <ms>`,
//! `quit`. Events: `ready`, `joined`, `members` (the full table with each entry's real state and
//! incarnation, also every `--interval-ms`), `join`, `leave`, `update`, `left`, `knob`, `error`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist::{Event, Faults, FaultyTransport, Memberlist, NetTransport, NodeState, Options, Transport};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Options of `memberlist peer`.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// Node name.
    #[arg(long)]
    name: String,
    /// Address and port to bind and advertise.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Seeds to join at start, comma-separated.
    #[arg(long, value_delimiter = ',')]
    join: Vec<SocketAddr>,
    /// Timing preset: lan, wan or local.
    #[arg(long = "config", default_value = "lan")]
    preset: String,
    /// Emit a `members` event this often (0: only on request).
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Put the fault knobs (`udp-drop`, `udp-delay`) in the datagram path; implied by
    /// `--udp-drop` and `--udp-delay-ms`. Without them the node uses the plain transport.
    #[arg(long)]
    faults: bool,
    /// Drop this fraction of datagrams in each direction.
    #[arg(long, default_value_t = 0.0)]
    udp_drop: f64,
    /// Delay every datagram this long in each direction.
    #[arg(long, default_value_t = 0)]
    udp_delay_ms: u64,
    /// Every this often, re-join a seed or reaped member not seen alive (off when absent).
    #[arg(long)]
    rejoin_interval_secs: Option<u64>,
    /// SuspicionMult override.
    #[arg(long)]
    suspicion_mult: Option<usize>,
    /// GossipToTheDeadTime override, in seconds.
    #[arg(long)]
    gossip_to_the_dead_secs: Option<u64>,
    /// PushPullInterval override, in seconds.
    #[arg(long)]
    pushpull_secs: Option<u64>,
    /// Go's rules for stale alives and stale accusations: `Config::tell_the_accused` off (to
    /// compare with Go #311).
    #[arg(long)]
    go_accusations: bool,
}

fn emit(start: Instant, me: &str, ev: &str, mut fields: Value) {
    if let Value::Object(map) = &mut fields {
        map.insert("ev".into(), ev.into());
        map.insert("self".into(), me.into());
        map.insert("t".into(), json!(start.elapsed().as_secs_f64() * 1000.0));
    }
    println!("{fields}");
}

fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Alive => "alive",
        NodeState::Suspect => "suspect",
        NodeState::Dead => "dead",
        NodeState::Left => "left",
    }
}

fn table(node: &Memberlist) -> Value {
    let rows: Vec<Value> = node
        .all_members()
        .iter()
        .map(|m| {
            json!({"name": m.name, "addr": m.addr.to_string(), "port": m.port,
                   "state": state_name(m.state), "inc": m.incarnation})
        })
        .collect();
    let st = node.stats();
    json!({"members": rows, "num_alive": node.num_members(), "health": node.health_score(),
           "sent_packets": st.packets_sent, "sent_bytes": st.bytes_sent, "stream_sent_bytes": st.stream_bytes_sent,
           "push_pulls": st.push_pulls, "streams_accepted": st.streams_accepted})
}

/// Runs the peer until `quit`; after stdin closes it keeps running until killed, like the Go peer.
pub async fn run(args: PeerArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let mut opts = match args.preset.as_str() {
        "lan" => Options::lan(args.name.clone()),
        "wan" => Options::wan(args.name.clone()),
        "local" => Options::local(args.name.clone()),
        other => bail!("--config must be lan, wan or local, not {other:?}"),
    };
    opts = opts.bind(args.bind);
    opts.config.auto_rejoin_interval = args.rejoin_interval_secs.map(Duration::from_secs);
    if let Some(m) = args.suspicion_mult {
        opts.config.suspicion_mult = m;
    }
    if let Some(s) = args.gossip_to_the_dead_secs {
        opts.config.gossip_to_the_dead_time = Duration::from_secs(s);
    }
    if let Some(s) = args.pushpull_secs {
        opts.config.push_pull_interval = Duration::from_secs(s);
    }
    if args.go_accusations {
        opts.config.tell_the_accused = false;
    }
    let inner: Arc<dyn Transport> =
        Arc::new(NetTransport::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?);
    let with_faults = args.faults || args.udp_drop > 0.0 || args.udp_delay_ms > 0;
    let faults = with_faults.then(|| Arc::new(Faults::default()));
    let transport: Arc<dyn Transport> = match &faults {
        Some(f) => {
            f.set_drop(args.udp_drop);
            f.set_delay(Duration::from_millis(args.udp_delay_ms));
            Arc::new(FaultyTransport::new(inner, f.clone()))
        }
        None => inner,
    };
    let node = Memberlist::with_transport(opts, transport).await.context("starting the node")?;
    let me = node.name().to_string();
    emit(
        start,
        &me,
        "ready",
        json!({"addr": node.advertise_addr().ip().to_string(), "port": node.advertise_addr().port()}),
    );

    let mut events = node.events()?;
    let (n2, me2) = (node.clone(), me.clone());
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let (name, m) = match &ev {
                Event::NodeJoined(m) => ("join", m),
                Event::NodeLeft(m) => ("leave", m),
                Event::NodeUpdated(m) => ("update", m),
                _ => continue,
            };
            emit(start, &me2, name, json!({"name": m.name, "state": state_name(m.state), "inc": m.incarnation}));
        }
        drop(n2);
    });
    if args.interval_ms > 0 {
        let (n3, me3) = (node.clone(), me.clone());
        let period = Duration::from_millis(args.interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                emit(start, &me3, "members", table(&n3));
            }
        });
    }
    if !args.join.is_empty() {
        let r = node.join(&args.join).await;
        emit(start, &me, "joined", json!({"contacted": r.as_ref().ok(), "err": r.err().map(|e| e.to_string())}));
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        let (cmd, arg) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        match cmd {
            "" => {}
            "members" => emit(start, &me, "members", table(&node)),
            "join" => {
                let seeds: Result<Vec<SocketAddr>, std::net::AddrParseError> = arg.split(',').map(str::parse).collect();
                let r = match seeds {
                    Ok(s) => node.join(&s).await.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("bad address: {e}")),
                };
                emit(start, &me, "joined", json!({"contacted": r.as_ref().ok(), "err": r.err()}));
            }
            "leave" => {
                let r = node.leave(Duration::from_secs(2)).await;
                emit(start, &me, "left", json!({"err": r.err().map(|e| e.to_string())}));
            }
            "udp-drop" | "udp-delay" => {
                let set = match (&faults, cmd) {
                    (None, _) => Err("start the peer with --faults".to_string()),
                    (Some(f), "udp-drop") => arg.parse::<f64>().map(|x| f.set_drop(x)).map_err(|e| e.to_string()),
                    (Some(f), _) => {
                        arg.parse::<u64>().map(|ms| f.set_delay(Duration::from_millis(ms))).map_err(|e| e.to_string())
                    }
                };
                match set {
                    Ok(()) => emit(start, &me, "knob", json!({ cmd: arg })),
                    Err(e) => emit(start, &me, "error", json!({"error": format!("{cmd}: {e}")})),
                }
            }
            "quit" | "shutdown" => {
                let _ = node.shutdown().await;
                emit(start, &me, "bye", json!({}));
                return Ok(ExitCode::SUCCESS);
            }
            other => emit(start, &me, "error", json!({"error": format!("unknown command {other}")})),
        }
    }
    // Stdin closed: keep running until killed.
    std::future::pending::<()>().await;
    Ok(ExitCode::SUCCESS)
}

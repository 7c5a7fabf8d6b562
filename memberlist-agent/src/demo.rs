//! `memberlist demo`: a real cluster on loopback in one process — join, a crash, a leave — with
//! a live table on a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use memberlist::{Event, Memberlist, NodeState, Options};

use crate::api::member_json;
use crate::members::table;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Cluster size (at least 3).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
}

fn opts(i: usize) -> Options {
    Options::local(format!("node-{i}")).meta(format!("role=demo-{i}")).configure(|c| {
        c.probe_interval = Duration::from_millis(300);
        c.probe_timeout = Duration::from_millis(100);
        c.gossip_interval = Duration::from_millis(50);
        c.suspicion_mult = 3;
        c.push_pull_interval = Duration::from_secs(5);
    })
}

struct Screen {
    tty: bool,
    started: Instant,
    log: Vec<String>,
}

impl Screen {
    fn say(&mut self, line: String) {
        let stamped = format!("[{:>6.2}s] {line}", self.started.elapsed().as_secs_f64());
        if self.tty {
            self.log.push(stamped);
        } else {
            println!("{stamped}");
        }
    }

    fn draw(&self, observer: &Memberlist) {
        if !self.tty {
            return;
        }
        let mut rows: Vec<_> = observer.all_members().iter().map(member_json).collect();
        rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        print!("\x1b[2J\x1b[H");
        println!("memberlist demo — the cluster as {} sees it\n", observer.name());
        println!("{}\n", table(&rows));
        for l in self.log.iter().rev().take(12).rev() {
            println!("{l}");
        }
    }
}

async fn until(
    screen: &Screen,
    observer: &Memberlist,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            bail!("gave up after {limit:?}");
        }
        screen.draw(observer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    screen.draw(observer);
    Ok(start.elapsed())
}

fn state(n: &Memberlist, name: &str) -> Option<NodeState> {
    n.all_members().into_iter().find(|m| m.name == name).map(|m| m.state)
}

pub async fn run(args: &DemoArgs) -> Result<ExitCode> {
    if args.nodes < 3 {
        bail!("--nodes must be at least 3 (one crashes, one leaves)");
    }
    let mut screen = Screen { tty: std::io::stdout().is_terminal(), started: Instant::now(), log: Vec::new() };
    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let n = Memberlist::create(opts(i)).await?;
        screen.say(format!("started {} on {}", n.name(), n.advertise_addr()));
        nodes.push(n);
    }
    let observer = nodes[0].clone();
    let mut events = observer.events()?;
    let seed = observer.advertise_addr();
    for n in &nodes[1..] {
        n.join(&[seed]).await?;
    }
    let n = args.nodes;
    let converge =
        until(&screen, &observer, Duration::from_secs(30), || nodes.iter().all(|m| m.num_members() == n)).await?;
    screen.say(format!("all {n} nodes see {n} members: converged in {:.2}s", converge.as_secs_f64()));

    let crashed = nodes[n - 1].name().to_owned();
    nodes[n - 1].shutdown().await?;
    screen.say(format!("{crashed} crashed (stopped without leaving)"));
    let live = &nodes[..n - 1];
    let suspect = until(&screen, &observer, Duration::from_secs(30), || {
        live.iter().any(|m| matches!(state(m, &crashed), Some(NodeState::Suspect | NodeState::Dead)))
    })
    .await?;
    screen.say(format!("{crashed} suspected after {:.2}s", suspect.as_secs_f64()));
    let dead = until(&screen, &observer, Duration::from_secs(60), || {
        live.iter().all(|m| state(m, &crashed) == Some(NodeState::Dead))
    })
    .await?;
    screen.say(format!("{crashed} dead at every node after {:.2}s", (suspect + dead).as_secs_f64()));

    let leaver = nodes[n - 2].name().to_owned();
    nodes[n - 2].leave(Duration::from_secs(5)).await?;
    screen.say(format!("{leaver} left gracefully"));
    let left = until(&screen, &observer, Duration::from_secs(30), || {
        nodes[..n - 2].iter().all(|m| state(m, &leaver) == Some(NodeState::Left))
    })
    .await?;
    screen.say(format!("{leaver} seen as left (not dead) everywhere after {:.2}s", left.as_secs_f64()));

    // What the first node heard, in order.
    let mut heard = Vec::new();
    while let Some(e) = events.try_recv() {
        match e {
            Event::NodeJoined(m) => heard.push(format!("join {}", m.name)),
            Event::NodeSuspected(m) => heard.push(format!("suspect {}", m.name)),
            Event::NodeLeft(m) => heard.push(format!("{} {}", m.state, m.name)),
            _ => {}
        }
    }
    screen.draw(&observer);
    println!();
    println!("events at {}: {}", observer.name(), heard.join(", "));
    println!(
        "timings: converge {:.2}s, crash → suspect {:.2}s, crash → dead everywhere {:.2}s, leave → left everywhere {:.2}s",
        converge.as_secs_f64(),
        suspect.as_secs_f64(),
        (suspect + dead).as_secs_f64(),
        left.as_secs_f64()
    );
    for n in &nodes {
        n.shutdown().await?;
    }
    Ok(ExitCode::SUCCESS)
}

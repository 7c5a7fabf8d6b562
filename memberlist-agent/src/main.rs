//! `memberlist`: the command-line face of memberlist-rs.

mod agent;
mod api;
mod bench;
mod decode;
mod demo;
mod heap;
mod http;
mod join;
mod keys;
mod members;
mod peer;
mod procs;
mod restart;
mod rolling;
mod settings;
mod sim;
mod soak;
mod svg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// memberlist-rs: gossip-based membership and failure detection, wire-compatible with
/// HashiCorp's Go memberlist.
#[derive(Debug, Parser)]
#[command(name = "memberlist", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node until SIGINT or SIGTERM (which make it leave gracefully), with an HTTP API
    /// (default 127.0.0.1:7947).
    Agent(Box<settings::AgentArgs>),
    /// List the members a running agent sees, like `consul members`.
    Members(members::MembersArgs),
    /// Start a small cluster on loopback and show a crash and a leave.
    Demo(demo::DemoArgs),
    /// Print the full decode tree of a captured memberlist packet or stream as JSON.
    Decode(decode::DecodeArgs),
    /// Print a new random 32-byte (AES-256) key in base64, for --key and Go's SecretKey.
    Keygen,
    /// Run a simulator scenario.
    Sim(sim::SimArgs),
    /// Time joins and crash detection of real Rust nodes and real Go memberlist peers.
    Bench(bench::BenchArgs),
    /// Churn soak: Rust and Go peer processes killed (-9) and restarted in place one after
    /// another, then convergence and memory growth checked.
    Soak(soak::SoakArgs),
    /// Go memberlist #311 with real processes: every process killed (-9) and restarted in
    /// place within seconds, then how long until every one is alive everywhere again.
    MassRestart(restart::MassRestartArgs),
    /// Kubernetes rolling restarts with real processes: a kill every few seconds and a new
    /// member under a new name on the address of the one killed before, then ghosts counted.
    RollingRestart(rolling::RollingRestartArgs),
    /// One node driven by line commands on stdin, reporting JSON lines on stdout (the Rust twin
    /// of the Go test peer, for fault tests).
    #[command(hide = true)]
    Peer(Box<peer::PeerArgs>),
}

/// A long-running command, with the heap trimmer beside it (see [`heap`]).
async fn trimmed<T>(command: impl std::future::Future<Output = T>) -> T {
    heap::spawn_trimmer();
    command.await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = match cli.command {
        Command::Agent(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(trimmed(agent::run(*args)))),
        Command::Members(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(members::run(&args))),
        Command::Demo(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(trimmed(demo::run(&args)))),
        Command::Decode(args) => decode::run(&args),
        Command::Keygen => keys::keygen().map(|k| {
            println!("{k}");
            ExitCode::SUCCESS
        }),
        Command::Sim(args) => sim::run(&args),
        // One node per process: one thread is plenty (and keeps the process small).
        Command::Peer(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(trimmed(peer::run(*args)))),
        Command::Bench(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(trimmed(bench::run(&args)))),
        Command::Soak(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(soak::run(&args))),
        Command::MassRestart(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(restart::run(&args))),
        Command::RollingRestart(args) => runtime().map_err(Into::into).and_then(|rt| rt.block_on(rolling::run(&args))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `memberlist`: the command-line face of memberlist-rs.

mod decode;
mod keys;

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
    /// Print the full decode tree of a captured memberlist packet or stream as JSON.
    Decode(decode::DecodeArgs),
    /// Print a new random 32-byte (AES-256) key in base64, for --key and Go's SecretKey.
    Keygen,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Keygen => keys::keygen().map(|k| {
            println!("{k}");
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

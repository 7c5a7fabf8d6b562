//! `memberlist decode`: the full decode tree of a captured packet or stream.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use memberlist_proto::wire::inspect::{inspect_packet, inspect_stream, InspectOptions, Inspection};
use memberlist_proto::wire::Keyring;

use crate::keys::parse_key;

/// Bytes captured from live Go memberlist peers (the project's golden test vectors).
const SAMPLES: &str = include_str!("../../memberlist-proto/tests/data/wire-vectors.json");

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// A key to decrypt with, base64 or hex (16, 24 or 32 bytes); repeat for a keyring.
    #[arg(long = "key", value_name = "BASE64|HEX")]
    keys: Vec<String>,
    /// The label to authenticate with when the input carries no label header (stream replies).
    #[arg(long, default_value = "")]
    label: String,
    /// Decode a TCP stream (what one side wrote on a connection) instead of a UDP packet.
    #[arg(long)]
    stream: bool,
    /// The input is a connection of Grafana dskit's TCP transport (Loki, Mimir, Tempo): its
    /// framing (packet or stream, sender address, MD5 digest) is shown first, then what it
    /// carries.
    #[arg(long)]
    dskit: bool,
    /// Read raw binary from stdin instead of hex.
    #[arg(long, conflicts_with = "samples")]
    raw: bool,
    /// Decode the built-in samples captured from live Go memberlist nodes instead of input.
    #[arg(long)]
    samples: bool,
    /// The input as hex (whitespace and a leading 0x allowed), or - for stdin.
    #[arg(value_name = "HEX|-", required_unless_present = "samples")]
    input: Option<String>,
}

fn read_input(args: &DecodeArgs) -> Result<Vec<u8>> {
    let text = match args.input.as_deref() {
        Some("-") | None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("reading stdin")?;
            if args.raw {
                return Ok(buf);
            }
            String::from_utf8(buf).context("stdin is not hex text (use --raw for binary)")?
        }
        Some(s) => s.to_owned(),
    };
    let cleaned: String = text.split_whitespace().collect::<String>();
    let cleaned = cleaned.strip_prefix("0x").unwrap_or(&cleaned);
    hex::decode(cleaned).context("input is not valid hex")
}

fn keyring(keys: &[String]) -> Result<Option<Keyring>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let keys = keys.iter().map(|k| parse_key(k)).collect::<Result<Vec<_>>>()?;
    Ok(Some(Keyring::new(keys)?))
}

fn hint(bytes: &[u8], args: &DecodeArgs) -> Option<&'static str> {
    let first = *bytes.first()?;
    match (args.stream, args.keys.is_empty(), first) {
        (false, _, 10) => Some("type 10 starts an encrypted stream frame: try --stream"),
        (false, true, 0 | 1) if bytes.len() >= 29 => Some("this may be an encrypted packet: pass --key"),
        (true, true, 10) => Some("the stream is encrypted: pass --key"),
        _ => None,
    }
}

fn print(insp: &Inspection) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&insp.to_json())?);
    Ok(())
}

pub fn run(args: &DecodeArgs) -> Result<ExitCode> {
    if args.samples {
        return run_samples();
    }
    let bytes = read_input(args)?;
    let opts = InspectOptions { keyring: keyring(&args.keys)?, label: args.label.clone(), ..Default::default() };
    let insp = if args.dskit {
        inspect_dskit(&bytes, &opts)?
    } else if args.stream {
        inspect_stream(&bytes, &opts)
    } else {
        inspect_packet(&bytes, &opts)
    };
    print(&insp)?;
    match &insp.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => match hint(&bytes, args) {
            Some(h) => bail!("cannot decode {}: {e} ({h})", if args.stream { "stream" } else { "packet" }),
            None => bail!("cannot decode {}: {e}", if args.stream { "stream" } else { "packet" }),
        },
    }
}

/// A dskit connection: a `dskit` layer, then the packet's or the stream's own tree.
fn inspect_dskit(bytes: &[u8], opts: &InspectOptions) -> Result<Inspection> {
    let conn =
        memberlist::parse_dskit_connection(bytes).map_err(|e| anyhow::anyhow!("cannot decode dskit framing: {e}"))?;
    let (layer, mut insp) = match conn {
        memberlist::DskitConnection::Packet { from, data, digest_ok } => (
            serde_json::json!({"layer": "dskit", "kind": "packet", "from": from, "length": data.len(), "digestMatches": digest_ok}),
            inspect_packet(data, opts),
        ),
        memberlist::DskitConnection::Stream(rest) => {
            (serde_json::json!({"layer": "dskit", "kind": "stream"}), inspect_stream(rest, opts))
        }
    };
    insp.layers.insert(0, layer);
    Ok(insp)
}

fn run_samples() -> Result<ExitCode> {
    let samples: Vec<serde_json::Value> = serde_json::from_str(SAMPLES)?;
    let mut failed = 0;
    for s in &samples {
        let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
        let bytes = hex::decode(field("hex"))?;
        let key = field("key_hex");
        let opts = InspectOptions {
            keyring: keyring(&if key.is_empty() { vec![] } else { vec![key.clone()] })?,
            label: field("label"),
            ..Default::default()
        };
        let insp =
            if field("dir").starts_with("udp") { inspect_packet(&bytes, &opts) } else { inspect_stream(&bytes, &opts) };
        println!("# {} — {} ({} bytes, {})", field("id"), field("title"), bytes.len(), field("dir"));
        if !key.is_empty() {
            println!("# key {key}");
        }
        println!("{}", serde_json::to_string(&insp.to_json())?);
        if let Some(e) = insp.error {
            println!("# error: {e}");
            failed += 1;
        }
        println!();
    }
    println!("{} samples captured from Go memberlist decoded, {failed} failed", samples.len());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

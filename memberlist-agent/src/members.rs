//! `memberlist members`: the cluster as a running agent sees it, like `consul members`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;

use crate::http::call;
use crate::settings::DEFAULT_HTTP;

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The agent's HTTP API.
    #[arg(long, default_value = DEFAULT_HTTP)]
    http: SocketAddr,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    /// Only members in this state: alive, suspect, dead or left.
    #[arg(long, value_name = "STATE")]
    status: Option<String>,
    /// Bearer token of the API.
    #[arg(long)]
    token: Option<String>,
}

/// The Meta column: Serf tags as `k=v,…` when the metadata holds them, else the metadata.
fn meta_cell(m: &Value) -> String {
    match m["tags"].as_object() {
        Some(tags) if !tags.contains_key("error") => {
            tags.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")
        }
        _ => m["meta"].as_str().unwrap_or("").to_owned(),
    }
}

/// Renders members as an aligned table.
pub fn table(members: &[Value]) -> String {
    let rows: Vec<[String; 5]> = members
        .iter()
        .map(|m| {
            [
                m["name"].as_str().unwrap_or("").to_owned(),
                format!("{}:{}", m["addr"].as_str().unwrap_or(""), m["port"]),
                m["state"].as_str().unwrap_or("").to_owned(),
                m["incarnation"].to_string(),
                meta_cell(m),
            ]
        })
        .collect();
    let header = ["Node", "Address", "Status", "Incarnation", "Meta"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(&header.map(str::to_owned));
    for r in &rows {
        out.push('\n');
        out.push_str(&line(r));
    }
    out
}

pub async fn run(args: &MembersArgs) -> Result<ExitCode> {
    let (status, body) = call(args.http, "GET", "/v1/members", args.token.as_deref(), b"").await?;
    if status != 200 {
        bail!("the agent answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let mut members: Vec<Value> = serde_json::from_slice(&body)?;
    if let Some(s) = &args.status {
        if !["alive", "suspect", "dead", "left"].contains(&s.as_str()) {
            bail!("--status must be alive, suspect, dead or left");
        }
        members.retain(|m| m["state"] == s.as_str());
    }
    members.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&members)?);
    } else {
        println!("{}", table(&members));
    }
    Ok(ExitCode::SUCCESS)
}

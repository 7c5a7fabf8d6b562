//! The agent's HTTP server as clients meet it, over real sockets: a slow client, an oversized
//! body, missing and wrong tokens, keep-alive, and an events stream that stays open while
//! members join and leave.

#[path = "support/agent.rs"]
#[allow(dead_code)]
mod agent;
#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use agent::{bin, post, Agent};
use serde_json::Value;

/// Reads one response off a kept-alive connection: status and body (by Content-Length).
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("status line {line:?}")).parse().unwrap();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let (a, _) = Agent::start("slow", None, &[]);
    // Half a request's headers, then nothing.
    let mut slow = TcpStream::connect(a.http).unwrap();
    slow.write_all(b"GET /v1/members HTTP/1.1\r\nHost: x\r\nX-Dribble: ").unwrap();
    let started = Instant::now();
    // Meanwhile the server answers everyone else.
    for _ in 0..5 {
        assert_eq!(a.get("/v1/members", None).0, 200);
    }
    // The server closes the slow connection once the header timeout (10 s) has passed.
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let r = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(r.is_ok(), "closed cleanly, not timed out on our side: {r:?} after {waited:?}");
    assert!(rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"), "{rest:?}");
    assert!(waited >= Duration::from_secs(8) && waited < Duration::from_secs(25), "cut off after {waited:?}");
    assert_eq!(a.get("/v1/members", None).0, 200);
}

#[test]
fn an_oversized_body_is_refused_with_413_and_a_large_one_is_read() {
    let (a, _) = Agent::start("big", None, &[]);
    // 2 MiB announced: refused from the headers, before the body is read.
    let mut s = TcpStream::connect(a.http).unwrap();
    write!(s, "POST /v1/broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 2 << 20)
        .unwrap();
    let (status, _) = read_response(&mut BufReader::new(s));
    assert_eq!(status, 413);
    // Just under the limit (1 MiB) is read in full and parsed: not JSON, so 400.
    let body = "x".repeat((1 << 20) - 16);
    let (status, text) = post(a.http, "/v1/join", &body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("host:port"), "{text}");
}

#[test]
fn missing_or_wrong_tokens_are_refused_on_every_route_but_health() {
    let (a, _) = Agent::start("tok", None, &["--token", "s3cret"]);
    let auth_get = |path: &str, auth: &str| {
        let mut s = TcpStream::connect(a.http).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
        read_response(&mut BufReader::new(s))
    };
    for path in ["/v1/members", "/v1/self", "/metrics", "/v1/events", "/nope"] {
        for auth in
            ["", "Authorization: Bearer wrong\r\n", "Authorization: Basic czNjcmV0\r\n", "Authorization: s3cret\r\n"]
        {
            let (status, body) = auth_get(path, auth);
            assert_eq!(status, 401, "{path} with {auth:?}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "missing or wrong bearer token");
        }
    }
    // POSTs too, before their bodies are looked at.
    assert_eq!(post(a.http, "/v1/leave", "").0, 401);
    assert_eq!(post(a.http, "/v1/broadcast", "hi").0, 401);
    // The right token opens every route; health needs none.
    assert_eq!(auth_get("/v1/members", "Authorization: Bearer s3cret\r\n").0, 200);
    assert_eq!(auth_get("/nope", "Authorization: Bearer s3cret\r\n").0, 404);
    assert_eq!(auth_get("/v1/health", "").0, 200);
    // The command line's client sends the token.
    let http = a.http.to_string();
    let out = Command::new(bin()).args(["members", "--json", "--http", &http, "--token", "s3cret"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let members: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(members[0]["name"], "tok");
    let out = Command::new(bin()).args(["members", "--http", &http, "--token", "wrong"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn one_connection_carries_several_requests_and_errors_are_json() {
    let (a, _) = Agent::start("keep", None, &[]);
    let s = TcpStream::connect(a.http).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(w, "GET /v1/self HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut r);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["name"], "keep");
    write!(w, "DELETE /v1/members HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut r);
    assert_eq!(status, 405);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "method not allowed");
    write!(w, "GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut r);
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "not found");
    write!(w, "POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]").unwrap();
    assert_eq!(read_response(&mut r).0, 400);
    write!(w, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut r);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["members"]["alive"], 1);
}

/// The next SSE event on the stream as (event name, data JSON); keep-alive comments skipped.
fn next_event(r: &mut BufReader<TcpStream>) -> (String, Value) {
    let (mut kind, mut line) = (String::new(), String::new());
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the events stream ended");
        if let Some(k) = line.trim_end().strip_prefix("event: ") {
            kind = k.to_owned();
        } else if let Some(d) = line.trim_end().strip_prefix("data: ") {
            return (kind, serde_json::from_str(d).unwrap());
        }
    }
}

/// Waits for an event of this kind about this member, passing over others.
fn wait_event(r: &mut BufReader<TcpStream>, kind: &str, name: &str) -> Value {
    loop {
        let (k, v) = next_event(r);
        if k == kind && v["name"] == name {
            return v;
        }
    }
}

#[test]
fn the_events_stream_stays_open_while_members_join_and_leave() {
    let (a, seed) = Agent::start("ev-a", None, &["--token", "t"]);
    let mut s = TcpStream::connect(a.http).unwrap();
    write!(s, "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");

    let (mut b, _) = Agent::start("ev-b", Some(seed), &[]);
    let joined = wait_event(&mut r, "join", "ev-b");
    assert_eq!(joined["state"], "alive");
    assert_eq!(b.sigterm().code(), Some(0));
    let left = wait_event(&mut r, "leave", "ev-b");
    assert_eq!(left["state"], "left");
    // Still open: a third member's arrival comes through on the same stream.
    let (c, _) = Agent::start("ev-c", Some(seed), &[]);
    wait_event(&mut r, "join", "ev-c");
    drop(c);
}

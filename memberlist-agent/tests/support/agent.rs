//! A running `memberlist agent` process for the tests: start it, call its HTTP API with a
//! plain socket (the tests check the bytes a client sees), stop it.

use crate::ports::free_port;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memberlist")
}

pub struct Agent {
    pub child: Child,
    pub http: SocketAddr,
}

impl Agent {
    pub fn start(name: &str, join: Option<u16>, extra: &[&str]) -> (Agent, u16) {
        let port = free_port();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["agent", "--name", name, "--bind", &format!("127.0.0.1:{port}"), "--http", &http.to_string()])
            .args(["--config", "local"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !extra.contains(&"--tag") {
            cmd.args(["--meta", &format!("role={name}")]);
        }
        if let Some(seed) = join {
            cmd.args(["--join", &format!("127.0.0.1:{seed}")]);
        }
        let agent = Agent { child: cmd.spawn().unwrap(), http };
        agent.wait_for_api(name);
        (agent, port)
    }

    /// Waits until the agent answers HTTP (`/v1/health`), not merely until something accepts
    /// a connection on its port: a bare connect can succeed against a socket that is not the
    /// agent's (Linux even connects a client to itself when its ephemeral port is the one
    /// dialled), which made a following request fail with "connection reset".
    pub fn wait_for_api(&self, name: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while self.try_get("/v1/health", None).is_err() {
            assert!(Instant::now() < end, "{name}'s API never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One request: (status, body), or why it failed.
    pub fn try_get(&self, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http)?;
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let bad = || std::io::Error::other(format!("not an HTTP response: {out:?}"));
        let (head, body) = out.split_once("\r\n\r\n").ok_or_else(bad)?;
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        Ok((status, body.to_owned()))
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.try_get(path, token).unwrap()
    }

    pub fn members(&self) -> Vec<Value> {
        let out = Command::new(bin()).args(["members", "--json", "--http", &self.http.to_string()]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn post(http: SocketAddr, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_owned())
}

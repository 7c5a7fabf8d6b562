//! The deployment files in docs/deploy and the commands in docs/deploy.md: they parse, they use
//! only flags and settings the agent has, and the settings file starts a real agent.

#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

use ports::free_port;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value as Yaml;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memberlist")
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(docs().join(rel)).unwrap_or_else(|e| panic!("docs/{rel}: {e}"))
}

/// Every `--flag` that `memberlist agent --help` documents.
fn agent_flags() -> BTreeSet<String> {
    let out = Command::new(bin()).args(["agent", "--help"]).output().unwrap();
    assert!(out.status.success());
    flags_in(&String::from_utf8_lossy(&out.stdout))
}

fn flags_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[' || c == ']' || c == '`') {
        let flag = word.split('=').next().unwrap_or_default();
        let name = flag.strip_prefix("--").unwrap_or_default();
        if name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        {
            found.insert(flag.to_owned());
        }
    }
    found
}

fn assert_known(flags: &BTreeSet<String>, known: &BTreeSet<String>, what: &str) {
    let unknown: Vec<&String> = flags.difference(known).collect();
    assert!(unknown.is_empty(), "{what} uses flags the agent does not have: {unknown:?}");
}

#[test]
fn the_help_lists_the_deployment_flags() {
    let known = agent_flags();
    for f in ["--bind", "--advertise", "--join", "--retry-join", "--retry-interval", "--retry-max", "--key-file"] {
        assert!(known.contains(f), "{f} missing from the help: {known:?}");
    }
    let out = Command::new(bin()).args(["agent", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("0.0.0.0:7946") && help.contains("private IP"), "--bind says what is advertised");
}

#[test]
fn the_kubernetes_manifest_parses_and_uses_only_agent_flags() {
    let text = read("deploy/kubernetes.yaml");
    let docs: Vec<Yaml> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Service", "StatefulSet"]);
    let service = &docs[0];
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"), "a headless Service");
    assert_eq!(service["spec"]["publishNotReadyAddresses"].as_bool(), Some(true));
    let protocols: BTreeSet<&str> =
        service["spec"]["ports"].as_sequence().unwrap().iter().filter_map(|p| p["protocol"].as_str()).collect();
    assert_eq!(protocols, BTreeSet::from(["TCP", "UDP"]), "gossip needs both");
    let set = &docs[1];
    assert_eq!(set["spec"]["serviceName"].as_str(), service["metadata"]["name"].as_str());
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> =
        container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().expect("string args").to_owned()).collect();
    assert_eq!(args[0], "agent");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    assert_known(&args.iter().filter(|a| a.starts_with("--")).cloned().collect(), &agent_flags(), "kubernetes.yaml");
    assert_eq!(value("--bind").as_deref(), Some("0.0.0.0:7946"));
    let seeds = value("--retry-join").expect("seeds by the Service's name");
    let svc = service["metadata"]["name"].as_str().unwrap();
    assert!(seeds.starts_with(&format!("{svc}.")) && seeds.ends_with(".svc.cluster.local"), "{seeds}");
    assert!(value("--label").is_some_and(|l| !l.is_empty()), "a label per cluster");
    // The probe reaches the API the agent opens, at the path that answers 503 until joined.
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"].as_str(), Some("/v1/health"));
    assert_eq!(value("--http"), Some(format!("0.0.0.0:{}", probe["port"].as_u64().unwrap())));
    // The key and the token come from the mounted Secret.
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    for flag in ["--key-file", "--token-file"] {
        assert!(value(flag).is_some_and(|p| p.starts_with(mount)), "{flag} reads the Secret mounted at {mount}");
    }
    let volume = &set["spec"]["template"]["spec"]["volumes"][0];
    assert!(volume["secret"]["secretName"].as_str().is_some());
    // Every $(VAR) in the arguments is defined in the container's environment.
    let env: BTreeSet<&str> =
        container["env"].as_sequence().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    for a in &args {
        if let Some(rest) = a.split("$(").nth(1) {
            let var = rest.split(')').next().unwrap();
            assert!(env.contains(var), "{var} is not defined in the container's env");
        }
    }
}

#[test]
fn the_systemd_unit_and_the_dockerfile_use_only_agent_flags() {
    let known = agent_flags();
    let unit = read("deploy/memberlist.service");
    let mut sections = BTreeSet::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with('[') {
            assert!(line.ends_with(']'), "{line}");
            sections.insert(line.to_owned());
        } else {
            assert!(line.contains('='), "not a key=value line: {line}");
        }
    }
    assert_eq!(sections, BTreeSet::from(["[Install]".into(), "[Service]".into(), "[Unit]".into()]));
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    assert!(exec.contains(" agent "), "{exec}");
    assert_known(&flags_in(exec), &known, "memberlist.service");
    assert!(unit.contains("KillSignal=SIGTERM"), "SIGTERM is the graceful leave");

    let dockerfile = read("deploy/Dockerfile");
    let cmd = dockerfile.lines().find_map(|l| l.strip_prefix("CMD ")).expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD is a JSON array");
    assert_eq!(cmd[..3], ["agent", "--bind", "0.0.0.0:7946"]);
    assert_known(&flags_in(&cmd.join(" ")), &known, "Dockerfile");
    assert!(dockerfile.contains("EXPOSE 7946/tcp 7946/udp"), "both gossip protocols");
}

#[test]
fn the_commands_in_deploy_md_use_only_agent_flags() {
    let known = agent_flags();
    let text = read("deploy.md");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("memberlist agent")).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let cmd = l.split("memberlist agent").nth(1).unwrap();
        assert_known(&flags_in(cmd), &known, &format!("deploy.md: {l}"));
    }
    for f in flags_in(&text) {
        assert!(known.contains(&f) || f == "--network", "deploy.md mentions {f}, which the agent lacks");
    }
}

#[test]
fn the_settings_file_starts_an_agent() {
    let text = read("deploy/agent.toml");
    let table: toml::Table = toml::from_str(&text).expect("valid TOML");
    // Every key is a flag of the same name (`keys` is the repeatable `--key`).
    let known = agent_flags();
    for key in table.keys() {
        let flag = if key == "keys" { "--key".to_owned() } else { format!("--{}", key.replace('_', "-")) };
        assert!(known.contains(&flag), "agent.toml key {key} has no flag {flag}");
    }
    // Run it, with its secrets in a scratch directory and this machine's loopback (flags win
    // over the file): it starts, tries its seeds, and is not ready until a join succeeds.
    let dir = std::env::temp_dir().join(format!("memberlist-deploy-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(bin()).arg("keygen").output().unwrap();
    std::fs::write(dir.join("gossip.key"), &out.stdout).unwrap();
    let local = text.replace("/etc/memberlist/", &format!("{}/", dir.display()));
    let file = dir.join("agent.toml");
    std::fs::write(&file, local).unwrap();
    let port = free_port();
    let http = free_port();
    let mut child = Command::new(bin())
        .args(["agent", "--config-file", file.to_str().unwrap()])
        .args(["--bind", &format!("127.0.0.1:{port}"), "--http", &format!("127.0.0.1:{http}")])
        .args(["--retry-join", &format!("127.0.0.1:{}", free_port())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(code) = health(http) {
            break code;
        }
        assert!(Instant::now() < end, "the agent never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(status, 503, "seeds given, none reachable: not ready");
}

fn health(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

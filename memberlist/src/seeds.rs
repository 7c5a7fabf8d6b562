//! Seeds as Go's `Join` takes them: `[name/]host[:port]`.
//!
//! - An optional leading `name/` is the node expected at that address (Go carries it in its
//!   `Address.Name` and does not check it; neither do we, but it names the seed in errors).
//! - Without a port, the node's own bind port is used, as Go uses `Config.BindPort` (so a
//!   cluster on port 8301 needs no port in its seeds).
//! - An IP literal (`10.0.0.1`, `::1`, `[::1]`, `[::1]:7946`) is used as it is; anything else
//!   is a DNS name, resolved each time it is used, and **every** address it resolves to is
//!   tried (a Kubernetes headless Service lists every ready pod).

use std::net::{IpAddr, SocketAddr};

/// One parsed seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seed {
    /// The text as given, for messages.
    pub text: String,
    /// The expected node name, from `name/host:port`.
    pub name: Option<String>,
    /// The host: an IP literal or a DNS name, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Seed {
    /// Parses `[name/]host[:port]`, with `default_port` for a seed that has none.
    pub(crate) fn parse(text: &str, default_port: u16) -> Result<Seed, String> {
        let text = text.trim();
        let (name, rest) = match text.split_once('/') {
            Some(("", _)) => return Err(format!("{text}: empty node name provided")),
            Some((name, rest)) => (Some(name.to_owned()), rest),
            None => (None, text),
        };
        if rest.is_empty() {
            return Err(format!("{text}: no host"));
        }
        let (host, port) = if has_port(rest) {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{text}: missing port"))?;
            let port = port.parse::<u16>().map_err(|_| format!("{text}: invalid port {port:?}"))?;
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        } else {
            (rest.trim_start_matches('[').trim_end_matches(']'), default_port)
        };
        if host.is_empty() {
            return Err(format!("{text}: no host"));
        }
        Ok(Seed { text: text.to_owned(), name, host: host.to_owned(), port })
    }

    /// A seed given as an address.
    pub(crate) fn from_addr(addr: SocketAddr) -> Seed {
        Seed { text: addr.to_string(), name: None, host: addr.ip().to_string(), port: addr.port() }
    }

    /// The seed's address when its host is an IP literal.
    pub(crate) fn literal(&self) -> Option<SocketAddr> {
        self.host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Every address the seed stands for, resolved now (an IP literal without a lookup).
    pub(crate) async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        if let Some(a) = self.literal() {
            return Ok(vec![a]);
        }
        let found = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("failed to resolve {}: {e}", self.text))?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for a in found {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(format!("failed to resolve {}: no addresses", self.text));
        }
        Ok(addrs)
    }
}

/// Go's `hasPort`: a bracketed IPv6 address has a port after `]:`; otherwise a single colon
/// means a port (a bare IPv6 address has several colons and no port).
fn has_port(s: &str) -> bool {
    if s.starts_with('[') {
        return match (s.rfind(':'), s.rfind(']')) {
            (Some(colon), Some(bracket)) => colon > bracket,
            _ => false,
        };
    }
    s.matches(':').count() == 1
}

/// Resolves every seed; returns the distinct addresses, each with the seed it came from, and
/// the errors of seeds that did not resolve.
pub(crate) async fn resolve_all(seeds: &[Seed]) -> (Vec<(SocketAddr, String)>, Vec<String>) {
    let mut addrs: Vec<(SocketAddr, String)> = Vec::new();
    let mut errors = Vec::new();
    for s in seeds {
        match s.resolve().await {
            Ok(found) => {
                for a in found {
                    if !addrs.iter().any(|(b, _)| *b == a) {
                        addrs.push((a, s.text.clone()));
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (addrs, errors)
}

#[cfg(test)]
mod tests {
    use super::Seed;

    fn parsed(s: &str) -> (Option<String>, String, u16) {
        let seed = Seed::parse(s, 8301).unwrap();
        (seed.name, seed.host, seed.port)
    }

    #[test]
    fn forms_go_accepts() {
        let none = None;
        assert_eq!(parsed("10.0.0.1"), (none.clone(), "10.0.0.1".into(), 8301));
        assert_eq!(parsed("10.0.0.1:8000"), (none.clone(), "10.0.0.1".into(), 8000));
        assert_eq!(parsed("::1"), (none.clone(), "::1".into(), 8301));
        assert_eq!(parsed("[::1]"), (none.clone(), "::1".into(), 8301));
        assert_eq!(parsed("[::1]:9"), (none.clone(), "::1".into(), 9));
        assert_eq!(parsed("fd00::7"), (none.clone(), "fd00::7".into(), 8301));
        assert_eq!(parsed("seed.example"), (none.clone(), "seed.example".into(), 8301));
        assert_eq!(parsed("seed.example:1234"), (none, "seed.example".into(), 1234));
        assert_eq!(parsed("node-a/10.0.0.1:7946"), (Some("node-a".into()), "10.0.0.1".into(), 7946));
        assert_eq!(parsed("node-b/seeds.svc"), (Some("node-b".into()), "seeds.svc".into(), 8301));
        assert_eq!(parsed("node-c/[fd00::1]:7"), (Some("node-c".into()), "fd00::1".into(), 7));
    }

    #[test]
    fn bad_seeds_say_why() {
        assert!(Seed::parse("/10.0.0.1", 1).unwrap_err().contains("empty node name"));
        assert!(Seed::parse("10.0.0.1:http", 1).unwrap_err().contains("invalid port"));
        assert!(Seed::parse("10.0.0.1:70000", 1).unwrap_err().contains("invalid port"));
        assert!(Seed::parse("", 1).unwrap_err().contains("no host"));
        assert!(Seed::parse("name/", 1).unwrap_err().contains("no host"));
        assert!(Seed::parse(":7946", 1).unwrap_err().contains("no host"));
    }

    #[test]
    fn literals_need_no_lookup() {
        assert_eq!(Seed::parse("10.0.0.1", 7946).unwrap().literal(), Some("10.0.0.1:7946".parse().unwrap()));
        assert_eq!(Seed::parse("[::1]:5", 7946).unwrap().literal(), Some("[::1]:5".parse().unwrap()));
        assert_eq!(Seed::parse("localhost", 7946).unwrap().literal(), None);
    }

    #[tokio::test]
    async fn a_name_resolves_to_addresses_with_the_port() {
        let seed = Seed::parse("localhost", 7000).unwrap();
        let addrs = seed.resolve().await.unwrap();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.port() == 7000 && a.ip().is_loopback()), "{addrs:?}");
        let err = Seed::parse("no-such-host.invalid", 1).unwrap().resolve().await.unwrap_err();
        assert!(err.starts_with("failed to resolve no-such-host.invalid"), "{err}");
    }
}

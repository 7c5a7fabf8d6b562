//! The address a node advertises when it is not told one, chosen as Go memberlist chooses it.
//!
//! Go's `NetTransport.FinalAdvertiseAddr` uses, in order:
//! 1. the advertise address the user gave;
//! 2. when bound to `0.0.0.0`, the host's private IP from go-sockaddr's `GetPrivateIP`, or the
//!    error "no private IP address found, and explicit IP not provided" when there is none;
//! 3. otherwise the bound IP.
//!
//! The port is the bound port. `GetPrivateIP` takes every address of every interface that is
//! up, drops the non-forwardable blocks of RFC 6890 (loopback, link-local, documentation
//! ranges, `0.0.0.0/8`, `240.0.0.0/4`, …), sorts what is left — addresses of the interface that
//! holds the IPv4 default route first, then IPv4 before IPv6, then the larger network first —
//! and keeps the first that lies in an RFC 6890 special-purpose block: in practice RFC 1918
//! (`10/8`, `172.16/12`, `192.168/16`), RFC 6598 (`100.64/10`) and, for IPv6, unique local
//! addresses (`fc00::/7`).
//!
//! One deliberate difference: Go advertises the unspecified address `::` itself when bound to
//! `::` (peers cannot reach it); we pick the private IPv6 address by the same rule instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// Interface name (`eth0`).
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length of its network (24 for a /24).
    pub prefix_len: u8,
    /// Whether the interface is up.
    pub up: bool,
}

/// The addresses of this host's interfaces and the name of the interface holding the IPv4
/// default route, as the address choice needs them.
#[derive(Debug, Clone, Default)]
pub struct HostInterfaces {
    /// Every interface address.
    pub addrs: Vec<InterfaceAddr>,
    /// The interface of the IPv4 default route, if any.
    pub default_interface: Option<String>,
}

/// Why no advertise address could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvertiseError {
    /// Bound to the unspecified address and no interface has a private address of that family.
    #[error("no private IP address found, and explicit IP not provided (bound to {bound}: set an advertise address)")]
    NoPrivateAddress {
        /// The bind address.
        bound: SocketAddr,
    },
    /// The interfaces could not be listed.
    #[error("failed to get interface addresses: {0}")]
    Interfaces(String),
}

/// The address to advertise for a node bound to `bound`, given an explicit `advertise` (whose
/// port 0 means the bound port) and this host's interfaces (read only when needed).
pub fn final_advertise_addr(
    bound: SocketAddr,
    advertise: Option<SocketAddr>,
    interfaces: impl FnOnce() -> Result<HostInterfaces, AdvertiseError>,
) -> Result<SocketAddr, AdvertiseError> {
    if let Some(a) = advertise {
        let port = if a.port() == 0 { bound.port() } else { a.port() };
        return Ok(SocketAddr::new(a.ip(), port));
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let host = interfaces()?;
    private_ip(&host, bound.is_ipv6())
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .ok_or(AdvertiseError::NoPrivateAddress { bound })
}

/// go-sockaddr's `GetPrivateIP`, restricted to one address family (a socket bound to `0.0.0.0`
/// cannot be reached at an IPv6 address, nor one bound to `::` send to an IPv4 one).
pub fn private_ip(host: &HostInterfaces, ipv6: bool) -> Option<IpAddr> {
    let mut candidates: Vec<&InterfaceAddr> =
        host.addrs.iter().filter(|a| a.up && a.ip.is_ipv6() == ipv6 && forwardable(a.ip)).collect();
    let on_default = |a: &InterfaceAddr| host.default_interface.as_deref() != Some(a.interface.as_str());
    // A stable sort, so that equal keys keep the order the system listed them in. Go compares
    // netmasks as bytes, ascending: the shorter prefix (the larger network) comes first.
    candidates.sort_by_key(|a| (on_default(a), a.prefix_len));
    candidates.into_iter().map(|a| a.ip).find(|ip| special_purpose(*ip))
}

/// Whether `ip` lies in one of RFC 6890's special-purpose blocks (go-sockaddr's table for
/// RFC 6890, which includes the private and shared address spaces).
fn special_purpose(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => V4_SPECIAL.iter().any(|(net, len)| in_v4(v4, *net, *len)),
        IpAddr::V6(v6) => V6_SPECIAL.iter().any(|(net, len)| in_v6(v6, *net, *len)),
    }
}

/// Whether a router may forward to `ip` (not in go-sockaddr's forwarding blacklist).
fn forwardable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_NOT_FORWARDABLE.iter().any(|(net, len)| in_v4(v4, *net, *len)),
        IpAddr::V6(v6) => !V6_NOT_FORWARDABLE.iter().any(|(net, len)| in_v6(v6, *net, *len)),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

const fn v6(a: u16, b: u16, c: u16) -> Ipv6Addr {
    Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0)
}

/// RFC 6890's IPv4 special-purpose registry.
const V4_SPECIAL: [(Ipv4Addr, u8); 15] = [
    (v4(0, 0, 0, 0), 8),
    (v4(10, 0, 0, 0), 8),
    (v4(100, 64, 0, 0), 10),
    (v4(127, 0, 0, 0), 8),
    (v4(169, 254, 0, 0), 16),
    (v4(172, 16, 0, 0), 12),
    (v4(192, 0, 0, 0), 24),
    (v4(192, 0, 2, 0), 24),
    (v4(192, 88, 99, 0), 24),
    (v4(192, 168, 0, 0), 16),
    (v4(198, 18, 0, 0), 15),
    (v4(198, 51, 100, 0), 24),
    (v4(203, 0, 113, 0), 24),
    (v4(240, 0, 0, 0), 4),
    (v4(255, 255, 255, 255), 32),
];

/// RFC 6890's IPv6 special-purpose registry.
const V6_SPECIAL: [(Ipv6Addr, u8); 12] = [
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (v6(0x100, 0, 0), 64),
    (v6(0x2001, 0, 0), 16),
    (v6(0x2001, 0x2, 0), 48),
    (v6(0x2001, 0xdb8, 0), 32),
    (v6(0x2001, 0x10, 0), 28),
    (v6(0x2002, 0, 0), 16),
    (v6(0xfc00, 0, 0), 7),
    (v6(0xfe80, 0, 0), 10),
];

/// go-sockaddr's blocks that are not forwardable (its `ForwardingBlacklist`).
const V4_NOT_FORWARDABLE: [(Ipv4Addr, u8); 9] = [
    (v4(0, 0, 0, 0), 8),
    (v4(127, 0, 0, 0), 8),
    (v4(169, 254, 0, 0), 16),
    (v4(192, 0, 0, 0), 24),
    (v4(192, 0, 2, 0), 24),
    (v4(198, 51, 100, 0), 24),
    (v4(203, 0, 113, 0), 24),
    (v4(240, 0, 0, 0), 4),
    (v4(255, 255, 255, 255), 32),
];

const V6_NOT_FORWARDABLE: [(Ipv6Addr, u8); 6] = [
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (v6(0x2001, 0xdb8, 0), 32),
    (v6(0x2001, 0x10, 0), 28),
    (v6(0xfe80, 0, 0), 10),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// This host's interfaces (`getifaddrs`) and its IPv4 default-route interface (from
/// `/proc/net/route` on Linux; go-sockaddr asks `ip route`).
#[cfg(unix)]
pub fn host_interfaces() -> Result<HostInterfaces, AdvertiseError> {
    let addrs = sys::interface_addrs().map_err(|e| AdvertiseError::Interfaces(e.to_string()))?;
    let default_interface = std::fs::read_to_string("/proc/net/route").ok().and_then(|t| default_route_interface(&t));
    Ok(HostInterfaces { addrs, default_interface })
}

/// This host's interfaces: not available on this platform.
#[cfg(not(unix))]
pub fn host_interfaces() -> Result<HostInterfaces, AdvertiseError> {
    Err(AdvertiseError::Interfaces("listing interfaces is only supported on Unix".into()))
}

/// The interface of the IPv4 default route in the text of `/proc/net/route` (destination and
/// mask both zero).
fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.first(), f.get(1), f.get(7)) {
            (Some(iface), Some(&"00000000"), Some(&"00000000")) => Some((*iface).to_owned()),
            _ => None,
        }
    })
}

#[cfg(unix)]
mod sys {
    //! `getifaddrs(3)`, the one call the address choice needs from the C library.

    use std::ffi::CStr;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::InterfaceAddr;

    /// Every IPv4 and IPv6 address of every interface.
    pub(super) fn interface_addrs() -> io::Result<Vec<InterfaceAddr>> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs writes a list head to `head` on success; it is freed below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            // SAFETY: the address and netmask pointers are null or point to sockaddrs of the
            // family given in their first field; the name is a NUL-terminated string.
            let (ip, mask) = unsafe { (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask)) };
            let Some(ip) = ip else { continue };
            let interface = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
            let prefix_len = match mask {
                Some(IpAddr::V4(m)) => u32::from(m).leading_ones() as u8,
                Some(IpAddr::V6(m)) => u128::from(m).leading_ones() as u8,
                None => 0,
            };
            let up = ifa.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
            out.push(InterfaceAddr { interface, ip, prefix_len, up });
        }
        // SAFETY: `head` came from a successful getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        Ok(out)
    }

    /// The IP in a `sockaddr`, when it is one.
    ///
    /// # Safety
    /// `sa` must be null or point to a valid `sockaddr` of the length its family implies.
    unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
        if sa.is_null() {
            return None;
        }
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa.cast::<libc::sockaddr_in>());
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa.cast::<libc::sockaddr_in6>());
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(interface: &str, ip: &str, prefix_len: u8) -> InterfaceAddr {
        InterfaceAddr { interface: interface.into(), ip: ip.parse().unwrap(), prefix_len, up: true }
    }

    fn host(addrs: Vec<InterfaceAddr>, default: Option<&str>) -> HostInterfaces {
        HostInterfaces { addrs, default_interface: default.map(str::to_owned) }
    }

    fn choose(bound: &str, h: &HostInterfaces) -> Result<SocketAddr, AdvertiseError> {
        final_advertise_addr(bound.parse().unwrap(), None, || Ok(h.clone()))
    }

    #[test]
    fn no_private_address_is_gos_error() {
        // Loopback, link-local, a documentation range and a public address: nothing private.
        let h = host(
            vec![
                addr("lo", "127.0.0.1", 8),
                addr("eth0", "192.0.2.10", 24),
                addr("eth1", "169.254.3.4", 16),
                addr("eth2", "8.8.8.8", 24),
                addr("lo", "::1", 128),
            ],
            Some("eth0"),
        );
        let err = choose("0.0.0.0:7946", &h).unwrap_err();
        assert_eq!(err, AdvertiseError::NoPrivateAddress { bound: "0.0.0.0:7946".parse().unwrap() });
        assert!(err.to_string().starts_with("no private IP address found, and explicit IP not provided"));
        assert!(choose("[::]:7946", &h).is_err());
    }

    #[test]
    fn picks_the_private_address_not_loopback() {
        let h = host(vec![addr("lo", "127.0.0.1", 8), addr("eth0", "10.77.0.3", 24)], None);
        assert_eq!(choose("0.0.0.0:7946", &h).unwrap(), "10.77.0.3:7946".parse().unwrap());
        // The bound port, whatever it is.
        assert_eq!(choose("0.0.0.0:8301", &h).unwrap(), "10.77.0.3:8301".parse().unwrap());
    }

    #[test]
    fn shared_address_space_counts_as_private() {
        let h = host(vec![addr("tailscale0", "100.101.102.103", 32)], None);
        assert_eq!(choose("0.0.0.0:1", &h).unwrap().ip(), "100.101.102.103".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn default_route_interface_first_then_larger_network() {
        let addrs =
            vec![addr("docker0", "172.17.0.1", 16), addr("eth0", "192.168.1.20", 24), addr("eth1", "10.0.0.5", 8)];
        // The default-route interface wins over larger networks elsewhere.
        let h = host(addrs.clone(), Some("eth0"));
        assert_eq!(choose("0.0.0.0:7946", &h).unwrap().ip(), "192.168.1.20".parse::<IpAddr>().unwrap());
        // Without a default route, the larger network (shorter prefix) comes first.
        let h = host(addrs, None);
        assert_eq!(choose("0.0.0.0:7946", &h).unwrap().ip(), "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn interfaces_that_are_down_are_skipped() {
        let mut down = addr("eth0", "10.1.1.1", 24);
        down.up = false;
        let h = host(vec![down, addr("eth1", "10.2.2.2", 24)], None);
        assert_eq!(choose("0.0.0.0:7946", &h).unwrap().ip(), "10.2.2.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_any_takes_a_unique_local_address() {
        let h =
            host(vec![addr("eth0", "10.0.0.1", 24), addr("eth0", "fe80::1", 64), addr("eth0", "fd00:77::3", 64)], None);
        assert_eq!(choose("[::]:7946", &h).unwrap(), "[fd00:77::3]:7946".parse().unwrap());
        // An IPv4 bind never advertises IPv6, even with no private IPv4.
        let h = host(vec![addr("eth0", "fd00:77::3", 64)], None);
        assert!(choose("0.0.0.0:7946", &h).is_err());
    }

    #[test]
    fn explicit_and_specific_addresses_are_kept() {
        let never = || -> Result<HostInterfaces, AdvertiseError> { panic!("interfaces are not needed") };
        let bound: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        assert_eq!(final_advertise_addr(bound, None, never).unwrap(), bound);
        let bound: SocketAddr = "0.0.0.0:7946".parse().unwrap();
        let given: SocketAddr = "203.0.113.9:9000".parse().unwrap();
        assert_eq!(final_advertise_addr(bound, Some(given), never).unwrap(), given);
        // An advertise address with port 0 takes the bound port.
        let given: SocketAddr = "203.0.113.9:0".parse().unwrap();
        assert_eq!(final_advertise_addr(bound, Some(given), never).unwrap(), "203.0.113.9:7946".parse().unwrap());
    }

    #[test]
    fn default_route_from_proc() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn this_host_lists_its_loopback() {
        let h = host_interfaces().expect("getifaddrs works");
        assert!(h.addrs.iter().any(|a| a.ip == IpAddr::V4(Ipv4Addr::LOCALHOST) && a.prefix_len == 8 && a.up));
    }
}

//! Client IP bans by network (BinderHub's `ban_networks`: CIDR → label).
//!
//! Lists are generated from datacenter ranges and written by hand, so host bits are
//! tolerated (masked off) rather than refused, and a bare address is a single host. A
//! dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; those must still hit IPv4
//! bans, so both clients and networks in the IPv4-mapped range are compared as IPv4.

use std::net::{IpAddr, Ipv4Addr};

use super::PolicyError;

/// A compiled list of banned networks, each with the label shown to a refused client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanNetworks {
    networks: Vec<Network>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Network {
    /// The masked network address, in the low bits for IPv4.
    bits: u128,
    mask: u128,
    v4: bool,
    label: String,
}

impl BanNetworks {
    /// Parses `(cidr, label)` pairs: `a.b.c.d/len`, `a.b.c.d/netmask`, `x::y/len`, or a bare
    /// address.
    pub fn new(networks: &[(String, String)]) -> Result<Self, PolicyError> {
        let networks = networks
            .iter()
            .map(|(cidr, label)| parse_network(cidr, label.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// The label of the first network holding `ip`, if any.
    pub fn matching(&self, ip: IpAddr) -> Option<&str> {
        let (bits, v4) = canonical(ip);
        self.networks
            .iter()
            .find(|n| n.v4 == v4 && bits & n.mask == n.bits)
            .map(|n| n.label.as_str())
    }

    /// True when no network is configured.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

/// True when `ip` lies in any of `networks` (CIDRs or bare addresses).
pub fn ip_in_networks(ip: IpAddr, networks: &[&str]) -> Result<bool, PolicyError> {
    let pairs: Vec<(String, String)> = networks
        .iter()
        .map(|n| ((*n).to_owned(), String::new()))
        .collect();
    Ok(BanNetworks::new(&pairs)?.matching(ip).is_some())
}

/// The client a request speaks for. A request from one of the `trusted` proxies is
/// attributed to the address its `X-Forwarded-For` names: the last entry that is not
/// itself a trusted proxy, since entries further left were written by the client and may
/// be anything. With no trusted proxies, or from any other peer, the peer is the client.
/// An entry that does not parse before an untrusted one is found ends the walk at the peer;
/// a header naming only trusted proxies gives its first entry.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &BanNetworks) -> IpAddr {
    if trusted.matching(peer).is_none() {
        return peer;
    }
    let mut entries = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .rev()
        .peekable();
    while let Some(entry) = entries.next() {
        let Some(ip) = forwarded_address(entry) else {
            return peer;
        };
        if trusted.matching(ip).is_none() || entries.peek().is_none() {
            return ip;
        }
    }
    peer
}

/// An `X-Forwarded-For` entry's address: bare, with a port (`192.0.2.1:443`), or in
/// brackets (`[2001:db8::1]`, `[2001:db8::1]:443`), as proxies write them.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

/// BinderHub's message for a banned client.
pub fn ip_banned_message(label: &str) -> String {
    format!("Requests from {label} are not allowed")
}

/// The address as bits plus "is IPv4", with IPv4-mapped IPv6 read as IPv4.
fn canonical(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), true),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), true),
            None => (u128::from(v6), false),
        },
    }
}

fn mask(prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - width))
    }
}

fn parse_network(cidr: &str, label: String) -> Result<Network, PolicyError> {
    let invalid = |reason| PolicyError::InvalidNetwork {
        cidr: crate::validate::shown(cidr),
        reason,
    };
    let text = cidr.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) if ip.is_ipv4() && p.contains('.') => {
            let netmask: Ipv4Addr = p
                .parse()
                .map_err(|_| invalid("the netmask is not an IPv4 address"))?;
            let bits = u32::from(netmask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(invalid("the netmask is not contiguous"));
            }
            bits.leading_ones()
        }
        Some(p) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("the prefix length is not a number"));
            }
            let prefix: u32 = p
                .parse()
                .map_err(|_| invalid("the prefix length is not a number"))?;
            if prefix > width {
                return Err(invalid("the prefix length is longer than the address"));
            }
            prefix
        }
    };
    let (bits, v4, prefix, width) = match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), true, prefix, 32),
        // An IPv6 network inside ::ffff:0:0/96 is an IPv4 network in disguise.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => (u128::from(u32::from(v4)), true, prefix - 96, 32),
            _ => (u128::from(v6), false, prefix, 128),
        },
    };
    let mask = mask(prefix, width);
    Ok(Network {
        bits: bits & mask,
        mask,
        v4,
        label,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_is_the_last_forwarded_address_that_is_not_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = BanNetworks::new(&[("10.0.0.0/8".into(), String::new())]).unwrap();
        let proxy = ip("10.0.0.2");
        // A trusted proxy speaks for the address it appended; what the client wrote to the
        // left of it is ignored.
        assert_eq!(
            client_address(proxy, &["192.0.2.7, 198.51.100.1"], &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(proxy, &["198.51.100.1", "10.0.0.9"], &trusted),
            ip("198.51.100.1"),
            "a chain of trusted proxies, over two header lines"
        );
        assert_eq!(
            client_address(proxy, &["10.0.0.8, 10.0.0.9"], &trusted),
            ip("10.0.0.8"),
            "only proxies: the first"
        );
        assert_eq!(client_address(proxy, &[], &trusted), proxy, "no header");
        assert_eq!(
            client_address(proxy, &["garbage, 10.0.0.9"], &trusted),
            proxy,
            "an entry that does not parse"
        );
        assert_eq!(
            client_address(proxy, &["garbage, 198.51.100.1"], &trusted),
            ip("198.51.100.1")
        );
        for written in ["198.51.100.1:443", "[2001:db8::1]", "[2001:db8::1]:443"] {
            let expected = if written.contains("::") {
                ip("2001:db8::1")
            } else {
                ip("198.51.100.1")
            };
            assert_eq!(
                client_address(proxy, &[written], &trusted),
                expected,
                "{written}"
            );
        }
        // Any other peer is the client, whatever it sends.
        let other = ip("203.0.113.5");
        assert_eq!(client_address(other, &["192.0.2.7"], &trusted), other);
        let nobody = BanNetworks::default();
        assert_eq!(client_address(proxy, &["192.0.2.7"], &nobody), proxy);
    }

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn binderhub_vectors() {
        let cases = [
            (
                "192.168.1.1",
                &["192.168.1.1/32", "255.255.0.0/16"][..],
                true,
            ),
            (
                "192.168.1.2",
                &["192.168.1.1/32", "255.255.0.0/16"][..],
                false,
            ),
            (
                "192.168.1.2",
                &["192.168.1.0/24", "255.255.0.0/16"][..],
                true,
            ),
            (
                "2001:db8:0:0:0:0:0:1",
                &["2001:db8::/32", "192.168.1.1/32"][..],
                true,
            ),
            (
                "3001:db8:0:0:0:0:0:1",
                &["2001:db8::/32", "192.168.1.1/32"][..],
                false,
            ),
        ];
        for (client, networks, want) in cases {
            assert_eq!(
                ip_in_networks(ip(client), networks),
                Ok(want),
                "{client} in {networks:?}"
            );
        }
    }

    #[test]
    fn host_bits_are_masked_and_bare_addresses_are_hosts() {
        let cases = [
            ("10.1.2.3/8", "10.200.0.1", true),
            ("10.1.2.3/8", "11.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("2001:db8::1", "2001:db8::1", true),
            ("2001:db8::1/128", "2001:db8::2", false),
            ("2001:db8:ffff::/33", "2001:db8:8000::1", true),
            ("192.168.0.0/255.255.0.0", "192.168.44.1", true),
            (" 192.168.0.0/16 ", "192.168.44.1", true),
        ];
        for (cidr, client, want) in cases {
            assert_eq!(
                ip_in_networks(ip(client), &[cidr]),
                Ok(want),
                "{client} in {cidr}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_networks() {
        assert_eq!(
            ip_in_networks(ip("::ffff:192.168.1.7"), &["192.168.1.0/24"]),
            Ok(true)
        );
        assert_eq!(
            ip_in_networks(ip("::ffff:192.168.2.7"), &["192.168.1.0/24"]),
            Ok(false)
        );
        assert_eq!(
            ip_in_networks(ip("192.168.1.7"), &["::ffff:192.168.1.0/120"]),
            Ok(true)
        );
        assert_eq!(
            ip_in_networks(ip("::ffff:192.168.1.7"), &["::ffff:192.168.1.0/120"]),
            Ok(true)
        );
    }

    #[test]
    fn matching_returns_the_first_label() {
        let bans = BanNetworks::new(&[
            ("127.0.0.0/8".into(), "local".into()),
            ("127.0.0.1".into(), "loopback host".into()),
            ("2001:db8::/32".into(), "documentation".into()),
        ])
        .unwrap();
        assert_eq!(bans.matching(ip("127.0.0.1")), Some("local"));
        assert_eq!(bans.matching(ip("2001:db8::5")), Some("documentation"));
        assert_eq!(bans.matching(ip("8.8.8.8")), None);
        assert!(!bans.is_empty());
        assert!(BanNetworks::default().is_empty());
        assert_eq!(
            ip_banned_message("local"),
            "Requests from local are not allowed"
        );
    }

    #[test]
    fn invalid_networks_are_errors() {
        for bad in [
            "",
            "local",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/0008",
            "1.2.3.4.5",
            "10.0.0.0/255.0.255.0",
            "fe80::1%eth0",
            "10.0.0.0/8/8",
        ] {
            let err = ip_in_networks(ip("10.0.0.1"), &[bad]).unwrap_err();
            assert!(
                matches!(err, PolicyError::InvalidNetwork { .. }),
                "{bad}: {err:?}"
            );
        }
    }
}

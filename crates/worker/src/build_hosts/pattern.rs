//! `allowed_build_hosts` entries: their syntax (see [`HostPattern`]) and matching.

use std::net::IpAddr;

use bindery_core::policy::BanNetworks;
use bindery_core::validate::shown;

/// Why a setting of the build host policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An `allowed_build_hosts` entry has the wrong shape.
    #[error("invalid allowed_build_hosts entry {shown}: {reason}")]
    Host {
        /// The entry, escaped.
        shown: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `cluster_networks` entry is not a network.
    #[error("invalid cluster_networks entry: {0}")]
    Network(#[source] bindery_core::policy::PolicyError),
}

/// One `allowed_build_hosts` entry.
///
/// | entry | allows |
/// | --- | --- |
/// | `git.example.org` | that name (case-insensitive), any port |
/// | `*.example.org` | every name under `example.org`, not `example.org` itself |
/// | `127.0.0.1`, `::1`, `[::1]` | that address, written in the URL or resolved from a name |
/// | `10.0.0.0/8`, `fd00::/8` | every address in the network, likewise |
/// | any of the above but a network, then `:port` (`[::1]:8080`) | only that port |
///
/// A name entry allows the name whatever it resolves to. An address entry allows a URL
/// whose every resolved address is allowed (and each address in the list is exempt from the
/// forbidden ranges). An allowed host may be fetched over `http` as well as `https`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// A host name.
    Name {
        /// The name, lower-case, without a trailing dot.
        name: String,
        /// The only port allowed, if any.
        port: Option<u16>,
    },
    /// Every name under a domain (`*.<suffix>`).
    Suffix {
        /// `.<domain>`, lower-case.
        suffix: String,
        /// The only port allowed, if any.
        port: Option<u16>,
    },
    /// An address or a network.
    Network {
        /// The network, one entry.
        network: BanNetworks,
        /// The only port allowed, if any (never for a network with a prefix).
        port: Option<u16>,
    },
}

impl HostPattern {
    /// Parses one entry (see the table above).
    pub fn parse(entry: &str) -> Result<HostPattern, PatternError> {
        let text = entry.trim().to_ascii_lowercase();
        let bad = |reason| PatternError::Host {
            shown: shown(entry),
            reason,
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let network = |addr: &str, port| {
            BanNetworks::new(&[(addr.to_owned(), String::new())])
                .map(|network| HostPattern::Network { network, port })
                .map_err(|_| bad("not an address or a network"))
        };
        if text.contains('/') {
            return network(&text, None);
        }
        if text.parse::<IpAddr>().is_ok() {
            return network(&text, None);
        }
        let (host, port) = split_port(&text).ok_or_else(|| bad("the port is not a number"))?;
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| bad("an unclosed bracket"))?;
            return match inner.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => network(inner, port),
                _ => Err(bad("brackets hold an IPv6 address")),
            };
        }
        if host.parse::<IpAddr>().is_ok() {
            return network(host, port);
        }
        let (wild, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let name = name.trim_end_matches('.');
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name.split('.').all(label_ok) {
            return Err(bad(
                "a name holds letters, digits, `-` and `_` between dots, with `*.` only in front",
            ));
        }
        Ok(if wild {
            HostPattern::Suffix {
                suffix: format!(".{name}"),
                port,
            }
        } else {
            HostPattern::Name {
                name: name.to_owned(),
                port,
            }
        })
    }

    fn port_ok(port: Option<u16>, want: u16) -> bool {
        port.is_none_or(|p| p == want)
    }

    /// Whether this entry allows the host name `name` (lower-case, no trailing dot).
    pub(super) fn allows_name(&self, name: &str, port: u16) -> bool {
        match self {
            HostPattern::Name { name: n, port: p } => n == name && Self::port_ok(*p, port),
            HostPattern::Suffix { suffix, port: p } => {
                name.ends_with(suffix.as_str()) && Self::port_ok(*p, port)
            }
            HostPattern::Network { .. } => false,
        }
    }

    /// Whether this entry allows the address `addr`.
    pub(super) fn allows_addr(&self, addr: IpAddr, port: u16) -> bool {
        match self {
            HostPattern::Network { network, port: p } => {
                network.matching(addr).is_some() && Self::port_ok(*p, port)
            }
            _ => false,
        }
    }
}

/// `host[:port]` of a pattern; `None` when a port is there and is no number. A bare IPv6
/// address never gets here (it parsed as an address first).
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    let colon = if text.starts_with('[') {
        text.find(']').and_then(|end| {
            let rest = &text[end + 1..];
            rest.starts_with(':').then_some(end + 1)
        })
    } else {
        text.rfind(':')
    };
    match colon {
        None => Some((text, None)),
        Some(at) => text[at + 1..]
            .parse::<u16>()
            .ok()
            .map(|port| (&text[..at], Some(port))),
    }
}

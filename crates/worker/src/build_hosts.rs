//! Which repository hosts a build may reach (`allowed_build_hosts`, `cluster_networks`).
//!
//! repo2docker fetches whatever URL a launch names, from inside the operator's network: a
//! `git` link to `http://169.254.169.254/` or to a cluster service would make the worker
//! fetch it. So before a build is admitted the repository URL must be an `https` URL whose
//! host resolves only to public addresses: not loopback, private (RFC 1918, unique local),
//! shared (RFC 6598), link-local (the cloud metadata address), unspecified, multicast or
//! reserved, and not in the operator's `cluster_networks`. Every address the name resolves
//! to is checked (one forbidden address refuses it), within [`BuildHosts::dns_timeout`].
//! IPv4 addresses spelt as IPv6 (`::ffff:127.0.0.1`, NAT64, 6to4) are checked as IPv4; other
//! spellings (`2130706433`, `0x7f.1`) are read as the WHATWG URL parser reads them, which
//! is how git's curl reads them too.
//!
//! `ssh://`, `git://`, `file://`, scp-like `user@host:path` addresses and plain paths are
//! refused: they reach hosts and files no address check sees. Data providers' DOIs
//! (`10.5281/zenodo.3242074`) are fetched by repo2docker from `https://doi.org`, so that is
//! the host checked for them; where the DOI then redirects is the provider's record host,
//! which the worker does not see (the build pods' network policy fences that on Kubernetes).
//!
//! The operator allows hosts with patterns ([`HostPattern`]); an allowed host may also be
//! reached over `http`. The check happens at admission; repo2docker resolves the name again
//! when it fetches, so a name whose answer changes in between (DNS rebinding) is fenced only
//! by the network: this check keeps honest mistakes and plain abuse out, not a hostile DNS.

use std::net::IpAddr;
use std::time::Duration;

use bindery_core::policy::BanNetworks;
use bindery_core::validate::shown;

/// The ranges no build reaches unless allowed, each with the name a refusal shows.
const FORBIDDEN: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// The label of the operator's cluster ranges in a refusal.
const CLUSTER: &str = "cluster (cluster_networks)";

mod pattern;

pub use pattern::{HostPattern, PatternError};

/// The default time limit of the name lookup.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a build's repository URL is refused. Every variant but the lookup failures is the
/// operator's policy: the worker answers `403` with the text, which names the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildHostError {
    /// Not a URL: a plain path or an scp-like `user@host:path` address.
    #[error(
        "repo_url {shown} is not an https:// URL; builds fetch only https:// repositories (plain paths and scp-like addresses are refused)"
    )]
    NotUrl {
        /// The URL, escaped.
        shown: String,
    },
    /// A scheme other than `https` and `http`.
    #[error(
        "repo_url uses {scheme}://; builds fetch only https:// repositories (http:// from hosts in allowed_build_hosts)"
    )]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// Credentials or a backslash in the authority: parsers disagree about such URLs' host.
    #[error("repo_url {shown} carries credentials or a backslash, which builds do not accept")]
    Ambiguous {
        /// The URL, escaped.
        shown: String,
    },
    /// `http` to a host that `allowed_build_hosts` does not allow.
    #[error(
        "repo_url fetches {host} over http://; builds use https:// unless allowed_build_hosts allows the host"
    )]
    PlainHttp {
        /// The host.
        host: String,
    },
    /// The host is, or resolves to, a forbidden address.
    #[error(
        "the build host {host} resolves to {addr}, a {range} address, which builds may not reach; an operator allows it with allowed_build_hosts"
    )]
    Forbidden {
        /// The host as the URL names it.
        host: String,
        /// The forbidden address.
        addr: IpAddr,
        /// The range's name.
        range: String,
    },
    /// The name does not resolve.
    #[error("failed to resolve the build host {host}: {reason}")]
    Lookup {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The lookup took longer than its limit.
    #[error("resolving the build host {host} took longer than {seconds} seconds")]
    LookupTimeout {
        /// The host.
        host: String,
        /// The limit.
        seconds: f64,
    },
}

impl BuildHostError {
    /// The HTTP status of the refusal: `503` when the lookup timed out (try again), `400`
    /// when the name does not resolve or the URL is not one, `403` for the policy.
    pub fn status(&self) -> u16 {
        match self {
            BuildHostError::LookupTimeout { .. } => 503,
            BuildHostError::Lookup { .. }
            | BuildHostError::NotUrl { .. }
            | BuildHostError::Ambiguous { .. } => 400,
            BuildHostError::Scheme { .. }
            | BuildHostError::PlainHttp { .. }
            | BuildHostError::Forbidden { .. } => 403,
        }
    }
}

/// The host a repository URL names, as the fetch will reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    https: bool,
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Addr(IpAddr),
}

impl Host {
    fn shown(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Addr(addr) => addr.to_string(),
        }
    }
}

/// A DOI as data providers' specs hold one (`10.<registrant>/<suffix>`, maybe `doi:` first).
fn is_doi(repo_url: &str) -> bool {
    let doi = repo_url
        .strip_prefix("doi:")
        .or_else(|| repo_url.strip_prefix("DOI:"))
        .unwrap_or(repo_url);
    doi.strip_prefix("10.")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(registrant, suffix)| {
            !registrant.is_empty()
                && registrant.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && !suffix.is_empty()
        })
}

fn target(repo_url: &str) -> Result<Target, BuildHostError> {
    if is_doi(repo_url) {
        // repo2docker resolves DOIs at doi.org.
        return Ok(Target {
            https: true,
            host: Host::Name("doi.org".into()),
            port: 443,
        });
    }
    let not_url = || BuildHostError::NotUrl {
        shown: shown(repo_url),
    };
    let Some((scheme, _)) = repo_url.split_once("://") else {
        return Err(not_url());
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(BuildHostError::Scheme {
            scheme: shown(&scheme).trim_matches('"').to_owned(),
        });
    }
    let url = url::Url::parse(repo_url).map_err(|_| not_url())?;
    if repo_url.contains('\\') || !url.username().is_empty() || url.password().is_some() {
        return Err(BuildHostError::Ambiguous {
            shown: shown(repo_url),
        });
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => {
            Host::Name(name.trim_end_matches('.').to_ascii_lowercase())
        }
        Some(url::Host::Ipv4(v4)) => Host::Addr(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Host::Addr(IpAddr::V6(v6)),
        None => return Err(not_url()),
    };
    Ok(Target {
        https: scheme == "https",
        host,
        port: url.port_or_known_default().unwrap_or(443),
    })
}

/// The builds' host policy: the operator's allowed hosts, the cluster's ranges and the
/// lookup's time limit.
#[derive(Debug, Clone)]
pub struct BuildHosts {
    allowed: Vec<HostPattern>,
    forbidden: BanNetworks,
    cluster: BanNetworks,
    dns_timeout: Duration,
}

impl Default for BuildHosts {
    /// Nothing allowed beyond public addresses, no cluster ranges, a 5 s lookup.
    fn default() -> Self {
        BuildHosts {
            allowed: Vec::new(),
            forbidden: forbidden(),
            cluster: BanNetworks::default(),
            dns_timeout: DEFAULT_DNS_TIMEOUT,
        }
    }
}

/// [`FORBIDDEN`] compiled. It is a constant the tests parse, so failing is a bug here, not
/// bad input; an empty list would silently let builds reach everything.
#[allow(clippy::expect_used)]
fn forbidden() -> BanNetworks {
    let pairs: Vec<(String, String)> = FORBIDDEN
        .iter()
        .map(|(n, l)| ((*n).to_owned(), (*l).to_owned()))
        .collect();
    BanNetworks::new(&pairs).expect("the fixed forbidden ranges parse")
}

impl BuildHosts {
    /// The policy allowing `allowed` (see [`HostPattern`]) and refusing `cluster_networks`
    /// (CIDRs) besides the fixed ranges; each lookup may take `dns_timeout`.
    pub fn new(
        allowed: &[String],
        cluster_networks: &[String],
        dns_timeout: Duration,
    ) -> Result<BuildHosts, PatternError> {
        let allowed = allowed
            .iter()
            .map(|entry| HostPattern::parse(entry))
            .collect::<Result<_, _>>()?;
        let cluster: Vec<(String, String)> = cluster_networks
            .iter()
            .map(|n| (n.clone(), CLUSTER.to_owned()))
            .collect();
        let cluster = BanNetworks::new(&cluster).map_err(PatternError::Network)?;
        Ok(BuildHosts {
            allowed,
            forbidden: forbidden(),
            cluster,
            dns_timeout,
        })
    }

    /// The time limit of one lookup.
    pub fn dns_timeout(&self) -> Duration {
        self.dns_timeout
    }

    /// Checks the repository URL of a build: `Ok` when repo2docker may fetch it.
    pub async fn check(&self, repo_url: &str) -> Result<(), BuildHostError> {
        let target = target(repo_url)?;
        let shown_host = target.host.shown();
        let addrs = match &target.host {
            Host::Name(name) => {
                if self
                    .allowed
                    .iter()
                    .any(|p| p.allows_name(name, target.port))
                {
                    return Ok(());
                }
                let has_networks = self
                    .allowed
                    .iter()
                    .any(|p| matches!(p, HostPattern::Network { .. }));
                if !target.https && !has_networks {
                    return Err(BuildHostError::PlainHttp { host: shown_host });
                }
                self.resolve(name, target.port).await?
            }
            Host::Addr(addr) => vec![*addr],
        };
        let allowed = |addr: IpAddr| {
            self.allowed
                .iter()
                .any(|p| p.allows_addr(addr, target.port))
        };
        if addrs.iter().all(|a| allowed(*a)) {
            return Ok(());
        }
        if !target.https {
            return Err(BuildHostError::PlainHttp { host: shown_host });
        }
        for addr in addrs {
            if let Some(range) = self.forbidden_range(addr).filter(|_| !allowed(addr)) {
                return Err(BuildHostError::Forbidden {
                    host: shown_host,
                    addr,
                    range,
                });
            }
        }
        Ok(())
    }

    /// The name of the forbidden range holding `addr`, if any; IPv4 addresses embedded in
    /// IPv6 ones (mapped, compatible, NAT64, 6to4) are checked as IPv4.
    fn forbidden_range(&self, addr: IpAddr) -> Option<String> {
        let label = |addr| {
            self.forbidden
                .matching(addr)
                .or_else(|| self.cluster.matching(addr))
                .map(str::to_owned)
        };
        label(addr).or_else(|| label(IpAddr::V4(embedded_v4(addr)?)))
    }

    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<IpAddr>, BuildHostError> {
        let lookup = async {
            tokio::net::lookup_host((name, port))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
        };
        bounded(name, self.dns_timeout, lookup).await
    }
}

/// The answer of `lookup` for `name`, or a timeout after `limit`; no address is an error.
async fn bounded(
    name: &str,
    limit: Duration,
    lookup: impl std::future::Future<Output = std::io::Result<Vec<IpAddr>>>,
) -> Result<Vec<IpAddr>, BuildHostError> {
    match tokio::time::timeout(limit, lookup).await {
        Err(_) => Err(BuildHostError::LookupTimeout {
            host: name.to_owned(),
            seconds: limit.as_secs_f64(),
        }),
        Ok(Err(e)) => Err(BuildHostError::Lookup {
            host: name.to_owned(),
            reason: e.to_string(),
        }),
        Ok(Ok(addrs)) if addrs.is_empty() => Err(BuildHostError::Lookup {
            host: name.to_owned(),
            reason: "no addresses".into(),
        }),
        Ok(Ok(addrs)) => Ok(addrs),
    }
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or
/// 6to4 (`2002::/16`) address; mapped ones `BanNetworks` already reads as IPv4.
fn embedded_v4(addr: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = addr else { return None };
    let s = v6.segments();
    let low = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], cluster: &[&str]) -> BuildHosts {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        BuildHosts::new(&owned(allowed), &owned(cluster), Duration::from_secs(5)).unwrap()
    }

    /// What a check says, shortly: `ok`, the range of a forbidden address, or the variant.
    async fn verdict(hosts: &BuildHosts, url: &str) -> String {
        match hosts.check(url).await {
            Ok(()) => "ok".into(),
            Err(BuildHostError::Forbidden { range, .. }) => range,
            Err(BuildHostError::NotUrl { .. }) => "not a url".into(),
            Err(BuildHostError::Scheme { scheme }) => format!("scheme {scheme}"),
            Err(BuildHostError::Ambiguous { .. }) => "ambiguous".into(),
            Err(BuildHostError::PlainHttp { .. }) => "http".into(),
            Err(other) => other.to_string(),
        }
    }

    #[tokio::test]
    async fn every_forbidden_range_and_spelling_is_refused_by_default() {
        let hosts = policy(&[], &["203.0.113.0/24", "2001:db8:42::/48"]);
        let cases = [
            ("https://127.0.0.1/r", "loopback"),
            ("https://127.1.2.3/r", "loopback"),
            ("https://2130706433/", "loopback"),
            ("https://0x7f.1/", "loopback"),
            ("https://0177.0.0.1/", "loopback"),
            ("https://127.1/", "loopback"),
            ("https://localhost/r", "loopback"),
            ("https://LocalHost./r", "loopback"),
            ("https://[::1]/r", "loopback"),
            ("https://[::ffff:127.0.0.1]/r", "loopback"),
            ("https://[::127.0.0.1]/r", "loopback"),
            ("https://[64:ff9b::7f00:1]/r", "loopback"),
            ("https://[2002:7f00:1::]/r", "loopback"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://0/", "unspecified"),
            ("https://[::]/", "unspecified"),
            ("https://10.1.2.3/", "private"),
            ("https://172.16.0.1/", "private"),
            ("https://172.31.255.254/", "private"),
            ("https://192.168.1.1:8443/", "private"),
            ("https://[::ffff:10.0.0.1]/", "private"),
            ("https://100.64.0.1/", "shared (carrier-grade NAT)"),
            (
                "https://169.254.169.254/latest/meta-data/",
                "link-local (cloud metadata)",
            ),
            (
                "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
                "link-local (cloud metadata)",
            ),
            ("https://[fe80::1]/", "link-local"),
            ("https://[fd00::1]/", "unique local"),
            ("https://[fd00:ec2::254]/", "unique local"),
            ("https://[fec0::1]/", "site-local"),
            ("https://224.0.0.1/", "multicast"),
            ("https://255.255.255.255/", "reserved"),
            ("https://203.0.113.9/", "cluster (cluster_networks)"),
            ("https://[2001:db8:42::1]/", "cluster (cluster_networks)"),
            // Not a URL, or a scheme that fetches without an address check.
            ("ssh://git@github.com/o/r", "scheme ssh"),
            ("git://github.com/o/r", "scheme git"),
            ("file:///etc/passwd", "scheme file"),
            ("FILE:///etc/passwd", "scheme file"),
            ("ftp://example.org/r", "scheme ftp"),
            ("git@github.com:o/r.git", "not a url"),
            ("/srv/git/repo", "not a url"),
            ("repo", "not a url"),
            ("https://", "not a url"),
            ("https://user:pw@github.com/o/r", "ambiguous"),
            ("https://github.com@127.0.0.1/o/r", "ambiguous"),
            ("https://127.0.0.1\\@github.com/o/r", "ambiguous"),
            // http only where allowed: refused before any lookup.
            ("http://github.com/o/r", "http"),
            ("http://2130706433/", "http"),
            ("http://0x7f.1/", "http"),
            // Public addresses pass.
            ("https://172.32.0.1/r", "ok"),
            ("https://93.184.216.34/r", "ok"),
            ("https://[2606:4700::1111]/r", "ok"),
            ("https://[::ffff:93.184.216.34]/r", "ok"),
        ];
        for (url, want) in cases {
            assert_eq!(verdict(&hosts, url).await, want, "{url}");
        }
    }

    #[tokio::test]
    async fn allowed_hosts_pass_by_name_address_network_and_port() {
        let hosts = policy(
            &[
                "127.0.0.1",
                "::1",
                "git.local:8080",
                "*.internal.example",
                "10.0.0.0/8",
                "[fd00::5]:3000",
            ],
            &[],
        );
        let cases = [
            ("http://127.0.0.1:4321/r.git", "ok"),
            ("https://127.0.0.1/r.git", "ok"),
            ("http://2130706433/r.git", "ok"),
            ("http://0x7f.1:4321/r.git", "ok"),
            ("http://0177.0.0.1/r.git", "ok"),
            ("http://[::1]:80/r", "ok"),
            ("http://localhost:4321/r.git", "ok"),
            ("https://127.0.0.2/r", "loopback"),
            ("http://git.local:8080/r", "ok"),
            ("http://GIT.local.:8080/r", "ok"),
            ("https://a.b.internal.example/r", "ok"),
            ("http://x.internal.example/r", "ok"),
            ("http://10.200.0.1/r", "ok"),
            ("https://[::ffff:10.1.2.3]/r", "ok"),
            ("https://192.168.0.1/r", "private"),
            ("http://[fd00::5]:3000/r", "ok"),
            ("https://[fd00::5]:3001/r", "unique local"),
            ("ssh://127.0.0.1/r", "scheme ssh"),
        ];
        for (url, want) in cases {
            assert_eq!(verdict(&hosts, url).await, want, "{url}");
        }
        // Without address patterns, http to a name not allowed is refused before a lookup.
        let names = policy(&["git.local:8080", "*.internal.example"], &[]);
        assert_eq!(verdict(&names, "http://git.local:9090/r").await, "http");
        assert_eq!(verdict(&names, "http://internal.example/r").await, "http");
        // A suffix pattern does not allow the domain itself.
        assert!(
            !HostPattern::parse("*.internal.example")
                .unwrap()
                .allows_name("internal.example", 443)
        );
    }

    #[test]
    fn patterns_of_the_wrong_shape_are_refused_and_the_error_names_the_setting() {
        for entry in [
            "",
            "*",
            "a*.b",
            "*.",
            "a..b",
            "git.local:port",
            "git.local:70000",
            "[::1",
            "[127.0.0.1]",
            "10.0.0.0/33",
            "10.0.0.0/8:80",
            "git/local",
        ] {
            let err = HostPattern::parse(entry).expect_err(entry);
            assert!(err.to_string().contains("allowed_build_hosts"), "{err}");
        }
        let err = BuildHosts::new(&[], &["not-a-net".into()], DEFAULT_DNS_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("cluster_networks"), "{err}");
    }

    #[test]
    fn a_doi_is_checked_as_the_doi_resolver_repo2docker_fetches_it_from() {
        for doi in [
            "10.5281/zenodo.3242074",
            "10.6084/m9.figshare.9782777.v1",
            "doi:10.7910/DVN/TJCLKP",
        ] {
            assert_eq!(
                target(doi),
                Ok(Target {
                    https: true,
                    host: Host::Name("doi.org".into()),
                    port: 443
                }),
                "{doi}"
            );
        }
        assert!(matches!(
            target("10.5281"),
            Err(BuildHostError::NotUrl { .. })
        ));
    }

    #[tokio::test]
    async fn a_slow_lookup_is_cut_at_its_limit_and_a_refusal_names_the_setting() {
        // A resolver that never answers: the check gives up at the limit.
        let never = std::future::pending::<std::io::Result<Vec<IpAddr>>>();
        let err = bounded("slow.example", Duration::from_millis(50), never)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BuildHostError::LookupTimeout { .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 503);
        let err = policy(&[], &[])
            .check("https://169.254.169.254/")
            .await
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("allowed_build_hosts"), "{err}");
    }
}

//! Parsing of variable values: lists, networks, base URLs, seconds and the image prefix.
//! Every error names the variable and never quotes a secret (a URL with credentials is
//! refused without being shown).

use bindery_core::csp::FrameAncestors;
use bindery_core::policy::{BanNetworks, PolicyError};
use bindery_core::validate::shown;

use super::ConfigError;
use super::variables::{BAN_NETWORKS, FRAME_ANCESTORS, IMAGE_PREFIX, TRUSTED_PROXIES};

/// Splits a list variable: one item per line when the value has a newline, otherwise
/// comma-separated; items are trimmed and empty ones dropped.
pub fn split_list(raw: &str) -> Vec<String> {
    let items: Vec<&str> = if raw.contains('\n') {
        raw.lines().collect()
    } else {
        raw.split(',').collect()
    };
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `ban_networks`: `cidr=label` items (see [`split_list`]).
pub fn parse_ban_networks(raw: &str) -> Result<BanNetworks, ConfigError> {
    let pairs = split_list(raw)
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((cidr, label)) if !cidr.trim().is_empty() && !label.trim().is_empty() => {
                Ok((cidr.trim().to_owned(), label.trim().to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                name: BAN_NETWORKS,
                reason: format!("expected `cidr=label`, got {}", shown(&item)),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    BanNetworks::new(&pairs).map_err(|e| policy_error(e, BAN_NETWORKS))
}

/// Parses `trusted_proxies`: networks or addresses (see [`split_list`]).
pub fn parse_trusted_proxies(raw: &str) -> Result<BanNetworks, ConfigError> {
    let networks: Vec<(String, String)> = split_list(raw)
        .into_iter()
        .map(|cidr| (cidr, String::new()))
        .collect();
    BanNetworks::new(&networks).map_err(|e| policy_error(e, TRUSTED_PROXIES))
}

/// Parses a base URL: absolute http(s) with a host, no credentials, query or fragment;
/// returned without a trailing `/`.
pub fn parse_base_url(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    // The configuration is read on every request (a fresh instance each time), and most
    // values are plain `http(s)://host[:port][/path]`: those need no URL parser.
    if plain_base_url(raw) {
        return Ok(raw.trim_end_matches('/').to_owned());
    }
    parse_base_url_fully(name, raw)
}

/// [`parse_base_url`] through the URL parser, for every value.
fn parse_base_url_fully(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        reason: format!("{reason}, got {}", shown(raw)),
    };
    let url = url::Url::parse(raw).map_err(|_| invalid("expected an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo a URL that carries a password.
        return Err(ConfigError::Invalid {
            name,
            reason: "the URL must not carry credentials; use the username/password variables"
                .to_owned(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Whether `raw` is an http(s) URL that a URL parser would accept unchanged and that
/// passes [`parse_base_url`]'s rules: `http(s)://host[:port][/path]` with a lower-case DNS
/// name (its last label starting with a letter) or a canonical dotted IPv4 address, a port
/// up to 65535, and a path of unreserved characters. Anything else goes to the full parser.
fn plain_base_url(raw: &str) -> bool {
    // Bytes and slices throughout: this runs for every URL variable on every request, and
    // `str` searches by `char` cost several times more in a wasm guest.
    let Some(rest) = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.as_bytes();
    let (authority, path) =
        rest.split_at(rest.iter().position(|&b| b == b'/').unwrap_or(rest.len()));
    let (host, port) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0_u32, |n, &b| n * 10 + u32::from(b - b'0')) <= 65535
    });
    let labels = || host.split(|&b| b == b'.');
    // A label starting `xn--` is punycode, which the URL parser decodes and may refuse.
    let labels_ok = !host.is_empty()
        && labels().all(|label| {
            !label.is_empty()
                && !label.starts_with(b"xn--")
                && label
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let last = labels().next_back().unwrap_or_default();
    let host_ok = if last.iter().all(u8::is_ascii_digit) {
        labels().count() == 4
            && labels().all(|p| {
                (1..=3).contains(&p.len())
                    && p.iter().all(u8::is_ascii_digit)
                    && (p.len() == 1 || p[0] != b'0')
                    && p.iter().fold(0_u32, |n, &b| n * 10 + u32::from(b - b'0')) <= 255
            })
    } else {
        last.first().is_some_and(u8::is_ascii_lowercase)
    };
    port_ok
        && labels_ok
        && host_ok
        && path
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
}

/// Parses `frame_ancestors`: a space-separated CSP source list (`'self'`,
/// `https://*.example.org`, ...), refused when it holds anything that could end the
/// directive (`;`, `,`, a line break).
pub fn parse_frame_ancestors(raw: &str) -> Result<FrameAncestors, ConfigError> {
    FrameAncestors::parse(raw).map_err(|e| ConfigError::Invalid {
        name: FRAME_ANCESTORS,
        reason: e.to_string(),
    })
}

/// Parses a number of seconds.
pub fn parse_seconds(name: &'static str, raw: &str) -> Result<u64, ConfigError> {
    raw.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("expected a whole number of seconds, got {}", shown(raw)),
    })
}

/// An image prefix must name a registry host (`host[:port]/...`): without one the manifest
/// check has no repository to ask for, and images could not be pushed anywhere.
pub(crate) fn parse_image_prefix(raw: &str) -> Result<String, ConfigError> {
    let ok = raw
        .split_once('/')
        .is_some_and(|(host, _)| !host.is_empty())
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'#' | b'?'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name: IMAGE_PREFIX,
            reason: format!(
                "expected `<registry host>/<name prefix>` such as 127.0.0.1:5000/binder-, got {}",
                shown(raw)
            ),
        })
    }
}

/// A policy error of the variable `name`: patterns name their list themselves
/// ([`bindery_core::policy::SpecList`]), everything else is `name`'s.
pub(crate) fn policy_error(e: PolicyError, name: &'static str) -> ConfigError {
    let name = match &e {
        PolicyError::InvalidPattern { list, .. } => list.setting(),
        _ => name,
    };
    ConfigError::Invalid {
        name,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_skip_the_parser_only_where_it_would_agree() {
        let candidates = [
            "https://api.github.com",
            "https://api.github.com/",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:65535/api/v4",
            "http://bindery-worker.binder.svc:8080",
            "https://gitlab.example.org/api/v4/",
            "http://localhost:1",
            // Each of these must go to the full parser.
            "http://256.0.0.1",
            "http://1.2.3",
            "http://01.2.3.4",
            "http://a.0x1f",
            "http://a.123",
            "http://host:65536",
            "http://host:",
            "http://Host.example",
            "http://user@host",
            "http://host/a?b",
            "http://host/a#b",
            "http://host/%41",
            "http://",
            "http:///path",
            "ftp://host",
            "http://host..example",
            "http://host.example.",
            "http://[::1]:80",
            "http://xn--a.example",
            "http://xn--.example",
            "http://www.xn--bcher-kva.example",
        ];
        let mut fast = 0;
        for raw in candidates {
            let full = parse_base_url_fully("worker_url", raw);
            if plain_base_url(raw) {
                fast += 1;
                assert_eq!(
                    parse_base_url("worker_url", raw).ok(),
                    Some(full.expect(raw)),
                    "{raw}"
                );
            }
            assert_eq!(
                parse_base_url("worker_url", raw).is_ok(),
                parse_base_url_fully("worker_url", raw).is_ok(),
                "{raw}"
            );
        }
        assert_eq!(fast, 7, "the plain URLs above take the fast path");
    }

    #[test]
    fn the_fast_path_agrees_with_the_parser_on_generated_urls() {
        // A small deterministic generator (xorshift) of URL-like strings built from the
        // characters the fast path decides on.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap_or(0)
        };
        let prefixes = ["http://", "https://", "http:/", "HTTP://", "ws://", ""];
        let alphabet: Vec<char> = "abcxyz0189.-:/abcxyz0189._~%@?#[]AZ 2567".chars().collect();
        // Punycode labels, which the URL parser decodes (and refuses when invalid).
        let labels = ["xn--a", "xn--bcher-kva", "xn--"];
        let (mut fast, mut agreed_ok) = (0, 0);
        for _ in 0..50_000 {
            let mut raw = prefixes[next(prefixes.len())].to_owned();
            if next(8) == 0 {
                raw.push_str(labels[next(labels.len())]);
            }
            for _ in 0..next(16) {
                raw.push(alphabet[next(alphabet.len())]);
            }
            let quick = parse_base_url("registry_url", &raw).ok();
            let full = parse_base_url_fully("registry_url", &raw).ok();
            assert_eq!(quick, full, "{raw:?}");
            fast += usize::from(plain_base_url(&raw));
            agreed_ok += usize::from(full.is_some());
        }
        // The generator must reach both paths, or the test proves nothing.
        assert!(fast > 500, "only {fast} generated URLs took the fast path");
        assert!(agreed_ok > fast, "no valid URL went through the parser");
    }
}

//! BinderHub's `cors_allow_origin`: which other sites' pages may read Bindery's answers
//! (thebe and Jupyter Book start kernels through `/build` from their own origin).
//!
//! The value is `*` (any origin, as mybinder.org sets it) or a space-separated list of
//! origins (`https://example.org http://127.0.0.1:8080`). BinderHub sends its setting as it
//! is; a list is more than one header value can say, so a listed origin is echoed back to
//! the page that sent it (with `Vary: Origin`) and any other origin gets no
//! `Access-Control-Allow-Origin`, which makes its browser withhold the answer.
//!
//! The same setting reaches the servers JupyterHub starts as their `allow_origin`
//! ([`CorsOrigins::server_allow_origin`]), so the page may then talk to its kernel too.

use thiserror::Error;

/// Why a `cors_allow_origin` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CorsError {
    /// The value names no origin.
    #[error("expected `*` or origins such as https://example.org, separated by spaces")]
    Empty,
    /// One word is not an origin.
    #[error(
        "`{0}` is not an origin: write scheme and host (and port), such as https://example.org or http://127.0.0.1:8080, nothing after them"
    )]
    NotAnOrigin(String),
    /// `*` together with origins.
    #[error("`*` allows every origin and cannot be combined with others")]
    AnyWithOthers,
    /// More origins than an answer should be compared against.
    #[error("at most {MAX_ORIGINS} origins")]
    TooMany,
}

/// The most origins a list may hold.
pub const MAX_ORIGINS: usize = 32;

/// The most bytes one origin may hold.
const MAX_ORIGIN_BYTES: usize = 253 + 16;

/// A validated `cors_allow_origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: every origin.
    Any,
    /// These origins, lower-cased, without a trailing `/`.
    Listed(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*` or a space-separated list of origins.
    pub fn parse(raw: &str) -> Result<Self, CorsError> {
        let words: Vec<&str> = raw.split_ascii_whitespace().collect();
        match words.as_slice() {
            [] => Err(CorsError::Empty),
            ["*"] => Ok(Self::Any),
            words if words.contains(&"*") => Err(CorsError::AnyWithOthers),
            words if words.len() > MAX_ORIGINS => Err(CorsError::TooMany),
            words => words
                .iter()
                .map(|w| origin(w).ok_or_else(|| CorsError::NotAnOrigin(shown(w))))
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Listed),
        }
    }

    /// The `Access-Control-Allow-Origin` for a request from `request_origin` (its `Origin`
    /// header): `*`, the request's own origin when listed, else none. The second value is
    /// true when the answer depends on `Origin` (send `Vary: Origin`).
    pub fn allow(&self, request_origin: Option<&str>) -> (Option<String>, bool) {
        match self {
            Self::Any => (Some("*".to_owned()), false),
            Self::Listed(origins) => {
                let asked = request_origin.and_then(origin);
                let allowed = asked.filter(|a| origins.iter().any(|o| o == a));
                (allowed, true)
            }
        }
    }

    /// The setting as the servers' `allow_origin` takes it: `*`, or the origins separated
    /// by spaces (the spawner turns more than one into `allow_origin_pat`).
    pub fn server_allow_origin(&self) -> String {
        match self {
            Self::Any => "*".to_owned(),
            Self::Listed(origins) => origins.join(" "),
        }
    }
}

/// `word` as an origin (`scheme://host[:port]`, lower-cased), if it is one.
fn origin(word: &str) -> Option<String> {
    if word.len() > MAX_ORIGIN_BYTES {
        return None;
    }
    let word = word.strip_suffix('/').unwrap_or(word);
    let (scheme, authority) = word.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (host_ok && port_ok).then(|| word.to_ascii_lowercase())
}

fn shown(word: &str) -> String {
    word.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_anything_else_is_refused() {
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse(" https://Example.org/  http://127.0.0.1:8080 http://[::1]:9 "),
            Ok(CorsOrigins::Listed(vec![
                "https://example.org".into(),
                "http://127.0.0.1:8080".into(),
                "http://[::1]:9".into(),
            ]))
        );
        for bad in [
            "example.org",
            "https://example.org/path",
            "https://example.org?x",
            "ftp://example.org",
            "https://",
            "https://a:0",
            "https://a:99999",
            "https://user@example.org",
            "https://[zz]:1",
            "null",
        ] {
            assert!(
                matches!(CorsOrigins::parse(bad), Err(CorsError::NotAnOrigin(_))),
                "{bad}"
            );
        }
        assert_eq!(CorsOrigins::parse(" \t"), Err(CorsError::Empty));
        assert_eq!(
            CorsOrigins::parse("* https://a.org"),
            Err(CorsError::AnyWithOthers)
        );
        let many = vec!["https://a.org"; MAX_ORIGINS + 1].join(" ");
        assert_eq!(CorsOrigins::parse(&many), Err(CorsError::TooMany));
        // A line break or `;` never gets into a header.
        assert!(CorsOrigins::parse("https://a.org\r\nx: y").is_err());
        assert!(CorsOrigins::parse("https://a.org;x").is_err());
        let long = format!("https://{}.org", "a".repeat(300));
        assert!(CorsOrigins::parse(&long).is_err());
    }

    #[test]
    fn a_listed_origin_is_echoed_and_another_gets_nothing() {
        let any = CorsOrigins::Any;
        assert_eq!(any.allow(None), (Some("*".into()), false));
        assert_eq!(any.allow(Some("https://x.org")), (Some("*".into()), false));
        let listed = CorsOrigins::parse("https://a.org http://127.0.0.1:8080").unwrap();
        assert_eq!(
            listed.allow(Some("http://127.0.0.1:8080")),
            (Some("http://127.0.0.1:8080".into()), true)
        );
        assert_eq!(
            listed.allow(Some("HTTPS://A.org")),
            (Some("https://a.org".into()), true)
        );
        assert_eq!(listed.allow(Some("https://b.org")), (None, true));
        assert_eq!(listed.allow(Some("null")), (None, true));
        assert_eq!(listed.allow(None), (None, true));
        assert_eq!(
            listed.server_allow_origin(),
            "https://a.org http://127.0.0.1:8080"
        );
        assert_eq!(any.server_allow_origin(), "*");
    }
}

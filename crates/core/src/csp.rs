//! Content Security Policy pieces for the HTML pages: the hash source of an inline script
//! or style (`'sha256-…'`), and the validated source list of `frame-ancestors`.
//!
//! The pages carry their script and style inline and allow exactly those by hash, so no
//! other script can run even if some text ever escaped into the markup. The hashes of the
//! pages' fixed assets are computed when the launch component is built, not per request.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The CSP hash source allowing the inline `<script>` or `<style>` whose text is `text`
/// (the bytes between the tags, exactly as served): `'sha256-<base64 of SHA-256>'`.
pub fn hash_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// Why a source list is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CspError {
    /// The list has no source.
    #[error("expected at least one source such as 'self' or https://example.org")]
    Empty,
    /// A character that would end the directive or the header (`;`, `,`, a line break or
    /// another control character), or one a source never holds.
    #[error("sources are separated by spaces; {0:?} may not appear in a source list")]
    Character(char),
    /// A word that is neither a keyword nor a scheme or host source.
    #[error(
        "`{0}` is not a source: use 'self', 'none', a scheme such as https: or a host such as https://*.example.org"
    )]
    Source(String),
    /// `'none'` together with other sources.
    #[error("'none' cannot be combined with other sources")]
    NoneWithOthers,
}

/// The validated value of `frame-ancestors`: who may show the pages in a frame. The default
/// is `'self'` (the pages of this Binder only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAncestors(String);

impl Default for FrameAncestors {
    fn default() -> Self {
        Self("'self'".to_owned())
    }
}

impl FrameAncestors {
    /// Parses a space-separated source list: `'self'`, `'none'` (alone), scheme sources
    /// (`https:`) and host sources (`https://*.example.org:443/path`). Nothing that could
    /// end the directive or add a header line gets through.
    pub fn parse(raw: &str) -> Result<Self, CspError> {
        if let Some(c) = raw
            .chars()
            .find(|c| matches!(c, ';' | ',') || (c.is_control() && *c != '\t') || !c.is_ascii())
        {
            return Err(CspError::Character(c));
        }
        let sources: Vec<&str> = raw.split_ascii_whitespace().collect();
        if sources.is_empty() {
            return Err(CspError::Empty);
        }
        for source in &sources {
            if !is_source(source) {
                return Err(CspError::Source((*source).to_owned()));
            }
        }
        if sources.len() > 1 && sources.iter().any(|s| s.eq_ignore_ascii_case("'none'")) {
            return Err(CspError::NoneWithOthers);
        }
        Ok(Self(sources.join(" ")))
    }

    /// The source list as it goes into the header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FrameAncestors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origin (`scheme://host[:port]`) of an absolute http(s) URL, when it can stand in a
/// source list as a host source; `None` for a relative URL or one whose host holds
/// characters a source never does.
pub fn origin_source(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find('/').unwrap_or(rest.len());
    let origin = &url[..url.len() - rest.len() + end];
    is_host_source(origin).then_some(origin)
}

/// Whether `word` is one source of a `frame-ancestors` list (CSP3 §2.3.1, without nonces
/// and hashes, which that directive ignores).
fn is_source(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    match lower.as_str() {
        "'self'" | "'none'" => return true,
        // A host named `self` is what the browser would read: a keyword without its
        // quotes is a mistake, not a host.
        "self" | "none" => return false,
        _ => {}
    }
    is_scheme_source(word) || is_host_source(word)
}

/// `scheme ":"`: `https:`, `data:`.
fn is_scheme_source(word: &str) -> bool {
    word.strip_suffix(':').is_some_and(is_scheme)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `[scheme "://"] host [":" port] [path]`, host `*`, `*.labels` or labels.
fn is_host_source(word: &str) -> bool {
    let rest = match word.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        Some(_) => return false,
        None => word,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let host_ok = host == "*"
        || host
            .strip_prefix("*.")
            .unwrap_or(host)
            .split('.')
            .all(label);
    let port_ok =
        port.is_none_or(|p| p == "*" || (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit())));
    // A path of URL characters; quotes would read as a keyword.
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&()*+=:@".contains(c));
    host_ok && port_ok && path_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_sources_are_the_base64_sha256_of_the_exact_text() {
        // `printf 'alert(1)' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            hash_source("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
        assert_ne!(hash_source("alert(1)"), hash_source("alert(1)\n"));
    }

    #[test]
    fn frame_ancestors_take_source_lists_and_nothing_else() {
        let good = [
            ("'self'", "'self'"),
            ("'none'", "'none'"),
            ("'SELF'", "'SELF'"),
            (
                "  'self'   https://*.example.org ",
                "'self' https://*.example.org",
            ),
            ("https:", "https:"),
            (
                "https://jupyter.org:443/embed/",
                "https://jupyter.org:443/embed/",
            ),
            ("example.org *.example.org:*", "example.org *.example.org:*"),
            (
                "'self'\thttp://127.0.0.1:8888",
                "'self' http://127.0.0.1:8888",
            ),
            ("*", "*"),
        ];
        for (raw, parsed) in good {
            assert_eq!(
                FrameAncestors::parse(raw).map(|f| f.to_string()),
                Ok(parsed.to_owned()),
                "{raw}"
            );
        }
        let bad = [
            ("", CspError::Empty),
            ("   ", CspError::Empty),
            ("'self'; script-src *", CspError::Character(';')),
            ("'self',https://a", CspError::Character(',')),
            ("'self'\nX-Evil: 1", CspError::Character('\n')),
            ("'self'\r\n", CspError::Character('\r')),
            ("https://bücher.example", CspError::Character('ü')),
            (
                "'unsafe-inline'",
                CspError::Source("'unsafe-inline'".into()),
            ),
            ("'nonce-abc'", CspError::Source("'nonce-abc'".into())),
            ("self", CspError::Source("self".into())),
            ("'self' none", CspError::Source("none".into())),
            ("https://a'b", CspError::Source("https://a'b".into())),
            ("https://a:b", CspError::Source("https://a:b".into())),
            ("1http://a", CspError::Source("1http://a".into())),
            ("https://a..b", CspError::Source("https://a..b".into())),
            ("'none' 'self'", CspError::NoneWithOthers),
        ];
        for (raw, error) in bad {
            assert_eq!(FrameAncestors::parse(raw), Err(error), "{raw:?}");
        }
        assert_eq!(FrameAncestors::default().as_str(), "'self'");
    }

    #[test]
    fn origins_become_host_sources_only_when_they_are_plain() {
        let cases = [
            ("https://binder.example/", Some("https://binder.example")),
            (
                "http://127.0.0.1:8000/build/gh/o/r/HEAD",
                Some("http://127.0.0.1:8000"),
            ),
            ("https://binder.example", Some("https://binder.example")),
            ("/build/gh/o/r/HEAD", None),
            ("https://a;b.example/", None),
            ("https://a b/", None),
            ("ftp://host/", None),
            ("https:///x", None),
        ];
        for (url, origin) in cases {
            assert_eq!(origin_source(url), origin, "{url}");
        }
    }
}

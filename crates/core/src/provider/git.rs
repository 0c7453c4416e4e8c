//! `git/<percent-encoded URL>/<percent-encoded ref>`: any git repository.

use super::{ProviderSettings, bad_spec};
use crate::validate::{self, InputError};

/// A parsed git spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSpec {
    /// The spec text as given.
    pub raw: String,
    /// The URL exactly as written in the link (percent-encoded).
    pub quoted_url: String,
    /// The decoded clone URL; scp-style `user@host:path` rewritten to `ssh://user@host/path`.
    pub url: String,
    /// The URL scheme (`https`, `ssh`, ...).
    pub scheme: String,
    /// The decoded ref.
    pub unresolved_ref: String,
}

impl GitSpec {
    /// Parses the raw spec: split at the first `/`, decode both parts, check the scheme.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let (quoted, quoted_ref) = raw.split_once('/').unwrap_or((raw, ""));
        let decoded = validate::percent_decode("git URL", quoted)?;
        let unresolved_ref = validate::percent_decode("ref", quoted_ref)?;
        if unresolved_ref.is_empty() {
            return Err(bad_spec(format!(
                "Spec is not of the form \"<url-encoded repository URL>/<ref>\", provided: \"{raw}\". Did you mean \"{raw}/HEAD\"?"
            )));
        }
        let url = rewrite_scp(&decoded);
        let parsed = url::Url::parse(&url).map_err(|e| {
            bad_spec(format!(
                "git URL {} is not a URL: {e}",
                validate::shown(&decoded)
            ))
        })?;
        let scheme = parsed.scheme().to_string();
        if !settings.git_protocols.contains(&scheme) {
            return Err(bad_spec(format!(
                "git URL {} uses protocol {scheme:?}; allowed: {}",
                validate::shown(&decoded),
                settings.git_protocols.join(", ")
            )));
        }
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(bad_spec(format!(
                "git URL {} has no host",
                validate::shown(&decoded)
            )));
        }
        validate::validate_repo_url("git URL", &url)?;
        Ok(GitSpec {
            raw: raw.to_string(),
            quoted_url: quoted.to_string(),
            url,
            scheme,
            unresolved_ref,
        })
    }

    /// The clone URL.
    pub fn repo_url(&self) -> String {
        self.url.clone()
    }

    /// The whole URL; escaping happens in image naming.
    pub fn build_slug(&self) -> String {
        self.url.clone()
    }

    /// `<URL as written>/<sha>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{resolved_ref}", self.quoted_url)
    }

    /// Git has no browsable commit page: the repository URL.
    pub fn ref_url(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }

    /// Whether the ref can be resolved over git's smart HTTP protocol (at the edge).
    pub fn is_http(&self) -> bool {
        matches!(self.scheme.as_str(), "http" | "https")
    }
}

/// `user@host:path` (no scheme) becomes `ssh://user@host/path`, as BinderHub does.
fn rewrite_scp(url: &str) -> String {
    if url.contains("://") {
        return url.to_string();
    }
    match url.split_once(':') {
        Some((user_host, path)) if user_host.contains('@') && !user_host.contains('/') => {
            format!("ssh://{user_host}/{}", path.trim_start_matches('/'))
        }
        _ => url.to_string(),
    }
}

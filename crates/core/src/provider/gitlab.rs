//! `gl/<percent-encoded namespace>/<ref>`: GitLab projects.

use super::{ProviderSettings, bad_spec};
use crate::validate::{self, InputError};

/// A parsed GitLab spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLabSpec {
    /// The spec text as given.
    pub raw: String,
    /// The namespace exactly as written in the link (percent-encoded).
    pub quoted_namespace: String,
    /// The decoded namespace, `group/sub/project`.
    pub namespace: String,
    /// The decoded ref.
    pub unresolved_ref: String,
    /// GitLab's web host.
    pub host: String,
}

impl GitLabSpec {
    /// Parses the raw spec: split at the first `/`, decode both parts.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let (quoted, quoted_ref) = raw.split_once('/').unwrap_or((raw, ""));
        let namespace = validate::percent_decode("GitLab namespace", quoted)?;
        let unresolved_ref = validate::percent_decode("ref", quoted_ref)?;
        if unresolved_ref.is_empty() {
            return Err(bad_spec(format!(
                "Spec is not of the form \"<url-encoded namespace>/<ref>\", provided: \"{raw}\". Did you mean \"{raw}/HEAD\"?"
            )));
        }
        let segments_ok = namespace.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if !segments_ok {
            return Err(bad_spec(format!(
                "GitLab namespace {} must be path segments of letters, digits, '-', '_' and '.'",
                validate::shown(&namespace)
            )));
        }
        Ok(GitLabSpec {
            raw: raw.to_string(),
            quoted_namespace: quoted.to_string(),
            namespace,
            unresolved_ref,
            host: settings.gitlab_host.clone(),
        })
    }

    /// `https://gitlab.com/<namespace>.git`.
    pub fn repo_url(&self) -> String {
        format!("https://{}/{}.git", self.host, self.namespace)
    }

    /// Namespace parts with `-` written as `_-`, joined by `-`.
    pub fn build_slug(&self) -> String {
        self.namespace
            .split('/')
            .map(|p| p.replace('-', "_-"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// `<namespace as written>/<sha>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{resolved_ref}", self.quoted_namespace)
    }

    /// `https://gitlab.com/<namespace>/tree/<sha>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!(
            "https://{}/{}/tree/{resolved_ref}",
            self.host, self.namespace
        )
    }
}

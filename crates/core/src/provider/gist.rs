//! `gist/<user>/<gist id>[/<ref>]`: GitHub gists.

use super::{ProviderSettings, bad_spec, github::check_name};
use crate::validate::InputError;

/// A parsed gist spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GistSpec {
    /// The spec text as given.
    pub raw: String,
    /// The gist's owner.
    pub user: String,
    /// The gist id.
    pub gist_id: String,
    /// The revision as written; empty means the newest.
    pub unresolved_ref: String,
    /// The gist web host.
    pub host: String,
}

impl GistSpec {
    /// Parses the raw spec; parts after the third are ignored, as BinderHub does.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let mut parts = raw.split('/');
        let user = parts.next().unwrap_or_default().to_string();
        let gist_id = parts.next().unwrap_or_default().to_string();
        let unresolved_ref = parts.next().unwrap_or_default().to_string();
        if user.is_empty() || gist_id.is_empty() {
            return Err(bad_spec(format!(
                "Spec is not of the form \"user/gist-id[/ref]\", provided: \"{raw}\"."
            )));
        }
        check_name("user", &user)?;
        if !gist_id.bytes().all(|b| b.is_ascii_alphanumeric()) || gist_id.len() > 64 {
            return Err(bad_spec(format!(
                "gist id {} must be letters and digits",
                crate::validate::shown(&gist_id)
            )));
        }
        Ok(GistSpec {
            raw: raw.to_string(),
            user,
            gist_id,
            unresolved_ref,
            host: settings.gist_host.clone(),
        })
    }

    /// Whether the ref asks for the newest revision.
    pub fn wants_latest(&self) -> bool {
        matches!(
            self.unresolved_ref.as_str(),
            "" | "HEAD" | "master" | "main"
        )
    }

    /// `https://gist.github.com/<user>/<id>.git`.
    pub fn repo_url(&self) -> String {
        format!("https://{}/{}/{}.git", self.host, self.user, self.gist_id)
    }

    /// The gist id.
    pub fn build_slug(&self) -> String {
        self.gist_id.clone()
    }

    /// `<user>/<id>/<revision>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{}/{resolved_ref}", self.user, self.gist_id)
    }

    /// `https://gist.github.com/<user>/<id>/<revision>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!(
            "https://{}/{}/{}/{resolved_ref}",
            self.host, self.user, self.gist_id
        )
    }
}

//! `gist/<user>/<gist id>[/<ref>]`: GitHub gists.

use serde_json::Value;

use super::contract::trim;
use super::{
    Accept, Answer, Auth, Cx, FULL_COMMIT, Fetch, Next, Provider, ProviderInfo, ProviderSettings,
    RepoEncoding, UiRoute, bad_spec, github, github::check_name,
};
use crate::validate::{InputError, is_full_commit};

/// The gist row of the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "gist",
    display_name: "Gist",
    menu_label: "Gist",
    repo_label: "Gist ID (user/id) or URL",
    example: "jakevdp/7f5dc9ba9ab0c02bc88eb5c2a1b1b8d6",
    has_ref: true,
    repo_encoding: RepoEncoding::AsTyped,
    paste_host: Some("gist.github.com/"),
    ui_route: UiRoute::UserIdOptionalRef,
    resolved_ref: FULL_COMMIT,
    checks_pinned_commits: true,
};

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
}

impl Provider for GistSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// `https://gist.github.com/<user>/<id>.git`.
    fn repo_url(&self) -> String {
        format!("https://{}/{}/{}.git", self.host, self.user, self.gist_id)
    }

    fn unresolved_ref(&self) -> Option<&str> {
        Some(&self.unresolved_ref)
    }

    /// The gist id.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(self.gist_id.clone())
    }

    /// `<user>/<id>/<revision>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{}/{resolved_ref}", self.user, self.gist_id)
    }

    /// `https://gist.github.com/<user>/<id>/<revision>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!(
            "https://{}/{}/{}/{resolved_ref}",
            self.host, self.user, self.gist_id
        )
    }

    /// The gist id.
    fn repo_key(&self) -> String {
        self.gist_id.clone()
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        is_full_commit(resolved_ref)
    }

    /// `GET /gists/<id>` from GitHub's API; for a link that names a full revision, that
    /// revision's own `GET /gists/<id>/<sha>`, which answers 404 for one the gist never
    /// had (the gist's `history` may be cut short, the revision API is not).
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        let api = trim(&cx.settings.github_api);
        let url = if is_full_commit(&self.unresolved_ref) {
            format!("{api}/gists/{}/{}", self.gist_id, self.unresolved_ref)
        } else {
            format!("{api}/gists/{}", self.gist_id)
        };
        Next::Fetch(Fetch {
            accept: Accept::GitHub,
            auth: Auth::GitHub,
            ..Fetch::json(url)
        })
    }

    /// The newest revision, or the one the link names, from the gist's history (a full
    /// revision is confirmed by the revision API's `200`); secret gists only where the
    /// operator allows them. GitHub's rate limit is not "not found".
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        match answer.code() {
            200 => {}
            404 | 422 => return Next::NotFound,
            403 | 429 if github::rate_limited(answer) => return github::rate_limit(answer),
            code => return Next::Failed(format!("GitHub answered {code}")),
        }
        let Ok(doc) = serde_json::from_slice::<Value>(answer.body) else {
            return Next::Failed("GitHub's gist answer is not JSON".into());
        };
        if doc.get("public").and_then(Value::as_bool) != Some(true)
            && !cx.settings.allow_secret_gist
        {
            return Next::Failed(
                "Cannot use private gist: secret gists are not allowed on this Binder".into(),
            );
        }
        if is_full_commit(&self.unresolved_ref) {
            return Next::resolved(self.unresolved_ref.clone());
        }
        let versions: Vec<&str> = doc
            .get("history")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter_map(|e| e.get("version").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let found = if self.wants_latest() {
            versions.first().copied()
        } else {
            versions.iter().copied().find(|v| *v == cx.progress.git_ref)
        };
        match found {
            Some(v) => Next::resolved(v.to_string()),
            None => Next::NotFound,
        }
    }
}

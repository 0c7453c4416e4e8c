//! `gl/<percent-encoded namespace>/<ref>`: GitLab projects.

use super::contract::{json_field, trim};
use super::{
    Answer, Auth, Cx, FULL_COMMIT, Fetch, Next, Provider, ProviderInfo, ProviderSettings,
    RepoEncoding, UiRoute, bad_spec,
};
use crate::resolve::encode_all;
use crate::validate::{self, InputError, is_full_commit};

/// GitLab's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "gl",
    display_name: "GitLab",
    menu_label: "GitLab.com",
    repo_label: "GitLab.com repository or URL",
    example: "gitlab-org/gitlab-foss or https://gitlab.com/gitlab-org/gitlab-foss",
    has_ref: true,
    repo_encoding: RepoEncoding::Percent,
    paste_host: Some("gitlab.com/"),
    ui_route: UiRoute::RepoRef,
    resolved_ref: FULL_COMMIT,
    checks_pinned_commits: true,
};

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
}

impl Provider for GitLabSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// `https://gitlab.com/<namespace>.git`.
    fn repo_url(&self) -> String {
        format!("https://{}/{}.git", self.host, self.namespace)
    }

    fn unresolved_ref(&self) -> Option<&str> {
        Some(&self.unresolved_ref)
    }

    /// Namespace parts with `-` written as `_-`, joined by `-`.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(
            self.namespace
                .split('/')
                .map(|p| p.replace('-', "_-"))
                .collect::<Vec<_>>()
                .join("-"),
        )
    }

    /// `<namespace as written>/<sha>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{resolved_ref}", self.quoted_namespace)
    }

    /// `https://gitlab.com/<namespace>/tree/<sha>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!(
            "https://{}/{}/tree/{resolved_ref}",
            self.host, self.namespace
        )
    }

    /// The decoded namespace.
    fn repo_key(&self) -> String {
        self.namespace.clone()
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        is_full_commit(resolved_ref)
    }

    /// `GET /projects/<namespace>/repository/commits/<ref>`, both encoded whole, for a
    /// pinned commit too.
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        let url = format!(
            "{}/projects/{}/repository/commits/{}",
            trim(&cx.settings.gitlab_api),
            encode_all(&self.namespace),
            encode_all(&self.unresolved_ref)
        );
        Next::Fetch(Fetch {
            auth: Auth::GitLab,
            ..Fetch::json(url)
        })
    }

    /// The commit's `id` (for a pinned commit too: GitLab answers 404 for one that does
    /// not exist). A `429` is GitLab's rate limit, not a missing commit; 401, 403 and 404
    /// are "not found" (GitLab hides private projects that way).
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        if answer.code() == 429 {
            let reset_at = answer
                .header("ratelimit-reset")
                .and_then(|v| v.parse::<u64>().ok());
            let seconds = answer
                .header("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| reset_at.map(|r| r.saturating_sub(answer.now)))
                .unwrap_or(60);
            return Next::RateLimited {
                reset_at: reset_at.or(Some(answer.now.saturating_add(seconds))),
                message: format!(
                    "GitLab rate limit exceeded. Try again in {} minutes.",
                    seconds.div_ceil(60).max(1)
                ),
            };
        }
        // 422: GitLab could not use the ref as a commit; it names none.
        if answer.code() == 422 {
            return Next::NotFound;
        }
        json_field(cx, answer, "/id")
    }
}

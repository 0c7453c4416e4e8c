//! `gh/<user>/<repo>/<ref>`: GitHub repositories.

use super::contract::{json_str, trim};
use super::{
    Accept, Answer, Auth, Cx, FULL_COMMIT, Fetch, Next, Provider, ProviderInfo, ProviderSettings,
    RepoEncoding, UiRoute, bad_spec, strip_suffix,
};
use crate::resolve::REF_SET;
use crate::validate::{InputError, is_full_commit};

/// GitHub's row in the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "gh",
    display_name: "GitHub",
    menu_label: "GitHub",
    repo_label: "GitHub repository name or URL",
    example: "binder-examples/requirements or https://github.com/binder-examples/requirements",
    has_ref: true,
    repo_encoding: RepoEncoding::AsTyped,
    paste_host: Some("github.com/"),
    ui_route: UiRoute::UserRepoRef,
    resolved_ref: FULL_COMMIT,
    checks_pinned_commits: true,
};

/// A parsed GitHub spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubSpec {
    /// The spec text as given.
    pub raw: String,
    /// The owner.
    pub user: String,
    /// The repository, without a trailing `.git`.
    pub repo: String,
    /// The ref as written; may contain `/`.
    pub unresolved_ref: String,
    /// GitHub's web host.
    pub host: String,
}

/// Splits `user/repo/ref` on the first two slashes, with BinderHub's error messages.
pub fn tokenize(spec: &str) -> Result<(String, String, String), InputError> {
    let parts: Vec<&str> = spec.splitn(3, '/').collect();
    if let [user, repo, git_ref] = parts[..] {
        return Ok((user.to_string(), repo.to_string(), git_ref.to_string()));
    }
    let mut msg = format!("Spec is not of the form \"user/repo/ref\", provided: \"{spec}\".");
    if parts.len() == 2 && !matches!(parts[1], "main" | "master" | "HEAD") {
        msg.push_str(&format!(" Did you mean \"{spec}/HEAD\"?"));
    }
    Err(bad_spec(msg))
}

/// GitHub owner and repository names: letters, digits, `-`, `_`, `.`; never `.` or `..`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), InputError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(bad_spec(format!(
            "GitHub {what} {} may hold only letters, digits, '-', '_' and '.'",
            crate::validate::shown(name)
        )))
    }
}

impl GitHubSpec {
    /// Parses the raw spec.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let (user, repo, unresolved_ref) = tokenize(raw)?;
        let repo = strip_suffix(&repo, ".git").to_string();
        check_name("user", &user)?;
        check_name("repository", &repo)?;
        if unresolved_ref.is_empty() {
            return Err(bad_spec(format!(
                "Spec is not of the form \"user/repo/ref\", provided: \"{raw}\"."
            )));
        }
        Ok(GitHubSpec {
            raw: raw.to_string(),
            user,
            repo,
            unresolved_ref,
            host: settings.github_host.clone(),
        })
    }

    /// The commits API request for the ref being looked up, conditional on a cached
    /// ETag unless this is the `HEAD` retry.
    fn commits_request(&self, cx: &Cx<'_>) -> Next {
        let url = format!(
            "{}/repos/{}/{}/commits/{}",
            trim(&cx.settings.github_api),
            self.user,
            self.repo,
            percent_encoding::utf8_percent_encode(&cx.progress.git_ref, REF_SET)
        );
        let if_none_match = match (cx.revalidation, cx.progress.fell_back) {
            (Some(r), false) => Some(r.etag.clone()),
            _ => None,
        };
        Next::Fetch(Fetch {
            url,
            accept: Accept::GitHub,
            auth: Auth::GitHub,
            if_none_match,
        })
    }
}

/// Whether a `403` or `429` from GitHub's API is its rate limit (`x-ratelimit-remaining:
/// 0`, a secondary limit's `retry-after`, or any `429`) rather than a refusal: then the
/// ref is not known to be missing.
pub(crate) fn rate_limited(answer: &Answer<'_>) -> bool {
    answer.code() == 429
        || answer.header("retry-after").is_some()
        || answer
            .header("x-ratelimit-remaining")
            .and_then(|v| v.parse::<i64>().ok())
            == Some(0)
}

/// BinderHub's answer to GitHub's rate limit: when it resets (`x-ratelimit-reset`, else
/// `retry-after` seconds from now), in minutes rounded up to a multiple of five.
pub(crate) fn rate_limit(answer: &Answer<'_>) -> Next {
    let retry_at = || {
        answer
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| answer.now.saturating_add(s))
    };
    let reset_at = answer
        .header("x-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(retry_at);
    let minutes = reset_at.map_or(60, |r| r.saturating_sub(answer.now).div_ceil(60));
    let minutes = (minutes.div_ceil(5) * 5).max(5);
    Next::RateLimited {
        reset_at,
        message: format!("GitHub rate limit exceeded. Try again in {minutes} minutes."),
    }
}

impl Provider for GitHubSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// `https://github.com/<user>/<repo>`.
    fn repo_url(&self) -> String {
        format!("https://{}/{}/{}", self.host, self.user, self.repo)
    }

    fn unresolved_ref(&self) -> Option<&str> {
        Some(&self.unresolved_ref)
    }

    /// `<user>-<repo>`, case preserved.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(format!("{}-{}", self.user, self.repo))
    }

    /// `<user>/<repo>/<sha>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{}/{resolved_ref}", self.user, self.repo)
    }

    /// `https://github.com/<user>/<repo>/tree/<sha>`.
    fn ref_url(&self, resolved_ref: &str) -> String {
        format!("{}/tree/{resolved_ref}", self.repo_url())
    }

    /// `<user>/<repo>`.
    fn repo_key(&self) -> String {
        format!("{}/{}", self.user, self.repo)
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        is_full_commit(resolved_ref)
    }

    /// `GET /repos/<user>/<repo>/commits/<ref>`, for a pinned commit too: GitHub answers
    /// 404 or 422 for one that does not exist.
    fn start(&self, cx: &mut Cx<'_>) -> Next {
        self.commits_request(cx)
    }

    /// The commit's `sha`; a 304 confirms the cached one. A missing `master` or `main` is
    /// retried as `HEAD`, as BinderHub does for renamed default branches.
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        cx.progress.rate_remaining = answer
            .header("x-ratelimit-remaining")
            .and_then(|v| v.parse().ok());
        match answer.code() {
            200 => match json_str(answer.body, "/sha") {
                Some(sha) => Next::Resolved {
                    resolved_ref: sha,
                    etag: answer.header("etag").map(String::from),
                },
                None => Next::Failed("GitHub's answer has no commit sha".into()),
            },
            304 => match cx.revalidation {
                Some(r) => Next::Resolved {
                    resolved_ref: r.resolved_ref.clone(),
                    etag: Some(r.etag.clone()),
                },
                None => Next::Failed("GitHub answered 304 to an unconditional request".into()),
            },
            404 | 422 => {
                if !cx.progress.fell_back
                    && matches!(cx.progress.git_ref.as_str(), "master" | "main")
                {
                    cx.progress.fell_back = true;
                    cx.progress.git_ref = "HEAD".into();
                    return self.commits_request(cx);
                }
                Next::NotFound
            }
            403 | 429 if rate_limited(answer) => rate_limit(answer),
            401 | 403 => Next::Failed(format!(
                "GitHub refused access ({}); check the GitHub token of this Binder",
                answer.code()
            )),
            _ => Next::Failed(format!("GitHub answered {}", answer.code())),
        }
    }
}

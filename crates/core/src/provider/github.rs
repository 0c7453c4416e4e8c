//! `gh/<user>/<repo>/<ref>`: GitHub repositories.

use super::{ProviderSettings, bad_spec, strip_suffix};
use crate::validate::InputError;

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

    /// `https://github.com/<user>/<repo>`.
    pub fn repo_url(&self) -> String {
        format!("https://{}/{}/{}", self.host, self.user, self.repo)
    }

    /// `<user>-<repo>`, case preserved.
    pub fn build_slug(&self) -> String {
        format!("{}-{}", self.user, self.repo)
    }

    /// `<user>/<repo>/<sha>`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{}/{resolved_ref}", self.user, self.repo)
    }

    /// `https://github.com/<user>/<repo>/tree/<sha>`.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        format!("{}/tree/{resolved_ref}", self.repo_url())
    }
}

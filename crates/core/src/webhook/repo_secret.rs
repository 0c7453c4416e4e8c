//! Per-repository webhook secrets, derived from the configured one.
//!
//! The configured `github_webhook_secret` (or `gitlab_webhook_secret`) is shared: every
//! repository owner who set up the hook knows it. An operator can instead hand each owner
//! a secret that is good for one repository only:
//!
//! ```text
//! secret(provider, repo) = hex(HMAC-SHA256(key = configured secret, message = "<provider>:<repo>"))
//! ```
//!
//! where `<provider>` is the spec prefix (`gh` for GitHub, `gl` for GitLab) and `<repo>`
//! is the repository path as the push body names it (GitHub's `repository.full_name`,
//! `owner/name`; GitLab's `project.path_with_namespace`, `group/sub/project`), lower-cased
//! because both providers treat these paths case-insensitively. The secret is the 64
//! lower-case hex characters, used as GitHub's signing secret or as GitLab's token. The
//! edge accepts a delivery under the shared secret, or under the secret derived for the
//! repository the body names ([`verify_delivery`]); `bindery webhook-secret gh/owner/name`
//! prints it.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{PushProvider, WebhookError, verify_github_signature, verify_gitlab_token};

/// The longest repository path accepted in a scope (GitLab allows deep group nesting).
const MAX_REPO_LEN: usize = 512;

/// The repository a per-repository secret is for: a provider and a lower-cased path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoScope {
    provider: PushProvider,
    repo: String,
}

impl RepoScope {
    /// The scope of `repo` (`owner/name`, `group/sub/project`) on `provider`; the path is
    /// lower-cased. `None` for a path that cannot be a repository (empty, a leading or
    /// trailing `/`, an empty segment, whitespace or control characters, too long, or for
    /// GitHub anything but exactly `owner/name`).
    pub fn new(provider: PushProvider, repo: &str) -> Option<Self> {
        let segments: Vec<&str> = repo.split('/').collect();
        let shaped = match provider {
            PushProvider::GitHub => segments.len() == 2,
            PushProvider::GitLab => segments.len() >= 2,
        };
        let ok = shaped
            && repo.len() <= MAX_REPO_LEN
            && segments
                .iter()
                .all(|s| !s.is_empty() && *s != "." && *s != "..")
            && !repo.chars().any(|c| c.is_whitespace() || c.is_control());
        ok.then(|| Self {
            provider,
            repo: repo.to_lowercase(),
        })
    }

    /// Parses `<provider>/<repo>` as a user writes it: `gh/owner/name` or
    /// `gl/group/sub/project` (a GitLab path may also be percent-encoded as in launch
    /// links, `gl/group%2Fsub%2Fproject`).
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let invalid = || WebhookError::InvalidRepository {
            given: crate::validate::shown(text),
        };
        let (prefix, repo) = text.split_once('/').ok_or_else(invalid)?;
        let provider = match prefix {
            "gh" => PushProvider::GitHub,
            "gl" => PushProvider::GitLab,
            _ => return Err(invalid()),
        };
        let repo = crate::validate::percent_decode("repository", repo).map_err(|_| invalid())?;
        Self::new(provider, repo.trim_end_matches('/')).ok_or_else(invalid)
    }

    /// The provider.
    pub fn provider(&self) -> PushProvider {
        self.provider
    }

    /// The lower-cased repository path.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The HMAC message: `<provider>:<repo>`, e.g. `gh:owner/name`.
    pub fn message(&self) -> String {
        format!("{}:{}", self.provider.spec_prefix(), self.repo)
    }

    /// The repository's secret under the configured `secret`: 64 lower-case hex digits.
    pub fn secret(&self, secret: &[u8]) -> String {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return String::new();
        };
        mac.update(self.message().as_bytes());
        crate::hex::lower(&mac.finalize().into_bytes())
    }
}

/// Which secret a delivery was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The configured (shared) secret.
    Shared,
    /// The secret derived for this repository: the delivery may only be about it.
    Repository(RepoScope),
}

impl Verified {
    /// True when a delivery verified this way may act on `repo` (the push body's path):
    /// always under the shared secret, only for its own repository under a derived one.
    pub fn covers(&self, provider: PushProvider, repo: &str) -> bool {
        match self {
            Self::Shared => true,
            Self::Repository(scope) => RepoScope::new(provider, repo).as_ref() == Some(scope),
        }
    }
}

/// Checks a delivery's credential (GitHub: the `X-Hub-Signature-256` header; GitLab: the
/// `X-Gitlab-Token` header) against the configured `secret`, then against the secret
/// derived for the repository the body names. The body is read for that name only after
/// the shared secret failed, and what it names is trusted only as far as the derived
/// secret then verifies; an empty `secret` refuses everything.
pub fn verify_delivery(
    provider: PushProvider,
    secret: &[u8],
    body: &[u8],
    credential: Option<&str>,
) -> Result<Verified, WebhookError> {
    let check = |key: &[u8]| match provider {
        PushProvider::GitHub => verify_github_signature(key, body, credential),
        PushProvider::GitLab => verify_gitlab_token(key, credential),
    };
    match check(secret) {
        Ok(()) => Ok(Verified::Shared),
        Err(e @ (WebhookError::SignatureMismatch | WebhookError::TokenMismatch)) => {
            let Some(scope) = claimed_repo(provider, body) else {
                return Err(e);
            };
            check(scope.secret(secret).as_bytes())
                .map(|()| Verified::Repository(scope))
                .map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// The repository a body says it is about, read only to pick the derived secret.
fn claimed_repo(provider: PushProvider, body: &[u8]) -> Option<RepoScope> {
    #[derive(Deserialize)]
    struct Named {
        full_name: Option<String>,
        path_with_namespace: Option<String>,
    }
    #[derive(Deserialize)]
    struct Body {
        repository: Option<Named>,
        project: Option<Named>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let repo = match provider {
        PushProvider::GitHub => body.repository?.full_name?,
        PushProvider::GitLab => body.project?.path_with_namespace?,
    };
    RepoScope::new(provider, &repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"hook-secret";

    fn github_body(repo: &str) -> Vec<u8> {
        serde_json::json!({"repository": {"full_name": repo}})
            .to_string()
            .into_bytes()
    }

    fn sign(key: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    #[test]
    fn the_derived_secret_is_the_hmac_of_provider_and_lower_cased_repo() {
        let scope = RepoScope::new(PushProvider::GitHub, "Owner/Name").unwrap();
        assert_eq!(scope.message(), "gh:owner/name");
        // Computed independently: printf 'gh:owner/name' | openssl dgst -sha256 -hmac hook-secret
        assert_eq!(
            scope.secret(SECRET),
            "4d5e5aa6bf94f43e281ecbc3d2b04c384ab7f7a3647b1f567fc355fc525a42dc"
        );
        let gl = RepoScope::new(PushProvider::GitLab, "Group/Sub/Project").unwrap();
        assert_eq!(gl.message(), "gl:group/sub/project");
        assert_ne!(gl.secret(SECRET), scope.secret(SECRET));
    }

    #[test]
    fn scopes_parse_as_written_in_links() {
        let cases: &[(&str, Option<&str>)] = &[
            ("gh/owner/name", Some("gh:owner/name")),
            ("gh/Owner/Name/", Some("gh:owner/name")),
            ("gl/group/sub/project", Some("gl:group/sub/project")),
            ("gl/group%2Fsub%2Fproject", Some("gl:group/sub/project")),
            ("gh/owner", None),
            ("gh/owner/name/extra", None),
            ("gl/project", None),
            ("bb/owner/name", None),
            ("gh//name", None),
            ("gh/own er/name", None),
            ("gh/../name", None),
            ("gh/owner/name\n", None),
            ("", None),
        ];
        for (text, message) in cases {
            assert_eq!(
                RepoScope::parse(text).ok().map(|s| s.message()).as_deref(),
                *message,
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_per_repository_secret_verifies_for_its_repository_and_no_other() {
        let derived = RepoScope::new(PushProvider::GitHub, "o/r")
            .unwrap()
            .secret(SECRET);
        let own = github_body("o/r");
        let other = github_body("o/other");
        let cases: Vec<(&str, Vec<u8>, String, Option<Verified>)> = vec![
            (
                "shared",
                own.clone(),
                sign(SECRET, &own),
                Some(Verified::Shared),
            ),
            (
                "derived, own repository",
                own.clone(),
                sign(derived.as_bytes(), &own),
                Some(Verified::Repository(
                    RepoScope::new(PushProvider::GitHub, "O/R").unwrap(),
                )),
            ),
            (
                "derived, another repository",
                other.clone(),
                sign(derived.as_bytes(), &other),
                None,
            ),
            ("another key", own.clone(), sign(b"nope", &own), None),
        ];
        for (case, body, header, expected) in cases {
            let got = verify_delivery(PushProvider::GitHub, SECRET, &body, Some(&header));
            assert_eq!(got.ok(), expected, "{case}");
        }
        let gl_body = serde_json::json!({"project": {"path_with_namespace": "g/p"}})
            .to_string()
            .into_bytes();
        let gl_derived = RepoScope::new(PushProvider::GitLab, "g/p")
            .unwrap()
            .secret(SECRET);
        assert!(matches!(
            verify_delivery(PushProvider::GitLab, SECRET, &gl_body, Some(&gl_derived)),
            Ok(Verified::Repository(_))
        ));
        // GitHub's derived secret is not GitLab's, for the same path.
        let gh_as_gl = RepoScope::new(PushProvider::GitHub, "g/p")
            .unwrap()
            .secret(SECRET);
        assert_eq!(
            verify_delivery(PushProvider::GitLab, SECRET, &gl_body, Some(&gh_as_gl)),
            Err(WebhookError::TokenMismatch)
        );
        // No secret configured: nothing verifies, derived or not.
        let empty = RepoScope::new(PushProvider::GitHub, "o/r")
            .unwrap()
            .secret(b"");
        assert_eq!(
            verify_delivery(
                PushProvider::GitHub,
                b"",
                &own,
                Some(&sign(empty.as_bytes(), &own))
            ),
            Err(WebhookError::SecretNotConfigured)
        );
    }

    #[test]
    fn a_derived_verification_covers_its_repository_only() {
        let scope = Verified::Repository(RepoScope::new(PushProvider::GitHub, "o/r").unwrap());
        assert!(scope.covers(PushProvider::GitHub, "O/r"));
        assert!(!scope.covers(PushProvider::GitHub, "o/x"));
        assert!(!scope.covers(PushProvider::GitLab, "o/r"));
        assert!(Verified::Shared.covers(PushProvider::GitHub, "o/x"));
    }
}

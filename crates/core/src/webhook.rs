//! Push webhooks from GitHub and GitLab: authenticity first, then a small validated event.
//!
//! A push webhook lets Bindery refresh a branch's cached ref the moment it moves and
//! prebuild the new image before anyone clicks. The endpoint is public, so every body is
//! hostile until proven otherwise: [`verify_github_signature`] (HMAC-SHA256 of the body)
//! and [`verify_gitlab_token`] (shared token) compare in constant time and refuse
//! everything when no secret is configured; only then do [`parse_github`] and
//! [`parse_gitlab`] read the JSON, and they return only fields that passed the same checks
//! as user input (no ref that could reach git as an option or a path traversal).
//! [`delivery_key`] gives the cache key that makes redeliveries idempotent.
//! [`verify_delivery`] also accepts per-repository secrets derived from the configured one
//! ([`RepoScope`]), so an operator can give each repository owner a secret of their own.
//!
//! A push is a hint, not a fact: the delivery id is not signed, a captured push can be sent
//! again, and the shared secret is known to every repository owner who set the hook up. The
//! webhook component therefore never stores the commit a push names; it asks the provider.
//!
//! Nothing here panics on any body or header, and no secret appears in an error message.

mod github;
mod gitlab;
mod repo_secret;
mod signature;

use serde_json::{Map, Value};
use thiserror::Error;

pub use github::{GithubEvent, parse_github};
pub use gitlab::{GitlabEvent, parse_gitlab};
pub use repo_secret::{RepoScope, Verified, verify_delivery};
pub use signature::{verify_github_signature, verify_gitlab_token};

/// The largest body accepted: GitHub caps webhook payloads at 25 MiB.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The longest delivery id accepted.
const MAX_DELIVERY_ID_LEN: usize = 128;

/// Why a webhook delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebhookError {
    /// No secret is configured: every delivery is refused until one is.
    #[error("webhook secret is not configured: refusing every delivery until it is set")]
    SecretNotConfigured,
    /// No `X-Hub-Signature-256` header.
    #[error("missing `X-Hub-Signature-256` header: set the same secret on the GitHub webhook")]
    MissingSignature,
    /// A signature header that is not `sha256=` followed by 64 hex digits.
    #[error("malformed `X-Hub-Signature-256` header: expected `sha256=` and 64 hex digits")]
    MalformedSignature,
    /// The HMAC of the body does not match the signature.
    #[error("webhook signature does not match the body: check that both sides use the same secret")]
    SignatureMismatch,
    /// No `X-Gitlab-Token` header.
    #[error("missing `X-Gitlab-Token` header: set the secret token on the GitLab webhook")]
    MissingToken,
    /// The `X-Gitlab-Token` header differs from the configured secret.
    #[error("`X-Gitlab-Token` does not match the configured secret")]
    TokenMismatch,
    /// A body larger than [`MAX_BODY_BYTES`].
    #[error("webhook body is too large: {len} bytes, at most {MAX_BODY_BYTES} are accepted")]
    BodyTooLarge {
        /// The body length in bytes.
        len: usize,
    },
    /// A body that is not a JSON object.
    #[error("failed to parse the webhook body: {reason}")]
    InvalidJson {
        /// What is wrong (a position, never body content).
        reason: String,
    },
    /// A push event without a required field.
    #[error("push event has no `{field}`")]
    MissingField {
        /// The JSON path of the field.
        field: &'static str,
    },
    /// A push event field with an unusable value.
    #[error("push event has an invalid `{field}`: {reason}")]
    InvalidField {
        /// The JSON path of the field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A delivery id that cannot be part of a cache key.
    #[error("invalid webhook delivery id: expected 1 to 128 characters of A-Z a-z 0-9 - _ .")]
    InvalidDeliveryId,
    /// A repository that cannot have a per-repository secret.
    #[error("invalid repository {given}: expected `gh/<owner>/<name>` or `gl/<group>/<project>`")]
    InvalidRepository {
        /// What was given, quoted and shortened for display.
        given: String,
    },
}

impl WebhookError {
    /// The HTTP status to answer with: 401 for a missing or wrong signature or token, 403
    /// when no secret is configured, 413 for an oversized body, 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::SecretNotConfigured => 403,
            Self::MissingSignature
            | Self::MalformedSignature
            | Self::SignatureMismatch
            | Self::MissingToken
            | Self::TokenMismatch => 401,
            Self::BodyTooLarge { .. } => 413,
            Self::InvalidJson { .. }
            | Self::MissingField { .. }
            | Self::InvalidField { .. }
            | Self::InvalidDeliveryId
            | Self::InvalidRepository { .. } => 400,
        }
    }
}

/// Where a push came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushProvider {
    /// GitHub (or GitHub Enterprise).
    GitHub,
    /// GitLab.
    GitLab,
}

impl PushProvider {
    /// `github` or `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
        }
    }

    /// The provider's prefix in launch specs: `gh` or `gl`.
    pub fn spec_prefix(self) -> &'static str {
        self.provider_id().as_str()
    }

    /// The launch provider whose specs this webhook's pushes are about.
    pub fn provider_id(self) -> crate::provider::ProviderId {
        match self {
            Self::GitHub => crate::provider::ProviderId::GitHub,
            Self::GitLab => crate::provider::ProviderId::GitLab,
        }
    }
}

/// A validated push: which repository, which ref, which commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// Where it came from.
    pub provider: PushProvider,
    /// `owner/name` on GitHub, `group/sub/project` on GitLab.
    pub repo: String,
    /// The repository's web URL.
    pub repo_url: String,
    /// The branch pushed to; `None` for a tag push.
    pub branch: Option<String>,
    /// The tag pushed; `None` for a branch push.
    pub tag: Option<String>,
    /// The commit the ref now points to (40 lower-case hex); `None` when the ref was
    /// deleted.
    pub commit: Option<String>,
    /// The repository's default branch, when the payload says.
    pub default_branch: Option<String>,
    /// True when the push deleted the ref.
    pub deleted: bool,
}

impl PushEvent {
    /// True when the push went to the default branch (what `HEAD` resolves to).
    pub fn is_default_branch(&self) -> bool {
        matches!((&self.branch, &self.default_branch), (Some(b), Some(d)) if b == d)
    }
}

/// The cache key remembering a delivery (`v1/hook/<provider>/<id>`), after checking that the
/// id is 1 to 128 characters of `[A-Za-z0-9-_.]`.
pub fn delivery_key(provider: PushProvider, delivery_id: &str) -> Result<String, WebhookError> {
    let ok = !delivery_id.is_empty()
        && delivery_id.len() <= MAX_DELIVERY_ID_LEN
        && delivery_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(crate::cache::delivery_key(provider.as_str(), delivery_id))
    } else {
        Err(WebhookError::InvalidDeliveryId)
    }
}

/// Refuses bodies over [`MAX_BODY_BYTES`].
fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        Err(WebhookError::BodyTooLarge { len: body.len() })
    } else {
        Ok(())
    }
}

/// Parses a body that must be a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, WebhookError> {
    check_size(body)?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(WebhookError::InvalidJson {
            reason: "expected a json object".to_owned(),
        }),
        Err(e) => Err(WebhookError::InvalidJson {
            reason: format!("not json (line {}, column {})", e.line(), e.column()),
        }),
    }
}

/// The value at `path` (e.g. `["repository", "full_name"]`).
fn lookup<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    let mut path = field.split('.');
    let first = object.get(path.next()?)?;
    path.try_fold(first, |value, key| value.get(key))
}

/// Where a provider's push body names its repository, as dotted field paths.
struct RepoFields {
    /// The repository's path (`owner/name`, `group/project`).
    path: &'static str,
    /// Its web URL.
    web_url: &'static str,
    /// Its default branch.
    default_branch: &'static str,
}

/// Reads the repository part of a push body and assembles the event: the part both
/// providers share once ref and commit are known.
fn push_event(
    provider: PushProvider,
    object: &Map<String, Value>,
    fields: &RepoFields,
    check_path: fn(&str) -> Result<(), WebhookError>,
    (branch, tag): (Option<String>, Option<String>),
    commit: Option<String>,
) -> Result<PushEvent, WebhookError> {
    let repo = required_str(object, fields.path)?;
    check_path(repo)?;
    let repo_url = check_web_url(fields.web_url, required_str(object, fields.web_url)?)?;
    let default_branch = optional_str(object, fields.default_branch)?;
    if let Some(default_branch) = default_branch {
        check_ref_name(fields.default_branch, default_branch)?;
    }
    Ok(PushEvent {
        provider,
        repo: repo.to_owned(),
        repo_url,
        branch,
        tag,
        deleted: commit.is_none(),
        commit,
        default_branch: default_branch.map(str::to_owned),
    })
}

/// A required string field.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, WebhookError> {
    match lookup(object, field) {
        None | Some(Value::Null) => Err(WebhookError::MissingField { field }),
        Some(Value::String(s)) if s.is_empty() => Err(WebhookError::MissingField { field }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(WebhookError::InvalidField {
            field,
            reason: "expected a string".to_owned(),
        }),
    }
}

/// An optional string field (absent, null and empty are `None`).
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, WebhookError> {
    match lookup(object, field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WebhookError::InvalidField {
            field,
            reason: "expected a string".to_owned(),
        }),
    }
}

/// Splits `refs/heads/X` into a branch and `refs/tags/X` into a tag, validating the name.
fn split_ref(full_ref: &str) -> Result<(Option<String>, Option<String>), WebhookError> {
    if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
        check_ref_name("ref", branch)?;
        Ok((Some(branch.to_owned()), None))
    } else if let Some(tag) = full_ref.strip_prefix("refs/tags/") {
        check_ref_name("ref", tag)?;
        Ok((None, Some(tag.to_owned())))
    } else {
        Err(WebhookError::InvalidField {
            field: "ref",
            reason: format!(
                "{} is neither `refs/heads/...` nor `refs/tags/...`",
                crate::validate::shown(full_ref)
            ),
        })
    }
}

/// A branch or tag name that is safe to hand to git: the user-input ref rules (no control
/// characters or whitespace, no leading `-`, no `..`, at most 255 bytes) plus the
/// characters git itself refuses in ref names.
fn check_ref_name(field: &'static str, name: &str) -> Result<(), WebhookError> {
    crate::validate::validate_ref(field, name).map_err(|e| WebhookError::InvalidField {
        field,
        reason: e.to_string(),
    })?;
    let bad = name.contains(['~', '^', ':', '?', '*', '[', '\\'])
        || name.contains("@{")
        || name.contains("//")
        || name.starts_with('/')
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name == "@";
    if bad {
        return Err(WebhookError::InvalidField {
            field,
            reason: format!(
                "{} is not a valid git ref name",
                crate::validate::shown(name)
            ),
        });
    }
    Ok(())
}

/// A commit id: `Some` for 40 lower-case hex digits, `None` for the all-zero id of a
/// deleted ref.
fn check_commit(field: &'static str, commit: &str) -> Result<Option<String>, WebhookError> {
    let hex = commit.len() == 40
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(WebhookError::InvalidField {
            field,
            reason: "expected 40 lower-case hex digits".to_owned(),
        });
    }
    Ok(if commit.bytes().all(|b| b == b'0') {
        None
    } else {
        Some(commit.to_owned())
    })
}

/// A web URL: http(s), a host, no credentials.
fn check_web_url(field: &'static str, raw: &str) -> Result<String, WebhookError> {
    let invalid = |reason: &str| WebhookError::InvalidField {
        field,
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|_| invalid("not an absolute url"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("expected an http(s) url with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("the url must not carry credentials"));
    }
    Ok(raw.to_owned())
}

/// An event or kind name, safe to log and return: at most 64 characters, odd ones as `?`.
fn event_label(raw: &str) -> String {
    raw.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_keys() {
        assert_eq!(
            delivery_key(PushProvider::GitHub, "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            Ok("v1/hook/github/72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned())
        );
        assert_eq!(
            delivery_key(PushProvider::GitLab, "a.b_c"),
            Ok("v1/hook/gitlab/a.b_c".to_owned())
        );
        assert!(delivery_key(PushProvider::GitHub, &"a".repeat(128)).is_ok());
        for bad in [
            String::new(),
            "a".repeat(129),
            "a/b".into(),
            "a b".into(),
            "a%2F".into(),
            "é".into(),
            "a\n".into(),
        ] {
            assert_eq!(
                delivery_key(PushProvider::GitHub, &bad),
                Err(WebhookError::InvalidDeliveryId),
                "{bad}"
            );
        }
    }

    #[test]
    fn ref_names() {
        for ok in [
            "main",
            "feature/x",
            "v1.0.0",
            "release-2024",
            "a@b",
            "ünïcode",
        ] {
            assert_eq!(check_ref_name("ref", ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "a\tb",
            "a\u{7}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a@{1}",
            "a//b",
            "/a",
            "a/",
            "a.",
            "a.lock",
            "@",
            long.as_str(),
        ] {
            assert!(check_ref_name("ref", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commits() {
        let sha = "1479e0252b2e648bb755ee913292b79495931717";
        assert_eq!(check_commit("after", sha), Ok(Some(sha.to_owned())));
        assert_eq!(check_commit("after", &"0".repeat(40)), Ok(None));
        for bad in [
            "",
            "1479e02",
            "1479E0252B2E648BB755EE913292B79495931717",
            &"g".repeat(40),
            &"a".repeat(64),
        ] {
            assert!(check_commit("after", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_codes() {
        assert_eq!(WebhookError::SecretNotConfigured.status_code(), 403);
        assert_eq!(WebhookError::SignatureMismatch.status_code(), 401);
        assert_eq!(WebhookError::BodyTooLarge { len: 1 }.status_code(), 413);
        assert_eq!(
            WebhookError::MissingField { field: "ref" }.status_code(),
            400
        );
    }

    #[test]
    fn event_labels_are_tame() {
        assert_eq!(event_label("Merge Request Hook"), "Merge Request Hook");
        assert_eq!(event_label("x\n<script>"), "x??script?");
        assert_eq!(event_label(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn is_default_branch() {
        let mut e = PushEvent {
            provider: PushProvider::GitHub,
            repo: "o/n".into(),
            repo_url: "https://github.com/o/n".into(),
            branch: Some("main".into()),
            tag: None,
            commit: None,
            default_branch: Some("main".into()),
            deleted: false,
        };
        assert!(e.is_default_branch());
        e.default_branch = None;
        assert!(!e.is_default_branch());
        e.default_branch = Some("main".into());
        e.branch = None;
        e.tag = Some("main".into());
        assert!(!e.is_default_branch());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            header in ".{0,80}",
        ) {
            let _ = parse_github("push", &body);
            let _ = parse_github("ping", &body);
            let _ = parse_gitlab("Push Hook", &body);
            let _ = verify_github_signature(b"secret", &body, Some(&header));
            let _ = verify_gitlab_token(b"secret", Some(&header));
            let _ = delivery_key(PushProvider::GitHub, &header);
            let _ = split_ref(&header);
        }
    }
}

//! The manifest check as one I/O-free state machine: challenge → token → retry.
//!
//! The edge (Spin's outbound HTTP, with a KV token cache) and the worker (reqwest, no
//! cache) ask "does this image exist?" the same way: they create a [`ManifestCheck`], send
//! each request it hands out in [`Step::Send`] and feed the answer back with
//! [`ManifestCheck::feed`], until it ends in [`Step::Done`] or [`Step::Failed`]. A request
//! that cannot be sent is the caller's error: it just stops feeding.
//!
//! The transitions:
//!
//! - the first `HEAD` carries the caller's cached bearer token when it has one, else the
//!   basic [`Credentials`] when set, else nothing;
//! - 200 → present (with the digest when well formed), 404 → missing, any status other
//!   than 401 → [`ManifestCheckError::Status`];
//! - 401 with a bearer challenge → a token request to the challenge's realm (with the basic
//!   credentials when set), then the `HEAD` again with the token, which goes to the caller
//!   to cache ([`TokenChange::Store`]);
//! - a cached token the registry refuses is dropped ([`TokenChange::Forget`]) and the
//!   challenge followed as if there had been no cache; a challenge after that, or a 401
//!   without a bearer challenge, is [`ManifestCheckError::Unauthorized`], and a 401 whose
//!   bearer challenge does not parse is [`ManifestCheckError::Challenge`].
//!
//! So a check sends at most [`MAX_REQUESTS`] requests, whatever the registry answers.

use std::fmt;

use http::{HeaderMap, Request};
use thiserror::Error;

use super::{
    ChallengeError, ManifestAnswer, RegistryAuth, RegistryError, RegistryToken,
    interpret_manifest_response, manifest_request, parse_token_response, token_request,
};

/// The most requests one check sends: a refused cached token, a token request, a refused
/// fresh token, another token request and the last `HEAD`.
pub const MAX_REQUESTS: u32 = 5;

/// HTTP Basic credentials for the registry and its token service.
///
/// A username without a password is sent with an empty password, as BinderHub does (its
/// password defaults to `""`) and as a docker config `auth` of `user:` means: RFC 7617
/// allows an empty password, and the operator who set a username asked for
/// authentication. Sending nothing instead would let a registry that serves anonymous pulls
/// answer as if the credentials had been used, and a private registry's refusal would not
/// be about the credentials configured.
///
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials of `username` and `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The credentials a configuration gives: none without a username (or with an empty
    /// one, which is how an unset variable often reads), the username with the password or
    /// an empty one otherwise (see the type's docs for why).
    pub fn from_config(username: Option<&str>, password: Option<&str>) -> Option<Self> {
        username
            .filter(|u| !u.is_empty())
            .map(|u| Self::new(u, password.unwrap_or("")))
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    fn auth(&self) -> RegistryAuth {
        RegistryAuth::Basic {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// Whether the image exists, as the registry said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePresence {
    /// The manifest exists.
    Present {
        /// The `Docker-Content-Digest` of the manifest, when sent and well formed.
        digest: Option<String>,
    },
    /// The registry has no such manifest.
    Missing,
}

/// What the caller does with its cached bearer token for the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// Cache this new token (until just before it expires).
    Store(RegistryToken),
    /// Drop the cached token: the registry refused it.
    Forget,
}

/// What the caller does next.
#[derive(Debug)]
pub enum Step {
    /// Apply `token` to the token cache (when some), send `request` and feed its answer to
    /// [`ManifestCheck::feed`].
    Send {
        /// The request: a manifest `HEAD` or a token `GET`.
        request: Request<Vec<u8>>,
        /// A change to the token cache to make now.
        token: Option<TokenChange>,
    },
    /// The registry answered; the check is over. Cache the answer.
    Done(ImagePresence),
    /// The check is over without an answer. Apply `token` to the token cache (when some);
    /// do not cache anything else.
    Failed {
        /// Why.
        error: ManifestCheckError,
        /// A change to the token cache to make now.
        token: Option<TokenChange>,
    },
}

/// Why a manifest check ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestCheckError {
    /// A request could not be built (URL, repository, tag, credentials, token realm), or the
    /// token service's answer could not be used.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry wants a bearer token but its challenge does not say where to get it.
    #[error("failed to follow the registry's challenge: {0}")]
    Challenge(#[from] ChallengeError),
    /// The registry refused the credentials, or a token its own service issued.
    #[error(
        "the registry refused the credentials for {repository}: check registry_username and registry_password"
    )]
    Unauthorized {
        /// The repository asked for.
        repository: String,
    },
    /// The registry answered with an unexpected status.
    #[error("the registry answered http {status} for {repository}")]
    Status {
        /// The status.
        status: u16,
        /// The repository asked for.
        repository: String,
    },
    /// An answer was fed after the check had ended.
    #[error("the manifest check already ended")]
    Finished,
}

/// Which answer the check waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Manifest,
    Token,
    Nothing,
}

/// One manifest check of `<registry>/v2/<repository>/manifests/<tag>` (see the module docs).
#[derive(Debug)]
pub struct ManifestCheck {
    registry_url: String,
    repository: String,
    tag: String,
    credentials: Option<Credentials>,
    /// What the next manifest request authenticates with.
    auth: RegistryAuth,
    awaiting: Awaiting,
    /// Challenges still followed: one, plus one when the first request used a cached token.
    challenges_left: u8,
    sent: u32,
    now: u64,
}

impl ManifestCheck {
    /// Starts a check of `repository:tag` on the registry at `registry_url`, with
    /// `credentials` for Basic auth and the token service, and the caller's cached bearer
    /// token for the repository, if any. `now` (unix seconds) dates a new token's expiry.
    ///
    /// Returns the check and its first step: the manifest request, or the reason it cannot
    /// be made.
    pub fn new(
        registry_url: &str,
        repository: &str,
        tag: &str,
        credentials: Option<Credentials>,
        cached_token: Option<String>,
        now: u64,
    ) -> (Self, Step) {
        let (auth, challenges_left) = match cached_token {
            Some(token) => (RegistryAuth::Bearer(token), 2),
            None => (
                credentials
                    .as_ref()
                    .map_or(RegistryAuth::Anonymous, Credentials::auth),
                1,
            ),
        };
        let mut check = Self {
            registry_url: registry_url.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            credentials,
            auth,
            awaiting: Awaiting::Nothing,
            challenges_left,
            sent: 0,
            now,
        };
        let first = check.send_manifest(None);
        (check, first)
    }

    /// How many requests the check has handed out so far.
    pub fn requests_sent(&self) -> u32 {
        self.sent
    }

    /// The repository checked.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Feeds the answer to the last [`Step::Send`]: its status, headers and body (a
    /// manifest answer's body is not read).
    pub fn feed(&mut self, status: u16, headers: &HeaderMap, body: &[u8]) -> Step {
        match self.awaiting {
            Awaiting::Manifest => self.on_manifest(status, headers),
            Awaiting::Token => self.on_token(status, body),
            Awaiting::Nothing => Step::Failed {
                error: ManifestCheckError::Finished,
                token: None,
            },
        }
    }

    fn on_manifest(&mut self, status: u16, headers: &HeaderMap) -> Step {
        // Whatever refused a bearer token also makes it worthless in the cache.
        let refused = matches!(self.auth, RegistryAuth::Bearer(_)).then_some(TokenChange::Forget);
        match interpret_manifest_response(status, headers) {
            ManifestAnswer::Present { digest } => self.done(ImagePresence::Present { digest }),
            ManifestAnswer::Missing => self.done(ImagePresence::Missing),
            ManifestAnswer::Challenge(challenge) if self.challenges_left > 0 => {
                self.challenges_left -= 1;
                let credentials = self
                    .credentials
                    .as_ref()
                    .map(|c| (c.username.as_str(), c.password.as_str()));
                match token_request(&challenge, credentials) {
                    Ok(request) => self.send(request, Awaiting::Token, refused),
                    Err(error) => self.fail(error.into(), refused),
                }
            }
            ManifestAnswer::Challenge(_) | ManifestAnswer::Unauthorized => {
                let error = ManifestCheckError::Unauthorized {
                    repository: self.repository.clone(),
                };
                self.fail(error, refused)
            }
            ManifestAnswer::BadChallenge(error) => self.fail(error.into(), refused),
            ManifestAnswer::RegistryError { status } => {
                let error = ManifestCheckError::Status {
                    status,
                    repository: self.repository.clone(),
                };
                self.fail(error, None)
            }
        }
    }

    fn on_token(&mut self, status: u16, body: &[u8]) -> Step {
        match parse_token_response(status, body, self.now) {
            Ok(token) => {
                self.auth = token.auth();
                self.send_manifest(Some(TokenChange::Store(token)))
            }
            Err(error) => self.fail(error.into(), None),
        }
    }

    fn send_manifest(&mut self, token: Option<TokenChange>) -> Step {
        match manifest_request(&self.registry_url, &self.repository, &self.tag, &self.auth) {
            Ok(request) => self.send(request, Awaiting::Manifest, token),
            Err(error) => self.fail(error.into(), token),
        }
    }

    fn send(
        &mut self,
        request: Request<Vec<u8>>,
        awaiting: Awaiting,
        token: Option<TokenChange>,
    ) -> Step {
        self.awaiting = awaiting;
        self.sent += 1;
        Step::Send { request, token }
    }

    fn done(&mut self, presence: ImagePresence) -> Step {
        self.awaiting = Awaiting::Nothing;
        Step::Done(presence)
    }

    fn fail(&mut self, error: ManifestCheckError, token: Option<TokenChange>) -> Step {
        self.awaiting = Awaiting::Nothing;
        Step::Failed { error, token }
    }
}

#[cfg(test)]
mod tests {
    use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
    use http::{HeaderMap, Method};

    use super::*;

    const REGISTRY: &str = "https://registry.example.org";
    const REPOSITORY: &str = "binder-x";
    const MANIFEST: &str = "https://registry.example.org/v2/binder-x/manifests/abc";
    const REALM: &str = "https://auth.example.org/token";
    const TOKEN_URL: &str =
        "https://auth.example.org/token?scope=repository%3Abinder-x%3Apull&service=reg";
    const NOW: u64 = 1_700_000_000;

    fn start(credentials: Option<Credentials>, cached: Option<&str>) -> (ManifestCheck, Step) {
        ManifestCheck::new(
            REGISTRY,
            REPOSITORY,
            "abc",
            credentials,
            cached.map(str::to_owned),
            NOW,
        )
    }

    fn user() -> Option<Credentials> {
        Some(Credentials::new("puller", "pw"))
    }

    fn headers(pairs: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn bearer_challenge() -> HeaderMap {
        headers(&[(
            &WWW_AUTHENTICATE,
            &format!("Bearer realm=\"{REALM}\",service=\"reg\",scope=\"repository:binder-x:pull\""),
        )])
    }

    /// The request of a `Send` step, its `Authorization` and its token change.
    fn sent(step: Step) -> (Request<Vec<u8>>, Option<String>, Option<TokenChange>) {
        match step {
            Step::Send { request, token } => {
                let auth = request
                    .headers()
                    .get(AUTHORIZATION)
                    .map(|v| v.to_str().expect("ascii").to_owned());
                (request, auth, token)
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn failed(step: Step) -> (ManifestCheckError, Option<TokenChange>) {
        match step {
            Step::Failed { error, token } => (error, token),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn unauthorized() -> ManifestCheckError {
        ManifestCheckError::Unauthorized {
            repository: REPOSITORY.into(),
        }
    }

    #[test]
    fn a_200_is_present_with_its_digest_after_one_anonymous_head() {
        let (mut check, step) = start(None, None);
        let (request, auth, token) = sent(step);
        assert_eq!(
            (request.method(), request.uri().to_string()),
            (&Method::HEAD, MANIFEST.to_owned())
        );
        assert_eq!((auth, token), (None, None));
        let digest = format!("sha256:{}", "a".repeat(64));
        let answer = headers(&[(
            &http::header::HeaderName::from_static("docker-content-digest"),
            &digest,
        )]);
        match check.feed(200, &answer, b"") {
            Step::Done(presence) => assert_eq!(
                presence,
                ImagePresence::Present {
                    digest: Some(digest)
                }
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(check.requests_sent(), 1);
    }

    #[test]
    fn a_404_is_missing() {
        let (mut check, _) = start(user(), None);
        assert!(matches!(
            check.feed(404, &HeaderMap::new(), b""),
            Step::Done(ImagePresence::Missing)
        ));
    }

    #[test]
    fn a_401_to_basic_credentials_is_unauthorized() {
        let (mut check, step) = start(user(), None);
        let (_, auth, _) = sent(step);
        assert_eq!(auth.as_deref(), Some("Basic cHVsbGVyOnB3"));
        let basic = headers(&[(&WWW_AUTHENTICATE, "Basic realm=\"registry\"")]);
        assert_eq!(failed(check.feed(401, &basic, b"")), (unauthorized(), None));
        let (mut check, _) = start(user(), None);
        assert_eq!(
            failed(check.feed(401, &HeaderMap::new(), b"")),
            (unauthorized(), None)
        );
    }

    #[test]
    fn a_bearer_challenge_is_answered_with_a_token_and_one_retry() {
        let (mut check, _) = start(user(), None);
        let (request, auth, token) = sent(check.feed(401, &bearer_challenge(), b""));
        assert_eq!(
            (request.method(), request.uri().to_string()),
            (&Method::GET, TOKEN_URL.to_owned())
        );
        assert_eq!(auth.as_deref(), Some("Basic cHVsbGVyOnB3"));
        assert_eq!(token, None, "basic auth had no cached token to forget");
        let body = br#"{"token":"tok1","expires_in":300}"#;
        let (request, auth, token) = sent(check.feed(200, &HeaderMap::new(), body));
        assert_eq!(request.uri(), MANIFEST);
        assert_eq!(auth.as_deref(), Some("Bearer tok1"));
        assert_eq!(
            token,
            Some(TokenChange::Store(RegistryToken {
                token: "tok1".into(),
                expires_at: NOW + 300
            }))
        );
        assert!(matches!(
            check.feed(200, &HeaderMap::new(), b""),
            Step::Done(ImagePresence::Present { digest: None })
        ));
        assert_eq!(check.requests_sent(), 3);
    }

    #[test]
    fn an_anonymous_token_request_carries_no_authorization() {
        let (mut check, _) = start(None, None);
        let (_, auth, _) = sent(check.feed(401, &bearer_challenge(), b""));
        assert_eq!(auth, None);
    }

    #[test]
    fn a_username_without_password_is_sent_with_an_empty_password() {
        let credentials = Credentials::from_config(Some("puller"), None);
        assert_eq!(credentials, Some(Credentials::new("puller", "")));
        let (mut check, step) = start(credentials, None);
        // base64("puller:")
        assert_eq!(sent(step).1.as_deref(), Some("Basic cHVsbGVyOg=="));
        let (_, auth, _) = sent(check.feed(401, &bearer_challenge(), b""));
        assert_eq!(auth.as_deref(), Some("Basic cHVsbGVyOg=="));
        assert_eq!(Credentials::from_config(None, Some("pw")), None);
        assert_eq!(Credentials::from_config(Some(""), Some("pw")), None);
    }

    #[test]
    fn a_token_service_refusal_ends_the_check() {
        let (mut check, _) = start(user(), None);
        sent(check.feed(401, &bearer_challenge(), b""));
        let (error, token) = failed(check.feed(401, &HeaderMap::new(), b"denied"));
        assert_eq!(
            error,
            ManifestCheckError::Registry(RegistryError::TokenStatus { status: 401 })
        );
        assert!(
            error.to_string().contains("username and password"),
            "{error}"
        );
        assert_eq!(token, None);
        assert_eq!(check.requests_sent(), 2);
    }

    #[test]
    fn an_unusable_token_answer_ends_the_check() {
        let (mut check, _) = start(None, None);
        sent(check.feed(401, &bearer_challenge(), b""));
        assert_eq!(
            failed(check.feed(200, &HeaderMap::new(), br#"{"expires_in":60}"#)).0,
            ManifestCheckError::Registry(RegistryError::MissingToken)
        );
    }

    #[test]
    fn a_malformed_bearer_challenge_is_a_challenge_error() {
        let (mut check, _) = start(None, None);
        let broken = headers(&[(&WWW_AUTHENTICATE, "Bearer realm=\"r\",service=\"s\"")]);
        let (error, token) = failed(check.feed(401, &broken, b""));
        assert_eq!(
            error,
            ManifestCheckError::Challenge(ChallengeError::MissingParameters {
                missing: vec!["scope"]
            })
        );
        assert!(error.to_string().starts_with("failed to follow"), "{error}");
        assert_eq!(token, None);
    }

    #[test]
    fn a_challenge_to_a_non_http_realm_is_refused() {
        let (mut check, _) = start(user(), None);
        let evil = headers(&[(
            &WWW_AUTHENTICATE,
            "Bearer realm=\"file:///etc/passwd\",service=\"s\",scope=\"x\"",
        )]);
        assert!(matches!(
            failed(check.feed(401, &evil, b"")).0,
            ManifestCheckError::Registry(RegistryError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn a_cached_token_is_used_first() {
        let (mut check, step) = start(user(), Some("cached"));
        assert_eq!(sent(step).1.as_deref(), Some("Bearer cached"));
        assert!(matches!(
            check.feed(404, &HeaderMap::new(), b""),
            Step::Done(ImagePresence::Missing)
        ));
        assert_eq!(check.requests_sent(), 1);
    }

    #[test]
    fn a_refused_cached_token_is_forgotten_and_the_challenge_followed() {
        let (mut check, _) = start(user(), Some("stale"));
        let (request, auth, token) = sent(check.feed(401, &bearer_challenge(), b""));
        assert_eq!(request.uri(), TOKEN_URL);
        assert_eq!(auth.as_deref(), Some("Basic cHVsbGVyOnB3"));
        assert_eq!(token, Some(TokenChange::Forget));
        let (_, auth, token) = sent(check.feed(200, &HeaderMap::new(), br#"{"token":"fresh"}"#));
        assert_eq!(auth.as_deref(), Some("Bearer fresh"));
        assert!(matches!(token, Some(TokenChange::Store(_))));
        assert!(matches!(
            check.feed(200, &HeaderMap::new(), b""),
            Step::Done(ImagePresence::Present { .. })
        ));
    }

    #[test]
    fn a_refused_fresh_token_is_unauthorized_and_forgotten() {
        let (mut check, _) = start(None, None);
        sent(check.feed(401, &bearer_challenge(), b""));
        sent(check.feed(200, &HeaderMap::new(), br#"{"token":"t"}"#));
        assert_eq!(
            failed(check.feed(401, &bearer_challenge(), b"")),
            (unauthorized(), Some(TokenChange::Forget))
        );
        assert_eq!(check.requests_sent(), 3, "HEAD, token, HEAD: no loop");
    }

    #[test]
    fn a_registry_that_always_challenges_ends_within_the_bound() {
        for cached in [None, Some("stale")] {
            let (mut check, mut step) = start(user(), cached);
            let mut answers = 0;
            let end = loop {
                let Step::Send { request, .. } = step else {
                    break step;
                };
                answers += 1;
                assert!(answers <= MAX_REQUESTS, "{cached:?}: no end");
                step = if request.method() == Method::HEAD {
                    check.feed(401, &bearer_challenge(), b"")
                } else {
                    check.feed(200, &HeaderMap::new(), br#"{"token":"t"}"#)
                };
            };
            assert_eq!(
                failed(end),
                (unauthorized(), Some(TokenChange::Forget)),
                "{cached:?}"
            );
            let want = if cached.is_some() { MAX_REQUESTS } else { 3 };
            assert_eq!(check.requests_sent(), want, "{cached:?}");
        }
    }

    #[test]
    fn other_statuses_are_registry_errors_and_keep_the_token() {
        let (mut check, _) = start(None, Some("cached"));
        let (error, token) = failed(check.feed(503, &HeaderMap::new(), b""));
        assert_eq!(
            error.to_string(),
            "the registry answered http 503 for binder-x"
        );
        assert_eq!(token, None);
    }

    #[test]
    fn a_request_that_cannot_be_built_fails_before_sending() {
        let (check, step) = ManifestCheck::new(REGISTRY, "", "abc", None, None, NOW);
        assert_eq!(
            failed(step).0,
            ManifestCheckError::Registry(RegistryError::EmptyRepository)
        );
        assert_eq!(check.requests_sent(), 0);
        let (_, step) = ManifestCheck::new("ftp://x", REPOSITORY, "abc", None, None, NOW);
        assert!(matches!(
            failed(step).0,
            ManifestCheckError::Registry(RegistryError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn feeding_an_ended_check_is_an_error_not_a_panic() {
        let (mut check, _) = start(None, None);
        check.feed(404, &HeaderMap::new(), b"");
        assert_eq!(
            failed(check.feed(200, &HeaderMap::new(), b"")).0,
            ManifestCheckError::Finished
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let (check, step) = start(Some(Credentials::new("u", "hunter2")), Some("s3cr3t"));
        let shown = format!("{check:?} {step:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}

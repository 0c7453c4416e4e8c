//! The registry check, "does this image exist?", expressed as data.
//!
//! Every launch asks the registry whether the image for a resolved ref is already built.
//! The edge does it with its own HTTP client, so this module only builds the requests and
//! reads the answers: [`manifest_request`] makes the `HEAD` for a manifest,
//! [`interpret_manifest_response`] turns the status and headers into a [`ManifestAnswer`],
//! and when the registry asks for a bearer token, [`parse_www_authenticate`],
//! [`token_request`] and [`parse_token_response`] do the token dance of the Docker
//! registry token spec. [`ManifestCheck`] puts these together as one state machine
//! (challenge → token → retry) that the edge and the worker both drive with their own
//! HTTP client. [`from_docker_config`] reads the credentials the way BinderHub reads
//! `~/.docker/config.json`.
//!
//! Deliberate deviations from BinderHub (§1.9 of the reference notes):
//!
//! - the check is a `HEAD`, not a `GET`: the manifest body is never needed;
//! - the `Accept` header lists the OCI index and manifest *and* the Docker v2 manifest and
//!   manifest list types ([`MANIFEST_ACCEPT`]); with only one family a registry answers
//!   404 for images pushed in the other, and every such image would be rebuilt;
//! - an empty repository (an image prefix without a registry host) is refused with an
//!   error instead of producing a request for `/v2//manifests/...`;
//! - a docker config without `auths` is an error rather than silently falling back to
//!   anonymous Docker Hub (which would report every private image missing).
//!
//! Registry answers are untrusted: nothing here panics on any status, header or body,
//! and no password or token ever appears in `Debug` output or an error message.

mod challenge;
mod check;
mod docker_config;
mod manifest;
mod token;

use std::fmt;

use http::header::HeaderValue;
use thiserror::Error;
use url::Url;

pub use challenge::{BearerChallenge, ChallengeError, parse_www_authenticate};
pub use check::{
    Credentials, ImagePresence, MAX_REQUESTS, ManifestCheck, ManifestCheckError, Step, TokenChange,
};
pub use docker_config::{DockerConfigAuth, from_docker_config, from_docker_config_with_url};
pub use manifest::{
    ManifestAnswer, interpret_manifest_response, is_digest, manifest_request, validate_repository,
    validate_tag,
};
pub use token::{
    MAX_TOKEN_LIFETIME_SECONDS, MIN_TOKEN_LIFETIME_SECONDS, RegistryToken, parse_token_response,
    token_request,
};

/// The `Accept` header of a manifest check: OCI index and manifest, Docker v2 manifest list
/// and manifest. Registries answer 404 for a manifest whose media type is not accepted, so
/// an OCI-only or Docker-only list gives false misses.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The header carrying a manifest's content digest in a registry answer.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Longest repository name accepted, in bytes.
const MAX_REPOSITORY_LEN: usize = 255;

/// How a request to the registry authenticates.
///
/// `Debug` never shows the password or the token.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// No `Authorization` header.
    Anonymous,
    /// HTTP Basic with the registry username and password.
    Basic {
        /// The registry username (must not contain `:`).
        username: String,
        /// The registry password.
        password: String,
    },
    /// A bearer token from the registry's token service.
    Bearer(String),
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer(_) => f.debug_tuple("Bearer").field(&"<redacted>").finish(),
        }
    }
}

impl RegistryAuth {
    /// The `Authorization` header value, marked sensitive, or `None` for anonymous access.
    pub fn header_value(&self) -> Result<Option<HeaderValue>, RegistryError> {
        match self {
            Self::Anonymous => Ok(None),
            Self::Basic { username, password } => basic_header(username, password).map(Some),
            Self::Bearer(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    RegistryError::InvalidCredentials {
                        reason: "the bearer token holds characters not allowed in an http header",
                    }
                })?;
                value.set_sensitive(true);
                Ok(Some(value))
            }
        }
    }
}

/// Builds a sensitive `Authorization: Basic ...` value.
pub(crate) fn basic_header(username: &str, password: &str) -> Result<HeaderValue, RegistryError> {
    use base64::Engine as _;
    if username.contains(':') {
        return Err(RegistryError::InvalidCredentials {
            reason: "the username contains `:`, which http basic auth cannot carry",
        });
    }
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}")).map_err(|_| {
        RegistryError::InvalidCredentials {
            reason: "the basic credentials do not form a header",
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Why a registry request could not be built or a registry answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// A registry URL, token realm or docker config key that is not a usable http(s) URL.
    #[error("invalid {role} {url}: {reason}")]
    InvalidUrl {
        /// What the URL is for (`registry url`, `token realm`, ...).
        role: &'static str,
        /// The URL, truncated and escaped, with any userinfo removed.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The repository part of the image name is empty.
    #[error(
        "registry repository is empty: the image prefix has no registry host; \
         set the image prefix to `<registry host>/<name>-` to check a registry"
    )]
    EmptyRepository,
    /// A repository name outside the distribution spec grammar.
    #[error(
        "invalid registry repository {repository}: expected lower-case components of \
         [a-z0-9] joined by `.`, `_`, `__` or `-`, separated by `/`, at most 255 bytes"
    )]
    InvalidRepository {
        /// The repository, truncated and escaped.
        repository: String,
    },
    /// A tag outside the distribution spec grammar.
    #[error("invalid image tag {tag}: expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    InvalidTag {
        /// The tag, truncated and escaped.
        tag: String,
    },
    /// Credentials that cannot be put into an `Authorization` header.
    #[error("failed to build the authorization header: {reason}")]
    InvalidCredentials {
        /// What is wrong (never the secret itself).
        reason: &'static str,
    },
    /// The `http` crate refused the request.
    #[error("failed to build the registry request: {0}")]
    Request(String),
    /// The token service answered with a non-2xx status.
    #[error(
        "failed to get a registry token: the token service answered http {status}{}",
        if *status == 401 || *status == 403 { " (check the registry username and password)" } else { "" }
    )]
    TokenStatus {
        /// The HTTP status of the token answer.
        status: u16,
    },
    /// The token answer is not a JSON object.
    #[error("failed to parse the registry token answer: {reason}")]
    TokenResponse {
        /// What is wrong with the body (never its content).
        reason: String,
    },
    /// The token answer has neither `token` nor `access_token`.
    #[error("failed to parse the registry token answer: it has neither `token` nor `access_token`")]
    MissingToken,
    /// The docker config JSON cannot be used.
    #[error("failed to read the docker config: {reason}")]
    InvalidDockerConfig {
        /// What is wrong (never a credential).
        reason: String,
    },
}

/// Parses an http(s) URL with a host and no userinfo; `role` names it in errors.
pub(crate) fn parse_http_url(raw: &str, role: &'static str) -> Result<Url, RegistryError> {
    let invalid = |reason| RegistryError::InvalidUrl {
        role,
        url: shown_url(raw),
        reason,
    };
    let url = Url::parse(raw.trim()).map_err(|_| invalid("not an absolute url"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "it must not carry credentials; put them in the docker config",
        ));
    }
    Ok(url)
}

/// Shows a URL in an error message with any `userinfo@` part removed.
pub(crate) fn shown_url(raw: &str) -> String {
    let redacted = match raw.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
                None => raw.to_owned(),
            }
        }
        None => raw.to_owned(),
    };
    crate::validate::shown(&redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let basic = RegistryAuth::Basic {
            username: "user".into(),
            password: "hunter2".into(),
        };
        let bearer = RegistryAuth::Bearer("s3cr3t-token".into());
        let shown = format!("{basic:?} {bearer:?} {:?}", RegistryAuth::Anonymous);
        assert!(shown.contains("user"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_that_cannot_be_a_header_are_refused_without_echo() {
        let err = RegistryAuth::Bearer("bad\ntoken-secret".into())
            .header_value()
            .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidCredentials { .. }));
        assert!(!err.to_string().contains("secret"));
        let err = RegistryAuth::Basic {
            username: "a:b".into(),
            password: "p".into(),
        }
        .header_value()
        .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidCredentials { .. }));
    }

    #[test]
    fn shown_url_removes_userinfo() {
        assert!(!shown_url("https://user:pw@host/x").contains("pw"));
        assert!(shown_url("https://host/x@y").contains("x@y"));
        assert!(shown_url("not a url").contains("not a url"));
    }

    mod never_panics {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn on_any_registry_answer(
                header in ".{0,200}",
                body in proptest::collection::vec(any::<u8>(), 0..200),
                status in any::<u16>(),
                now in any::<u64>(),
            ) {
                let _ = parse_www_authenticate(&header);
                let _ = parse_token_response(status, &body, now);
                let _ = from_docker_config(&body);
                let _ = is_digest(&header);
                let mut headers = http::HeaderMap::new();
                if let Ok(value) = http::HeaderValue::from_str(&header) {
                    headers.insert(http::header::WWW_AUTHENTICATE, value.clone());
                    headers.insert(DOCKER_CONTENT_DIGEST, value);
                }
                let _ = interpret_manifest_response(status, &headers);
            }

            #[test]
            fn on_any_request_input(url in ".{0,60}", repository in ".{0,60}", tag in ".{0,60}") {
                let _ = manifest_request(&url, &repository, &tag, &RegistryAuth::Bearer(tag.clone()));
                let challenge = BearerChallenge {
                    realm: url.clone(),
                    service: tag.clone(),
                    scope: repository.clone(),
                    error: None,
                };
                let _ = token_request(&challenge, Some((&repository, &tag)));
            }

            #[test]
            fn the_manifest_check_ends_within_its_bound_on_any_answers(
                answers in proptest::collection::vec(
                    (
                        prop_oneof![Just(200u16), Just(401), Just(404), any::<u16>()],
                        prop_oneof![
                            Just("Bearer realm=\"https://a.example.org/t\",service=\"s\",scope=\"x\"".to_owned()),
                            ".{0,60}",
                        ],
                        prop_oneof![Just(br#"{"token":"t"}"#.to_vec()), proptest::collection::vec(any::<u8>(), 0..40)],
                    ),
                    0..12,
                ),
                cached in proptest::option::of("[a-z]{1,8}"),
            ) {
                let credentials = Some(Credentials::new("u", "p"));
                let (mut check, mut step) =
                    ManifestCheck::new("https://r.example.org", "a/b", "t", credentials, cached, 0);
                for (status, header, body) in answers {
                    if !matches!(step, Step::Send { .. }) {
                        break;
                    }
                    let mut headers = http::HeaderMap::new();
                    if let Ok(value) = http::HeaderValue::from_str(&header) {
                        headers.insert(http::header::WWW_AUTHENTICATE, value);
                    }
                    step = check.feed(status, &headers, &body);
                }
                prop_assert!(check.requests_sent() <= MAX_REQUESTS);
            }

            #[test]
            fn a_quoted_challenge_round_trips(
                realm in "[^\"\\\\]{0,40}",
                service in "[^\"\\\\]{0,40}",
                scope in "[^\"\\\\]{0,40}",
            ) {
                let header = format!("Bearer realm=\"{realm}\",service=\"{service}\",scope=\"{scope}\"");
                let got = parse_www_authenticate(&header);
                prop_assert_eq!(got, Ok(BearerChallenge { realm, service, scope, error: None }));
            }
        }
    }
}

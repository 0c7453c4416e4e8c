//! The registry check, "does this image exist?", expressed as data.
//!
//! Every launch asks the registry whether the image for a resolved ref is already built.
//! The edge does it with its own HTTP client, so this module only builds the requests and
//! reads the answers: [`manifest_request`] makes the `HEAD` for a manifest,
//! [`interpret_manifest_response`] turns the status and headers into a [`ManifestAnswer`],
//! and when the registry asks for a bearer token, [`parse_www_authenticate`],
//! [`token_request`] and [`parse_token_response`] do the token dance of the Docker
//! registry token spec. [`from_docker_config`] reads the credentials the way BinderHub
//! reads `~/.docker/config.json`.
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
mod docker_config;
mod token;

use std::fmt;

use http::header::{ACCEPT, AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request};
use thiserror::Error;
use url::Url;

pub use challenge::{BearerChallenge, ChallengeError, parse_www_authenticate};
pub use docker_config::{DockerConfigAuth, from_docker_config, from_docker_config_with_url};
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
        RegistryError::InvalidCredentials { reason: "the basic credentials do not form a header" }
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

/// Builds the manifest check: `HEAD <registry_url>/v2/<repository>/manifests/<tag>` with
/// [`MANIFEST_ACCEPT`] and the `Authorization` that `auth` gives.
///
/// `registry_url` is the registry's base URL (`https://registry.example.org`, a trailing
/// `/` or a path prefix is fine); `repository` and `tag` come from the image name split
/// (`crate::image::split_image`).
pub fn manifest_request(
    registry_url: &str,
    repository: &str,
    tag: &str,
    auth: &RegistryAuth,
) -> Result<Request<Vec<u8>>, RegistryError> {
    let base = parse_http_url(registry_url, "registry url")?;
    if base.query().is_some() || base.fragment().is_some() {
        return Err(RegistryError::InvalidUrl {
            role: "registry url",
            url: shown_url(registry_url),
            reason: "must not have a query or a fragment",
        });
    }
    validate_repository(repository)?;
    validate_tag(tag)?;
    let uri = format!("{}/v2/{repository}/manifests/{tag}", base.as_str().trim_end_matches('/'));
    let mut builder = Request::builder()
        .method(Method::HEAD)
        .uri(uri)
        .header(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    if let Some(value) = auth.header_value()? {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder.body(Vec::new()).map_err(|e| RegistryError::Request(e.to_string()))
}

/// What a manifest check answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestAnswer {
    /// 200: the image exists. The digest is kept when the header is well formed.
    Present {
        /// The `Docker-Content-Digest` header (`sha256:<hex>`), if sent and well formed.
        digest: Option<String>,
    },
    /// 404: the image does not exist (build it).
    Missing,
    /// 401 with a bearer challenge: fetch a token with [`token_request`] and retry.
    ///
    /// A caller that already sent a bearer token and gets a challenge again must not loop:
    /// it treats the second challenge as [`ManifestAnswer::Unauthorized`]
    /// (`challenge.error` then often says `insufficient_scope`).
    Challenge(BearerChallenge),
    /// 401 without a usable bearer challenge: the basic credentials were rejected.
    Unauthorized,
    /// Any other status: the registry is failing; the caller retries or treats the image
    /// as missing.
    RegistryError {
        /// The HTTP status.
        status: u16,
    },
}

/// Reads the status and headers of a manifest check answer.
pub fn interpret_manifest_response(status: u16, headers: &HeaderMap) -> ManifestAnswer {
    match status {
        200 => ManifestAnswer::Present {
            digest: headers
                .get(DOCKER_CONTENT_DIGEST)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|d| is_digest(d))
                .map(str::to_owned),
        },
        404 => ManifestAnswer::Missing,
        401 => headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| parse_www_authenticate(v).ok())
            .map_or(ManifestAnswer::Unauthorized, ManifestAnswer::Challenge),
        status => ManifestAnswer::RegistryError { status },
    }
}

/// True when `digest` has the OCI digest shape `algorithm:encoded`.
pub fn is_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let encoded_ok = !encoded.is_empty()
        && encoded.len() <= 256
        && encoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

/// Checks a repository name against the distribution spec grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by `/`.
pub fn validate_repository(repository: &str) -> Result<(), RegistryError> {
    if repository.is_empty() {
        return Err(RegistryError::EmptyRepository);
    }
    let invalid = || RegistryError::InvalidRepository { repository: crate::validate::shown(repository) };
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(invalid());
    }
    if repository.split('/').all(is_path_component) { Ok(()) } else { Err(invalid()) }
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: `.`, `_`, `__` or any number of `-`.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), RegistryError> {
    let bytes = tag.as_bytes();
    let ok = match bytes.split_first() {
        Some((&first, rest)) => {
            (first.is_ascii_alphanumeric() || first == b'_')
                && rest.len() <= 127
                && rest.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    };
    if ok { Ok(()) } else { Err(RegistryError::InvalidTag { tag: crate::validate::shown(tag) }) }
}

/// Parses an http(s) URL with a host and no userinfo; `role` names it in errors.
pub(crate) fn parse_http_url(raw: &str, role: &'static str) -> Result<Url, RegistryError> {
    let invalid = |reason| RegistryError::InvalidUrl { role, url: shown_url(raw), reason };
    let url = Url::parse(raw.trim()).map_err(|_| invalid("not an absolute url"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry credentials; put them in the docker config"));
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

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn manifest_accept_lists_oci_and_docker_types() {
        for media_type in [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ] {
            assert!(MANIFEST_ACCEPT.split(", ").any(|t| t == media_type), "{media_type}");
        }
    }

    #[test]
    fn manifest_request_is_a_head_with_accept_and_auth() {
        let auth = RegistryAuth::Bearer("tok".into());
        let req = manifest_request("https://registry.example.org", "project/image", "abc123", &auth)
            .unwrap();
        assert_eq!(req.method(), Method::HEAD);
        assert_eq!(req.uri(), "https://registry.example.org/v2/project/image/manifests/abc123");
        assert_eq!(req.headers()[ACCEPT], MANIFEST_ACCEPT);
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert!(req.body().is_empty());
    }

    #[test]
    fn manifest_request_shapes() {
        let cases = [
            ("https://r.example.org/", "a/b", "t", "https://r.example.org/v2/a/b/manifests/t"),
            ("https://r.example.org//", "a", "t", "https://r.example.org/v2/a/manifests/t"),
            ("http://localhost:5000", "x", "latest", "http://localhost:5000/v2/x/manifests/latest"),
            ("https://r.example.org/prefix/", "a", "t", "https://r.example.org/prefix/v2/a/manifests/t"),
            ("HTTPS://R.Example.Org", "a", "t", "https://r.example.org/v2/a/manifests/t"),
        ];
        for (url, repo, tag, want) in cases {
            let req = manifest_request(url, repo, tag, &RegistryAuth::Anonymous).unwrap();
            assert_eq!(req.uri(), want, "{url}");
            assert!(req.headers().get(AUTHORIZATION).is_none());
        }
    }

    #[test]
    fn manifest_request_with_basic_auth_encodes_user_and_password() {
        let auth = RegistryAuth::Basic { username: "user".into(), password: "pa:ss".into() };
        let req = manifest_request("https://r.example.org", "a", "t", &auth).unwrap();
        // base64("user:pa:ss")
        assert_eq!(req.headers()[AUTHORIZATION], "Basic dXNlcjpwYTpzcw==");
    }

    #[test]
    fn manifest_request_refuses_bad_urls() {
        for url in ["", "registry.example.org", "ftp://r.example.org", "https://", "https://r.example.org?x=1", "https://u:secret@r.example.org"] {
            let err = manifest_request(url, "a", "t", &RegistryAuth::Anonymous).unwrap_err();
            assert!(matches!(err, RegistryError::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn empty_repository_error_explains_the_prefix() {
        let err = manifest_request("https://r.example.org", "", "t", &RegistryAuth::Anonymous).unwrap_err();
        assert_eq!(err, RegistryError::EmptyRepository);
        assert!(err.to_string().contains("image prefix has no registry host"));
    }

    #[test]
    fn repository_grammar() {
        for ok in ["a", "project/image", "binder-2dexamples-2doctave-03025a", "a.b_c__d--e/f", "my--prefix/x", "0/1/2"] {
            assert_eq!(validate_repository(ok), Ok(()), "{ok}");
        }
        for bad in ["A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a._b", "a b", "a/../b", "a?b", "a%2fb"] {
            assert!(matches!(validate_repository(bad), Err(RegistryError::InvalidRepository { .. })), "{bad}");
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
        assert!(validate_repository(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tag_grammar() {
        for ok in ["latest", "_x", "1479e0252b2e648bb755ee913292b79495931717", "9782777.v3", "A-b_c.d"] {
            assert_eq!(validate_tag(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", "é"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        assert!(validate_tag(&"a".repeat(128)).is_ok());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }

    #[test]
    fn present_keeps_a_well_formed_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let answer = interpret_manifest_response(200, &headers(&[("Docker-Content-Digest", &digest)]));
        assert_eq!(answer, ManifestAnswer::Present { digest: Some(digest) });
        assert_eq!(interpret_manifest_response(200, &HeaderMap::new()), ManifestAnswer::Present { digest: None });
        for bad in ["sha256", ":abc", "sha256:", "SHA256:abc", "sha256:a b", "sha256:abc\u{7f}"] {
            let Ok(value) = HeaderValue::from_str(bad) else { continue };
            let mut map = HeaderMap::new();
            map.insert(DOCKER_CONTENT_DIGEST, value);
            assert_eq!(interpret_manifest_response(200, &map), ManifestAnswer::Present { digest: None }, "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_answers() {
        assert_eq!(interpret_manifest_response(404, &HeaderMap::new()), ManifestAnswer::Missing);
        assert_eq!(interpret_manifest_response(401, &HeaderMap::new()), ManifestAnswer::Unauthorized);
        assert_eq!(
            interpret_manifest_response(401, &headers(&[("WWW-Authenticate", "Basic realm=\"x\"")])),
            ManifestAnswer::Unauthorized
        );
        for status in [0, 201, 204, 301, 403, 429, 500, 503, 999] {
            assert_eq!(interpret_manifest_response(status, &HeaderMap::new()), ManifestAnswer::RegistryError { status });
        }
    }

    #[test]
    fn a_401_with_a_bearer_challenge_asks_for_a_token() {
        let map = headers(&[
            ("WWW-Authenticate", "Basic realm=\"registry\""),
            ("WWW-Authenticate", "Bearer realm=\"https://auth.example.org/token\",service=\"registry.example.org\",scope=\"repository:a/b:pull\""),
        ]);
        let ManifestAnswer::Challenge(challenge) = interpret_manifest_response(401, &map) else {
            panic!("expected a challenge");
        };
        assert_eq!(challenge.realm, "https://auth.example.org/token");
        assert_eq!(challenge.service, "registry.example.org");
        assert_eq!(challenge.scope, "repository:a/b:pull");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let basic = RegistryAuth::Basic { username: "user".into(), password: "hunter2".into() };
        let bearer = RegistryAuth::Bearer("s3cr3t-token".into());
        let shown = format!("{basic:?} {bearer:?} {:?}", RegistryAuth::Anonymous);
        assert!(shown.contains("user"));
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn credentials_that_cannot_be_a_header_are_refused_without_echo() {
        let err = RegistryAuth::Bearer("bad\ntoken-secret".into()).header_value().unwrap_err();
        assert!(matches!(err, RegistryError::InvalidCredentials { .. }));
        assert!(!err.to_string().contains("secret"));
        let err = RegistryAuth::Basic { username: "a:b".into(), password: "p".into() }.header_value().unwrap_err();
        assert!(matches!(err, RegistryError::InvalidCredentials { .. }));
    }

    #[test]
    fn shown_url_removes_userinfo() {
        assert!(!shown_url("https://user:pw@host/x").contains("pw"));
        assert!(shown_url("https://host/x@y").contains("x@y"));
        assert!(shown_url("not a url").contains("not a url"));
    }
}

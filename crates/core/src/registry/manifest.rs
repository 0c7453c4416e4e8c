//! The manifest check itself: the `HEAD` request and the meaning of its answer.

use http::header::{ACCEPT, AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request};

use super::{
    BearerChallenge, ChallengeError, DOCKER_CONTENT_DIGEST, MANIFEST_ACCEPT, MAX_REPOSITORY_LEN,
    RegistryAuth, RegistryError, parse_http_url, parse_www_authenticate, shown_url,
};

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
    let uri = format!(
        "{}/v2/{repository}/manifests/{tag}",
        base.as_str().trim_end_matches('/')
    );
    let mut builder = Request::builder()
        .method(Method::HEAD)
        .uri(uri)
        .header(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    if let Some(value) = auth.header_value()? {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder
        .body(Vec::new())
        .map_err(|e| RegistryError::Request(e.to_string()))
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
    /// 401 with a bearer challenge: fetch a token with [`super::token_request`] and retry.
    ///
    /// A caller that already sent a bearer token and gets a challenge again must not loop:
    /// it treats the second challenge as [`ManifestAnswer::Unauthorized`]
    /// (`challenge.error` then often says `insufficient_scope`).
    Challenge(BearerChallenge),
    /// 401 with a bearer challenge that does not parse (no usable one beside it): the
    /// registry wants a token but does not say where to get it.
    BadChallenge(ChallengeError),
    /// 401 without a bearer challenge: the basic credentials were rejected.
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
        401 => interpret_challenges(headers),
        status => ManifestAnswer::RegistryError { status },
    }
}

/// The meaning of a 401: the first usable bearer challenge, else the first bearer challenge's
/// parse error, else plain refusal (`Basic`, another scheme, or no header at all).
fn interpret_challenges(headers: &HeaderMap) -> ManifestAnswer {
    let mut bad = None;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        match parse_www_authenticate(value) {
            Ok(challenge) => return ManifestAnswer::Challenge(challenge),
            Err(ChallengeError::UnsupportedScheme { .. }) => {}
            Err(err) => {
                bad.get_or_insert(err);
            }
        }
    }
    bad.map_or(ManifestAnswer::Unauthorized, ManifestAnswer::BadChallenge)
}

/// True when `digest` has the OCI digest shape `algorithm:encoded`.
pub fn is_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded.len() <= 256
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

/// Checks a repository name against the distribution spec grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by `/`.
pub fn validate_repository(repository: &str) -> Result<(), RegistryError> {
    if repository.is_empty() {
        return Err(RegistryError::EmptyRepository);
    }
    let invalid = || RegistryError::InvalidRepository {
        repository: crate::validate::shown(repository),
    };
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(invalid());
    }
    if repository.split('/').all(is_path_component) {
        Ok(())
    } else {
        Err(invalid())
    }
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
        let sep = &bytes[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&b| b == b'-');
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
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidTag {
            tag: crate::validate::shown(tag),
        })
    }
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
            assert!(
                MANIFEST_ACCEPT.split(", ").any(|t| t == media_type),
                "{media_type}"
            );
        }
    }

    #[test]
    fn manifest_request_is_a_head_with_accept_and_auth() {
        let auth = RegistryAuth::Bearer("tok".into());
        let req = manifest_request(
            "https://registry.example.org",
            "project/image",
            "abc123",
            &auth,
        )
        .unwrap();
        assert_eq!(req.method(), Method::HEAD);
        assert_eq!(
            req.uri(),
            "https://registry.example.org/v2/project/image/manifests/abc123"
        );
        assert_eq!(req.headers()[ACCEPT], MANIFEST_ACCEPT);
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert!(req.body().is_empty());
    }

    #[test]
    fn manifest_request_shapes() {
        let cases = [
            (
                "https://r.example.org/",
                "a/b",
                "t",
                "https://r.example.org/v2/a/b/manifests/t",
            ),
            (
                "https://r.example.org//",
                "a",
                "t",
                "https://r.example.org/v2/a/manifests/t",
            ),
            (
                "http://localhost:5000",
                "x",
                "latest",
                "http://localhost:5000/v2/x/manifests/latest",
            ),
            (
                "https://r.example.org/prefix/",
                "a",
                "t",
                "https://r.example.org/prefix/v2/a/manifests/t",
            ),
            (
                "HTTPS://R.Example.Org",
                "a",
                "t",
                "https://r.example.org/v2/a/manifests/t",
            ),
        ];
        for (url, repo, tag, want) in cases {
            let req = manifest_request(url, repo, tag, &RegistryAuth::Anonymous).unwrap();
            assert_eq!(req.uri(), want, "{url}");
            assert!(req.headers().get(AUTHORIZATION).is_none());
        }
    }

    #[test]
    fn manifest_request_with_basic_auth_encodes_user_and_password() {
        let auth = RegistryAuth::Basic {
            username: "user".into(),
            password: "pa:ss".into(),
        };
        let req = manifest_request("https://r.example.org", "a", "t", &auth).unwrap();
        // base64("user:pa:ss")
        assert_eq!(req.headers()[AUTHORIZATION], "Basic dXNlcjpwYTpzcw==");
    }

    #[test]
    fn manifest_request_refuses_bad_urls() {
        for url in [
            "",
            "registry.example.org",
            "ftp://r.example.org",
            "https://",
            "https://r.example.org?x=1",
            "https://u:secret@r.example.org",
        ] {
            let err = manifest_request(url, "a", "t", &RegistryAuth::Anonymous).unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidUrl { .. }),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn empty_repository_error_explains_the_prefix() {
        let err = manifest_request("https://r.example.org", "", "t", &RegistryAuth::Anonymous)
            .unwrap_err();
        assert_eq!(err, RegistryError::EmptyRepository);
        assert!(
            err.to_string()
                .contains("image prefix has no registry host")
        );
    }

    #[test]
    fn repository_grammar() {
        for ok in [
            "a",
            "project/image",
            "binder-2dexamples-2doctave-03025a",
            "a.b_c__d--e/f",
            "my--prefix/x",
            "0/1/2",
        ] {
            assert_eq!(validate_repository(ok), Ok(()), "{ok}");
        }
        for bad in [
            "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a._b", "a b", "a/../b", "a?b", "a%2fb",
        ] {
            assert!(
                matches!(
                    validate_repository(bad),
                    Err(RegistryError::InvalidRepository { .. })
                ),
                "{bad}"
            );
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
        assert!(validate_repository(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tag_grammar() {
        for ok in [
            "latest",
            "_x",
            "1479e0252b2e648bb755ee913292b79495931717",
            "9782777.v3",
            "A-b_c.d",
        ] {
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
        let answer =
            interpret_manifest_response(200, &headers(&[("Docker-Content-Digest", &digest)]));
        assert_eq!(
            answer,
            ManifestAnswer::Present {
                digest: Some(digest)
            }
        );
        assert_eq!(
            interpret_manifest_response(200, &HeaderMap::new()),
            ManifestAnswer::Present { digest: None }
        );
        for bad in [
            "sha256",
            ":abc",
            "sha256:",
            "SHA256:abc",
            "sha256:a b",
            "sha256:abc\u{7f}",
        ] {
            let Ok(value) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut map = HeaderMap::new();
            map.insert(DOCKER_CONTENT_DIGEST, value);
            assert_eq!(
                interpret_manifest_response(200, &map),
                ManifestAnswer::Present { digest: None },
                "{bad}"
            );
        }
    }

    #[test]
    fn statuses_map_to_answers() {
        assert_eq!(
            interpret_manifest_response(404, &HeaderMap::new()),
            ManifestAnswer::Missing
        );
        assert_eq!(
            interpret_manifest_response(401, &HeaderMap::new()),
            ManifestAnswer::Unauthorized
        );
        assert_eq!(
            interpret_manifest_response(
                401,
                &headers(&[("WWW-Authenticate", "Basic realm=\"x\"")])
            ),
            ManifestAnswer::Unauthorized
        );
        for status in [0, 201, 204, 301, 403, 429, 500, 503, 999] {
            assert_eq!(
                interpret_manifest_response(status, &HeaderMap::new()),
                ManifestAnswer::RegistryError { status }
            );
        }
    }

    #[test]
    fn a_401_with_a_malformed_bearer_challenge_says_why() {
        let answer = interpret_manifest_response(
            401,
            &headers(&[(
                "WWW-Authenticate",
                "Bearer realm=\"https://auth.example.org/token\"",
            )]),
        );
        assert_eq!(
            answer,
            ManifestAnswer::BadChallenge(ChallengeError::MissingParameters {
                missing: vec!["service", "scope"]
            })
        );
        // A usable challenge beside a broken one is followed.
        let map = headers(&[
            ("WWW-Authenticate", "Bearer realm=\"r\" garbage"),
            (
                "WWW-Authenticate",
                "Bearer realm=\"https://a.example.org/t\",service=\"s\",scope=\"x\"",
            ),
        ]);
        assert!(matches!(
            interpret_manifest_response(401, &map),
            ManifestAnswer::Challenge(_)
        ));
    }

    #[test]
    fn a_401_with_a_bearer_challenge_asks_for_a_token() {
        let map = headers(&[
            ("WWW-Authenticate", "Basic realm=\"registry\""),
            (
                "WWW-Authenticate",
                "Bearer realm=\"https://auth.example.org/token\",service=\"registry.example.org\",scope=\"repository:a/b:pull\"",
            ),
        ]);
        let ManifestAnswer::Challenge(challenge) = interpret_manifest_response(401, &map) else {
            panic!("expected a challenge");
        };
        assert_eq!(challenge.realm, "https://auth.example.org/token");
        assert_eq!(challenge.service, "registry.example.org");
        assert_eq!(challenge.scope, "repository:a/b:pull");
    }
}

//! Bearer tokens from a registry's token service (the Docker registry token spec).
//!
//! The realm comes from the registry's own challenge, so it is untrusted: it must be an
//! http(s) URL, and the caller's outbound allow-list bounds where basic credentials can be
//! sent. Token lifetimes are clamped: the spec's 60 s floor, and a day at most so that a
//! registry that claims "forever" cannot pin one token in the cache.

use std::fmt;

use http::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use http::{Method, Request};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::{BearerChallenge, RegistryError, basic_header, parse_http_url};

/// The lifetime assumed when the token answer has no usable `expires_in`, and the floor
/// (the token spec: "if not provided, 60 seconds"; shorter values are raised to 60).
pub const MIN_TOKEN_LIFETIME_SECONDS: u64 = 60;

/// The longest lifetime believed, whatever `expires_in` says.
pub const MAX_TOKEN_LIFETIME_SECONDS: u64 = 24 * 60 * 60;

/// Characters left as they are in a query value: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A registry bearer token and when it stops being valid (unix seconds).
///
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryToken {
    /// The bearer token.
    pub token: String,
    /// When the token expires, in unix seconds.
    pub expires_at: u64,
}

impl fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl RegistryToken {
    /// The token as the auth of a manifest request.
    pub fn auth(&self) -> super::RegistryAuth {
        super::RegistryAuth::Bearer(self.token.clone())
    }
}

/// Builds `GET <realm>?scope=<scope>&service=<service>` (appended with `&` when the realm
/// has a query already), with HTTP Basic auth when `credentials` (username, password) are
/// given.
pub fn token_request(
    challenge: &BearerChallenge,
    credentials: Option<(&str, &str)>,
) -> Result<Request<Vec<u8>>, RegistryError> {
    let mut realm = parse_http_url(&challenge.realm, "token realm")?;
    realm.set_fragment(None);
    let separator = match realm.query() {
        None => "?",
        Some("") => "",
        Some(_) => "&",
    };
    let uri = format!(
        "{}{separator}scope={}&service={}",
        realm.as_str(),
        utf8_percent_encode(&challenge.scope, QUERY_VALUE),
        utf8_percent_encode(&challenge.service, QUERY_VALUE),
    );
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some((username, password)) = credentials {
        builder = builder.header(AUTHORIZATION, basic_header(username, password)?);
    }
    builder
        .body(Vec::new())
        .map_err(|e| RegistryError::Request(e.to_string()))
}

/// Reads a token service answer: the JSON `token` (or `access_token`) and `expires_in`
/// (default and minimum [`MIN_TOKEN_LIFETIME_SECONDS`], at most
/// [`MAX_TOKEN_LIFETIME_SECONDS`]); `issued_at` is ignored and `now` is the clock.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    now: u64,
) -> Result<RegistryToken, RegistryError> {
    if !(200..300).contains(&status) {
        return Err(RegistryError::TokenStatus { status });
    }
    // Parsed as a `Value` and read by hand: serde's typed errors would quote field values,
    // and a field value here may be a token.
    let value: Value = serde_json::from_slice(body).map_err(|e| RegistryError::TokenResponse {
        reason: format!("not json (line {}, column {})", e.line(), e.column()),
    })?;
    let Value::Object(object) = value else {
        return Err(RegistryError::TokenResponse {
            reason: "not a json object".to_owned(),
        });
    };
    let field = |name| {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let token = field("token")
        .or_else(|| field("access_token"))
        .ok_or(RegistryError::MissingToken)?;
    if !is_b64token(token) {
        return Err(RegistryError::TokenResponse {
            reason: "the token holds characters not allowed in a bearer token".to_owned(),
        });
    }
    let lifetime = match object.get("expires_in") {
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(seconds), _) => seconds,
            // Saturating float-to-int cast: negative and NaN give 0, huge gives u64::MAX.
            (None, Some(seconds)) => seconds as u64,
            (None, None) => 0,
        },
        _ => MIN_TOKEN_LIFETIME_SECONDS,
    }
    .clamp(MIN_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_LIFETIME_SECONDS);
    Ok(RegistryToken {
        token: token.to_owned(),
        expires_at: now.saturating_add(lifetime),
    })
}

/// RFC 6750 `b64token`: `[A-Za-z0-9-._~+/]+=*`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(realm: &str) -> BearerChallenge {
        BearerChallenge {
            realm: realm.into(),
            service: "registry.example.org".into(),
            scope: "repository:my/image:pull".into(),
            error: None,
        }
    }

    #[test]
    fn token_request_appends_scope_and_service() {
        let req = token_request(&challenge("https://auth.example.org/token"), None).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri(),
            "https://auth.example.org/token?scope=repository%3Amy%2Fimage%3Apull&service=registry.example.org"
        );
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn token_request_extends_an_existing_query() {
        let c = BearerChallenge::for_token_url(
            "https://auth.docker.io/token?service=registry.docker.io",
            "myimage",
        );
        let req = token_request(&c, Some(("user", "pass"))).unwrap();
        assert_eq!(
            req.uri(),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Amyimage%3Apull&service=container_registry"
        );
        assert_eq!(req.headers()[AUTHORIZATION], "Basic dXNlcjpwYXNz");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        let req = token_request(&challenge("https://a.example.org/t?#frag"), None).unwrap();
        assert_eq!(
            req.uri(),
            "https://a.example.org/t?scope=repository%3Amy%2Fimage%3Apull&service=registry.example.org"
        );
    }

    #[test]
    fn token_request_refuses_non_http_realms() {
        for realm in [
            "",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/relative/token",
            "https://u:p@x/t",
        ] {
            let err = token_request(&challenge(realm), None).unwrap_err();
            assert!(
                matches!(
                    err,
                    RegistryError::InvalidUrl {
                        role: "token realm",
                        ..
                    }
                ),
                "{realm}: {err}"
            );
        }
    }

    #[test]
    fn token_response_parsing() {
        let now = 1_000_000;
        let cases: &[(&str, &str, u64)] = &[
            (r#"{"token":"abc"}"#, "abc", now + 60),
            (
                r#"{"access_token":"xyz","expires_in":300}"#,
                "xyz",
                now + 300,
            ),
            (r#"{"token":"","access_token":"xyz"}"#, "xyz", now + 60),
            (r#"{"token":"abc","expires_in":5}"#, "abc", now + 60),
            (r#"{"token":"abc","expires_in":-300}"#, "abc", now + 60),
            (
                r#"{"token":"abc","expires_in":1e300}"#,
                "abc",
                now + MAX_TOKEN_LIFETIME_SECONDS,
            ),
            (
                r#"{"token":"abc","expires_in":18446744073709551615}"#,
                "abc",
                now + MAX_TOKEN_LIFETIME_SECONDS,
            ),
            (r#"{"token":"abc","expires_in":"300"}"#, "abc", now + 60),
            (
                r#"{"token":"abc","expires_in":120.9,"issued_at":"2009-11-10T23:00:00Z"}"#,
                "abc",
                now + 120,
            ),
            (
                r#"{"token":"eyJ0.eyJ1.c2ln","expires_in":3600}"#,
                "eyJ0.eyJ1.c2ln",
                now + 3600,
            ),
        ];
        for (body, token, expires_at) in cases {
            let got = parse_token_response(200, body.as_bytes(), now).unwrap();
            assert_eq!(
                (got.token.as_str(), got.expires_at),
                (*token, *expires_at),
                "{body}"
            );
        }
        let got = parse_token_response(200, br#"{"token":"abc","expires_in":300}"#, u64::MAX - 1)
            .unwrap();
        assert_eq!(got.expires_at, u64::MAX);
    }

    #[test]
    fn token_response_errors() {
        assert_eq!(
            parse_token_response(200, br#"{"expires_in":60}"#, 0),
            Err(RegistryError::MissingToken)
        );
        assert_eq!(
            parse_token_response(200, br#"{"token":null}"#, 0),
            Err(RegistryError::MissingToken)
        );
        assert_eq!(
            parse_token_response(200, br#"{"token":42}"#, 0),
            Err(RegistryError::MissingToken)
        );
        assert_eq!(
            parse_token_response(401, br#"{"token":"abc"}"#, 0),
            Err(RegistryError::TokenStatus { status: 401 })
        );
        assert!(
            parse_token_response(401, b"", 0)
                .unwrap_err()
                .to_string()
                .contains("username and password")
        );
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            b"\"token\"",
            b"{\"token\":\"abc\"",
            &[0xff, 0xfe],
        ] {
            assert!(matches!(
                parse_token_response(200, body, 0),
                Err(RegistryError::TokenResponse { .. })
            ));
        }
        let err = parse_token_response(200, br#"{"token":"sec ret\n"}"#, 0).unwrap_err();
        assert!(!err.to_string().contains("sec"), "{err}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = RegistryToken {
            token: "very-secret".into(),
            expires_at: 5,
        };
        assert!(!format!("{token:?}").contains("very-secret"));
        assert_eq!(
            token.auth(),
            super::super::RegistryAuth::Bearer("very-secret".into())
        );
    }
}

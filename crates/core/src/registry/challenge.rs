//! `WWW-Authenticate: Bearer ...` challenges (the Docker registry token spec).
//!
//! The two error texts BinderHub raises are kept verbatim at the start of the messages,
//! capital letter included, because clients and test vectors match on them.

use std::iter::Peekable;
use std::str::Chars;

use thiserror::Error;

/// A bearer challenge: where to get a token (`realm`), for which `service` and `scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token service URL.
    pub realm: String,
    /// The `service` parameter to pass to the token service (may be empty).
    pub service: String,
    /// The `scope` parameter to pass to the token service (may be empty).
    pub scope: String,
    /// The `error` parameter, e.g. `insufficient_scope` or `invalid_token`, when present.
    pub error: Option<String>,
}

impl BearerChallenge {
    /// The pull scope of a repository: `repository:<repository>:pull`.
    pub fn pull_scope(repository: &str) -> String {
        format!("repository:{repository}:pull")
    }

    /// The challenge BinderHub builds when a token URL is configured up front (Docker Hub,
    /// GCR): the configured URL as realm, service `container_registry` and the pull scope.
    pub fn for_token_url(token_url: &str, repository: &str) -> Self {
        Self {
            realm: token_url.to_owned(),
            service: "container_registry".to_owned(),
            scope: Self::pull_scope(repository),
            error: None,
        }
    }
}

/// Why a `WWW-Authenticate` header is not a usable bearer challenge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChallengeError {
    /// The scheme is not `Bearer` (e.g. `Basic`), or the header is empty.
    #[error("Only WWW-Authenticate Bearer type supported, the registry asked for {scheme}")]
    UnsupportedScheme {
        /// The scheme found, truncated and escaped.
        scheme: String,
    },
    /// One or more of `realm`, `service`, `scope` is absent.
    #[error("Expected WWW-Authenticate to include realm service scope, missing: {}", missing.join(", "))]
    MissingParameters {
        /// The absent parameter names.
        missing: Vec<&'static str>,
    },
    /// The parameter list does not parse.
    #[error(
        "Expected WWW-Authenticate to include realm service scope, the parameters are malformed: {reason}"
    )]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Parses a `WWW-Authenticate` header into a [`BearerChallenge`].
///
/// The scheme is matched case-insensitively; parameters are `key="value"` or `key=value`
/// in any order, separated by commas (commas inside quotes are part of the value);
/// parameter names are case-insensitive and the first of a repeated name wins. All of
/// `realm`, `service` and `scope` must be present, but may be empty. A following
/// challenge in the same header (`Bearer ..., Basic ...`) ends the parameter list.
pub fn parse_www_authenticate(header: &str) -> Result<BearerChallenge, ChallengeError> {
    let header = header.trim_start_matches(is_ows);
    let scheme_end = header.find(is_ows).unwrap_or(header.len());
    let (scheme, rest) = header.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ChallengeError::UnsupportedScheme {
            scheme: crate::validate::shown(scheme),
        });
    }
    let params = parse_params(rest)?;
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (realm, service, scope) = (find("realm"), find("service"), find("scope"));
    let missing: Vec<&'static str> = [("realm", &realm), ("service", &service), ("scope", &scope)]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    match (realm, service, scope) {
        (Some(realm), Some(service), Some(scope)) => Ok(BearerChallenge {
            realm,
            service,
            scope,
            error: find("error"),
        }),
        _ => Err(ChallengeError::MissingParameters { missing }),
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn skip_ows(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|&c| is_ows(c)).is_some() {}
}

/// Parses `name=value` pairs; names are lower-cased.
fn parse_params(input: &str) -> Result<Vec<(String, String)>, ChallengeError> {
    let malformed = |reason| ChallengeError::Malformed { reason };
    let mut chars = input.chars().peekable();
    let mut params = Vec::new();
    loop {
        while chars.next_if(|&c| is_ows(c) || c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|&c| is_tchar(c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            return Err(malformed("expected a parameter name"));
        }
        skip_ows(&mut chars);
        if chars.next_if_eq(&'=').is_none() {
            // A bare token here starts the next challenge (or is a token68 we do not use).
            break;
        }
        skip_ows(&mut chars);
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(malformed("unterminated quoted string")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(malformed("unterminated quoted string")),
                    },
                    Some(c) => value.push(c),
                }
            }
            value
        } else {
            let mut value = String::new();
            while let Some(c) = chars.next_if(|&c| c != ',' && c != '"' && !is_ows(c)) {
                value.push(c);
            }
            value
        };
        skip_ows(&mut chars);
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return Err(malformed("expected `,` between parameters")),
        }
        params.push((name, value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(realm: &str, service: &str, scope: &str) -> BearerChallenge {
        BearerChallenge {
            realm: realm.into(),
            service: service.into(),
            scope: scope.into(),
            error: None,
        }
    }

    #[test]
    fn valid_challenges_parse() {
        let cases: &[(&str, BearerChallenge)] = &[
            (
                "BEARER scope=\"abc\",service=\"example.org\",realm=\"https://example.org/abc/token\"",
                challenge("https://example.org/abc/token", "example.org", "abc"),
            ),
            (
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/ubuntu:pull\"",
                challenge(
                    "https://auth.docker.io/token",
                    "registry.docker.io",
                    "repository:library/ubuntu:pull",
                ),
            ),
            (
                "bearer realm=\"r\", service=\"s\" , scope=\"repository:a:pull,push\"",
                challenge("r", "s", "repository:a:pull,push"),
            ),
            (
                "Bearer realm=https://x/token,service=svc,scope=",
                challenge("https://x/token", "svc", ""),
            ),
            (
                "Bearer realm=\"\",service=\"\",scope=\"\"",
                challenge("", "", ""),
            ),
            (
                "  Bearer\tREALM=\"r\",Service=\"s\",scope=\"a\\\"b\"",
                challenge("r", "s", "a\"b"),
            ),
            (
                "Bearer realm=\"r\",service=\"s\",scope=\"x\",realm=\"other\"",
                challenge("r", "s", "x"),
            ),
            (
                "Bearer realm=\"r\",,service=\"s\",scope=\"x\", Basic realm=\"b\"",
                challenge("r", "s", "x"),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(
                parse_www_authenticate(header).as_ref(),
                Ok(want),
                "{header}"
            );
        }
    }

    #[test]
    fn the_error_parameter_is_kept() {
        let got = parse_www_authenticate(
            "Bearer realm=\"r\",service=\"s\",scope=\"repository:a:pull\",error=\"insufficient_scope\"",
        )
        .unwrap();
        assert_eq!(got.error.as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn non_bearer_schemes_are_refused_with_binderhubs_text() {
        for header in [
            "basic realm=\"https://example.org/abc/token\"",
            "Basic",
            "",
            "   ",
            "garbage",
            "Negotiate abc",
            "Bearerrealm=\"x\"",
        ] {
            let err = parse_www_authenticate(header).unwrap_err();
            assert!(
                matches!(err, ChallengeError::UnsupportedScheme { .. }),
                "{header}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("Only WWW-Authenticate Bearer type supported"),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_or_malformed_parameters_are_refused_with_binderhubs_text() {
        let cases = [
            "bearer realm=\"https://example.org/abc/token\"",
            "Bearer",
            "Bearer service=\"s\",scope=\"x\"",
            "Bearer garbage",
            "Bearer realm=\"r\",service=\"s\",scope=\"unterminated",
            "Bearer realm=\"r\" service=\"s\" scope=\"x\"",
            "Bearer =x",
            "Bearer realm=\"r\"x,service=\"s\",scope=\"x\"",
            "Bearer realm=\"r\",service=\"s\",scope=\"x\\",
        ];
        for header in cases {
            let err = parse_www_authenticate(header).unwrap_err();
            assert!(
                matches!(
                    err,
                    ChallengeError::MissingParameters { .. } | ChallengeError::Malformed { .. }
                ),
                "{header}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("Expected WWW-Authenticate to include realm service scope"),
                "{err}"
            );
        }
        let err = parse_www_authenticate("bearer realm=\"x\"").unwrap_err();
        assert_eq!(
            err,
            ChallengeError::MissingParameters {
                missing: vec!["service", "scope"]
            }
        );
    }

    #[test]
    fn for_token_url_uses_binderhubs_service_and_pull_scope() {
        let c = BearerChallenge::for_token_url(
            "https://gcr.io/v2/token?service=gcr.io",
            "project/image",
        );
        assert_eq!(c.service, "container_registry");
        assert_eq!(c.scope, "repository:project/image:pull");
    }
}

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;

fn claims(aud: &str, origin: &str, exp: u64) -> Claims {
    Claims {
        aud: aud.into(),
        origin: origin.into(),
        exp,
    }
}

fn good() -> String {
    mint(
        SECRET,
        &claims("gh/o/r/HEAD", "binder.example:8000", NOW + 300),
    )
}

/// The same token with its claims part replaced and the signature kept.
fn with_payload(token: &str, payload: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload),
        parts[2]
    )
}

#[test]
fn a_minted_token_verifies_for_its_link_until_it_expires() {
    let token = good();
    assert_eq!(token.matches('.').count(), 2);
    assert_eq!(
        verify(SECRET, &token, "gh/o/r/HEAD", NOW),
        Ok(Some("binder.example:8000".into()))
    );
    assert_eq!(
        verify(SECRET, &token, "gh/o/r/HEAD", NOW + 299).map(|_| ()),
        Ok(())
    );
}

#[test]
fn bad_tokens_are_refused_with_their_reason() {
    let token = good();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        token.split('.').nth(1).unwrap_or_default()
    );
    /// Name, token, secret, audience asked for, clock, reason.
    type Case<'a> = (&'a str, String, &'a [u8], &'a str, u64, BuildTokenError);
    let cases: Vec<Case<'_>> = vec![
        (
            "empty",
            String::new(),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "two parts",
            "a.b".into(),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "four parts",
            format!("{token}.x"),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "not base64",
            "!!.!!.!!".into(),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "alg none",
            unsigned,
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "too long",
            "a".repeat(5000),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Malformed,
        ),
        (
            "other secret",
            token.clone(),
            b"another secret of sixteen bytes+",
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Signature,
        ),
        (
            "claims changed",
            with_payload(
                &token,
                r#"{"aud":"gh/evil/r/HEAD","origin":"binder.example:8000","exp":9999999999}"#,
            ),
            SECRET,
            "gh/evil/r/HEAD",
            NOW,
            BuildTokenError::Signature,
        ),
        (
            "expired at exp",
            token.clone(),
            SECRET,
            "gh/o/r/HEAD",
            NOW + 300,
            BuildTokenError::Expired,
        ),
        (
            "expired later",
            token.clone(),
            SECRET,
            "gh/o/r/HEAD",
            NOW + 10_000,
            BuildTokenError::Expired,
        ),
        (
            "other spec",
            token.clone(),
            SECRET,
            "gh/o/r/main",
            NOW,
            BuildTokenError::Audience,
        ),
        (
            "other provider",
            token.clone(),
            SECRET,
            "gl/o/r/HEAD",
            NOW,
            BuildTokenError::Audience,
        ),
        (
            "no exp",
            mint_raw(r#"{"aud":"gh/o/r/HEAD","origin":"x"}"#),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Expired,
        ),
        (
            "no aud",
            mint_raw(r#"{"origin":"x","exp":9999999999}"#),
            SECRET,
            "gh/o/r/HEAD",
            NOW,
            BuildTokenError::Audience,
        ),
    ];
    for (name, token, secret, aud, now, expected) in cases {
        assert_eq!(verify(secret, &token, aud, now), Err(expected), "{name}");
    }
}

/// A token over any claims text, signed with [`SECRET`].
fn mint_raw(payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sign(SECRET, &input)))
}

#[test]
fn an_audience_list_holding_the_link_is_accepted() {
    let token = mint_raw(r#"{"aud":["x","gh/o/r/HEAD"],"exp":9999999999.5}"#);
    assert_eq!(verify(SECRET, &token, "gh/o/r/HEAD", NOW), Ok(None));
}

#[test]
fn origins_compare_the_host_of_origin_else_host() {
    let cases = [
        (
            Some("https://binder.example"),
            Some("other"),
            Some("binder.example"),
        ),
        (Some("http://127.0.0.1:8000/"), None, Some("127.0.0.1:8000")),
        (None, Some("binder.example:443"), Some("binder.example:443")),
        (Some("null"), Some("h"), Some("h")),
        (Some(""), Some(" "), None),
        (None, None, None),
    ];
    for (origin, host, expected) in cases {
        assert_eq!(
            request_origin(origin, host).as_deref(),
            expected,
            "{origin:?} {host:?}"
        );
    }
    assert_eq!(check_origin(Some("a"), Some("a")), Ok(()));
    assert_eq!(
        check_origin(Some("a"), Some("b")),
        Err(BuildTokenError::Origin)
    );
    assert_eq!(check_origin(None, Some("b")), Err(BuildTokenError::Origin));
    assert_eq!(check_origin(Some("a"), None), Err(BuildTokenError::Origin));
}

#[test]
fn secrets_are_hex_of_at_least_sixteen_bytes() {
    let hex = "00ff".repeat(8);
    assert_eq!(parse_secret(&hex).map(|b| b.len()), Ok(16));
    assert_eq!(secret_hex(&parse_secret(&hex).unwrap_or_default()), hex);
    assert_eq!(parse_secret(&"ab".repeat(15)), Err(SecretError::TooShort));
    assert_eq!(parse_secret("abc"), Err(SecretError::NotHex));
    assert_eq!(parse_secret(&"zz".repeat(16)), Err(SecretError::NotHex));
    assert_eq!(audience("gl", "a%2Fb/main"), "gl/a%2Fb/main");
}

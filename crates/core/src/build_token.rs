//! BinderHub's build tokens: a JWT (HS256) the `/v2` page mints and `/build` checks.
//!
//! A browser that opened a launch page carries a token that says which link it is for
//! (`aud` = `<provider>/<raw spec>`), from which site (`origin`: the host of the page's
//! `Origin` header, else its `Host`) and until when (`exp`, unix seconds). `/build` with a
//! valid token skips the per-client rate limit, as in BinderHub; an invalid one is refused
//! with 403 "Invalid build token".
//!
//! The encoding is the standard JWS compact form (RFC 7515/7519), written here over the
//! `hmac`, `sha2` and `base64` the crate already uses: `base64url(header) "."
//! base64url(claims) "." base64url(HMAC-SHA256(secret, first two parts))`, no padding.
//! A test checks both directions against PyJWT, which BinderHub uses.
//!
//! The secret is bytes given as hex, as BinderHub's `build_token_secret` is in text-only
//! configuration formats ([`parse_secret`]); every edge host of a deployment must use the
//! same one, or a token minted by one host fails on another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The message of every refused token, as BinderHub's.
pub const INVALID_BUILD_TOKEN: &str = "Invalid build token";

/// The query parameter that carries the token on `/build`.
pub const QUERY_PARAMETER: &str = "build_token";

/// BinderHub's default lifetime of a token, in seconds.
pub const DEFAULT_EXPIRES_SECONDS: u64 = 300;

/// The shortest secret accepted, in bytes: shorter keys make HS256 guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// The length of a secret generated when none is configured, in bytes.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The longest token read; anything longer is refused before it is decoded.
const MAX_TOKEN_LEN: usize = 4096;

/// The JOSE header of every token minted here.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Why a token is refused. Every variant answers [`INVALID_BUILD_TOKEN`]; the variants say
/// why in logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BuildTokenError {
    /// Not three base64url parts of JSON, or not HS256.
    #[error("the build token is malformed")]
    Malformed,
    /// The signature does not match the secret.
    #[error("the build token's signature does not verify")]
    Signature,
    /// `exp` has passed (or is missing).
    #[error("the build token has expired")]
    Expired,
    /// The token is for another link.
    #[error("the build token is for another link")]
    Audience,
    /// The token was minted for another site.
    #[error("the build token is for another origin")]
    Origin,
}

/// Why a configured secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecretError {
    /// Not an even number of hex digits.
    #[error("the build token secret must be hex, e.g. the output of `openssl rand -hex 32`")]
    NotHex,
    /// Fewer than [`MIN_SECRET_BYTES`] bytes.
    #[error("the build token secret must be at least {MIN_SECRET_BYTES} bytes ({} hex digits)", MIN_SECRET_BYTES * 2)]
    TooShort,
}

/// The claims of a build token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// `<provider>/<raw spec>`: the link the token is for.
    pub aud: String,
    /// The host (with port) of the page that asked for it.
    pub origin: String,
    /// When it expires, in unix seconds.
    pub exp: u64,
}

/// The audience of a link: `<provider>/<raw spec>`, the spec as it appears in the URL.
pub fn audience(provider: &str, raw_spec: &str) -> String {
    format!("{provider}/{raw_spec}")
}

/// The origin BinderHub puts in and compares: the host (and port) of the `Origin` header,
/// else the `Host` header. `None` when neither names a host.
pub fn request_origin(origin_header: Option<&str>, host: Option<&str>) -> Option<String> {
    let from_origin = origin_header
        .map(str::trim)
        .filter(|o| !o.is_empty() && *o != "null")
        .map(|o| o.split_once("://").map_or(o, |(_, rest)| rest))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .filter(|h| !h.is_empty());
    from_origin
        .or_else(|| host.map(str::trim).filter(|h| !h.is_empty()))
        .map(str::to_owned)
}

/// The secret's bytes from its hex text.
pub fn parse_secret(hex: &str) -> Result<Vec<u8>, SecretError> {
    let hex = hex.trim().as_bytes();
    if !hex.len().is_multiple_of(2) {
        return Err(SecretError::NotHex);
    }
    let digit = |c: u8| (c as char).to_digit(16).ok_or(SecretError::NotHex);
    let bytes = hex
        .chunks_exact(2)
        .map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect::<Result<Vec<u8>, SecretError>>()?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort);
    }
    Ok(bytes)
}

/// `bytes` as lower-case hex, the form [`parse_secret`] reads.
pub fn secret_hex(bytes: &[u8]) -> String {
    crate::hex::lower(bytes)
}

/// A generated secret as it is kept in the key-value store when `build_token_secret` is
/// empty: every instance of every component on the hosts sharing the store reads the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// The secret as hex.
    pub hex: String,
}

impl crate::cache::Expiring for StoredSecret {
    fn expires_at(&self) -> u64 {
        // A secret that changed would refuse every token in flight; it never expires.
        u64::MAX
    }
}

/// HMAC-SHA256 of `input` under `secret`. HMAC takes keys of any length, so
/// `new_from_slice` cannot fail; an empty tag, which never verifies, stands for it if it did.
fn sign(secret: &[u8], input: &str) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Mints the token of `claims` with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = URL_SAFE_NO_PAD.encode(sign(secret, &signing_input));
    format!("{signing_input}.{signature}")
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// `aud` may be one string or a list of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    aud: Option<Audience>,
    exp: Option<f64>,
    origin: Option<String>,
}

/// Checks `token` against `secret`, the link's audience and the clock: the signature
/// first (nothing unsigned is believed), then `exp` (strictly after `now`, as PyJWT), then
/// `aud`. Returns the token's origin, for [`check_origin`].
pub fn verify(
    secret: &[u8],
    token: &str,
    expected_audience: &str,
    now: u64,
) -> Result<Option<String>, BuildTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(BuildTokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BuildTokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| BuildTokenError::Malformed)
    };
    let jose: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| BuildTokenError::Malformed)?;
    // Only HS256: `none` or an asymmetric algorithm must never be accepted with this key.
    if jose.alg != "HS256" {
        return Err(BuildTokenError::Malformed);
    }
    let signature = decode(signature)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let expected = sign(secret, signing_input);
    // Constant time: a byte-by-byte comparison would tell a forger how much was right.
    if expected.is_empty() || !bool::from(expected.as_slice().ct_eq(&signature)) {
        return Err(BuildTokenError::Signature);
    }
    let claims: RawClaims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| BuildTokenError::Malformed)?;
    match claims.exp {
        Some(exp) if exp.is_finite() && exp > now as f64 => {}
        _ => return Err(BuildTokenError::Expired),
    }
    let audience_matches = match &claims.aud {
        Some(Audience::One(aud)) => aud == expected_audience,
        Some(Audience::Many(list)) => list.iter().any(|a| a == expected_audience),
        None => false,
    };
    if !audience_matches {
        return Err(BuildTokenError::Audience);
    }
    Ok(claims.origin)
}

/// Checks the origin a verified token carries against the request's ([`request_origin`]).
pub fn check_origin(
    token_origin: Option<&str>,
    request_origin: Option<&str>,
) -> Result<(), BuildTokenError> {
    match (token_origin, request_origin) {
        (Some(minted), Some(now)) if minted == now => Ok(()),
        _ => Err(BuildTokenError::Origin),
    }
}

#[cfg(test)]
mod tests;

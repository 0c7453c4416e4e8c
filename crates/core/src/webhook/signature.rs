//! Webhook authenticity: GitHub's HMAC signature and GitLab's shared token.
//!
//! Both comparisons are constant-time, and an empty secret refuses everything: a webhook
//! endpoint deployed before its secret is set must not accept forged pushes.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{WebhookError, check_size};

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::SecretNotConfigured);
    }
    check_size(body)?;
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature)?;
    let expected = decode_hex_32(hex).ok_or(WebhookError::MalformedSignature)?;
    // HMAC takes keys of any length, so this never fails; refuse rather than panic anyway.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::SignatureMismatch)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::SignatureMismatch)
}

/// Checks GitLab's `X-Gitlab-Token`, which carries the secret itself.
pub fn verify_gitlab_token(secret: &[u8], header: Option<&str>) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::SecretNotConfigured);
    }
    let header = header.ok_or(WebhookError::MissingToken)?;
    // Comparing digests keeps the time independent of the secret's length as well.
    let expected = Sha256::digest(secret);
    let given = Sha256::digest(header.as_bytes());
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::TokenMismatch)
    }
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }

    #[test]
    fn githubs_documented_example_verifies() {
        // The example in GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(SECRET, BODY), header);
        assert_eq!(verify_github_signature(SECRET, BODY, Some(header)), Ok(()));
        assert_eq!(
            verify_github_signature(
                SECRET,
                BODY,
                Some(&header.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(())
        );
    }

    #[test]
    fn wrong_signatures_are_refused() {
        let good = sign(SECRET, BODY);
        assert_eq!(
            verify_github_signature(b"other secret", BODY, Some(&good)),
            Err(WebhookError::SignatureMismatch)
        );
        assert_eq!(
            verify_github_signature(SECRET, b"Hello, World?", Some(&good)),
            Err(WebhookError::SignatureMismatch)
        );
        let mut flipped = good.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verify_github_signature(SECRET, BODY, Some(&flipped)),
            Err(WebhookError::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_malformed_signatures_are_refused() {
        assert_eq!(
            verify_github_signature(SECRET, BODY, None),
            Err(WebhookError::MissingSignature)
        );
        let good = sign(SECRET, BODY);
        let sha1 = format!("sha1={}", &good[7..47]);
        let malformed = [
            "",
            "sha256=",
            "sha256=abc",
            &good[7..],
            &sha1,
            "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17aa",
            "sha256=+57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=é57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        ];
        for header in malformed {
            assert_eq!(
                verify_github_signature(SECRET, BODY, Some(header)),
                Err(WebhookError::MalformedSignature),
                "{header}"
            );
        }
    }

    #[test]
    fn an_unset_secret_refuses_everything() {
        let forged = sign(b"", BODY);
        assert_eq!(
            verify_github_signature(b"", BODY, Some(&forged)),
            Err(WebhookError::SecretNotConfigured)
        );
        assert_eq!(
            verify_github_signature(b"", BODY, None),
            Err(WebhookError::SecretNotConfigured)
        );
        assert_eq!(
            verify_gitlab_token(b"", Some("")),
            Err(WebhookError::SecretNotConfigured)
        );
    }

    #[test]
    fn oversized_bodies_are_refused_before_hashing() {
        let body = vec![b'a'; super::super::MAX_BODY_BYTES + 1];
        let err = verify_github_signature(SECRET, &body, Some(&sign(SECRET, &body))).unwrap_err();
        assert_eq!(err, WebhookError::BodyTooLarge { len: body.len() });
    }

    #[test]
    fn gitlab_tokens() {
        assert_eq!(verify_gitlab_token(b"tok3n", Some("tok3n")), Ok(()));
        assert_eq!(
            verify_gitlab_token(b"tok3n", Some("tok3n ")),
            Err(WebhookError::TokenMismatch)
        );
        assert_eq!(
            verify_gitlab_token(b"tok3n", Some("tok3")),
            Err(WebhookError::TokenMismatch)
        );
        assert_eq!(
            verify_gitlab_token(b"tok3n", Some("")),
            Err(WebhookError::TokenMismatch)
        );
        assert_eq!(
            verify_gitlab_token(b"tok3n", None),
            Err(WebhookError::MissingToken)
        );
    }

    #[test]
    fn errors_never_show_the_secret() {
        let errors = [
            verify_github_signature(SECRET, BODY, Some("sha256=00")).unwrap_err(),
            verify_github_signature(SECRET, BODY, Some(&sign(b"x", BODY))).unwrap_err(),
            verify_gitlab_token(SECRET, Some("nope")).unwrap_err(),
        ];
        for err in errors {
            let text = format!("{err} {err:?}");
            assert!(!text.contains("Secret to Everybody"), "{text}");
        }
    }
}

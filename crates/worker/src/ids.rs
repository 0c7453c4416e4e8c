//! Random identifiers: launch and build ids, hub user suffixes, server tokens.
//!
//! Launch ids travel in SSE ids through the edge and are the only key to a launch's events
//! (which carry the server token), so they hold 128 random bits from the OS.

use base64::Engine;

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without the OS random source nothing here is safe to hand out; there is no fallback.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A launch or build id: 128 random bits as 32 lower-case hex digits.
pub(crate) fn new_id() -> String {
    bindery_core::hex::lower(&random::<16>())
}

/// Eight random `[a-z0-9]` characters: the suffix of a temporary hub user.
pub(crate) fn user_suffix() -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // 252 = 7 * 36: rejecting bytes above it keeps every character equally likely.
    let mut out = String::with_capacity(8);
    while out.len() < 8 {
        for b in random::<16>() {
            if b < 252 && out.len() < 8 {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    out
}

/// A server token as BinderHub makes it: 16 random bytes, urlsafe base64, no padding.
pub(crate) fn server_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<16>())
}

/// The shape check of the ids above, defined once for the edge and the worker.
pub(crate) use bindery_core::worker_api::is_valid_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_suffixes_and_tokens_have_their_shapes_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(is_valid_id(&a) && a != b);
        let suffix = user_suffix();
        assert_eq!(suffix.len(), 8);
        assert!(
            suffix
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        let token = server_token();
        assert_eq!(token.len(), 22);
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'));
    }
}

//! Cache keys: `v1/<kind>/<percent-encoded part>/...`, at most [`MAX_KEY_BYTES`] long.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::provider::Spec;

/// The longest key Spin's key-value store accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Everything but RFC 3986 unreserved characters is encoded, `/` and `%` included.
const KEY_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The resolved ref of `unresolved_ref` (a branch, tag or `HEAD`) of a repository;
/// `provider` is the provider id (`gh`, `gl`, ...) and `repo_key` the provider's
/// repository key (e.g. `owner/name`).
pub fn ref_key(provider: &str, repo_key: &str, unresolved_ref: &str) -> String {
    key("ref", &[provider, repo_key, unresolved_ref])
}

/// The ref-cache key of a spec: provider, repository key and unresolved ref (empty for
/// providers whose links carry none).
pub fn spec_ref_key(spec: &Spec) -> String {
    repo_ref_key(spec, spec.unresolved_ref().unwrap_or_default())
}

/// The ref-cache key of another ref (e.g. `HEAD`) of `spec`'s repository.
pub fn repo_ref_key(spec: &Spec, unresolved_ref: &str) -> String {
    ref_key(spec.provider().as_str(), &spec.repo_key(), unresolved_ref)
}

/// The edge's last health check (`/health` of the launch component), reused for a few
/// seconds so that frequent polling does not probe the worker and the registry each time.
pub fn edge_health_key() -> String {
    key("health", &["edge"])
}

/// What builds images, as the worker last said (`/versions` of the launch component).
pub fn edge_versions_key() -> String {
    key("versions", &["edge"])
}

/// The federation's shared health record (see `crate::federation::state`).
pub fn federation_state_key() -> String {
    key("federation", &["state"])
}

/// The lease of the request that refreshes the federation's health now.
pub fn federation_lease_key() -> String {
    key("federation", &["lease"])
}

/// Whether the full image name (with tag) exists in the registry.
pub fn image_key(image: &str) -> String {
    key("image", &[image])
}

/// A registry token for pulling `repository` from `registry` (tokens are scoped per
/// repository).
pub fn token_key(registry: &str, repository: &str) -> String {
    key("token", &[registry, repository])
}

/// The last build status of an image, for the live badge.
pub fn status_key(image: &str) -> String {
    key("status", &[image])
}

/// A webhook delivery already handled: `provider` is `github` or `gitlab`. Callers use
/// `crate::webhook::delivery_key`, which validates the id first.
pub(crate) fn delivery_key(provider: &str, delivery_id: &str) -> String {
    key("hook", &[provider, delivery_id])
}

/// A rate-limit window of a client (usually its IP address).
pub fn rate_key(client: &str) -> String {
    key("rate", &[client])
}

/// The build-token secret the edge generated because `build_token_secret` is empty
/// (`crate::build_token::StoredSecret`): one per store, so every host on it shares it.
pub fn build_token_secret_key() -> String {
    key("secret", &["build-token"])
}

fn key(kind: &str, parts: &[&str]) -> String {
    let mut key = format!("v1/{kind}");
    for part in parts {
        key.push('/');
        key.extend(utf8_percent_encode(part, KEY_PART));
    }
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hashed = format!("v1/{kind}/#");
    for byte in digest {
        hashed.push(char::from(HEX[usize::from(byte >> 4)]));
        hashed.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hashed
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_have_a_version_a_kind_and_encoded_parts() {
        assert_eq!(
            ref_key("gh", "owner/name", "main"),
            "v1/ref/gh/owner%2Fname/main"
        );
        assert_eq!(
            ref_key("gh", "o/n", "feature/x%2F"),
            "v1/ref/gh/o%2Fn/feature%2Fx%252F"
        );
        assert_eq!(
            ref_key("gl", "g/s/p", "brañch"),
            "v1/ref/gl/g%2Fs%2Fp/bra%C3%B1ch"
        );
        assert_eq!(
            image_key("r.example.org/p/i:abc"),
            "v1/image/r.example.org%2Fp%2Fi%3Aabc"
        );
        assert_eq!(
            token_key("https://r.example.org", "p/i"),
            "v1/token/https%3A%2F%2Fr.example.org/p%2Fi"
        );
        assert_eq!(status_key("i:t"), "v1/status/i%3At");
        assert_eq!(
            delivery_key("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "v1/hook/github/72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(rate_key("2001:db8::1"), "v1/rate/2001%3Adb8%3A%3A1");
        assert_eq!(edge_health_key(), "v1/health/edge");
        assert_eq!(edge_versions_key(), "v1/versions/edge");
    }

    #[test]
    fn ref_keys_follow_the_spec() {
        let settings = crate::provider::ProviderSettings::default();
        let parse = |path| Spec::parse_path(path, &settings).expect("a valid spec");
        let spec = parse("gh/Owner/repo/feature/x");
        assert_eq!(spec_ref_key(&spec), "v1/ref/gh/Owner%2Frepo/feature%2Fx");
        assert_eq!(repo_ref_key(&spec, "HEAD"), "v1/ref/gh/Owner%2Frepo/HEAD");
        let spec = parse("gl/group%2Fproject/main");
        assert_eq!(spec_ref_key(&spec), "v1/ref/gl/group%2Fproject/main");
        let spec = parse("zenodo/10.5281/zenodo.3242074");
        assert_eq!(
            spec_ref_key(&spec),
            "v1/ref/zenodo/10.5281%2Fzenodo.3242074/"
        );
    }

    #[test]
    fn tricky_parts_do_not_collide() {
        let refs = [
            "a/b", "a%2Fb", "a%252Fb", "a", "b", "", "/", "%", "é", "e\u{301}", "#", "a b", "a+b",
            "A/B",
        ];
        let mut seen = HashSet::new();
        for r in refs {
            for repo in ["o/n", "o", "n", "o%2Fn", ""] {
                assert!(seen.insert(ref_key("gh", repo, r)), "{repo} {r}");
            }
        }
        assert_ne!(ref_key("gh", "a/b", "c"), ref_key("gh", "a", "b/c"));
        assert_ne!(image_key("x"), status_key("x"));
    }

    #[test]
    fn long_keys_are_hashed_and_stay_distinct() {
        let long = "x".repeat(300);
        let key = image_key(&long);
        assert!(
            key.starts_with("v1/image/#") && key.len() <= MAX_KEY_BYTES,
            "{key}"
        );
        assert_ne!(key, image_key(&format!("{long}y")));
        let exactly = "x".repeat(MAX_KEY_BYTES - "v1/image/".len());
        assert_eq!(image_key(&exactly).len(), MAX_KEY_BYTES);
        assert!(!image_key(&exactly).contains('#'));
        assert!(ref_key("git", &"%".repeat(100), "main").starts_with("v1/ref/#"));
    }

    proptest! {
        #[test]
        fn keys_are_short_safe_and_injective(
            a in ("[a-z]{0,3}", ".{0,40}", ".{0,120}"),
            b in ("[a-z]{0,3}", ".{0,40}", ".{0,120}"),
        ) {
            let ka = ref_key(&a.0, &a.1, &a.2);
            let kb = ref_key(&b.0, &b.1, &b.2);
            prop_assert!(ka.len() <= MAX_KEY_BYTES);
            prop_assert!(ka.starts_with("v1/ref/"));
            prop_assert!(ka.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~%/#".contains(&c)));
            prop_assert_eq!(ka == kb, a == b);
        }
    }
}

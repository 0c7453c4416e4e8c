//! Image names and build names, bit-identical to BinderHub's.
//!
//! An image name is the registry key of a build: if Bindery derived a different name from
//! the same link, every image an operator's BinderHub already pushed would be rebuilt.
//! The rules (BINDERHUB.md §3): hash the *raw* build slug, escape it, truncate, append six
//! hex digits of the hash, lower-case; then replace `_` with `-` and lower-case the whole
//! `prefix + slug + ":" + ref`.

use sha2::{Digest, Sha256};

use crate::escape::escape_alnum;

/// The longest image name, in characters, before the `:` (Docker's limit).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// The longest Kubernetes object name used for a build (a DNS label).
pub const MAX_BUILD_NAME_LEN: usize = 63;
/// The prefix of every build name (pod or Job).
pub const BUILD_NAME_PREFIX: &str = "build-";

/// An image name split for the registry: what the manifest check asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The whole name, `prefix + slug + ":" + tag`.
    pub full: String,
    /// The repository inside the registry (registry host removed), as BinderHub splits it.
    pub repository: String,
    /// The tag: the resolved ref.
    pub tag: String,
}

fn sha256_hex(input: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// BinderHub's `_safe_build_slug`: escape, truncate to `limit - hash_len - 1`, append the hash.
///
/// A limit too small to hold anything but the hash keeps the hash alone (BinderHub's Python
/// slicing would misbehave there; no configuration reaches it).
pub fn safe_slug(raw: &str, limit: usize, hash_len: usize) -> String {
    let hash = sha256_hex(raw);
    // The escaped text keeps ASCII letters and digits and writes everything else as `-`
    // and hex digits: all ASCII, so byte and character positions agree, and ASCII
    // lower-casing is the whole of Python's `lower()` here.
    let mut slug = escape_alnum(raw, '-');
    let keep = limit.saturating_sub(hash_len + 1).min(slug.len());
    slug.truncate(keep);
    slug.push('-');
    slug.push_str(&hash[..hash_len.min(hash.len())]);
    slug.make_ascii_lowercase();
    slug
}

/// Python's `str.lower()` of `text`, skipping the Unicode tables when it is all ASCII.
fn lowercase(mut text: String) -> String {
    if text.is_ascii() {
        text.make_ascii_lowercase();
        text
    } else {
        text.to_lowercase()
    }
}

/// The image name for a build slug and resolved ref under an image prefix.
pub fn image_name(prefix: &str, build_slug: &str, resolved_ref: &str) -> String {
    let limit = MAX_REPOSITORY_LEN.saturating_sub(prefix.chars().count());
    let slug = safe_slug(build_slug, limit, 6);
    let mut name = String::with_capacity(prefix.len() + slug.len() + 1 + resolved_ref.len());
    name.push_str(prefix);
    name.push_str(&slug);
    name.push(':');
    name.push_str(resolved_ref);
    if name.contains('_') {
        name = name.replace('_', "-");
    }
    lowercase(name)
}

/// The build name (Kubernetes Job or pod name) for a build slug and resolved ref.
///
/// At most 63 characters, DNS-safe, never ending in `-`, `_` or `.`.
pub fn build_name(build_slug: &str, resolved_ref: &str) -> String {
    build_name_with_prefix(BUILD_NAME_PREFIX, build_slug, resolved_ref)
}

/// [`build_name`] with another prefix, as BinderHub's function takes one.
pub fn build_name_with_prefix(prefix: &str, build_slug: &str, resolved_ref: &str) -> String {
    let ref_part = safe_slug(resolved_ref, 6, 2);
    let limit = MAX_BUILD_NAME_LEN
        .saturating_sub(ref_part.len() + 1)
        .saturating_sub(prefix.len());
    let slug = safe_slug(build_slug, limit, 6);
    lowercase(format!("{prefix}{slug}-{ref_part}"))
}

/// Splits an image name into registry repository and tag the way BinderHub does.
///
/// The tag follows the last `:` (`latest` when there is none). A name matching Docker Hub's
/// `user/image` shape is kept whole; otherwise the first `/` segment is taken to be the
/// registry host and dropped. A name without any `/` therefore yields an empty repository,
/// BinderHub's quirk for prefixes without a registry; the registry check refuses it.
pub fn split_image(name: &str) -> ImageName {
    let (base, tag) = match name.rsplit_once(':') {
        Some((base, tag)) if !tag.contains('/') => (base, tag),
        _ => (name, "latest"),
    };
    let repository = if is_docker_hub_name(base) {
        base.to_string()
    } else {
        base.split_once('/')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default()
    };
    ImageName {
        full: name.to_string(),
        repository,
        tag: tag.to_string(),
    }
}

/// `[a-z0-9]{4,40}/[a-z0-9._-]{2,255}`, matched in full.
fn is_docker_hub_name(base: &str) -> bool {
    let Some((user, image)) = base.split_once('/') else {
        return false;
    };
    (4..=40).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && (2..=255).contains(&image.len())
        && image.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octave_image_name_matches_the_recorded_stream() {
        assert_eq!(
            image_name(
                "",
                "binder-examples-octave",
                "1479e0252b2e648bb755ee913292b79495931717"
            ),
            "binder-2dexamples-2doctave-03025a:1479e0252b2e648bb755ee913292b79495931717"
        );
        assert_eq!(
            build_name(
                "binder-examples-octave",
                "1479e0252b2e648bb755ee913292b79495931717"
            ),
            "build-binder-2dexamples-2doctave-03025a-147-e2"
        );
    }

    #[test]
    fn the_hash_is_taken_before_lower_casing() {
        let upper = image_name(
            "",
            "TomWinder-QuakeMigrate",
            "baa136a76197b72be3c57fa9cf569abab059a7fd",
        );
        assert!(
            upper.starts_with("tomwinder-2dquakemigrate-8be9d9:"),
            "{upper}"
        );
        let lower = image_name(
            "",
            "tomwinder-quakemigrate",
            "baa136a76197b72be3c57fa9cf569abab059a7fd",
        );
        assert_ne!(upper, lower);
    }

    #[test]
    fn long_slugs_are_truncated_to_255_characters_before_the_tag() {
        let prefix = "registry.example.org/prefix/";
        let slug = "x".repeat(241);
        let name = image_name(prefix, &slug, "abc");
        let (repo, _) = name.rsplit_once(':').unwrap();
        assert_eq!(repo.len(), 255);
    }

    #[test]
    fn images_split_like_binderhub() {
        let cases = [
            ("gcr.io/project/image:tag", "project/image", "tag"),
            ("weirdregistry.com/image:tag", "image", "tag"),
            ("jupyterhub/jupyterhub", "jupyterhub/jupyterhub", "latest"),
            ("localhost:5000/binder/x", "binder/x", "latest"),
            ("127.0.0.1:5000/binder-x:abc", "binder-x", "abc"),
            ("noslash:abc", "", "abc"),
        ];
        for (name, repo, tag) in cases {
            let split = split_image(name);
            assert_eq!(
                (split.repository.as_str(), split.tag.as_str()),
                (repo, tag),
                "{name}"
            );
        }
    }
}

//! What Bindery keeps in Spin's plain key-value store, under which keys, for how long.
//!
//! The edge answers most launches from this cache: a branch's resolved ref, whether an
//! image exists, registry tokens, the last build status for the live badge, webhook
//! delivery ids and rate-limit windows. The store only maps string keys to bytes, so this
//! module fixes the format:
//!
//! - **Keys** ([`ref_key`], [`image_key`], ...) start with `v1/` and a kind, so a format
//!   change moves to `v2/` and never misreads old entries; every variable part is
//!   percent-encoded (only `A-Za-z0-9-._~` stay), so parts cannot collide or smuggle a
//!   separator. Spin caps keys at 256 bytes: a longer key is replaced by
//!   `v1/<kind>/#<sha256 of the full key>`, which no encoded key can equal (`#` is always
//!   encoded).
//! - **Values** are JSON with an `expires_at` (unix seconds). [`decode`] never fails a
//!   request: malformed bytes are [`Lookup::Corrupt`] (a miss, to overwrite), and an
//!   expired entry is still returned as [`Lookup::Expired`] because an expired ref with an
//!   ETag can be revalidated cheaply.
//!
//! Lifetimes ([`CacheTtl`]) follow the design rules: an image that exists is remembered
//! for hours but the entry is deleted as soon as a launch finds the image gone; a missing
//! image for seconds (a build may be pushing it); a branch's ref for about a minute, longer
//! when a verified webhook wrote it; a full commit SHA that its provider confirmed never
//! expires ([`NEVER`]: commits do not change), and one that was not confirmed is never
//! cached; registry tokens until just before they expire.

mod entries;
mod keys;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use entries::{
    CachedDelivery, CachedRef, CachedStatus, CachedToken, ImagePresence, LastStatus, RefSource,
};
pub(crate) use keys::delivery_key;
pub use keys::{
    MAX_KEY_BYTES, build_token_secret_key, edge_health_key, edge_versions_key,
    federation_lease_key, federation_state_key, image_key, rate_key, ref_key, repo_ref_key,
    spec_ref_key, status_key, token_key,
};

/// How long past its `expires_at` an entry is kept before it is deleted: an expired ref
/// still names the latest known commit for the live badge and still revalidates with its
/// ETag. The edge deletes older entries it reads; the host's sweep (`bindery_host::KvSweep`)
/// deletes the rest after the same time by default.
pub const EXPIRED_KEPT_SECONDS: u64 = 60 * 60;

/// The `expires_at` of an entry that stays fresh for good: a commit its provider
/// confirmed. Each such entry cost one successful provider call for a commit that exists,
/// so their number is bounded by the provider's rate limit, not by what clients send.
pub const NEVER: u64 = u64::MAX;

/// How long each kind of entry lives, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheTtl {
    /// A branch or tag's resolved ref, from the provider API (60).
    pub ref_seconds: u64,
    /// "The image exists" (6 h); dropped early when a launch finds the image gone.
    pub image_present_seconds: u64,
    /// "The image is missing" (10): short, because a build may be about to push it.
    pub image_missing_seconds: u64,
    /// A registry token is dropped this long before it expires (30).
    pub token_margin_seconds: u64,
    /// A resolved ref written from a verified push webhook (1 h): the next push refreshes it.
    pub webhook_ref_seconds: u64,
    /// A webhook delivery id remembered to ignore redeliveries (24 h).
    pub delivery_seconds: u64,
    /// The last build status shown by the live badge (1 h), so a build lost with its
    /// worker does not show "building" forever.
    pub status_seconds: u64,
}

impl Default for CacheTtl {
    fn default() -> Self {
        Self {
            ref_seconds: 60,
            image_present_seconds: 6 * 60 * 60,
            image_missing_seconds: 10,
            token_margin_seconds: 30,
            webhook_ref_seconds: 60 * 60,
            delivery_seconds: 24 * 60 * 60,
            status_seconds: 60 * 60,
        }
    }
}

impl CacheTtl {
    /// When a ref resolved at `now` from `source` expires.
    pub fn ref_expires_at(&self, source: RefSource, now: u64) -> u64 {
        let ttl = match source {
            RefSource::Api => self.ref_seconds,
            RefSource::Webhook => self.webhook_ref_seconds,
        };
        now.saturating_add(ttl)
    }
}

/// A cache entry that knows when it expires (unix seconds).
pub trait Expiring {
    /// The first second at which the entry is no longer fresh.
    fn expires_at(&self) -> u64;
}

/// The result of reading an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Valid and not expired: use it.
    Fresh(T),
    /// Valid but expired (`now >= expires_at`): a miss, but its content may still help
    /// (an ETag to revalidate a ref).
    Expired(T),
    /// Not a valid entry of this type: treat as a miss and overwrite it.
    Corrupt,
}

impl<T> Lookup<T> {
    /// The entry if fresh.
    pub fn fresh(self) -> Option<T> {
        match self {
            Self::Fresh(v) => Some(v),
            Self::Expired(_) | Self::Corrupt => None,
        }
    }

    /// The entry, fresh or expired.
    pub fn any(self) -> Option<T> {
        match self {
            Self::Fresh(v) | Self::Expired(v) => Some(v),
            Self::Corrupt => None,
        }
    }

    /// True for [`Lookup::Fresh`].
    pub fn is_fresh(&self) -> bool {
        matches!(self, Self::Fresh(_))
    }
}

/// Serialises an entry to the bytes stored under its key.
///
/// Entries of this module always serialise; should a type ever fail, the result is empty
/// bytes, which [`decode`] reads as [`Lookup::Corrupt`] (a miss) rather than a panic.
pub fn encode<T: Serialize>(entry: &T) -> Vec<u8> {
    serde_json::to_vec(entry).unwrap_or_default()
}

/// Reads stored bytes as of `now`; an entry is expired from `expires_at` on.
pub fn decode<T: DeserializeOwned + Expiring>(bytes: &[u8], now: u64) -> Lookup<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(entry) if now < entry.expires_at() => Lookup::Fresh(entry),
        Ok(entry) => Lookup::Expired(entry),
        Err(_) => Lookup::Corrupt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let ttl = CacheTtl::default();
        assert_eq!(ttl.ref_seconds, 60);
        assert_eq!(ttl.image_present_seconds, 21_600);
        assert_eq!(ttl.image_missing_seconds, 10);
        assert_eq!(ttl.token_margin_seconds, 30);
        assert_eq!(ttl.webhook_ref_seconds, 3600);
        assert_eq!(ttl.delivery_seconds, 86_400);
        assert_eq!(ttl.ref_expires_at(RefSource::Api, 100), 160);
        assert_eq!(ttl.ref_expires_at(RefSource::Webhook, 100), 3700);
        assert_eq!(ttl.ref_expires_at(RefSource::Webhook, u64::MAX), u64::MAX);
    }

    #[test]
    fn ttl_config_fills_missing_fields_with_defaults() {
        let ttl: CacheTtl = serde_json::from_str(r#"{"image_present_seconds": 3600}"#).unwrap();
        assert_eq!(
            ttl,
            CacheTtl {
                image_present_seconds: 3600,
                ..CacheTtl::default()
            }
        );
    }

    #[test]
    fn expiry_boundary_counts_as_expired() {
        let entry = ImagePresence::present(1000, &CacheTtl::default(), None);
        let bytes = encode(&entry);
        let at = entry.expires_at;
        assert_eq!(
            decode::<ImagePresence>(&bytes, at - 1),
            Lookup::Fresh(entry.clone())
        );
        assert_eq!(
            decode::<ImagePresence>(&bytes, at),
            Lookup::Expired(entry.clone())
        );
        assert_eq!(
            decode::<ImagePresence>(&bytes, u64::MAX),
            Lookup::Expired(entry)
        );
    }

    #[test]
    fn corrupt_and_truncated_bytes_are_misses() {
        let entry = ImagePresence::missing(1000, &CacheTtl::default());
        let bytes = encode(&entry);
        for len in 0..bytes.len() {
            assert_eq!(
                decode::<ImagePresence>(&bytes[..len], 1000),
                Lookup::Corrupt,
                "truncated to {len}"
            );
        }
        for bad in [
            &b"\xff\xfe"[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"present":"yes","checked_at":1,"expires_at":2}"#,
            br#"{"present":true,"checked_at":-1,"expires_at":2}"#,
        ] {
            assert_eq!(decode::<ImagePresence>(bad, 0), Lookup::Corrupt);
        }
        // Another kind of entry under the wrong key is not misread either.
        let status =
            CachedStatus::new(LastStatus::Built, "img:tag".into(), 0, &CacheTtl::default());
        assert_eq!(
            decode::<ImagePresence>(&encode(&status), 0),
            Lookup::Corrupt
        );
    }

    #[test]
    fn lookup_accessors() {
        assert_eq!(Lookup::Fresh(1).fresh(), Some(1));
        assert_eq!(Lookup::Expired(1).fresh(), None);
        assert_eq!(Lookup::Expired(1).any(), Some(1));
        assert_eq!(Lookup::<i32>::Corrupt.any(), None);
        assert!(Lookup::Fresh(()).is_fresh());
        assert!(!Lookup::Expired(()).is_fresh());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            now in proptest::prelude::any::<u64>(),
        ) {
            let _ = decode::<CachedRef>(&bytes, now);
            let _ = decode::<ImagePresence>(&bytes, now);
            let _ = decode::<CachedToken>(&bytes, now);
            let _ = decode::<CachedStatus>(&bytes, now);
        }
    }
}

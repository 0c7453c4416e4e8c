//! The entries stored in the cache, each with its `expires_at`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CacheTtl, Expiring};

/// Who resolved a cached ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefSource {
    /// The provider API, on a launch or resolve request.
    Api,
    /// A verified push webhook.
    Webhook,
}

/// A resolved ref, under [`super::ref_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedRef {
    /// The immutable ref (commit SHA or record version).
    pub resolved_ref: String,
    /// The spec with the ref resolved.
    pub resolved_spec: String,
    /// A browsable URL of the resolved ref.
    pub ref_url: String,
    /// The provider's build slug, the basis of the image name.
    pub build_slug: String,
    /// The provider API's ETag, to revalidate an expired entry with `If-None-Match`.
    pub etag: Option<String>,
    /// Who resolved it.
    pub source: RefSource,
    /// When it was stored, in unix seconds.
    pub stored_at: u64,
    /// When it expires, in unix seconds (see [`CacheTtl::ref_expires_at`]).
    pub expires_at: u64,
}

impl CachedRef {
    /// The same ref confirmed again by the provider API at `now` (a `304 Not Modified`
    /// for the ETag of an expired entry).
    pub fn revalidated(self, now: u64, ttl: &CacheTtl) -> Self {
        Self {
            source: RefSource::Api,
            stored_at: now,
            expires_at: ttl.ref_expires_at(RefSource::Api, now),
            ..self
        }
    }
}

impl Expiring for CachedRef {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// Whether an image exists in the registry, under [`super::image_key`].
///
/// A launch that finds a "present" image gone (the registry pruned it) deletes the entry
/// at once, so the next request rebuilds instead of failing again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePresence {
    /// True when the registry had the manifest.
    pub present: bool,
    /// The manifest digest, when the registry sent it.
    pub digest: Option<String>,
    /// When the registry was asked, in unix seconds.
    pub checked_at: u64,
    /// When the entry expires, in unix seconds.
    pub expires_at: u64,
}

impl ImagePresence {
    /// The image exists as of `now`; kept for `ttl.image_present_seconds`.
    pub fn present(now: u64, ttl: &CacheTtl, digest: Option<String>) -> Self {
        Self {
            present: true,
            digest,
            checked_at: now,
            expires_at: now.saturating_add(ttl.image_present_seconds),
        }
    }

    /// The image is missing as of `now`; kept for `ttl.image_missing_seconds`.
    pub fn missing(now: u64, ttl: &CacheTtl) -> Self {
        Self {
            present: false,
            digest: None,
            checked_at: now,
            expires_at: now.saturating_add(ttl.image_missing_seconds),
        }
    }
}

impl Expiring for ImagePresence {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// A registry bearer token, under [`super::token_key`].
///
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The bearer token.
    pub token: String,
    /// When the cached entry expires: the token's own expiry minus the safety margin.
    pub expires_at: u64,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl CachedToken {
    /// An entry for a token that the registry says expires at `token_expires_at`, to be
    /// dropped `margin_seconds` earlier so that no request carries a token that expires in
    /// flight. `None` when the token has no more than the margin left: not worth caching.
    pub fn from_registry_expiry(
        token: String,
        token_expires_at: u64,
        now: u64,
        margin_seconds: u64,
    ) -> Option<Self> {
        if token_expires_at.saturating_sub(now) <= margin_seconds {
            return None;
        }
        Some(Self {
            token,
            expires_at: token_expires_at - margin_seconds,
        })
    }

    /// [`CachedToken::from_registry_expiry`] for a parsed token answer, with
    /// `ttl.token_margin_seconds`.
    pub fn from_registry_token(
        token: &crate::registry::RegistryToken,
        now: u64,
        ttl: &CacheTtl,
    ) -> Option<Self> {
        Self::from_registry_expiry(
            token.token.clone(),
            token.expires_at,
            now,
            ttl.token_margin_seconds,
        )
    }
}

impl Expiring for CachedToken {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// The last known build state of an image, for the live badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastStatus {
    /// A build is running.
    Building,
    /// The last build succeeded.
    Built,
    /// The last build failed.
    Failed,
}

/// The last build status of an image, under [`super::status_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedStatus {
    /// The state.
    pub status: LastStatus,
    /// The image it is about.
    pub image: String,
    /// When the state was recorded, in unix seconds.
    pub updated_at: u64,
    /// When the entry expires, in unix seconds.
    pub expires_at: u64,
}

impl CachedStatus {
    /// `status` of `image` as of `now`, kept for `ttl.status_seconds`.
    pub fn new(status: LastStatus, image: String, now: u64, ttl: &CacheTtl) -> Self {
        Self {
            status,
            image,
            updated_at: now,
            expires_at: now.saturating_add(ttl.status_seconds),
        }
    }
}

impl Expiring for CachedStatus {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// A webhook delivery already handled, under `crate::webhook::delivery_key`: a
/// redelivery within the lifetime is answered without acting twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedDelivery {
    /// When the delivery was first handled, in unix seconds.
    pub received_at: u64,
    /// When the entry expires, in unix seconds.
    pub expires_at: u64,
}

impl CachedDelivery {
    /// A delivery handled at `now`, remembered for `ttl.delivery_seconds`.
    pub fn new(now: u64, ttl: &CacheTtl) -> Self {
        Self {
            received_at: now,
            expires_at: now.saturating_add(ttl.delivery_seconds),
        }
    }
}

impl Expiring for CachedDelivery {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Lookup, decode, encode};
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn cached_ref(source: RefSource) -> CachedRef {
        let ttl = CacheTtl::default();
        CachedRef {
            resolved_ref: "1479e0252b2e648bb755ee913292b79495931717".into(),
            resolved_spec: "binder-examples/octave/1479e0252b2e648bb755ee913292b79495931717".into(),
            ref_url: "https://github.com/binder-examples/octave/tree/1479e0252b2e648bb755ee913292b79495931717".into(),
            build_slug: "binder-examples-octave".into(),
            etag: Some("W/\"abc\"".into()),
            source,
            stored_at: NOW,
            expires_at: ttl.ref_expires_at(source, NOW),
        }
    }

    #[test]
    fn entries_round_trip() {
        let ttl = CacheTtl::default();
        let r = cached_ref(RefSource::Webhook);
        assert_eq!(
            decode::<CachedRef>(&encode(&r), NOW),
            Lookup::Fresh(r.clone())
        );
        let p = ImagePresence::present(NOW, &ttl, Some("sha256:abc".into()));
        assert_eq!(
            decode::<ImagePresence>(&encode(&p), NOW),
            Lookup::Fresh(p.clone())
        );
        let m = ImagePresence::missing(NOW, &ttl);
        assert_eq!(
            decode::<ImagePresence>(&encode(&m), NOW + 9),
            Lookup::Fresh(m.clone())
        );
        assert_eq!(
            decode::<ImagePresence>(&encode(&m), NOW + 10),
            Lookup::Expired(m)
        );
        let t = CachedToken::from_registry_expiry("tok".into(), NOW + 300, NOW, 30).unwrap();
        assert_eq!(
            decode::<CachedToken>(&encode(&t), NOW),
            Lookup::Fresh(t.clone())
        );
        let s = CachedStatus::new(LastStatus::Building, "img:tag".into(), NOW, &ttl);
        assert_eq!(
            decode::<CachedStatus>(&encode(&s), NOW),
            Lookup::Fresh(s.clone())
        );
        let d = CachedDelivery::new(NOW, &ttl);
        assert_eq!(
            decode::<CachedDelivery>(&encode(&d), NOW + 86_399),
            Lookup::Fresh(d)
        );
        assert_eq!(
            decode::<CachedDelivery>(&encode(&d), NOW + 86_400),
            Lookup::Expired(d)
        );
    }

    #[test]
    fn stored_json_is_readable() {
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&cached_ref(RefSource::Api))).unwrap();
        assert_eq!(json["source"], "api");
        assert_eq!(json["expires_at"], NOW + 60);
        let json: serde_json::Value = serde_json::from_slice(&encode(&CachedStatus::new(
            LastStatus::Failed,
            "i".into(),
            0,
            &CacheTtl::default(),
        )))
        .unwrap();
        assert_eq!(json["status"], "failed");
    }

    #[test]
    fn an_expired_ref_keeps_its_etag_for_revalidation() {
        let r = cached_ref(RefSource::Api);
        let Lookup::Expired(old) = decode::<CachedRef>(&encode(&r), NOW + 60) else {
            panic!("expected expired")
        };
        assert_eq!(old.etag.as_deref(), Some("W/\"abc\""));
        let again = old.revalidated(NOW + 61, &CacheTtl::default());
        assert_eq!(
            (again.stored_at, again.expires_at, again.source),
            (NOW + 61, NOW + 121, RefSource::Api)
        );
        assert_eq!(again.resolved_ref, r.resolved_ref);
    }

    #[test]
    fn webhook_refs_live_longer() {
        assert_eq!(cached_ref(RefSource::Api).expires_at, NOW + 60);
        assert_eq!(cached_ref(RefSource::Webhook).expires_at, NOW + 3600);
    }

    #[test]
    fn token_margin() {
        let cases = [
            (NOW + 300, 30, Some(NOW + 270)),
            (NOW + 31, 30, Some(NOW + 1)),
            (NOW + 30, 30, None),
            (NOW + 10, 30, None),
            (NOW - 10, 30, None),
            (NOW + 60, 0, Some(NOW + 60)),
            (NOW, 0, None),
            (u64::MAX, 30, Some(u64::MAX - 30)),
        ];
        for (token_expires_at, margin, want) in cases {
            let got = CachedToken::from_registry_expiry("t".into(), token_expires_at, NOW, margin)
                .map(|t| t.expires_at);
            assert_eq!(got, want, "{token_expires_at} {margin}");
        }
        let registry_token = crate::registry::RegistryToken {
            token: "t".into(),
            expires_at: NOW + 60,
        };
        let cached =
            CachedToken::from_registry_token(&registry_token, NOW, &CacheTtl::default()).unwrap();
        assert_eq!(cached.expires_at, NOW + 30);
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = CachedToken {
            token: "secret-token".into(),
            expires_at: 1,
        };
        assert!(!format!("{t:?}").contains("secret-token"));
    }
}

//! A typed cache over Spin's key-value store, in the format `bindery_core::cache` fixes.
//!
//! The cache only ever makes a request cheaper, never makes it fail: a store that cannot
//! be opened, a read or write error and a corrupt entry are logged to stderr and treated
//! as a miss (or a skipped write). Keys come from `bindery_core::cache` and
//! `bindery_core::webhook::delivery_key`, so the edge and the worker read each other's
//! entries.
//!
//! Spin's store has no compare-and-swap: every write here is last-writer-wins, and every
//! entry is safe to overwrite with a fresher answer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use bindery_core::Spec;
use bindery_core::cache::{
    CacheTtl, CachedDelivery, CachedRef, CachedStatus, CachedToken, Expiring, ImagePresence,
    LastStatus, Lookup, decode, encode, image_key, status_key, token_key,
};
/// The ref-cache keys are made in the core; here for the components that use them.
pub use bindery_core::cache::{repo_ref_key, spec_ref_key};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bindery_core::cache::EXPIRED_KEPT_SECONDS;

/// The raw store: string keys to bytes. Errors are messages for the log.
pub trait KvBackend {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> Result<(), String>;
}

/// An in-memory store, for tests and as a stand-in off Spin.
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MemoryKv {
    /// Every key currently stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }
}

impl KvBackend for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

impl<T: KvBackend + ?Sized> KvBackend for &T {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        (**self).get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        (**self).set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        (**self).delete(key)
    }
}

#[cfg(target_arch = "wasm32")]
impl KvBackend for spin_sdk::key_value::Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        spin_sdk::key_value::Store::get(self, key).map_err(|e| e.to_string())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        spin_sdk::key_value::Store::set(self, key, value).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        spin_sdk::key_value::Store::delete(self, key).map_err(|e| e.to_string())
    }
}

/// The typed cache. Cheap to create; hold one per request.
pub struct Cache<'a> {
    backend: Option<Box<dyn KvBackend + 'a>>,
}

impl fmt::Debug for Cache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("enabled", &self.backend.is_some())
            .finish()
    }
}

impl<'a> Cache<'a> {
    /// Spin's `default` store; when it cannot be opened, logs why and returns a cache
    /// that misses everything.
    #[cfg(target_arch = "wasm32")]
    pub fn open_default() -> Cache<'static> {
        match spin_sdk::key_value::Store::open_default() {
            Ok(store) => Cache::new(store),
            Err(e) => {
                eprintln!("bindery-edge: key-value store `default` unavailable, caching off: {e}");
                Cache::disabled()
            }
        }
    }

    /// A cache over any backend.
    pub fn new(backend: impl KvBackend + 'a) -> Self {
        Self {
            backend: Some(Box::new(backend)),
        }
    }

    /// A cache that stores nothing and misses everything.
    pub fn disabled() -> Self {
        Self { backend: None }
    }

    /// Reads and decodes the entry under `key`: `None` when absent (or unreadable).
    pub fn get<T: DeserializeOwned + Expiring>(&self, key: &str, now: u64) -> Option<Lookup<T>> {
        let backend = self.backend.as_ref()?;
        let bytes = match backend.get(key) {
            Ok(bytes) => bytes?,
            Err(e) => {
                eprintln!("bindery-edge: cache read of {key} failed, treated as a miss: {e}");
                return None;
            }
        };
        let lookup = decode::<T>(&bytes, now);
        if matches!(lookup, Lookup::Corrupt) {
            eprintln!("bindery-edge: cache entry {key} is corrupt, treated as a miss");
        }
        // Spin's stores (Redis, Valkey, SQLite) never expire anything: an entry read more
        // than EXPIRED_KEPT_SECONDS past its expiry is deleted. The caller still gets it.
        if let Lookup::Expired(entry) = &lookup
            && now.saturating_sub(entry.expires_at()) >= EXPIRED_KEPT_SECONDS
        {
            self.delete(key);
        }
        Some(lookup)
    }

    /// The entry under `key` if it is fresh.
    pub fn get_fresh<T: DeserializeOwned + Expiring>(&self, key: &str, now: u64) -> Option<T> {
        self.get(key, now).and_then(Lookup::fresh)
    }

    /// Stores `entry` under `key`; a failure is logged and ignored.
    pub fn put<T: Serialize>(&self, key: &str, entry: &T) {
        if let Some(backend) = &self.backend
            && let Err(e) = backend.set(key, &encode(entry))
        {
            eprintln!("bindery-edge: cache write of {key} failed, skipped: {e}");
        }
    }

    /// Removes `key`; a failure is logged and ignored.
    pub fn delete(&self, key: &str) {
        if let Some(backend) = &self.backend
            && let Err(e) = backend.delete(key)
        {
            eprintln!("bindery-edge: cache delete of {key} failed, skipped: {e}");
        }
    }

    /// The cached ref of `spec`'s unresolved ref (fresh or expired; corrupt is `None`).
    pub fn cached_ref(&self, spec: &Spec, now: u64) -> Option<Lookup<CachedRef>> {
        self.get::<CachedRef>(&spec_ref_key(spec), now)
            .filter(|l| !matches!(l, Lookup::Corrupt))
    }

    /// The cached presence of `image` (fresh or expired; corrupt is `None`).
    pub fn image_presence(&self, image: &str, now: u64) -> Option<Lookup<ImagePresence>> {
        self.get::<ImagePresence>(&image_key(image), now)
            .filter(|l| !matches!(l, Lookup::Corrupt))
    }

    /// Records that `image` exists (after a build, or a registry check).
    pub fn put_present(&self, image: &str, digest: Option<String>, now: u64, ttl: &CacheTtl) {
        self.put(&image_key(image), &ImagePresence::present(now, ttl, digest));
    }

    /// Records that `image` is missing.
    pub fn put_missing(&self, image: &str, now: u64, ttl: &CacheTtl) {
        self.put(&image_key(image), &ImagePresence::missing(now, ttl));
    }

    /// Drops whatever is known about `image`'s presence.
    pub fn forget_image(&self, image: &str) {
        self.delete(&image_key(image));
    }

    /// The last build status of `image`, if fresh.
    pub fn status(&self, image: &str, now: u64) -> Option<CachedStatus> {
        self.get_fresh::<CachedStatus>(&status_key(image), now)
            .filter(|s| s.image == image)
    }

    /// Records the build status of `image` for the live badge.
    pub fn put_status(&self, image: &str, status: LastStatus, now: u64, ttl: &CacheTtl) {
        self.put(
            &status_key(image),
            &CachedStatus::new(status, image.to_owned(), now, ttl),
        );
    }

    /// A fresh registry token for `repository` of the registry at `registry_url`.
    pub fn token(&self, registry_url: &str, repository: &str, now: u64) -> Option<CachedToken> {
        self.get_fresh(&token_key(registry_url, repository), now)
    }

    /// Stores a registry token.
    pub fn put_token(&self, registry_url: &str, repository: &str, token: &CachedToken) {
        self.put(&token_key(registry_url, repository), token);
    }

    /// Drops a registry token the registry refused.
    pub fn forget_token(&self, registry_url: &str, repository: &str) {
        self.delete(&token_key(registry_url, repository));
    }

    /// True when the delivery under `key` (from `bindery_core::webhook::delivery_key`) was
    /// already handled and is still remembered.
    pub fn delivery_seen(&self, key: &str, now: u64) -> bool {
        self.get_fresh::<CachedDelivery>(key, now).is_some()
    }

    /// Remembers a handled delivery.
    pub fn remember_delivery(&self, key: &str, now: u64, ttl: &CacheTtl) {
        self.put(key, &CachedDelivery::new(now, ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;

    impl KvBackend for Broken {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
            Err("backend down".into())
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), String> {
            Err("backend down".into())
        }
        fn delete(&self, _: &str) -> Result<(), String> {
            Err("backend down".into())
        }
    }

    #[test]
    fn broken_and_disabled_stores_are_misses_not_failures() {
        let ttl = CacheTtl::default();
        for cache in [Cache::new(Broken), Cache::disabled()] {
            cache.put_present("r/i:t", None, 0, &ttl);
            assert_eq!(cache.image_presence("r/i:t", 0), None);
            cache.forget_image("r/i:t");
            assert!(!cache.delivery_seen("k", 0));
        }
    }

    #[test]
    fn corrupt_entries_are_misses() {
        let kv = MemoryKv::default();
        kv.set(&image_key("r/i:t"), b"garbage").unwrap();
        let cache = Cache::new(&kv);
        assert_eq!(cache.image_presence("r/i:t", 0), None);
        cache.put_missing("r/i:t", 100, &CacheTtl::default());
        assert!(matches!(
            cache.image_presence("r/i:t", 100),
            Some(Lookup::Fresh(ImagePresence { present: false, .. }))
        ));
        assert!(matches!(
            cache.image_presence("r/i:t", 110),
            Some(Lookup::Expired(_))
        ));
    }

    #[test]
    fn an_expired_entry_is_deleted_when_read_and_still_returned() {
        let ttl = CacheTtl::default();
        // (read at, whether the entry is left in the store); it expires at 110.
        let kept_until = 110 + EXPIRED_KEPT_SECONDS;
        let cases = [
            (100, true),
            (110, true),
            (kept_until - 1, true),
            (kept_until, false),
            (kept_until + 5000, false),
        ];
        for (now, left) in cases {
            let kv = MemoryKv::default();
            let cache = Cache::new(&kv);
            cache.put_missing("r/i:t", 100, &ttl);
            let lookup = cache.image_presence("r/i:t", now);
            assert!(lookup.is_some(), "read at {now}: the entry is returned");
            assert_eq!(kv.keys().len(), usize::from(left), "read at {now}");
        }
    }

    #[test]
    fn statuses_deliveries_and_tokens_round_trip() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let ttl = CacheTtl::default();
        cache.put_status("r/i:t", LastStatus::Building, 10, &ttl);
        assert_eq!(
            cache.status("r/i:t", 11).map(|s| s.status),
            Some(LastStatus::Building)
        );
        assert_eq!(cache.status("r/i:t", 10 + 3600), None, "expired");
        cache.remember_delivery("v1/hook/github/abc", 10, &ttl);
        assert!(cache.delivery_seen("v1/hook/github/abc", 11));
        assert!(!cache.delivery_seen("v1/hook/github/abd", 11));
        let token = CachedToken::from_registry_expiry("tok".into(), 400, 100, 30).unwrap();
        cache.put_token("http://r", "i", &token);
        assert_eq!(cache.token("http://r", "i", 369), Some(token.clone()));
        assert_eq!(cache.token("http://r", "i", 370), None);
        cache.forget_token("http://r", "i");
        assert_eq!(cache.token("http://r", "i", 100), None);
    }
}

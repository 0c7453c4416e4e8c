//! The edge's metrics: the one API components count through.
//!
//! A component instance serves one request, so a count cannot live in its memory: each
//! call here is an atomic `increment` (a gauge: a `set`) of a series in the key-value
//! store labelled `metrics` (`wasi:keyvalue`, see `bindery_core::metrics` for the keys and
//! the catalog). The store is opened once per instance, on the first call; when it cannot
//! be (a component without the label, a Spin without the store configured) nothing is
//! counted, and that is said once on stderr. Counting never fails a request.
//!
//! Labels come only from fixed sets (the typed calls) or from the operator's
//! configuration (the generic [`increment`] and [`set`], e.g. a federation member's
//! name), never from a request: a million distinct links make no new series. The host
//! counts requests by route and status itself.
//!
//! ```text
//! metrics::cache_lookup(CacheName::Ref, true);
//! metrics::provider_request(ProviderId::GitHub);
//! metrics::github_rate_limit_remaining(4999);
//! metrics::increment(&FEDERATION_REDIRECT_COUNT, &[member, "cookie"]);
//! metrics::set(&FEDERATION_HEALTH, &[member, "versions"], 0);
//! ```
//!
//! Off wasm (the native tests) the series are kept in a thread-local map instead, which
//! [`recorded`] returns.

use bindery_core::ProviderId;
pub use bindery_core::metrics::{
    CACHE_LOOKUPS, FEDERATION_HEALTH, FEDERATION_REDIRECT_COUNT, GITHUB_RATE_LIMIT_REMAINING, Kind,
    Metric, PROVIDER_REQUESTS,
};
use bindery_core::metrics::{encode_value, series_key};

/// Which cache a lookup asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheName {
    /// The ref cache: a spec's resolved ref.
    Ref,
    /// The image presence cache: whether an image is in the registry.
    Image,
}

impl CacheName {
    /// The `cache` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheName::Ref => "ref",
            CacheName::Image => "image",
        }
    }
}

/// A cache lookup that decided whether to ask upstream: `hit` when the store answered.
pub fn cache_lookup(cache: CacheName, hit: bool) {
    increment(
        &CACHE_LOOKUPS,
        &[cache.as_str(), if hit { "hit" } else { "miss" }],
    );
}

/// One request sent to `provider`'s API.
pub fn provider_request(provider: ProviderId) {
    increment(&PROVIDER_REQUESTS, &[provider.display_name()]);
}

/// GitHub's `x-ratelimit-remaining` in its latest answer.
pub fn github_rate_limit_remaining(remaining: i64) {
    set(&GITHUB_RATE_LIMIT_REMAINING, &[], remaining);
}

/// Adds one to a counter's series; `labels` holds one value per label of `metric`, each
/// from a fixed set or the operator's configuration (at most 64 bytes). A metric that is
/// not a counter, or values that do not fit, are reported on stderr and not counted.
pub fn increment(metric: &Metric, labels: &[&str]) {
    if let Some(key) = key_of(metric, labels, Kind::Counter) {
        sink::increment(&key, 1);
    }
}

/// Sets a gauge's series to `value`; `labels` as for [`increment`].
pub fn set(metric: &Metric, labels: &[&str], value: i64) {
    if let Some(key) = key_of(metric, labels, Kind::Gauge) {
        sink::set(&key, &encode_value(value));
    }
}

/// The `/metrics` text: every series in the store under its catalog family. `None` when
/// the store cannot be read (the caller answers 503).
pub fn render() -> Option<String> {
    sink::entries().map(bindery_core::metrics::render)
}

fn key_of(metric: &Metric, labels: &[&str], kind: Kind) -> Option<String> {
    if metric.kind != kind {
        eprintln!(
            "bindery-edge: metric {} is a {}, not a {}: not recorded",
            metric.name,
            metric.kind.as_str(),
            kind.as_str()
        );
        return None;
    }
    match series_key(metric, labels) {
        Ok(key) => Some(key),
        Err(e) => {
            eprintln!("bindery-edge: not recorded: {e}");
            None
        }
    }
}

/// Off wasm: the series this thread recorded, by key, and forgets them.
#[cfg(not(target_arch = "wasm32"))]
pub fn recorded() -> std::collections::BTreeMap<String, i64> {
    sink::take()
}

#[cfg(target_arch = "wasm32")]
mod sink {
    use std::cell::OnceCell;

    use bindery_core::metrics::STORE_LABEL;
    use spin_sdk::wit::wasi::keyvalue::{atomics, store};

    thread_local! {
        /// The store, opened on first use; `None` when it could not be.
        static STORE: OnceCell<Option<store::Bucket>> = const { OnceCell::new() };
    }

    fn with_store<T>(f: impl FnOnce(&store::Bucket) -> T) -> Option<T> {
        STORE.with(|cell| {
            let bucket = cell.get_or_init(|| match store::open(STORE_LABEL) {
                Ok(bucket) => Some(bucket),
                Err(e) => {
                    eprintln!(
                        "bindery-edge: key-value store `{STORE_LABEL}` unavailable, metrics off: {e:?}"
                    );
                    None
                }
            });
            bucket.as_ref().map(f)
        })
    }

    pub(super) fn increment(key: &str, delta: i64) {
        if let Some(Err(e)) = with_store(|bucket| atomics::increment(bucket, key, delta)) {
            eprintln!("bindery-edge: metric {key} not counted: {e:?}");
        }
    }

    pub(super) fn set(key: &str, value: &[u8]) {
        if let Some(Err(e)) = with_store(|bucket| bucket.set(key, value)) {
            eprintln!("bindery-edge: metric {key} not set: {e:?}");
        }
    }

    pub(super) fn entries() -> Option<Vec<(String, Vec<u8>)>> {
        let read = with_store(|bucket| -> Result<_, store::Error> {
            let keys = bucket.list_keys(None)?.keys;
            let mut entries = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(value) = bucket.get(&key)? {
                    entries.push((key, value));
                }
            }
            Ok(entries)
        })?;
        match read {
            Ok(entries) => Some(entries),
            Err(e) => {
                eprintln!("bindery-edge: the metrics store could not be read: {e:?}");
                None
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod sink {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use bindery_core::metrics::{decode_value, encode_value};

    thread_local! {
        static SERIES: RefCell<BTreeMap<String, i64>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(super) fn increment(key: &str, delta: i64) {
        SERIES.with(|s| *s.borrow_mut().entry(key.to_owned()).or_default() += delta);
    }

    pub(super) fn set(key: &str, value: &[u8]) {
        if let Some(value) = decode_value(value) {
            SERIES.with(|s| s.borrow_mut().insert(key.to_owned(), value));
        }
    }

    pub(super) fn entries() -> Option<Vec<(String, Vec<u8>)>> {
        Some(SERIES.with(|s| {
            s.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), encode_value(*v)))
                .collect()
        }))
    }

    pub(super) fn take() -> BTreeMap<String, i64> {
        SERIES.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_calls_record_their_series_and_misfits_record_nothing() {
        recorded();
        cache_lookup(CacheName::Ref, true);
        cache_lookup(CacheName::Ref, true);
        cache_lookup(CacheName::Image, false);
        provider_request(ProviderId::GitHub);
        github_rate_limit_remaining(4999);
        github_rate_limit_remaining(4998);
        increment(&FEDERATION_REDIRECT_COUNT, &["gesis", "cookie"]);
        set(&FEDERATION_HEALTH, &["gesis", "versions"], 0);
        // Not recorded: a gauge incremented, a counter set, a wrong label count, a value
        // too long.
        increment(&GITHUB_RATE_LIMIT_REMAINING, &[]);
        set(&CACHE_LOOKUPS, &["ref", "hit"], 7);
        increment(&FEDERATION_REDIRECT_COUNT, &["gesis"]);
        increment(&FEDERATION_REDIRECT_COUNT, &[&"m".repeat(65), "cookie"]);
        let text = render().unwrap();
        let series = recorded();
        let expected = [
            ("binderhub_github_rate_limit_remaining", 4998),
            (
                "bindery_edge_cache_lookups_total{cache=\"image\",result=\"miss\"}",
                1,
            ),
            (
                "bindery_edge_cache_lookups_total{cache=\"ref\",result=\"hit\"}",
                2,
            ),
            (
                "bindery_edge_provider_requests_total{provider=\"GitHub\"}",
                1,
            ),
            ("federation_health{member=\"gesis\",reason=\"versions\"}", 0),
            (
                "federation_redirect_count{member=\"gesis\",reason=\"cookie\"}",
                1,
            ),
        ];
        assert_eq!(
            series
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            expected
        );
        for (key, value) in expected {
            assert!(text.contains(&format!("{key} {value}\n")), "{text}");
        }
        assert!(recorded().is_empty(), "taken");
    }
}

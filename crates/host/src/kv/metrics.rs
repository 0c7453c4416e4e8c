//! The store labelled `metrics` (`bindery_core::metrics::STORE_LABEL`): the edge's
//! counters and gauges, kept in this process's memory.
//!
//! Component instances live for one request, so they count by asking the host: an
//! `increment` of a key (`wasi:keyvalue/atomics`) is one atomic add on a value every
//! instance shares, never a read and a write that two instances could interleave. A `set`
//! stores a gauge. The host adds the requests it dispatches, by `spin.toml` route and
//! status ([`MetricsStore::count_request`]), under the same kind of keys, so the component
//! that answers `/metrics` reads everything from the store. Values are whole numbers and
//! read back as decimal text; like Prometheus counters, they start at zero with the
//! process. At most [`MAX_SERIES`] keys exist: a key past that is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bindery_core::metrics::{EDGE_REQUESTS, decode_value, encode_value, series_key};

/// The most series the store holds.
pub const MAX_SERIES: usize = 10_000;

/// The `route` label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Why the metrics store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The store is full.
    #[error("the metrics store holds at most {MAX_SERIES} series")]
    Full,
    /// A `set` of something that is not a whole number.
    #[error("the metrics store holds whole numbers (decimal text or 8 big-endian bytes)")]
    NotANumber,
}

type Counts = HashMap<u16, Arc<AtomicI64>>;

/// Counters and gauges of one host, shared by every request.
#[derive(Debug)]
pub struct MetricsStore {
    series: RwLock<HashMap<String, Arc<AtomicI64>>>,
    /// Per route (the router's target, then one slot for no route): status → its counter
    /// in `series`, so that counting a request formats no key once the pair was seen.
    requests: Vec<RwLock<Counts>>,
    full_logged: AtomicBool,
}

impl MetricsStore {
    /// An empty store for a host with `routes` routes.
    pub fn new(routes: usize) -> Self {
        Self {
            series: RwLock::default(),
            requests: (0..=routes).map(|_| RwLock::default()).collect(),
            full_logged: AtomicBool::new(false),
        }
    }

    /// The value under `key`, as decimal text.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        series
            .get(key)
            .map(|value| encode_value(value.load(Ordering::Relaxed)))
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<String> = series.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Adds `delta` to the value under `key` (absent counts as zero) and returns the sum.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, MetricsError> {
        let value = self.value(key)?;
        Ok(value
            .fetch_add(delta, Ordering::Relaxed)
            .wrapping_add(delta))
    }

    /// Sets the value under `key` to the number `bytes` holds.
    pub fn set(&self, key: &str, bytes: &[u8]) -> Result<(), MetricsError> {
        let number = decode_value(bytes).ok_or(MetricsError::NotANumber)?;
        self.value(key)?.store(number, Ordering::Relaxed);
        Ok(())
    }

    /// Sets `key` to `new` if its value is `expected` (`None`: absent); false otherwise.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, MetricsError> {
        let new = decode_value(new).ok_or(MetricsError::NotANumber)?;
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let current = series.get(key).map(|v| v.load(Ordering::Relaxed));
        if current != expected.and_then(decode_value) || (current.is_none() != expected.is_none()) {
            return Ok(false);
        }
        match series.get(key) {
            Some(value) => value.store(new, Ordering::Relaxed),
            None => {
                if series.len() >= MAX_SERIES {
                    return Err(self.full());
                }
                series.insert(key.to_owned(), Arc::new(AtomicI64::new(new)));
            }
        }
        Ok(true)
    }

    /// Removes `key`; a request's counter removed this way starts again from zero.
    pub fn delete(&self, key: &str) {
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if series.remove(key).is_some() {
            // The per-route shortcuts may point at the removed value: they are rebuilt.
            for counts in &self.requests {
                counts
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            }
        }
    }

    /// Counts one answered request: `route` is the matched route's target and pattern
    /// (`None`: no route matched), `status` the answer's status.
    pub fn count_request(&self, route: Option<(usize, &str)>, status: u16) {
        let slot = route.map_or(self.requests.len() - 1, |(target, _)| {
            target.min(self.requests.len() - 1)
        });
        let counts = &self.requests[slot];
        let known = counts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&status)
            .cloned();
        let counter = match known {
            Some(counter) => counter,
            None => {
                let pattern = route.map_or(UNMATCHED_ROUTE, |(_, pattern)| pattern);
                let status_text = status.to_string();
                let Ok(key) = series_key(&EDGE_REQUESTS, &[pattern, &status_text]) else {
                    tracing::warn!(route = pattern, "route pattern unfit for a metrics label");
                    return;
                };
                let Ok(counter) = self.value(&key) else {
                    return;
                };
                counts
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(status, Arc::clone(&counter));
                counter
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The shared value under `key`, made when absent (unless the store is full).
    fn value(&self, key: &str) -> Result<Arc<AtomicI64>, MetricsError> {
        if let Some(value) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Ok(Arc::clone(value));
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = series.get(key) {
            return Ok(Arc::clone(value));
        }
        if series.len() >= MAX_SERIES {
            return Err(self.full());
        }
        let value = Arc::new(AtomicI64::new(0));
        series.insert(key.to_owned(), Arc::clone(&value));
        Ok(value)
    }

    fn full(&self) -> MetricsError {
        if !self.full_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max = MAX_SERIES,
                "the metrics store is full: new series are refused"
            );
        }
        MetricsError::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_from_many_threads_are_all_counted() {
        let store = Arc::new(MetricsStore::new(2));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        store.increment("c", 1).unwrap();
                        store.count_request(Some((1, "/badge.svg")), 200);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.get("c"), Some(b"8000".to_vec()));
        assert_eq!(
            store.get("bindery_edge_requests_total{route=\"/badge.svg\",status=\"200\"}"),
            Some(b"8000".to_vec())
        );
    }

    #[test]
    fn gauges_hold_numbers_only() {
        let store = MetricsStore::new(0);
        store.set("g", b"4999").unwrap();
        store.set("g", &12i64.to_be_bytes()).unwrap();
        assert_eq!(store.get("g"), Some(b"12".to_vec()));
        assert_eq!(store.set("g", b"many"), Err(MetricsError::NotANumber));
        assert_eq!(store.increment("g", -2), Ok(10));
    }

    #[test]
    fn unmatched_requests_share_one_series_per_status() {
        let store = MetricsStore::new(1);
        for _ in 0..3 {
            store.count_request(None, 404);
        }
        store.count_request(Some((0, "/")), 200);
        assert_eq!(
            store.keys(),
            [
                "bindery_edge_requests_total{route=\"/\",status=\"200\"}",
                "bindery_edge_requests_total{route=\"unmatched\",status=\"404\"}",
            ]
        );
    }

    #[test]
    fn the_store_refuses_series_past_its_bound() {
        let store = MetricsStore::new(0);
        for n in 0..MAX_SERIES {
            store.increment(&format!("k{n}"), 1).unwrap();
        }
        assert_eq!(store.increment("one more", 1), Err(MetricsError::Full));
        assert_eq!(
            store.increment("k0", 1),
            Ok(2),
            "existing series still count"
        );
        store.delete("k0");
        assert_eq!(store.increment("one more", 1), Ok(1));
    }

    #[test]
    fn compare_and_swap_sets_only_over_the_expected_value() {
        let store = MetricsStore::new(0);
        assert_eq!(store.compare_and_swap("k", None, b"1"), Ok(true));
        assert_eq!(store.compare_and_swap("k", None, b"2"), Ok(false));
        assert_eq!(store.compare_and_swap("k", Some(b"2"), b"3"), Ok(false));
        assert_eq!(store.compare_and_swap("k", Some(b"1"), b"3"), Ok(true));
        assert_eq!(store.get("k"), Some(b"3".to_vec()));
    }
}

//! BinderHub's per-client rate limit: a fixed window per key.
//!
//! The first request of a window sets `reset = now + period`; every request decrements
//! `remaining`, which keeps going below zero so that abuse stays measurable; a request at
//! or after `reset` opens a new window. The step itself is [`count_request`], a pure
//! function over a [`RateWindow`]; [`RateLimiter`] keeps the windows in memory for a
//! long-running process (the worker counts `/build` for every edge host, because Spin's
//! key-value interface has no atomic increment), with a bound on the number of keys.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One key's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    /// Requests left in the window; negative once exceeded.
    pub remaining: i64,
    /// When the window ends, in unix seconds.
    pub reset: u64,
}

impl crate::cache::Expiring for RateWindow {
    fn expires_at(&self) -> u64 {
        self.reset
    }
}

/// The state after counting a request, for the `x-ratelimit-*` headers and the decision;
/// the worker's answer to an admission (`worker_api::AdmissionRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitState {
    /// Requests left in the window (`x-ratelimit-remaining`); negative once exceeded.
    pub remaining: i64,
    /// When the window ends, in unix seconds (`x-ratelimit-reset`).
    pub reset: u64,
    /// The limit per window (`x-ratelimit-limit`); 0 when limiting is disabled.
    pub limit: u32,
    /// True when this request is over the limit (answer 429).
    pub exceeded: bool,
}

impl RateLimitState {
    /// Seconds until the window resets, as of `now`.
    pub fn retry_after(&self, now: u64) -> u64 {
        self.reset.saturating_sub(now)
    }
}

/// Counts one request against `previous` (the key's stored window, if any) and returns
/// the window to store and the resulting state. A `limit` of 0 disables limiting: the
/// state is never exceeded (and the window need not be stored).
pub fn count_request(
    previous: Option<RateWindow>,
    limit: u32,
    period_seconds: u64,
    now: u64,
) -> (RateWindow, RateLimitState) {
    let window = match previous {
        Some(w) if now < w.reset => RateWindow {
            remaining: w.remaining.saturating_sub(1),
            reset: w.reset,
        },
        _ => RateWindow {
            remaining: i64::from(limit) - 1,
            reset: now.saturating_add(period_seconds),
        },
    };
    let state = RateLimitState {
        remaining: window.remaining,
        reset: window.reset,
        limit,
        exceeded: limit > 0 && window.remaining < 0,
    };
    (window, state)
}

/// BinderHub's message for a refused request.
pub fn rate_limit_message(retry_after_seconds: u64) -> String {
    format!("Rate limit exceeded. Try again in {retry_after_seconds} seconds.")
}

/// BinderHub's interval between sweeps of ended windows (`clean_seconds`).
pub const SWEEP_SECONDS: u64 = 600;

/// In-memory fixed-window rate limiter keyed by client (usually the IP address).
///
/// Ended windows are dropped every [`SWEEP_SECONDS`] (and by [`RateLimiter::sweep`]); a
/// new key beyond `max_keys` first sweeps, then takes the place of the window that ends
/// first, so that many distinct clients cannot grow the map without bound. An evicted
/// client starts a fresh window: with the bound far above the number of real clients, only
/// a flood from more addresses than that can cause it, and then it costs memory, not
/// correctness for anyone else.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Requests allowed per window; 0 disables limiting.
    pub limit: u32,
    /// Window length in seconds.
    pub period_seconds: u64,
    /// The most keys kept.
    pub max_keys: usize,
    next_sweep: u64,
    windows: HashMap<String, RateWindow>,
}

impl RateLimiter {
    /// The default bound on keys: a window is a few dozen bytes, so this is a few MB.
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    /// A limiter allowing `limit` requests per `period_seconds` per key (BinderHub's default:
    /// 10 per 3600 s), keeping at most [`Self::DEFAULT_MAX_KEYS`] keys.
    pub fn new(limit: u32, period_seconds: u64) -> Self {
        Self::with_max_keys(limit, period_seconds, Self::DEFAULT_MAX_KEYS)
    }

    /// A limiter keeping at most `max_keys` keys (at least one).
    pub fn with_max_keys(limit: u32, period_seconds: u64, max_keys: usize) -> Self {
        Self {
            limit,
            period_seconds,
            max_keys: max_keys.max(1),
            next_sweep: 0,
            windows: HashMap::new(),
        }
    }

    /// Counts one request for `key` at `now` against the limiter's own limit and period.
    pub fn increment(&mut self, key: &str, now: u64) -> RateLimitState {
        self.count(key, self.limit, self.period_seconds, now)
    }

    /// Counts one request for `key` at `now` against `limit` per `period_seconds`, for a
    /// caller that carries its own settings (each edge sends its configured ones).
    pub fn count(
        &mut self,
        key: &str,
        limit: u32,
        period_seconds: u64,
        now: u64,
    ) -> RateLimitState {
        if limit == 0 {
            return RateLimitState {
                remaining: 0,
                reset: now,
                limit: 0,
                exceeded: false,
            };
        }
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now.saturating_add(SWEEP_SECONDS);
        }
        let previous = self.windows.get(key).copied();
        let (window, state) = count_request(previous, limit, period_seconds, now);
        match self.windows.get_mut(key) {
            Some(stored) => *stored = window,
            None => {
                self.make_room(now);
                self.windows.insert(key.to_owned(), window);
            }
        }
        state
    }

    /// Frees a place for one more key: ended windows first, else the one that ends first.
    fn make_room(&mut self, now: u64) {
        if self.windows.len() < self.max_keys {
            return;
        }
        self.sweep(now);
        if self.windows.len() < self.max_keys {
            return;
        }
        let first = self
            .windows
            .iter()
            .min_by_key(|(_, w)| w.reset)
            .map(|(k, _)| k.clone());
        if let Some(key) = first {
            self.windows.remove(&key);
        }
    }

    /// Drops every window that has ended by `now`.
    pub fn sweep(&mut self, now: u64) {
        self.windows.retain(|_, w| w.reset > now);
    }

    /// Number of keys with a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no key has a window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn counts_down_and_keeps_counting_below_zero() {
        let mut limiter = RateLimiter::new(10, 60);
        let first = limiter.increment("1.2.3.4", NOW);
        assert_eq!(
            first,
            RateLimitState {
                remaining: 9,
                reset: NOW + 60,
                limit: 10,
                exceeded: false
            }
        );
        for expected in (0..9).rev() {
            let state = limiter.increment("1.2.3.4", NOW);
            assert_eq!((state.remaining, state.exceeded), (expected, false));
        }
        let mut last = first;
        for expected in (-5..=-1_i64).rev() {
            last = limiter.increment("1.2.3.4", NOW);
            assert_eq!((last.remaining, last.exceeded), (expected, true));
        }
        assert_eq!(last.remaining, -5);
        assert_eq!(last.reset, NOW + 60);
    }

    #[test]
    fn windows_are_fixed_not_sliding() {
        let mut limiter = RateLimiter::new(10, 60);
        for _ in 0..5 {
            limiter.increment("k", NOW);
        }
        assert_eq!(limiter.increment("k", NOW + 59).remaining, 4);
        let state = limiter.increment("k", NOW + 65);
        assert_eq!((state.remaining, state.reset), (9, NOW + 65 + 60));
        let mut l = RateLimiter::new(1, 60);
        l.increment("k", NOW);
        assert_eq!(
            l.increment("k", NOW + 60).remaining,
            0,
            "a request at reset opens a new window"
        );
    }

    #[test]
    fn keys_are_independent() {
        let mut limiter = RateLimiter::new(1, 60);
        assert!(!limiter.increment("a", NOW).exceeded);
        assert!(limiter.increment("a", NOW).exceeded);
        assert!(!limiter.increment("b", NOW).exceeded);
    }

    #[test]
    fn limit_zero_disables() {
        let mut limiter = RateLimiter::new(0, 60);
        for _ in 0..100 {
            assert!(!limiter.increment("k", NOW).exceeded);
        }
        assert!(limiter.is_empty());
        let (_, state) = count_request(None, 0, 60, NOW);
        assert!(!state.exceeded);
    }

    #[test]
    fn sweep_drops_expired_windows() {
        let mut limiter = RateLimiter::new(10, 60);
        limiter.increment("old", NOW);
        limiter.increment("new", NOW + 30);
        limiter.sweep(NOW + 59);
        assert_eq!(limiter.len(), 2);
        limiter.sweep(NOW + 60);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.increment("new", NOW + 60).remaining, 8);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let (w, s) = count_request(None, u32::MAX, u64::MAX, u64::MAX - 1);
        assert_eq!(w.reset, u64::MAX);
        assert!(!s.exceeded);
        let (w, s) = count_request(
            Some(RateWindow {
                remaining: i64::MIN,
                reset: u64::MAX,
            }),
            1,
            60,
            0,
        );
        assert_eq!(w.remaining, i64::MIN);
        assert!(s.exceeded);
        let mut zero_period = RateLimiter::new(1, 0);
        assert!(!zero_period.increment("k", NOW).exceeded);
        assert!(!zero_period.increment("k", NOW).exceeded);
    }

    #[test]
    fn keys_are_bounded_by_sweeping_then_evicting_the_first_to_end() {
        let mut limiter = RateLimiter::with_max_keys(2, 60, 3);
        limiter.increment("a", NOW);
        limiter.increment("b", NOW + 1);
        limiter.increment("c", NOW + 2);
        // Full, nothing ended: "a" ends first and makes room.
        limiter.increment("d", NOW + 3);
        assert_eq!(limiter.len(), 3);
        assert_eq!(
            limiter.increment("a", NOW + 3).remaining,
            1,
            "a starts afresh"
        );
        // "b" was evicted for "a"; "c" and "d" keep their counts.
        assert_eq!(limiter.increment("c", NOW + 3).remaining, 0);
        // Past every window, a sweep empties the map before the next key.
        limiter.increment("e", NOW + 1000);
        assert_eq!(limiter.len(), 1);
        for i in 0..10_000 {
            limiter.increment(&format!("flood-{i}"), NOW + 2000);
        }
        assert_eq!(limiter.len(), 3);
    }

    #[test]
    fn count_takes_the_callers_settings() {
        let mut limiter = RateLimiter::new(0, 0);
        assert_eq!(limiter.count("k", 2, 60, NOW).remaining, 1);
        assert!(limiter.count("k", 2, 60, NOW).remaining == 0);
        assert!(limiter.count("k", 2, 60, NOW).exceeded);
        assert!(!limiter.count("k", 0, 60, NOW).exceeded, "0 disables");
    }

    #[test]
    fn message_and_retry_after() {
        let (_, state) = count_request(None, 10, 3600, NOW);
        assert_eq!(state.retry_after(NOW + 600), 3000);
        assert_eq!(state.retry_after(NOW + 9999), 0);
        assert_eq!(
            rate_limit_message(3000),
            "Rate limit exceeded. Try again in 3000 seconds."
        );
    }
}

//! BinderHub's per-client rate limit: a fixed window per key.
//!
//! The first request of a window sets `reset = now + period`; every request decrements
//! `remaining`, which keeps going below zero so that abuse stays measurable; a request at
//! or after `reset` opens a new window. The step itself is [`count_request`], a pure
//! function over a [`RateWindow`], so the edge can keep windows in the key-value store
//! while [`RateLimiter`] keeps them in memory for a long-running process.

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

/// The state after counting a request, for the `x-ratelimit-*` headers and the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// In-memory fixed-window rate limiter keyed by client (usually the IP address).
///
/// Keys live until [`RateLimiter::sweep`] drops expired windows; call it periodically
/// (BinderHub: every 600 s) so that many distinct clients do not grow the map unbounded.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Requests allowed per window; 0 disables limiting.
    pub limit: u32,
    /// Window length in seconds.
    pub period_seconds: u64,
    windows: HashMap<String, RateWindow>,
}

impl RateLimiter {
    /// A limiter allowing `limit` requests per `period_seconds` per key (BinderHub's default:
    /// 10 per 3600 s).
    pub fn new(limit: u32, period_seconds: u64) -> Self {
        Self {
            limit,
            period_seconds,
            windows: HashMap::new(),
        }
    }

    /// Counts one request for `key` at `now`.
    pub fn increment(&mut self, key: &str, now: u64) -> RateLimitState {
        if self.limit == 0 {
            return RateLimitState {
                remaining: 0,
                reset: now,
                limit: 0,
                exceeded: false,
            };
        }
        let previous = self.windows.get(key).copied();
        let (window, state) = count_request(previous, self.limit, self.period_seconds, now);
        match self.windows.get_mut(key) {
            Some(stored) => *stored = window,
            None => {
                self.windows.insert(key.to_owned(), window);
            }
        }
        state
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

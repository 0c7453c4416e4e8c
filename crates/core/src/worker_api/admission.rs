//! `POST /api/v1/admissions`: count one `/build` of a client against the rate limit.
//!
//! Spin's key-value interface has no atomic increment, so two edge instances reading and
//! writing a counter would both admit the same "last" request; the worker, one process
//! with a lock, counts for every edge host of a deployment. The edge sends its configured
//! limit and period with each call (the worker has no settings of its own for them) and
//! gets the [`RateLimitState`](crate::policy::RateLimitState) back, which carries the
//! `x-ratelimit-*` values and the decision.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The path of the admission API.
pub const ADMISSIONS_PATH: &str = "/api/v1/admissions";

/// The longest client key accepted: an IPv6 address is at most 45 characters.
pub const MAX_CLIENT_LEN: usize = 64;

/// The longest window accepted, in seconds (a week): longer ones keep keys for no use.
pub const MAX_PERIOD_SECONDS: u64 = 7 * 24 * 3600;

/// The client key of a request whose address is unknown: such requests share one window.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The body of `POST /api/v1/admissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionRequest {
    /// The client's address (or [`UNKNOWN_CLIENT`]).
    pub client: String,
    /// Requests allowed per window (`build_rate_limit`, at least 1).
    pub limit: u32,
    /// The window, in seconds (`build_rate_period_seconds`).
    pub period_seconds: u64,
}

/// Why an admission request is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdmissionError {
    /// The client key is empty, too long, or not printable ASCII.
    #[error("the client must be 1 to {MAX_CLIENT_LEN} printable ascii characters")]
    Client,
    /// The limit is 0 (a disabled limit is not sent) or the period is out of range.
    #[error("the limit must be at least 1 and the period 1 to {MAX_PERIOD_SECONDS} seconds")]
    Range,
}

impl AdmissionRequest {
    /// The request counting one `/build` of `client` (its address, if known).
    pub fn new(client: Option<std::net::IpAddr>, limit: u32, period_seconds: u64) -> Self {
        Self {
            client: client.map_or_else(|| UNKNOWN_CLIENT.to_owned(), |ip| ip.to_string()),
            limit,
            period_seconds,
        }
    }

    /// Checks the request's ranges, so a confused edge cannot make the worker keep huge
    /// keys or windows.
    pub fn validate(&self) -> Result<(), AdmissionError> {
        let client_ok = !self.client.is_empty()
            && self.client.len() <= MAX_CLIENT_LEN
            && self.client.bytes().all(|b| b.is_ascii_graphic());
        if !client_ok {
            return Err(AdmissionError::Client);
        }
        if self.limit == 0 || self.period_seconds == 0 || self.period_seconds > MAX_PERIOD_SECONDS {
            return Err(AdmissionError::Range);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_requests_are_checked() {
        let ok = AdmissionRequest::new("10.0.0.1".parse().ok(), 10, 3600);
        assert_eq!(ok.client, "10.0.0.1");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(AdmissionRequest::new(None, 1, 1).client, UNKNOWN_CLIENT);
        let cases = [
            ("", 10, 3600, Err(AdmissionError::Client)),
            ("a b", 10, 3600, Err(AdmissionError::Client)),
            (&*"x".repeat(65), 10, 3600, Err(AdmissionError::Client)),
            ("::1", 0, 3600, Err(AdmissionError::Range)),
            ("::1", 1, 0, Err(AdmissionError::Range)),
            ("::1", 1, MAX_PERIOD_SECONDS + 1, Err(AdmissionError::Range)),
            ("::1", u32::MAX, MAX_PERIOD_SECONDS, Ok(())),
        ];
        for (client, limit, period_seconds, expected) in cases {
            let request = AdmissionRequest {
                client: client.into(),
                limit,
                period_seconds,
            };
            assert_eq!(
                request.validate(),
                expected,
                "{client} {limit} {period_seconds}"
            );
        }
    }
}

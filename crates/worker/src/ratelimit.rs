//! `POST /api/v1/admissions`: BinderHub's per-client limit on `/build`, counted here for
//! every edge host of a deployment.
//!
//! Spin's key-value interface has no atomic increment, so edge instances cannot count
//! exactly under concurrent requests; the worker is one process and counts under a lock,
//! with the arithmetic of `bindery_core::policy::RateLimiter` (fixed windows, counts kept
//! below zero, ended windows swept, the number of clients bounded). The edge calls this
//! before any provider, registry or launch call and skips it for a valid build token.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bindery_core::policy::{RateLimitState, RateLimiter};
use bindery_core::worker_api::{AdmissionError, AdmissionRequest};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api::{Body, error, json_response, read_json};
use crate::server::AppState;

/// The per-client windows of `/build` requests.
#[derive(Debug)]
pub struct Admissions {
    limiter: Mutex<RateLimiter>,
}

impl Default for Admissions {
    fn default() -> Self {
        Self::with_max_clients(RateLimiter::DEFAULT_MAX_KEYS)
    }
}

impl Admissions {
    /// Windows for at most `max_clients` clients at once.
    pub fn with_max_clients(max_clients: usize) -> Self {
        // The limit and period come with each request; the limiter's own are unused.
        Self {
            limiter: Mutex::new(RateLimiter::with_max_keys(0, 0, max_clients)),
        }
    }

    /// Counts one request of `request.client` at `now` (unix seconds).
    pub fn admit(
        &self,
        request: &AdmissionRequest,
        now: u64,
    ) -> Result<RateLimitState, AdmissionError> {
        request.validate()?;
        // A panic while counting cannot leave the map half-written; keep counting.
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        Ok(limiter.count(&request.client, request.limit, request.period_seconds, now))
    }

    /// How many clients have a window.
    pub fn clients(&self) -> usize {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The route: `200` with the [`RateLimitState`] (exceeded or not), `400` for a request out
/// of range.
pub async fn post_admission(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let request: AdmissionRequest = match read_json(req, "admission request").await {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state.admissions.admit(&request, now()) {
        Ok(answer) => json_response(
            StatusCode::OK,
            &serde_json::to_value(answer).unwrap_or_default(),
        ),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &format!("invalid admission request: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn request(client: &str, limit: u32) -> AdmissionRequest {
        AdmissionRequest {
            client: client.into(),
            limit,
            period_seconds: 3600,
        }
    }

    #[test]
    fn fifty_concurrent_requests_of_one_client_admit_exactly_the_limit() {
        let admissions = Arc::new(Admissions::default());
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let admissions = Arc::clone(&admissions);
                std::thread::spawn(move || admissions.admit(&request("10.0.0.1", 10), NOW))
            })
            .collect();
        let answers: Vec<RateLimitState> = threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter_map(Result::ok)
            .collect();
        assert_eq!(answers.len(), 50);
        assert_eq!(answers.iter().filter(|a| !a.exceeded).count(), 10);
        let mut remaining: Vec<i64> = answers.iter().map(|a| a.remaining).collect();
        remaining.sort_unstable();
        assert_eq!(
            remaining,
            (-40..10).collect::<Vec<_>>(),
            "every count is seen once"
        );
        assert!(
            answers
                .iter()
                .all(|a| a.limit == 10 && a.reset == NOW + 3600)
        );
    }

    #[test]
    fn sequential_requests_refuse_past_the_limit_until_the_window_ends() {
        let admissions = Admissions::default();
        let cases = [
            (NOW, "a", false, 1),
            (NOW + 1, "a", false, 0),
            (NOW + 2, "a", true, -1),
            (NOW + 2, "b", false, 1),
            (NOW + 3599, "a", true, -2),
            (NOW + 3600, "a", false, 1),
        ];
        for (now, client, exceeded, remaining) in cases {
            let answer = admissions.admit(&request(client, 2), now);
            assert_eq!(
                answer.map(|a| (a.exceeded, a.remaining)),
                Ok((exceeded, remaining)),
                "{client} at {now}"
            );
        }
    }

    #[test]
    fn clients_are_bounded_and_bad_requests_refused() {
        let admissions = Admissions::with_max_clients(100);
        for i in 0..10_000 {
            let _ = admissions.admit(&request(&format!("10.0.{}.{}", i / 256, i % 256), 1), NOW);
        }
        assert_eq!(admissions.clients(), 100);
        assert_eq!(
            admissions.admit(&request("", 1), NOW),
            Err(AdmissionError::Client)
        );
        assert_eq!(
            admissions.admit(&request("x", 0), NOW),
            Err(AdmissionError::Range)
        );
    }
}

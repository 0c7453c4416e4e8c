//! Calls to the worker's internal API (`bindery_core::worker_api`), with its bearer token.
//!
//! The request builders are plain functions so a caller can also send them with
//! [`crate::fetch::StreamingFetch`] (the event stream); [`request_build`] and
//! [`request_launch`] send and read the `202 Accepted` answer, [`request_admission`] counts
//! a `/build` against the per-client rate limit, [`request_image`] asks whether an image
//! exists (for an edge without a registry).

use bindery_core::policy::RateLimitState;
use bindery_core::validate::shown;
use bindery_core::worker_api::{
    ADMISSIONS_PATH, Accepted, AdmissionRequest, BUILDS_PATH, BuildRequest, IMAGES_PATH,
    ImageAnswer, LAUNCHES_PATH, LaunchRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::config::Worker;
use crate::fetch::{Fetch, FetchError};

/// Why a worker call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WorkerError {
    /// The request could not be built (a bad URL or token).
    #[error("failed to build the worker request: {0}")]
    Request(String),
    /// The worker could not be reached.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The worker answered with an error status.
    #[error("the worker answered http {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// The start of its answer, escaped.
        message: String,
    },
    /// The worker's answer did not parse.
    #[error("failed to read the worker's answer: {0}")]
    Answer(String),
}

/// `POST <worker>/<path>` with a JSON body and the bearer token.
pub fn post_json(
    worker: Worker<'_>,
    path: &str,
    body: &impl Serialize,
) -> Result<http::Request<Vec<u8>>, WorkerError> {
    let body = serde_json::to_vec(body).map_err(|e| WorkerError::Request(e.to_string()))?;
    request(worker, http::Method::POST, path, body).map(|mut r| {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    })
}

/// `GET <worker>/<path>` with the bearer token; `path` may carry a query.
pub fn get(worker: Worker<'_>, path: &str) -> Result<http::Request<Vec<u8>>, WorkerError> {
    request(worker, http::Method::GET, path, Vec::new())
}

/// `GET` of an event stream (`events_url` from [`Accepted`], relative to the worker),
/// resuming after `last_event_id` when given.
pub fn events_request(
    worker: Worker<'_>,
    events_url: &str,
    last_event_id: Option<&str>,
) -> Result<http::Request<Vec<u8>>, WorkerError> {
    let mut request = get(worker, events_url)?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("text/event-stream"),
    );
    if let Some(id) = last_event_id {
        let value = http::HeaderValue::from_str(id)
            .map_err(|_| WorkerError::Request("the last event id is not a header value".into()))?;
        request.headers_mut().insert("last-event-id", value);
    }
    Ok(request)
}

/// `GET <worker>/api/v1/builds?image=<image>`: the build of an image, if any.
pub fn build_info_request(
    worker: Worker<'_>,
    image: &str,
) -> Result<http::Request<Vec<u8>>, WorkerError> {
    get(
        worker,
        &format!(
            "{BUILDS_PATH}?image={}",
            bindery_core::resolve::encode_all(image)
        ),
    )
}

/// Asks the worker whether `image` exists where its builds put it (`GET /api/v1/images`):
/// what an edge with `use_registry = false` asks instead of a registry.
pub async fn request_image(
    worker: Worker<'_>,
    image: &str,
    fetch: &impl Fetch,
) -> Result<ImageAnswer, WorkerError> {
    let path = format!(
        "{IMAGES_PATH}?image={}",
        bindery_core::resolve::encode_all(image)
    );
    answer(fetch.send(get(worker, &path)?).await?)
}

/// Asks the worker for a build without a launch (a prebuild); idempotent per image.
pub async fn request_build(
    worker: Worker<'_>,
    build: &BuildRequest,
    fetch: &impl Fetch,
) -> Result<Accepted, WorkerError> {
    accepted(fetch.send(post_json(worker, BUILDS_PATH, build)?).await?)
}

/// Asks the worker for a launch (building first when needed).
pub async fn request_launch(
    worker: Worker<'_>,
    launch: &LaunchRequest,
    fetch: &impl Fetch,
) -> Result<Accepted, WorkerError> {
    accepted(
        fetch
            .send(post_json(worker, LAUNCHES_PATH, launch)?)
            .await?,
    )
}

/// Counts one `/build` of a client against the rate limit (`POST /api/v1/admissions`);
/// the answer says whether it is admitted and carries the `x-ratelimit-*` values.
pub async fn request_admission(
    worker: Worker<'_>,
    admission: &AdmissionRequest,
    fetch: &impl Fetch,
) -> Result<RateLimitState, WorkerError> {
    answer(
        fetch
            .send(post_json(worker, ADMISSIONS_PATH, admission)?)
            .await?,
    )
}

fn request(
    worker: Worker<'_>,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>, WorkerError> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let mut token = http::HeaderValue::from_str(&format!("Bearer {}", worker.token.expose()))
        .map_err(|_| {
            WorkerError::Request("worker_token holds characters not allowed in a header".into())
        })?;
    token.set_sensitive(true);
    http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", worker.url))
        .header(http::header::AUTHORIZATION, token)
        .header(http::header::USER_AGENT, bindery_core::resolve::USER_AGENT)
        .body(body)
        .map_err(|_| WorkerError::Request(format!("invalid worker URL {}", shown(worker.url))))
}

fn accepted(response: http::Response<Vec<u8>>) -> Result<Accepted, WorkerError> {
    answer(response)
}

/// The JSON of a successful answer, or the worker's error.
fn answer<T: DeserializeOwned>(response: http::Response<Vec<u8>>) -> Result<T, WorkerError> {
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(response.body());
        return Err(WorkerError::Status {
            status,
            message: shown(text.chars().take(200).collect::<String>().trim()),
        });
    }
    serde_json::from_slice(response.body()).map_err(|e| WorkerError::Answer(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::testing::{ScriptedFetch, block_on, response};

    fn build() -> BuildRequest {
        BuildRequest {
            provider: "gh".into(),
            spec: "o/r/main".into(),
            repo_url: "https://github.com/o/r".into(),
            resolved_ref: "a".repeat(40),
            image: "r/i:t".into(),
            build_slug: "o-r".into(),
        }
    }

    #[test]
    fn builds_are_posted_with_the_token() {
        let token = Secret::new("tok");
        let worker = Worker {
            url: "http://127.0.0.1:8585",
            token: &token,
        };
        let fetch = ScriptedFetch::new();
        fetch.on(
            "POST",
            "http://127.0.0.1:8585/api/v1/builds",
            response(
                202,
                &[],
                r#"{"id":"b1","events_url":"/api/v1/builds/b1/events"}"#,
            ),
        );
        let accepted = block_on(request_build(worker, &build(), &fetch)).unwrap();
        assert_eq!(accepted.id, "b1");
        let requests = fetch.requests();
        assert_eq!(requests[0].headers()["authorization"], "Bearer tok");
        assert!(requests[0].headers()["authorization"].is_sensitive());
        assert_eq!(requests[0].headers()["content-type"], "application/json");
        let sent: BuildRequest = serde_json::from_slice(requests[0].body()).unwrap();
        assert_eq!(sent, build());
    }

    #[test]
    fn worker_errors_carry_the_status() {
        let token = Secret::new("tok");
        let worker = Worker {
            url: "http://127.0.0.1:8585",
            token: &token,
        };
        let fetch = ScriptedFetch::new();
        fetch.on(
            "POST",
            "http://127.0.0.1:8585/",
            response(401, &[], "bad token\n"),
        );
        let err = block_on(request_build(worker, &build(), &fetch)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the worker answered http 401: \"bad token\""
        );
        let req = events_request(worker, "/api/v1/builds/b1/events", Some("7")).unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:8585/api/v1/builds/b1/events");
        assert_eq!(req.headers()["last-event-id"], "7");
        let req = build_info_request(worker, "127.0.0.1:5000/x:y").unwrap();
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:8585/api/v1/builds?image=127.0.0.1%3A5000%2Fx%3Ay"
        );
    }
}

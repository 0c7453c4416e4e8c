//! The worker's HTTP API (DESIGN.md, "The worker API").
//!
//! Every route but `/health`, `/versions` and `/metrics` needs `Authorization: Bearer <token>`, compared
//! in constant time. Request bodies are read with a size limit, parsed strictly and then
//! validated with `bindery-core` — spec, resolved ref, URLs, launch path, client address,
//! and the image name, which must be the one this worker's prefix gives — so a confused or
//! compromised edge cannot make the worker launch or build anything else.

mod stream;

use std::convert::Infallible;
use std::sync::Arc;

use bindery_core::validate;
use bindery_core::worker_api::{
    Accepted, BUILDS_PATH, BuildRequest, LAUNCHES_PATH, LaunchRequest, VERSIONS_PATH,
    WorkerVersions,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::WorkerConfig;
use crate::executor::BuildSpec;
use crate::health;
use crate::ids;
use crate::ratelimit;
use crate::server::AppState;

/// The body of every answer.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The largest request body accepted.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Routes one request.
pub async fn handle(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/health") => {
            return health(state, method == Method::HEAD).await;
        }
        (&Method::GET, VERSIONS_PATH) => {
            let builder_info = state.builds.executor().builder_info().await;
            return json_response(StatusCode::OK, &json!(WorkerVersions { builder_info }));
        }
        (&Method::GET, "/metrics") => {
            state
                .metrics
                .set_build_queue_length(state.builds.queue_length());
            return text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                state.metrics.render(),
            );
        }
        _ => {}
    }
    if !authorized(&req, &state.config) {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["api", "v1", "launches"]) => post_launch(state, req).await,
        (&Method::POST, ["api", "v1", "builds"]) => post_build(state, req).await,
        (&Method::POST, ["api", "v1", "admissions"]) => ratelimit::post_admission(state, req).await,
        (&Method::GET, ["api", "v1", "builds"]) => build_info(state, &req),
        (&Method::GET, ["api", "v1", "images"]) => crate::images::get_image(state, &req).await,
        (&Method::GET, ["api", "v1", "launches", id, "events"]) => {
            let log = ids::is_valid_id(id)
                .then(|| state.launches.get(id))
                .flatten();
            stream::events(state, &req, log, "launch")
        }
        (&Method::GET, ["api", "v1", "builds", id, "events"]) => {
            let log = ids::is_valid_id(id).then(|| state.builds.log(id)).flatten();
            stream::events(state, &req, log, "build")
        }
        (&Method::GET, ["api", "v1", "builds", id, "log"]) => {
            match ids::is_valid_id(id)
                .then(|| state.builds.log_text(id))
                .flatten()
            {
                Some(log) => text(StatusCode::OK, "text/plain; charset=utf-8", log),
                None => error(StatusCode::NOT_FOUND, "no such build"),
            }
        }
        (_, ["api", "v1", "launches" | "builds" | "images", ..]) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn authorized(req: &Request<Incoming>, config: &WorkerConfig) -> bool {
    let Some(presented) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let expected = config.token.expose().as_bytes();
    !expected.is_empty() && bool::from(presented.trim().as_bytes().ct_eq(expected))
}

pub(crate) async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    what: &str,
) -> Result<T, Response<Body>> {
    let bytes = match Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("{what} is larger than {MAX_REQUEST_BODY} bytes or could not be read"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid {what}: {e}")))
}

async fn post_launch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let launch: LaunchRequest = match read_json(req, "launch request").await {
        Ok(l) => l,
        Err(response) => return response,
    };
    if let Err(message) = launch.validate(&state.config.image_prefix, &state.config.providers) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid launch request: {message}"),
        );
    }
    // Only a launch of a missing image builds (the launcher trusts `image_present`).
    if !launch.image_present
        && let Err(refused) = build_host_allowed(state, &launch.repo_url).await
    {
        return refused;
    }
    let id = ids::new_id();
    let log = state.launches.create(&id);
    state.launcher.start(id.clone(), launch, log);
    tracing::info!(launch = %id, "launch accepted");
    accepted(format!("{LAUNCHES_PATH}/{id}/events"), id)
}

async fn post_build(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let build: BuildRequest = match read_json(req, "build request").await {
        Ok(b) => b,
        Err(response) => return response,
    };
    if let Err(message) = build.validate(&state.config.image_prefix, &state.config.providers) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid build request: {message}"),
        );
    }
    if let Err(refused) = build_host_allowed(state, &build.repo_url).await {
        return refused;
    }
    let attached = match state.builds.request(BuildSpec::new(
        &build.build_slug,
        &build.repo_url,
        &build.resolved_ref,
        &build.image,
    )) {
        Ok(attached) => attached,
        Err(refusal) => {
            let status =
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error(status, &refusal.to_string());
        }
    };
    accepted(format!("{BUILDS_PATH}/{}/events", attached.id), attached.id)
}

/// Whether builds may fetch `repo_url` ([`crate::build_hosts`]); the refusal names the
/// setting that allows it.
async fn build_host_allowed(state: &AppState, repo_url: &str) -> Result<(), Response<Body>> {
    state
        .config
        .builds
        .hosts
        .check(repo_url)
        .await
        .map_err(|refused| {
            tracing::info!(%refused, "build host refused");
            let status = StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::FORBIDDEN);
            error(status, &refused.to_string())
        })
}

/// The `image` query parameter, decoded; `None` when missing, empty or not decodable.
pub(crate) fn image_parameter(req: &Request<Incoming>) -> Option<String> {
    req.uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "image")
                .and_then(|(_, v)| validate::percent_decode("image", &v.replace('+', " ")).ok())
        })
        .filter(|i| !i.is_empty())
}

fn build_info(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<Body> {
    let Some(image) = image_parameter(req) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the image query parameter is required",
        );
    };
    match state.builds.info(&image) {
        Some(info) => json_response(StatusCode::OK, &json!(info)),
        None => error(StatusCode::NOT_FOUND, "no build of this image"),
    }
}

/// `/health` (see [`crate::health`]): `200` when every check that counts passed, `503`
/// otherwise; `HEAD` answers the status alone.
async fn health(state: &Arc<AppState>, head_only: bool) -> Response<Body> {
    let health = state
        .health
        .answer(state.config.health_cache, health_checks(state))
        .await;
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if head_only {
        let mut response = Response::new(full(Bytes::new()));
        *response.status_mut() = status;
        return response;
    }
    json_response(status, &json!(health))
}

/// The checks of `/health`, as a task of their own can run them.
pub(crate) fn health_checks(
    state: &Arc<AppState>,
) -> impl FnOnce() -> futures::future::BoxFuture<'static, bindery_core::worker_api::Health> {
    let state = Arc::clone(state);
    move || {
        Box::pin(async move {
            health::run_checks(
                state.launcher.hub(),
                &state.builds,
                &state.config.image_prefix,
                state.config.total_quota,
            )
            .await
        })
    }
}

fn accepted(events_url: String, id: String) -> Response<Body> {
    json_response(StatusCode::ACCEPTED, &json!(Accepted { id, events_url }))
}

fn full(bytes: Bytes) -> Body {
    BodyExt::boxed_unsync(Full::new(bytes))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    text(status, "application/json", value.to_string())
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"status": status.as_u16(), "message": message}),
    )
}

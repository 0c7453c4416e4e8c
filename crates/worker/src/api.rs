//! The worker's HTTP API (DESIGN.md, "The worker API").
//!
//! Every route but `/health` and `/metrics` needs `Authorization: Bearer <token>`, compared
//! in constant time. Request bodies are read with a size limit, parsed strictly and then
//! validated with `bindery-core` — spec, resolved ref, URLs, launch path, client address,
//! and the image name, which must be the one this worker's prefix gives — so a confused or
//! compromised edge cannot make the worker launch or build anything else.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bindery_core::events::Event;
use bindery_core::sse::{self, SseEvent};
use bindery_core::worker_api::{Accepted, BUILDS_PATH, BuildRequest, LAUNCHES_PATH, LaunchRequest};
use bindery_core::{image, validate};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::builds::Builds;
use crate::config::WorkerConfig;
use crate::events::{EventLog, Logs};
use crate::executor::{BuildSpec, Executor, LocalExecutor};
use crate::hub::{HubClient, HubError};
use crate::ids;
use crate::launcher::Launcher;
use crate::logstore::{LogStore, StoreError};
use crate::metrics::Metrics;
use crate::registry::{CheckError, RegistryClient};

/// The body of every answer.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The largest request body accepted.
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// How long in-flight requests may finish after shutdown is asked for.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Everything the routes share.
#[derive(Debug)]
pub struct AppState {
    config: WorkerConfig,
    launches: Logs,
    builds: Arc<Builds>,
    launcher: Arc<Launcher>,
    metrics: Arc<Metrics>,
    /// The last `/health` answer and when it was made. Held while the checks run: one
    /// refresh at a time, the others wait for it and reuse its answer.
    health: tokio::sync::Mutex<Option<(Instant, bool, serde_json::Value)>>,
}

/// Why the worker's state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The JupyterHub client could not be built (TLS roots).
    #[error("failed to set up the JupyterHub client")]
    Hub(#[source] HubError),
    /// The registry client could not be built.
    #[error("failed to set up the registry client")]
    Registry(#[source] CheckError),
    /// The build log store could not be opened.
    #[error("failed to open the build log store")]
    Store(#[source] StoreError),
}

impl AppState {
    /// The state of a worker configured by `config`, building with the local executor.
    pub fn new(config: WorkerConfig) -> Result<AppState, StateError> {
        let executor = Arc::new(LocalExecutor::new(config.builds.local.clone()));
        AppState::with_executor(config, executor)
    }

    /// Registers the builds the executor was already running (see [`Builds::adopt`]).
    pub async fn adopt_builds(&self) -> Result<usize, String> {
        self.builds.adopt().await
    }

    /// The state of a worker configured by `config`, building with `executor`.
    pub fn with_executor(
        config: WorkerConfig,
        executor: Arc<dyn Executor>,
    ) -> Result<AppState, StateError> {
        let metrics = Arc::new(Metrics::default());
        let hub = HubClient::new(&config).map_err(StateError::Hub)?;
        let logs = || Logs::new(config.max_events_per_log, config.finished_log_ttl);
        let b = &config.builds;
        let registry = match &b.registry_url {
            Some(url) => Some(
                RegistryClient::new(
                    url,
                    b.registry_username.clone(),
                    b.registry_password.clone(),
                )
                .map_err(StateError::Registry)?,
            ),
            None => None,
        };
        let store = LogStore::open(b.log_store.as_deref(), b.log_ttl).map_err(StateError::Store)?;
        let builds = Arc::new(Builds::new(
            logs(),
            executor,
            registry,
            store,
            b.max_concurrent,
            Arc::clone(&metrics),
        ));
        Ok(AppState {
            launches: logs(),
            launcher: Arc::new(Launcher::new(
                &config,
                hub,
                Arc::clone(&metrics),
                Arc::clone(&builds),
            )),
            builds,
            metrics,
            config,
            health: tokio::sync::Mutex::new(None),
        })
    }
}

/// How long stopping the running builds, and separately the launches in flight, may take
/// once the HTTP drain is over.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

impl AppState {
    /// The worker's shutdown phase, after the HTTP drain: stops every running local build
    /// (its process group killed, its child reaped) and every launch in flight (its hub
    /// user deleted), waiting for each at most [`STOP_DEADLINE`].
    pub async fn shutdown(&self) {
        futures::future::join(
            self.builds.shutdown(STOP_DEADLINE),
            self.launcher.shutdown(STOP_DEADLINE),
        )
        .await;
    }
}

/// Serves `listener` until `shutdown` resolves, then drains for a few seconds.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let housekeeping = tokio::spawn(housekeeping(Arc::clone(&state)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    housekeeping.abort();
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; dropping the remaining connections");
    }
}

/// Forgets old finished logs and frees the quota of servers that stopped.
async fn housekeeping(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.quota_refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.launches.sweep(Instant::now());
        state.builds.sweep(Instant::now());
        state.launcher.refresh_quota().await;
    }
}

/// Routes one request.
pub async fn handle(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/health") => {
            return health(state, method == Method::HEAD).await;
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
        (&Method::GET, ["api", "v1", "builds"]) => build_info(state, &req),
        (&Method::GET, ["api", "v1", "launches", id, "events"]) => {
            let log = ids::is_valid_id(id)
                .then(|| state.launches.get(id))
                .flatten();
            events(state, &req, log, "launch")
        }
        (&Method::GET, ["api", "v1", "builds", id, "events"]) => {
            let log = ids::is_valid_id(id).then(|| state.builds.log(id)).flatten();
            events(state, &req, log, "build")
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
        (_, ["api", "v1", "launches" | "builds", ..]) => {
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

async fn read_json<T: DeserializeOwned>(
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
    if let Err(message) = launch.validate(&state.config.image_prefix) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid launch request: {message}"),
        );
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
    if let Err(message) = build.validate(&state.config.image_prefix) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid build request: {message}"),
        );
    }
    let attached = state.builds.request(BuildSpec {
        image: build.image.clone(),
        build_name: image::build_name(&build.build_slug, &build.resolved_ref),
        repo: build.repo_url.clone(),
        git_ref: build.resolved_ref.clone(),
    });
    accepted(format!("{BUILDS_PATH}/{}/events", attached.id), attached.id)
}

fn build_info(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<Body> {
    let image = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "image")
            .and_then(|(_, v)| validate::percent_decode("image", &v.replace('+', " ")).ok())
    });
    let Some(image) = image.filter(|i| !i.is_empty()) else {
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

/// Where a follower is in a log.
struct Follow {
    log: Arc<EventLog>,
    wake: watch::Receiver<()>,
    after: u64,
    keepalive: Duration,
    done: bool,
}

/// The next chunk of the stream: the events not yet sent, or a keepalive, or the end.
async fn next_chunk(mut f: Follow) -> Option<(Result<Frame<Bytes>, Infallible>, Follow)> {
    if f.done {
        return None;
    }
    loop {
        // Marking the wake-up seen before reading means no append can slip in between.
        f.wake.borrow_and_update();
        let page = f.log.read_after(f.after);
        if let Some(&(last, _)) = page.events.last() {
            let mut chunk = String::new();
            for (seq, event) in &page.events {
                chunk.push_str(&encode_event(*seq, event));
            }
            f.after = last;
            f.done = page.finished;
            return Some((Ok(Frame::data(Bytes::from(chunk))), f));
        }
        if page.finished {
            return None;
        }
        tokio::select! {
            changed = f.wake.changed() => if changed.is_err() { return None },
            () = tokio::time::sleep(f.keepalive) => {
                return Some((Ok(Frame::data(Bytes::from_static(sse::KEEPALIVE.as_bytes()))), f));
            }
        }
    }
}

fn events(
    state: &Arc<AppState>,
    req: &Request<Incoming>,
    log: Option<Arc<EventLog>>,
    kind: &str,
) -> Response<Body> {
    let Some(log) = log else {
        return error(StatusCode::NOT_FOUND, &format!("no such {kind}"));
    };
    let after = match req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim))
    {
        None | Some(Ok("")) => 0,
        Some(Ok(text)) => match text.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must be an event number",
                );
            }
        },
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID must be an event number",
            );
        }
    };
    let follow = Follow {
        wake: log.subscribe(),
        log,
        after,
        keepalive: state.config.keepalive_interval,
        done: false,
    };
    let body = StreamBody::new(futures::stream::unfold(follow, next_chunk));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// `/health` (BinderHub's shape): every check runs concurrently; `ok` is true when every
/// check that is not `_ignore_failure` is; 503 otherwise. The answer is reused for
/// `health_cache`, and refreshed single-flight: while one request runs the checks, the
/// others wait for it and answer with its result.
async fn health(state: &Arc<AppState>, head_only: bool) -> Response<Body> {
    let asked = Instant::now();
    let mut cached = state.health.lock().await;
    // An answer made while this request waited for the lock is newer than the question,
    // whatever `health_cache` says.
    let (ok, body) = match cached
        .as_ref()
        .filter(|(at, _, _)| *at >= asked || at.elapsed() < state.config.health_cache)
    {
        Some((_, ok, body)) => (*ok, body.clone()),
        None => {
            let (ok, body) = run_health_checks(state).await;
            *cached = Some((Instant::now(), ok, body.clone()));
            (ok, body)
        }
    };
    drop(cached);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if head_only {
        let mut response = Response::new(full(Bytes::new()));
        *response.status_mut() = status;
        return response;
    }
    json_response(status, &body)
}

async fn run_health_checks(state: &Arc<AppState>) -> (bool, serde_json::Value) {
    let hub = async {
        let ok = state
            .launcher
            .hub()
            .healthy(crate::executor::HEALTH_TIMEOUT)
            .await;
        json!({"service": "JupyterHub API", "ok": ok})
    };
    let builds = state
        .builds
        .health(&state.config.image_prefix, state.config.total_quota);
    let (hub, builds) = futures::future::join(hub, builds).await;
    let mut checks = vec![hub];
    checks.extend(builds);
    let ok = checks
        .iter()
        .all(|check| check["_ignore_failure"] == json!(true) || check["ok"] == json!(true));
    (ok, json!({"ok": ok, "checks": checks}))
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

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    text(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"status": status.as_u16(), "message": message}),
    )
}

/// One numbered event as it goes on the stream.
fn encode_event(seq: u64, event: &Event) -> String {
    sse::encode(&SseEvent::new(event.to_json()).with_id(seq.to_string()))
}

//! `GET /health`, `GET /versions` and `GET /metrics`, in BinderHub's shapes, so that a BinderHub
//! federation's redirector can take a Bindery member into its rotation.
//!
//! Health passes the worker's checks on as the worker reports them (`JupyterHub API`,
//! `Docker registry`, `Pod quota` with `total_pods` and `quota`, its executor's), adds
//! Bindery's own `Bindery worker` and folds the edge's registry check into `Docker
//! registry` ([`Health::of_member`]); 503 when something is down. The answer is kept in
//! the KV store for [`HEALTH_TTL`] seconds: a federation polls `/health` every few seconds.
//! It stays fast when a part is down: the worker answers from its own cache (refreshed
//! behind it), and every check here has the short time limits of `env.quick`.
//!
//! Versions is `binderhub` (this version) and the worker's `builder_info` (the build image
//! on Kubernetes, repo2docker's version locally), kept for [`VERSIONS_TTL`] seconds; when
//! the worker cannot be asked, the last answer it gave, else an empty `builder_info`.
//!
//! With `use_registry = false` there is no registry to check: the worker's checks cover the
//! engine that holds the images.
//!
//! `/metrics` is the Prometheus text of the `metrics` store (`bindery_edge::metrics`),
//! public as BinderHub's is: every label value in it comes from a fixed set or the
//! operator's configuration, none from a request.

use bindery_core::cache::{Expiring, edge_health_key, edge_versions_key};
use bindery_core::worker_api::{
    Health, HealthCheck, VERSIONS_PATH, WorkerVersions, versions_answer,
};
use bindery_edge::config::{
    EdgeConfig, REGISTRY_PASSWORD, REGISTRY_URL, REGISTRY_USERNAME, USE_REGISTRY, WORKER_TOKEN,
    WORKER_URL,
};
use bindery_edge::respond::{self, CACHE_HEADER};
use bindery_edge::{Fetch, worker};
use http::{HeaderValue, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::Env;

/// How long a health answer is reused, in seconds.
pub const HEALTH_TTL: u64 = 10;

/// How long the worker's `builder_info` is reused, in seconds.
pub const VERSIONS_TTL: u64 = 60;

/// What health reads: the worker and the registry, and whether there is one.
pub const HEALTH_VARIABLES: &[&str] = &[
    WORKER_URL,
    WORKER_TOKEN,
    REGISTRY_URL,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    USE_REGISTRY,
];

/// A health answer kept in the KV store for [`HEALTH_TTL`] seconds.
#[derive(Serialize, Deserialize)]
struct CachedHealth {
    #[serde(flatten)]
    health: Health,
    expires_at: u64,
}

impl Expiring for CachedHealth {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// The worker's `builder_info`, kept for [`VERSIONS_TTL`] seconds (and, expired, for when
/// the worker cannot be asked).
#[derive(Serialize, Deserialize)]
struct CachedVersions {
    builder_info: Map<String, Value>,
    expires_at: u64,
}

impl Expiring for CachedVersions {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// Answers `GET /health`.
pub async fn health<F: Fetch>(env: &Env<'_, F>) -> Response<Vec<u8>> {
    let (cache, now, key) = (env.cache(), env.now(), edge_health_key());
    let (health, source) = match cache.get_fresh::<CachedHealth>(&key, now) {
        Some(cached) => (cached.health, "hit"),
        None => {
            let health = match env.variables.load(HEALTH_VARIABLES) {
                Ok(cfg) => check(&cfg, &env.quick).await,
                Err(e) => Health::of(vec![HealthCheck::failed("Configuration", e.to_string())]),
            };
            let entry = CachedHealth {
                health,
                expires_at: now + HEALTH_TTL,
            };
            cache.put(&key, &entry);
            (entry.health, "miss")
        }
    };
    let mut response = respond::json(health.status_code(), &health);
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert(CACHE_HEADER, HeaderValue::from_static(source));
    response
}

/// Asks the worker and the registry at once: a part that accepts connections and never
/// answers is as unhealthy as one that is down, hence `fetch`'s short time limits.
async fn check(cfg: &EdgeConfig, fetch: &impl Fetch) -> Health {
    let worker_check = async {
        let request = cfg
            .worker()
            .ok()
            .and_then(|w| worker::get(w, "/health").ok())?;
        // 503 carries the checks too.
        let answer = fetch.send(request).await.ok()?;
        serde_json::from_slice::<Health>(answer.body()).ok()
    };
    let registry_check = async {
        let registry = cfg.registry().ok()?;
        let request = Request::get(format!("{}/v2/", registry.url))
            .body(Vec::new())
            .ok()?;
        // 401 means the registry is up and wants credentials.
        Some(
            fetch
                .send(request)
                .await
                .is_ok_and(|r| r.status().is_success() || r.status() == 401),
        )
    };
    if !cfg.use_registry {
        // No registry to ask (BinderHub checks one only with use_registry): the worker's
        // checks cover the engine that holds the images.
        return Health::of_member(worker_check.await, None);
    }
    let (worker, registry) = futures::future::join(worker_check, registry_check).await;
    Health::of_member(worker, registry)
}

/// Answers `GET /versions`. `Access-Control-Allow-Origin: *` as BinderHub, unless
/// `cors_allow_origin` says otherwise (the caller sets that).
pub async fn versions<F: Fetch>(env: &Env<'_, F>) -> Response<Vec<u8>> {
    let (cache, now, key) = (env.cache(), env.now(), edge_versions_key());
    let (builder_info, source) = match cache.get::<CachedVersions>(&key, now) {
        Some(bindery_core::cache::Lookup::Fresh(cached)) => (cached.builder_info, "hit"),
        lookup => {
            let stale = match lookup {
                Some(bindery_core::cache::Lookup::Expired(cached)) => Some(cached.builder_info),
                _ => None,
            };
            match ask_versions(env).await {
                Some(builder_info) => {
                    let entry = CachedVersions {
                        builder_info,
                        expires_at: now + VERSIONS_TTL,
                    };
                    cache.put(&key, &entry);
                    (entry.builder_info, "miss")
                }
                None => (stale.unwrap_or_default(), "stale"),
            }
        }
    };
    let mut response = respond::json(200, &versions_answer(&builder_info));
    let headers = response.headers_mut();
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(CACHE_HEADER, HeaderValue::from_static(source));
    response
}

async fn ask_versions<F: Fetch>(env: &Env<'_, F>) -> Option<Map<String, Value>> {
    let cfg = env.variables.load(&[WORKER_URL, WORKER_TOKEN]).ok()?;
    let request = worker::get(cfg.worker().ok()?, VERSIONS_PATH).ok()?;
    let answer = env.quick.send(request).await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    serde_json::from_slice::<WorkerVersions>(answer.body())
        .ok()
        .map(|v| v.builder_info)
}

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers `GET /metrics`: 503 when the `metrics` store cannot be read.
pub fn metrics() -> Response<Vec<u8>> {
    match bindery_edge::metrics::render() {
        Some(text) => respond::with_body(200, METRICS_CONTENT_TYPE, text),
        None => respond::text(
            503,
            "the metrics store could not be read: is the key-value store `metrics` configured?",
        ),
    }
}

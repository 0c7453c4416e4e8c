//! `GET /health`, `GET /versions` and `GET /metrics`, in BinderHub's shapes.
//!
//! Health covers what the edge depends on, the worker and the registry, each asked
//! within a few seconds; 503 when something is down. The answer is kept in the KV store
//! for [`HEALTH_TTL`] seconds: a federation polls `/health` every few seconds, and each
//! check costs a worker and a registry round trip.
//!
//! `/metrics` is the Prometheus text of the `metrics` store (`bindery_edge::metrics`),
//! public as BinderHub's is: every label value in it comes from a fixed set or the
//! operator's configuration, none from a request.

use bindery_core::cache::{Expiring, edge_health_key};
use bindery_core::worker_api::{Health, HealthCheck};
use bindery_edge::config::{EdgeConfig, LAUNCH_VARIABLES};
use bindery_edge::respond::{self, CACHE_HEADER};
use bindery_edge::{Fetch, worker};
use http::{HeaderValue, Request, Response};
use serde::{Deserialize, Serialize};

use crate::env::Env;

/// How long a health answer is reused, in seconds.
pub const HEALTH_TTL: u64 = 10;

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

/// Answers `GET /health`.
pub async fn health<F: Fetch>(env: &Env<'_, F>) -> Response<Vec<u8>> {
    let cfg = match env.variables.load(LAUNCH_VARIABLES) {
        Ok(c) => c,
        Err(e) => {
            let health = Health::of(vec![HealthCheck::failed("Configuration", e.to_string())]);
            return respond::json(health.status_code(), &health);
        }
    };
    let (cache, now, key) = (env.cache(), env.now(), edge_health_key());
    let (health, source) = match cache.get_fresh::<CachedHealth>(&key, now) {
        Some(cached) => (cached.health, "hit"),
        None => {
            let health = check(&cfg, &env.quick).await;
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
        match cfg.worker().map(|w| worker::get(w, "/health")) {
            Ok(Ok(req)) => fetch.send(req).await.is_ok_and(|r| r.status().is_success()),
            _ => false,
        }
    };
    let registry_check = async {
        match cfg
            .registry()
            .map(|r| Request::get(format!("{}/v2/", r.url)).body(Vec::new()))
        {
            // 401 means the registry is up and wants credentials.
            Ok(Ok(req)) => fetch
                .send(req)
                .await
                .is_ok_and(|r| r.status().is_success() || r.status() == 401),
            _ => false,
        }
    };
    let (worker_ok, registry_ok) = futures::future::join(worker_check, registry_check).await;
    Health::of(vec![
        HealthCheck::new("Bindery worker", worker_ok),
        HealthCheck::new("Docker registry", registry_ok),
    ])
}

/// Answers `GET /versions`.
pub fn versions() -> Response<Vec<u8>> {
    let version = concat!("bindery-", env!("CARGO_PKG_VERSION"));
    let mut response = respond::json(
        200,
        &serde_json::json!({"binderhub": version, "builder_info": {"bindery": version}}),
    );
    response
        .headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    response
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

//! The resolve API, health and the pages, natively.

use bindery_core::cache::CacheTtl;
use bindery_core::worker_api::Health;
use bindery_edge::config::{
    BAN_NETWORKS, CACHED_RESOLVE_VARIABLES, CORS_ALLOW_ORIGIN, FEDERATION, REF_TTL_SECONDS,
    REGISTRY_URL, RESOLVE_VARIABLES, USE_REGISTRY,
};
use bindery_edge::testing::response;
use serde_json::Value;

use super::*;

/// The worker's `/health` with BinderHub's checks.
pub(super) const WORKER_HEALTH: &str = r#"{"ok": true, "checks": [
    {"service": "JupyterHub API", "ok": true},
    {"service": "Docker registry", "ok": true},
    {"service": "Pod quota", "ok": true, "total_pods": 3, "build_pods": 1, "user_pods": 2,
     "quota": 100, "_ignore_failure": true}
]}"#;

fn resolve_path() -> String {
    format!("/api/v1/resolve/gh/o/r/{SHA}")
}

fn lists(lists: &[&[&str]]) -> Vec<Vec<String>> {
    lists
        .iter()
        .map(|l| l.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

#[test]
fn a_resolve_answered_from_the_cache_reads_only_the_cached_variables() {
    let world = World::new(&[]);
    world
        .cache()
        .put_present(&pinned_image(), None, NOW, &CacheTtl::default());
    let response = world.get("GET", &resolve_path(), &[]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-bindery-image-cache"], "hit");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["image"], pinned_image());
    assert_eq!(body["image_present"], true);
    assert_eq!(body["resolved_ref"], SHA);
    assert_eq!(world.fetch.calls(), 0);
    // Each variable is a host call: the benchmark's hot path reads no more than these
    // (and `federation` first, which every request of the component reads).
    assert_eq!(
        *world.vars.loads.borrow(),
        lists(&[&[FEDERATION], CACHED_RESOLVE_VARIABLES])
    );
}

#[test]
fn a_resolve_that_asks_the_registry_reads_the_rest_once() {
    let world = World::new(&[]);
    world
        .fetch
        .on("HEAD", &format!("{REGISTRY}/v2/"), response(404, &[], ""));
    let response = world.get("GET", &resolve_path(), &[]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-bindery-image-cache"], "miss");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["image_present"], false);
    assert_eq!(
        *world.vars.loads.borrow(),
        lists(&[&[FEDERATION], CACHED_RESOLVE_VARIABLES, RESOLVE_VARIABLES])
    );
}

#[test]
fn resolve_refusals_answer_json_with_their_status() {
    let world = World::new(&[(BAN_NETWORKS, "198.51.100.0/24=a test network")]);
    let response = world.get("GET", &resolve_path(), &[]);
    assert_eq!(response.status(), 403);
    let world = World::new(&[]);
    let response = world.get("GET", "/api/v1/resolve/nope/o/r", &[]);
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(body["message"].is_string(), "{body}");
    // A variable only a miss reads breaks only a miss.
    let world = World::new(&[(REF_TTL_SECONDS, "soon")]);
    assert_eq!(world.get("GET", &resolve_path(), &[]).status(), 500);
    world
        .cache()
        .put_present(&pinned_image(), None, NOW, &CacheTtl::default());
    assert_eq!(world.get("GET", &resolve_path(), &[]).status(), 200);
}

#[test]
fn health_asks_the_worker_and_the_registry_then_answers_from_the_cache() {
    let world = World::new(&[]);
    world.fetch.on(
        "GET",
        &format!("{WORKER}/health"),
        response(200, &[], WORKER_HEALTH),
    );
    // A registry that wants credentials is up.
    world
        .fetch
        .on("GET", &format!("{REGISTRY}/v2/"), response(401, &[], ""));
    let first = world.get("GET", "/health", &[]);
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-bindery-cache"], "miss");
    let health: Health = serde_json::from_slice(first.body()).unwrap();
    let services: Vec<(&str, bool)> = health
        .checks
        .iter()
        .map(|c| (c.service.as_str(), c.ok))
        .collect();
    assert_eq!(
        services,
        [
            ("JupyterHub API", true),
            ("Docker registry", true),
            ("Pod quota", true),
            ("Bindery worker", true)
        ]
    );
    let again = world.get("GET", "/health", &[]);
    assert_eq!(again.headers()["x-bindery-cache"], "hit");
    assert_eq!(again.body(), first.body());
    assert_eq!(world.fetch.calls(), 2);
    assert!(
        world
            .kv
            .keys()
            .contains(&bindery_core::cache::edge_health_key())
    );
    // Only what the checks need, and only on a miss; then `cors_allow_origin` alone (with
    // `federation`, which every request of the component reads first).
    assert_eq!(
        *world.vars.loads.borrow(),
        lists(&[
            &[FEDERATION],
            crate::routes::health::HEALTH_VARIABLES,
            &[CORS_ALLOW_ORIGIN],
            &[FEDERATION],
            &[CORS_ALLOW_ORIGIN]
        ])
    );
}

/// Issue 15: with `use_registry = false` the resolve API asks the worker whether the image
/// exists, and `/health` asks the worker alone; the registry hears of neither.
#[test]
fn without_a_registry_the_worker_is_asked_for_the_image_and_health() {
    let world = World::new(&[(USE_REGISTRY, "false")]);
    let lookup = format!(
        "{WORKER}/api/v1/images?image={}",
        bindery_core::resolve::encode_all(&pinned_image())
    );
    let answer = serde_json::json!({"image": pinned_image(), "present": true}).to_string();
    world
        .fetch
        .on("GET", &lookup, response(200, &[], answer.as_str()));
    world.fetch.on(
        "GET",
        &format!("{WORKER}/health"),
        response(200, &[], WORKER_HEALTH),
    );
    let response = world.get("GET", &resolve_path(), &[]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-bindery-image-cache"], "miss");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["image_present"], true, "{body}");
    let health = world.get("GET", "/health", &[]);
    assert_eq!(health.status(), 200);
    let health: Health = serde_json::from_slice(health.body()).unwrap();
    let services: Vec<&str> = health.checks.iter().map(|c| c.service.as_str()).collect();
    // The worker's checks as it reports them, and no registry check of the edge's own.
    assert_eq!(
        services,
        [
            "JupyterHub API",
            "Docker registry",
            "Pod quota",
            "Bindery worker"
        ]
    );
    let asked: Vec<String> = world
        .fetch
        .requests()
        .iter()
        .map(|r| r.uri().to_string())
        .collect();
    assert!(asked.iter().all(|u| !u.starts_with(REGISTRY)), "{asked:?}");
    assert!(asked.contains(&lookup), "{asked:?}");
}

#[test]
fn health_is_503_when_a_part_is_down_or_the_configuration_is_broken() {
    let world = World::new(&[]);
    let down = world.get("GET", "/health", &[]);
    assert_eq!(down.status(), 503);
    let world = World::new(&[(REGISTRY_URL, "not a url")]);
    let broken = world.get("GET", "/health", &[]);
    assert_eq!(broken.status(), 503);
    let health: Health = serde_json::from_slice(broken.body()).unwrap();
    assert_eq!(health.checks[0].service, "Configuration");
    assert!(
        health.checks[0]
            .error
            .as_deref()
            .unwrap()
            .contains("registry_url")
    );
}

#[test]
fn banned_networks_get_an_error_page_but_versions() {
    let world = World::new(&[(BAN_NETWORKS, "198.51.100.0/24=a test network")]);
    for path in ["/", "/v2/gh/o/r/main", "/repo/o/r"] {
        let page = world.get("GET", path, &[]);
        assert_eq!(page.status(), 403, "{path}");
        assert!(String::from_utf8_lossy(page.body()).contains("a test network"));
    }
    assert_eq!(world.get("GET", "/versions", &[]).status(), 200);
}

#[test]
fn pages_preflights_and_other_methods() {
    let world = World::new(&[]);
    let home = world.get("GET", "/", &[]);
    assert_eq!(home.status(), 200);
    assert_eq!(
        home.headers()["access-control-allow-headers"],
        "cache-control"
    );
    let loading = world.get("GET", "/v2/gh/o/r/main?urlpath=lab", &[]);
    assert_eq!(loading.status(), 200);
    assert!(String::from_utf8_lossy(loading.body()).contains("http://edge.test/build/gh/o/r/main"));
    assert_eq!(world.get("GET", "/v2/nope/o/r", &[]).status(), 404);
    assert_eq!(world.get("GET", "/repo/o/r", &[]).status(), 302);
    let preflight = world.get("OPTIONS", "/build/gh/o/r/main", &[]);
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert_eq!(world.get("POST", "/", &[]).status(), 405);
    assert_eq!(world.fetch.calls(), 0);
    let head = world.get("HEAD", "/versions", &[]);
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
}

//! The edge, end to end: the real `bindery edge` binary runs the real components from
//! `spin.toml`; the registry is the real `docker-registry`; GitHub and the worker are
//! scripted HTTP peers on loopback (the worker until it lands), which count every call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use bindery_core::image;
use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{events, get, send};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const NEW_SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";
const LAUNCH_ID: &str = "launch0123456789";
const WORKER_TOKEN: &str = "worker-secret-token";
const HOOK_SECRET: &str = "hook-secret";

/// A recorded GitHub commits API: `main` and `HEAD` are at the commit `main_at` holds
/// (SHA unless a test moves it), the commit SHA itself is SHA, each with an ETag naming
/// it; every other ref (`gone`, any other commit) is 422. The same peer answers GitLab's
/// commits API for `group/project` (`gitlab_api` = `<url>/api/v4`).
async fn github(main_at: Arc<Mutex<String>>) -> Peer {
    Peer::start(move |seen: &Seen| {
        let path = seen.uri.as_str();
        let pinned = path.ends_with(&format!("/commits/{SHA}"));
        let sha = if pinned {
            SHA.to_owned()
        } else {
            main_at.lock().unwrap().clone()
        };
        let etag = format!("\"etag-{sha}\"");
        if let Some(name) =
            path.strip_prefix("/api/v4/projects/group%2Fproject/repository/commits/")
            && matches!(name, "main" | "HEAD")
        {
            return Answer::json(200, &json!({"id": sha}));
        }
        if path.ends_with("/commits/main") || path.ends_with("/commits/HEAD") || pinned {
            if seen.header("if-none-match") == Some(etag.as_str()) {
                return Answer::with(304, &[("etag", etag.as_str())], "");
            }
            return Answer::Whole(
                200,
                vec![
                    ("content-type".into(), "application/json".into()),
                    ("etag".into(), etag.clone()),
                    ("x-ratelimit-remaining".into(), "4999".into()),
                ],
                json!({"sha": sha}).to_string().into_bytes(),
            );
        }
        Answer::json(422, &json!({"message": "No commit found for SHA"}))
    })
    .await
}

/// The events a scripted worker plays for a launch, numbered from 1.
fn launch_events(image: &str, build: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if build {
        out.push(json!({"phase": "building", "message": "Step 1/2 : FROM busybox\n"}));
        out.push(json!({"phase": "building", "message": "Step 2/2 : RUN true\n"}));
        out.push(
            json!({"phase": "built", "message": "Built image, launching...\n", "imageName": image}),
        );
    }
    out.push(json!({"phase": "launching", "message": "Server requested\n"}));
    out.push(json!({
        "phase": "ready", "message": "server running at http://hub.example/user/x/\n",
        "url": "http://hub.example/user/x/", "token": "tok123", "image": image,
    }));
    out
}

/// A scripted worker: accepts launches and builds, streams `launch_events`, honours
/// `Last-Event-ID`, and keeps the requests it got.
struct Worker {
    peer: Peer,
}

impl Worker {
    async fn start(script: Arc<Mutex<Vec<Value>>>) -> Worker {
        let peer = Peer::start(move |seen: &Seen| {
            if seen.header("authorization") != Some(&format!("Bearer {WORKER_TOKEN}")) && seen.uri != "/health" {
                return Answer::json(401, &json!({"error": "bad token"}));
            }
            match (seen.method.as_str(), seen.uri.as_str()) {
                ("GET", "/health") => Answer::json(200, &json!({"ok": true, "checks": []})),
                ("POST", "/api/v1/launches") => Answer::json(
                    202,
                    &json!({"id": LAUNCH_ID, "events_url": format!("/api/v1/launches/{LAUNCH_ID}/events")}),
                ),
                ("POST", "/api/v1/builds") => {
                    Answer::json(202, &json!({"id": "build0123456789", "events_url": "/api/v1/builds/build0123456789/events"}))
                }
                ("GET", uri) if uri == format!("/api/v1/launches/{LAUNCH_ID}/events") => {
                    let after: usize = seen.header("last-event-id").and_then(|v| v.parse().ok()).unwrap_or(0);
                    let mut body = String::from(":keepalive\n\n");
                    for (i, event) in script.lock().unwrap().iter().enumerate().skip(after) {
                        body.push_str(&format!("id: {}\ndata: {event}\n\n", i + 1));
                    }
                    Answer::with(200, &[("content-type", "text/event-stream")], body)
                }
                _ => Answer::json(404, &json!({"error": "not found"})),
            }
        })
        .await;
        Worker { peer }
    }
}

/// Everything an edge test needs: providers, a registry, a worker, the edge itself.
struct World {
    github: Peer,
    /// Where GitHub's `main` is: move it to push a new commit.
    main_at: Arc<Mutex<String>>,
    worker: Worker,
    registry: Registry,
    script: Arc<Mutex<Vec<Value>>>,
    prefix: String,
    edge: Edge,
    vars: Vec<(&'static str, String)>,
}

impl World {
    async fn start(name: &str, extra: &[(&'static str, &str)]) -> World {
        let dir = scratch(name);
        let main_at = Arc::new(Mutex::new(SHA.to_owned()));
        let github = github(main_at.clone()).await;
        let script = Arc::new(Mutex::new(Vec::new()));
        let worker = Worker::start(script.clone()).await;
        std::fs::create_dir_all(dir.join("registry")).unwrap();
        let registry = Registry::start(&dir.join("registry"), Auth::None).await;
        let prefix = format!("{}/binder-", registry.host);
        let mut vars: Vec<(&'static str, String)> = vec![
            ("worker_url", worker.peer.url()),
            ("worker_token", WORKER_TOKEN.into()),
            ("registry_url", registry.url.clone()),
            ("image_prefix", prefix.clone()),
            ("github_api", github.url()),
            ("gitlab_api", format!("{}/api/v4", github.url())),
            ("extra_outbound_host", "http://127.0.0.1:*".into()),
            ("github_webhook_secret", HOOK_SECRET.into()),
            // This scripted worker does not count `/build`; tests/brakes.rs covers the limit.
            ("build_rate_limit", "0".into()),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push((k, (*v).to_string()));
        }
        let edge = Edge::start(&dir.join("edge"), &vars).await;
        World {
            github,
            main_at,
            worker,
            registry,
            script,
            prefix,
            edge,
            vars,
        }
    }

    fn image(&self, sha: &str) -> String {
        image::image_name(&self.prefix, "org-repo", sha)
    }

    async fn push_image(&self, sha: &str) {
        let split = image::split_image(&self.image(sha));
        self.registry
            .push(&split.repository, &split.tag, true)
            .await;
    }

    fn build_url(&self, spec: &str) -> String {
        format!("{}/build/gh/{spec}", self.edge.url)
    }
}

const SSE: (&str, &str) = ("accept", "text/event-stream");

#[tokio::test(flavor = "multi_thread")]
async fn a_present_image_launches_and_a_second_launch_asks_no_provider_or_registry() {
    let world = World::start("cached-launch", &[]).await;
    world.push_image(SHA).await;
    *world.script.lock().unwrap() = launch_events(&world.image(SHA), false);

    let (status, got, comments) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    assert_eq!(status, 200);
    let phases: Vec<&str> = got.iter().map(|r| r.event.phase.as_str()).collect();
    assert_eq!(phases, ["built", "launching", "ready"], "{got:?}");
    assert!(comments >= 1, "the worker's keepalive comment is relayed");
    assert_eq!(got[0].event.message, "Found built image, launching...\n");
    assert_eq!(got[2].event.token.as_deref(), Some("tok123"));
    assert_eq!(
        got[2].id.as_deref(),
        Some(format!("{LAUNCH_ID}:2").as_str())
    );
    assert_eq!(world.github.count("/repos/org/repo/commits/main"), 1);
    let launch: Value = serde_json::from_slice(
        &world
            .worker
            .peer
            .seen()
            .iter()
            .find(|s| s.method == "POST")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(launch["image"], world.image(SHA));
    assert_eq!(launch["image_present"], true);
    assert_eq!(launch["binder_request"], "v2/gh/org/repo/main");
    assert_eq!(
        launch["binder_persistent_request"],
        format!("v2/gh/org/repo/{SHA}")
    );
    let registry_calls = registry_manifest_calls(&world);
    assert!(registry_calls >= 1);

    let (_, again, _) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    assert_eq!(again.last().unwrap().event.phase.as_str(), "ready");
    assert_eq!(
        world.github.count("/repos/"),
        1,
        "the second launch resolved from the cache"
    );
    assert_eq!(
        registry_manifest_calls(&world),
        registry_calls,
        "the second launch checked the image in the cache"
    );
    assert_eq!(
        world.worker.peer.count("/api/v1/launches"),
        4,
        "two launches, each a POST and an event stream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_launch_drops_the_cached_image_presence() {
    let world = World::start("failed-launch", &[]).await;
    world.push_image(SHA).await;
    let url = format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url);
    let first = get(&url, &[]).await;
    assert_eq!(first.json()["image_present"], true, "{}", first.text());
    let cached = get(&url, &[]).await;
    assert_eq!(cached.header("x-bindery-image-cache"), Some("hit"));

    // The launch fails where a pruned image would: at the pull.
    *world.script.lock().unwrap() = vec![json!({
        "phase": "failed", "status_code": 500,
        "message": "Failed to pull image: not found\n",
    })];
    let (_, got, _) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    let phases: Vec<&str> = got.iter().map(|r| r.event.phase.as_str()).collect();
    assert_eq!(phases, ["built", "failed"], "{got:?}");

    let after = get(&url, &[]).await;
    assert_eq!(
        after.header("x-bindery-image-cache"),
        Some("miss"),
        "the next request asks the registry again"
    );
    assert_eq!(after.json()["image_present"], true, "{}", after.text());
}

/// Manifest requests the registry logged.
fn registry_manifest_calls(world: &World) -> usize {
    let log = std::fs::read_to_string(world.registry.dir.join("registry.log")).unwrap_or_default();
    log.lines()
        .filter(|l| {
            l.contains("response completed")
                && l.contains("http.request.method=HEAD")
                && l.contains("/manifests/")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_built_by_the_worker_and_then_known_present() {
    let world = World::start("build-launch", &[]).await;
    *world.script.lock().unwrap() = launch_events(&world.image(SHA), true);
    let (_, got, _) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    let phases: Vec<&str> = got.iter().map(|r| r.event.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "waiting",
            "building",
            "building",
            "built",
            "launching",
            "ready"
        ]
    );
    // The worker has also been asked for `/versions` (the edge's start-up probe).
    let seen = world.worker.peer.seen();
    let posted = seen
        .iter()
        .find(|s| s.method == "POST" && s.uri == "/api/v1/launches")
        .expect("a launch request");
    let launch: Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(launch["image_present"], false);

    let resolved = get(
        &format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text());
    assert_eq!(resolved.json()["image_present"], true);
    // The fields come in alphabetical order, as they always have.
    let keys = resolved.json().as_object().unwrap().len();
    assert!(
        resolved
            .text()
            .starts_with("{\"binder_persistent_request\":"),
        "{}",
        resolved.text()
    );
    assert_eq!(keys, 12, "{}", resolved.text());
    assert_eq!(
        resolved.header("x-bindery-image-cache"),
        Some("hit"),
        "`built` was recorded in the cache"
    );

    let badge = get(
        &format!("{}/status/gh/org/repo/main.svg", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(badge.status, 200);
    assert_eq!(badge.header("x-bindery-status"), Some("ready"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnect_with_last_event_id_resumes_the_same_launch() {
    let world = World::start("reconnect", &[("banned_specs", "^org/banned.*")]).await;
    *world.script.lock().unwrap() = launch_events(&world.image(SHA), true);
    let (_, first, _) = events(&world.build_url("org/repo/main"), &[SSE], Some(3)).await;
    let last_id = first
        .last()
        .unwrap()
        .id
        .clone()
        .expect("relayed events carry ids");
    assert_eq!(last_id, format!("{LAUNCH_ID}:2"));

    let (_, rest, _) = events(
        &world.build_url("org/repo/main"),
        &[SSE, ("last-event-id", &last_id)],
        None,
    )
    .await;
    let phases: Vec<&str> = rest.iter().map(|r| r.event.phase.as_str()).collect();
    assert_eq!(
        phases,
        ["built", "launching", "ready"],
        "only what was missed, once"
    );
    assert_eq!(
        world
            .worker
            .peer
            .seen()
            .iter()
            .filter(|s| s.method == "POST")
            .count(),
        1,
        "no second launch"
    );
    let resumed = world
        .worker
        .peer
        .seen()
        .into_iter()
        .rfind(|s| s.uri.ends_with("/events"))
        .unwrap();
    assert_eq!(resumed.header("last-event-id"), Some("2"));
    assert_eq!(
        world.github.count("/repos/"),
        1,
        "a resumed stream resolves nothing"
    );

    // A reconnect goes through the link checks first: a banned or malformed link resumes
    // nothing, whatever launch its Last-Event-ID names.
    let followed = || {
        world
            .worker
            .peer
            .seen()
            .iter()
            .filter(|s| s.uri.ends_with("/events"))
            .count()
    };
    let streams_followed = followed();
    for (link, status) in [("org/banned/main", 403), ("org/repo/-x", 400)] {
        let (_, refused, _) = events(
            &world.build_url(link),
            &[SSE, ("last-event-id", &last_id)],
            None,
        )
        .await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].event.phase.as_str(), "failed", "{refused:?}");
        assert_eq!(
            refused[0].event.status_code,
            Some(status),
            "{link}: {refused:?}"
        );
    }
    assert_eq!(followed(), streams_followed, "no stream followed for them");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_as_an_event_on_a_200_stream_with_an_actionable_message() {
    let world = World::start(
        "bad-input",
        &[("banned_specs", "^evil/.*"), ("ban_networks", "")],
    )
    .await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        ("/build/gh/org/repo/main", &[], 400, "Missing Accept header"),
        (
            "/build/gh/org/repo/--upload-pack=evil",
            &[SSE],
            400,
            "must not start with '-'",
        ),
        ("/build/gh/org/repo/a..b", &[SSE], 400, "contains '..'"),
        (
            "/build/gl/org%2Frepo/ma%00in",
            &[SSE],
            400,
            "control character",
        ),
        (
            "/build/gh/nothing_to_split",
            &[SSE],
            400,
            "Spec is not of the form",
        ),
        (
            "/build/svn/org/repo/main",
            &[SSE],
            400,
            "No provider found for prefix",
        ),
        (
            "/build/gl/%FF/main",
            &[SSE],
            400,
            "not valid percent-encoded UTF-8",
        ),
        (
            "/build/gh/evil/repo/main",
            &[SSE],
            403,
            "is not allowed to launch",
        ),
        (
            "/build/gh/org/repo/gone",
            &[SSE],
            404,
            "Could not resolve ref",
        ),
    ];
    for (path, headers, status, message) in cases {
        let (http_status, got, _) =
            events(&format!("{}{path}", world.edge.url), headers, None).await;
        assert_eq!(http_status, 200, "{path}");
        assert_eq!(got.len(), 1, "{path}: {got:?}");
        let event = &got[0].event;
        assert_eq!(event.phase.as_str(), "failed", "{path}");
        assert_eq!(
            event.status_code,
            Some(*status),
            "{path}: {}",
            event.message
        );
        assert!(event.message.contains(message), "{path}: {}", event.message);
    }
    assert_eq!(
        world.worker.peer.count("/api/v1/"),
        0,
        "no bad input reached the worker"
    );

    let page = get(
        &format!(
            "{}/v2/gh/org/repo/main?urlpath=https%3A%2F%2Fevil.example",
            world.edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(page.text().contains("must be a relative path"));
    let api = get(
        &format!("{}/api/v1/resolve/gh/org/repo/-x", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(api.status, 400);
    assert!(
        api.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must not start with '-'"),
        "{}",
        api.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn banned_networks_are_refused_except_for_health_and_versions() {
    let world = World::start("ban-networks", &[("ban_networks", "127.0.0.0/8=local")]).await;
    let (status, got, _) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    assert_eq!(status, 200);
    assert_eq!(got[0].event.status_code, Some(403));
    assert!(
        got[0]
            .event
            .message
            .contains("Requests from local are not allowed")
    );
    assert_eq!(
        get(&format!("{}/versions", world.edge.url), &[])
            .await
            .status,
        200
    );
    let health = get(&format!("{}/health", world.edge.url), &[]).await;
    assert!([200, 503].contains(&health.status));

    // The pages and the legacy redirect refuse too, naming the network.
    for path in ["/", "/v2/gh/org/repo/main", "/repo/org/repo"] {
        let page = get(&format!("{}{path}", world.edge.url), &[]).await;
        assert_eq!(page.status, 403, "{path}: {}", page.text());
        assert!(
            page.text().contains("Requests from local are not allowed"),
            "{path}: {}",
            page.text()
        );
    }
    // The network is checked before the event stream's Accept header, as BinderHub does.
    let (status, got, _) = events(&world.build_url("org/repo/main"), &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(got[0].event.status_code, Some(403), "{got:?}");
    assert_eq!(
        world.github.count("/repos/"),
        0,
        "nothing was resolved for them"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_client_is_the_one_x_forwarded_for_names() {
    let ban = ("ban_networks", "192.0.2.0/24=a test network");
    let world = World::start("trusted-proxy", &[ban, ("trusted_proxies", "127.0.0.0/8")]).await;
    let resolve = format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url);
    let banned = get(&resolve, &[("x-forwarded-for", "192.0.2.7")]).await;
    assert_eq!(banned.status, 403, "{}", banned.text());
    assert!(
        banned
            .text()
            .contains("Requests from a test network are not allowed")
    );
    let page = get(
        &format!("{}/", world.edge.url),
        &[("x-forwarded-for", "192.0.2.7")],
    )
    .await;
    assert_eq!(page.status, 403);
    // What the client wrote left of the proxy's own entry is not believed, and cannot
    // hide that entry either, not even with bytes that are not ASCII.
    let spoofed = get(&resolve, &[("x-forwarded-for", "192.0.2.7, 198.51.100.1")]).await;
    assert_eq!(spoofed.status, 200, "{}", spoofed.text());
    let hidden = get(&resolve, &[("x-forwarded-for", "é, 192.0.2.7")]).await;
    assert_eq!(hidden.status, 403, "{}", hidden.text());
    let head = send(
        "HEAD",
        &format!("{}/", world.edge.url),
        &[("x-forwarded-for", "192.0.2.7")],
        Vec::new(),
    )
    .await;
    assert_eq!(head.status, 403);
    assert!(head.body.is_empty(), "a HEAD gets no body");

    // The worker learns the client's address, not the proxy's.
    world.push_image(SHA).await;
    *world.script.lock().unwrap() = launch_events(&world.image(SHA), false);
    let (_, got, _) = events(
        &world.build_url("org/repo/main"),
        &[SSE, ("x-forwarded-for", "198.51.100.1")],
        None,
    )
    .await;
    assert_eq!(got.last().map(|r| r.event.phase.as_str()), Some("ready"));
    let launch = world
        .worker
        .peer
        .seen()
        .into_iter()
        .find(|s| s.method == "POST" && s.uri == "/api/v1/launches")
        .unwrap();
    let launch: Value = serde_json::from_slice(&launch.body).unwrap();
    assert_eq!(launch["client_ip"], "198.51.100.1");

    // Without trusted proxies the header is the client's word and changes nothing.
    let direct = World::start("untrusted-proxy", &[ban]).await;
    let ignored = get(
        &format!("{}/api/v1/resolve/gh/org/repo/main", direct.edge.url),
        &[("x-forwarded-for", "192.0.2.7")],
    )
    .await;
    assert_eq!(ignored.status, 200, "{}", ignored.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_calls_to_hosts_spin_toml_does_not_allow_are_refused() {
    // 127.0.0.2 is not covered by `http://127.0.0.1:*`.
    let world = World::start("outbound", &[("github_api", "http://127.0.0.2:9")]).await;
    let (_, got, _) = events(&world.build_url("org/repo/main"), &[SSE], None).await;
    assert_eq!(got[0].event.phase.as_str(), "failed");
    assert!(
        got[0].event.message.to_lowercase().contains("not allowed")
            || got[0].event.message.to_lowercase().contains("denied"),
        "{}",
        got[0].event.message
    );
    assert!(
        world.edge.log_text().contains("127.0.0.2"),
        "the refusal is logged:\n{}",
        world.edge.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kv_cache_survives_a_host_restart() {
    let world = World::start("kv-restart", &[]).await;
    let url = format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url);
    let first = get(&url, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["resolved_ref"], SHA);
    assert_eq!(world.github.count("/repos/"), 1);
    let World {
        edge, vars, github, ..
    } = world;
    let data_dir = edge.data_dir.clone();
    assert!(edge.stop(), "graceful shutdown");
    let edge = Edge::start(&data_dir, &vars).await;
    let again = get(
        &format!("{}/api/v1/resolve/gh/org/repo/main", edge.url),
        &[],
    )
    .await;
    assert_eq!(again.json()["resolved_ref"], SHA);
    assert_eq!(again.header("x-bindery-cache"), Some("hit"));
    assert_eq!(
        github.count("/repos/"),
        1,
        "the restarted host answered from the durable cache"
    );
}

fn sign(body: &[u8]) -> String {
    sign_with(HOOK_SECRET.as_bytes(), body)
}

/// `X-Hub-Signature-256` of `body` under `key`.
fn sign_with(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn push_body(sha: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main", "before": SHA, "after": sha, "deleted": false,
        "repository": {"full_name": "org/repo", "html_url": "https://github.com/org/repo", "default_branch": "main"},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_need_a_valid_signature_refresh_the_ref_and_ignore_redeliveries() {
    let world = World::start("webhook", &[("prebuild_specs", "^org/.*")]).await;
    let hook = format!("{}/hooks/github", world.edge.url);
    let body = push_body(NEW_SHA);
    let signature = sign(&body);
    let common = [
        ("x-github-event", "push"),
        ("content-type", "application/json"),
    ];

    // A well-formed signature made with another key, and a valid signature of another
    // body: both must be refused like a malformed or missing one.
    let other_key = sign_with(b"not the secret", &body);
    let other_body = sign(&push_body(SHA));
    for (case, headers) in [
        ("missing", vec![("x-github-delivery", "d-1")]),
        (
            "malformed",
            vec![
                ("x-github-delivery", "d-1"),
                ("x-hub-signature-256", "sha256=00"),
            ],
        ),
        (
            "wrong key",
            vec![
                ("x-github-delivery", "d-1"),
                ("x-hub-signature-256", other_key.as_str()),
            ],
        ),
        (
            "other body",
            vec![
                ("x-github-delivery", "d-1"),
                ("x-hub-signature-256", other_body.as_str()),
            ],
        ),
    ] {
        let mut h = headers.clone();
        h.extend(common);
        let answer = send("POST", &hook, &h, body.clone()).await;
        assert_eq!(answer.status, 401, "{case} signature: {}", answer.text());
    }
    assert_eq!(
        world.worker.peer.count("/api/v1/builds"),
        0,
        "no side effect of a bad signature"
    );
    // Nor a cached ref: the link still resolves through GitHub, to the old commit.
    let url = format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url);
    let before = get(&url, &[]).await;
    assert_eq!(before.json()["resolved_ref"], SHA, "{}", before.text());
    assert_eq!(world.github.count("/repos/"), 1);

    // The branch moves on GitHub, and GitHub sends the push.
    *world.main_at.lock().unwrap() = NEW_SHA.to_owned();
    let mut valid = vec![
        ("x-github-delivery", "d-2"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    valid.extend(common);
    let answer = send("POST", &hook, &valid, body.clone()).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert_eq!(
        world.worker.peer.count("/api/v1/builds"),
        1,
        "a prebuild of the new commit"
    );
    let build: Value =
        serde_json::from_slice(&world.worker.peer.seen().last().unwrap().body).unwrap();
    assert_eq!(build["resolved_ref"], NEW_SHA);

    let replay = send("POST", &hook, &valid, body.clone()).await;
    assert_eq!(replay.status, 202);
    assert_eq!(
        world.worker.peer.count("/api/v1/builds"),
        1,
        "a redelivery does nothing twice"
    );

    let resolved = get(
        &format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(
        resolved.json()["resolved_ref"],
        NEW_SHA,
        "the push refreshed the cached ref"
    );
    assert_eq!(
        world.github.count("/repos/"),
        3,
        "the push asked GitHub for main and HEAD (a push is a hint), the launch asked nothing"
    );
}

/// A push signed under `key` about `org/repo`'s `main`, moved from `before` to `after`.
fn signed_push(
    key: &[u8],
    delivery: &str,
    before: &str,
    after: &str,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let mut body: Value = serde_json::from_slice(&push_body(after)).unwrap();
    body["before"] = json!(before);
    let body = body.to_string().into_bytes();
    let headers = vec![
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", sign_with(key, &body)),
    ];
    (body, headers)
}

/// Issue 12: with the shared secret, which every repository owner who set the hook up
/// knows, a push could set any repository's branch to any commit for an hour. Now a push
/// only makes the edge ask GitHub; the cache and the prebuild follow GitHub's answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_or_forged_push_cannot_move_a_branch_and_prebuilds_what_github_says() {
    const FORGED: &str = "feedfacefeedfacefeedfacefeedfacefeedface";
    let world = World::start("webhook-hint", &[("prebuild_specs", "^org/.*")]).await;
    let hook = format!("{}/hooks/github", world.edge.url);
    let resolve = format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url);
    let shared = HOOK_SECRET.as_bytes();
    let own = bindery_core::webhook::RepoScope::parse("gh/org/repo")
        .unwrap()
        .secret(shared);
    let others = bindery_core::webhook::RepoScope::parse("gh/org/other")
        .unwrap()
        .secret(shared);
    // GitHub has main at NEW_SHA. Every push below is signed; none names NEW_SHA but
    // the true one.
    *world.main_at.lock().unwrap() = NEW_SHA.to_owned();
    let cases: [(&str, &[u8], &str, &str, u16); 5] = [
        ("a forged push to another commit", shared, SHA, FORGED, 202),
        (
            "a replay of an old push, under a new id",
            shared,
            FORGED,
            SHA,
            202,
        ),
        (
            "the true push, with the repository's own secret",
            own.as_bytes(),
            SHA,
            NEW_SHA,
            202,
        ),
        (
            "a forged push with the repository's own secret",
            own.as_bytes(),
            NEW_SHA,
            FORGED,
            202,
        ),
        (
            "another repository's secret",
            others.as_bytes(),
            SHA,
            FORGED,
            401,
        ),
    ];
    for (i, (case, key, before, after, status)) in cases.into_iter().enumerate() {
        let (body, headers) = signed_push(key, &format!("hint-{i}"), before, after);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = send("POST", &hook, &headers, body).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.text());
        let resolved = get(&resolve, &[]).await;
        assert_eq!(
            resolved.json()["resolved_ref"],
            NEW_SHA,
            "{case}: {}",
            resolved.text()
        );
        assert_eq!(resolved.header("x-bindery-cache"), Some("hit"), "{case}");
    }
    let built: Vec<Value> = world
        .worker
        .peer
        .seen()
        .iter()
        .filter(|s| s.uri == "/api/v1/builds")
        .map(|s| serde_json::from_slice::<Value>(&s.body).unwrap()["resolved_ref"].clone())
        .collect();
    assert_eq!(built, [json!(NEW_SHA)], "one prebuild, of GitHub's commit");

    // GitHub moves on: any push, even one naming an old commit, is followed to it.
    const NEXT: &str = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
    *world.main_at.lock().unwrap() = NEXT.to_owned();
    let (body, headers) = signed_push(shared, "hint-next", SHA, FORGED);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(send("POST", &hook, &headers, body).await.status, 202);
    assert_eq!(get(&resolve, &[]).await.json()["resolved_ref"], NEXT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_without_a_configured_secret_is_refused() {
    let world = World::start("webhook-unset", &[("github_webhook_secret", "")]).await;
    let body = push_body(NEW_SHA);
    let answer = send(
        "POST",
        &format!("{}/hooks/github", world.edge.url),
        &[
            ("x-github-event", "push"),
            ("x-github-delivery", "d-9"),
            ("x-hub-signature-256", &sign(&body)),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(
        answer.text().contains("github_webhook_secret"),
        "the answer names the variable: {}",
        answer.text()
    );
    assert_eq!(world.worker.peer.count("/api/v1/builds"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn badges_are_cacheable_and_the_status_badge_answers_304() {
    let world = World::start("badges", &[]).await;
    let logo_url = format!("{}/badge_logo.svg", world.edge.url);
    let logo = get(&logo_url, &[]).await;
    assert_eq!(logo.status, 200);
    assert_eq!(
        logo.header("content-length"),
        Some(logo.body.len().to_string().as_str()),
        "a whole answer is sent with its length"
    );
    let head = send("HEAD", &logo_url, &[], Vec::new()).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), logo.header("etag"));
    assert_eq!(head.header("content-type"), Some("image/svg+xml"));
    assert_eq!(logo.header("content-type"), Some("image/svg+xml"));
    assert!(
        logo.header("cache-control")
            .unwrap_or_default()
            .contains("immutable")
    );

    let url = format!("{}/status/gh/org/repo/main.svg", world.edge.url);
    let first = get(&url, &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-bindery-status"), Some("not built"));
    let etag = first.header("etag").expect("an ETag").to_string();
    let second = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(second.status, 304);
    assert!(second.body.is_empty());
    assert_eq!(
        world.github.count("/"),
        0,
        "a badge never asks the provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_a_worker_that_accepts_connections_and_never_answers() {
    // The kernel completes the handshake for a listener that never accepts: the request
    // goes out, and no answer ever comes. Without a time limit the edge would wait for
    // the runtime's ten minutes, and this request's 30 s would run out first.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let world = World::start("health-silent", &[("worker_url", &url)]).await;
    let health = get(&format!("{}/health", world.edge.url), &[]).await;
    assert_eq!(health.status, 503, "{}", health.text());
    let body = health.json();
    assert_eq!(body["ok"], false, "{body}");
    let ok = |service: &str| {
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["service"] == service)
            .map(|c| c["ok"].clone())
    };
    assert_eq!(ok("Bindery worker"), Some(Value::Bool(false)), "{body}");
    assert_eq!(ok("Docker registry"), Some(Value::Bool(true)), "{body}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_links_versions_and_health_answer_in_binderhubs_shapes() {
    let world = World::start("misc", &[]).await;
    let legacy = get(
        &format!(
            "{}/repo/binderhub-ci-repos/requirements/notebooks/index.ipynb",
            world.edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(legacy.status, 302);
    assert_eq!(
        legacy.header("location"),
        Some("/v2/gh/binderhub-ci-repos/requirements/master?urlpath=%2Fnotebooks%2Findex.ipynb")
    );
    let versions = get(&format!("{}/versions", world.edge.url), &[]).await;
    assert!(
        versions.json()["binderhub"]
            .as_str()
            .unwrap()
            .starts_with("bindery-")
    );
    // A CORS preflight gets BinderHub's empty 200 on any route, and every answer allows
    // the `cache-control` request header.
    for path in [
        "/",
        "/build/gh/org/repo/main",
        "/api/v1/resolve/gh/org/repo/main",
    ] {
        let preflight = send(
            "OPTIONS",
            &format!("{}{path}", world.edge.url),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(preflight.status, 200, "{path}");
        assert!(preflight.body.is_empty(), "{path}");
        assert_eq!(
            preflight.header("access-control-allow-headers"),
            Some("cache-control"),
            "{path}"
        );
        assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    }
    assert_eq!(
        versions.header("access-control-allow-headers"),
        Some("cache-control")
    );
    let put = send("PUT", &format!("{}/", world.edge.url), &[], Vec::new()).await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, OPTIONS"));

    let health = get(&format!("{}/health", world.edge.url), &[]).await;
    assert_eq!(health.status, 200, "{}", health.text());
    let checks = health.json()["checks"].as_array().unwrap().clone();
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");
    let again = get(&format!("{}/health", world.edge.url), &[]).await;
    assert_eq!(
        again.header("x-bindery-cache"),
        Some("hit"),
        "health is cached briefly"
    );
    assert_eq!(
        world.worker.peer.count("/health"),
        1,
        "one check of the worker for two answers"
    );
    let page = get(
        &format!(
            "{}/v2/gh/org/repo/main?labpath=analysis.ipynb",
            world.edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("\"launch_path\":\"doc/tree/analysis.ipynb\"")
    );
    let home = get(&format!("{}/", world.edge.url), &[]).await;
    assert!(home.text().contains("Launch link"));
    let home_head = send("HEAD", &format!("{}/", world.edge.url), &[], Vec::new()).await;
    assert_eq!(home_head.status, 200);
    assert_eq!(
        home_head.header("content-type"),
        home.header("content-type")
    );
    // A HEAD of the event stream says what a GET would get, and starts nothing.
    let build_head = send(
        "HEAD",
        &format!("{}/build/gh/org/repo/main", world.edge.url),
        &[("accept", "text/event-stream")],
        Vec::new(),
    )
    .await;
    assert_eq!(build_head.status, 200);
    assert_eq!(build_head.header("content-type"), Some("text/event-stream"));
    assert_eq!(world.worker.peer.count("/api/v1/launches"), 0);
    // The home page is written in several pieces; all of them arrive, and the length
    // sent ahead says so.
    assert!(home.body.len() > 4096, "{} bytes", home.body.len());
    assert_eq!(
        home.header("content-length"),
        Some(home.body.len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_push_hooks_need_the_token_and_refresh_the_ref() {
    let world = World::start("webhook-gitlab", &[("gitlab_webhook_secret", "gl-secret")]).await;
    // The branch moved on GitLab; the push says so, and the edge asks GitLab.
    *world.main_at.lock().unwrap() = NEW_SHA.to_owned();
    let hook = format!("{}/hooks/gitlab", world.edge.url);
    let body = json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": SHA, "after": NEW_SHA, "checkout_sha": NEW_SHA,
        "project": {"path_with_namespace": "group/project", "web_url": "https://gitlab.com/group/project", "default_branch": "main"},
    })
    .to_string()
    .into_bytes();
    let wrong = send(
        "POST",
        &hook,
        &[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "nope"),
            ("x-gitlab-event-uuid", "u-1"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    let good = send(
        "POST",
        &hook,
        &[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "gl-secret"),
            ("x-gitlab-event-uuid", "u-2"),
        ],
        body,
    )
    .await;
    assert_eq!(good.status, 202, "{}", good.text());
    let resolved = get(
        &format!("{}/api/v1/resolve/gl/group%2Fproject/main", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text());
    assert_eq!(
        resolved.json()["resolved_ref"],
        NEW_SHA,
        "the hook refreshed the cached ref"
    );
    assert_eq!(resolved.header("x-bindery-cache"), Some("hit"));
}

/// A commit id nobody has seen: 40 hex digits from the clock and the process.
fn random_commit(salt: &str) -> String {
    use sha2::Digest;
    let seed = format!(
        "{salt}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Issue 12: a link pinned to a made-up commit is refused with 404 after one question to
/// GitHub, and neither the registry nor the worker hears of it; a real commit is checked
/// once and then answered from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn random_pinned_commits_fail_404_and_reach_no_registry_or_worker() {
    let world = World::start("random-pins", &[]).await;
    let (first, second) = (random_commit("a"), random_commit("b"));
    for random in [&first, &second, &first] {
        let (status, got, _) = events(
            &world.build_url(&format!("org/repo/{random}")),
            &[SSE],
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(got.len(), 1, "{got:?}");
        let event = &got[0].event;
        assert_eq!(event.phase.as_str(), "failed");
        assert_eq!(event.status_code, Some(404), "{}", event.message);
        assert!(
            event.message.contains("Could not resolve ref"),
            "{}",
            event.message
        );
        let api = get(
            &format!("{}/api/v1/resolve/gh/org/repo/{random}", world.edge.url),
            &[],
        )
        .await;
        assert_eq!(api.status, 404, "{}", api.text());
    }
    // Each request asked GitHub about its commit: nothing was cached for a made-up one.
    assert_eq!(
        world
            .github
            .count(&format!("/repos/org/repo/commits/{first}")),
        4
    );
    assert_eq!(
        world
            .github
            .count(&format!("/repos/org/repo/commits/{second}")),
        2
    );
    assert_eq!(
        world.worker.peer.count("/api/v1/"),
        0,
        "the worker saw nothing"
    );
    assert_eq!(
        registry_manifest_calls(&world),
        0,
        "the registry saw nothing"
    );

    // A commit that exists is checked once, then cached for good; only then does the
    // registry hear of its image.
    let url = format!("{}/api/v1/resolve/gh/org/repo/{SHA}", world.edge.url);
    let checked = get(&url, &[]).await;
    assert_eq!(checked.status, 200, "{}", checked.text());
    assert_eq!(checked.json()["resolved_ref"], SHA);
    assert_eq!(checked.header("x-bindery-cache"), Some("miss"));
    let again = get(&url, &[]).await;
    assert_eq!(again.header("x-bindery-cache"), Some("hit"));
    assert_eq!(
        world
            .github
            .count(&format!("/repos/org/repo/commits/{SHA}")),
        1
    );
    assert!(
        registry_manifest_calls(&world) >= 1,
        "the real commit's image was looked up"
    );
}

/// Issue 12: every spelling of a dot segment in `urlpath`, `labpath` or `filepath` gets
/// the `/v2` page's 400 with a message that says why.
#[tokio::test(flavor = "multi_thread")]
async fn launch_paths_that_decode_to_dot_segments_are_refused() {
    let world = World::start("dot-segments", &[]).await;
    let spellings = [
        "%252e./%252e./user/x/",
        "%2E%252e/user/x/",
        "%25252e%25252e/hub",
        "a/..%252fhub",
        "a/%252e%252e%255chub",
        "%252e/x",
    ];
    for param in ["urlpath", "labpath", "filepath"] {
        for spelling in spellings {
            let page = get(
                &format!("{}/v2/gh/org/repo/main?{param}={spelling}", world.edge.url),
                &[],
            )
            .await;
            assert_eq!(page.status, 400, "{param}={spelling}: {}", page.text());
            assert!(
                page.text().contains("or &apos;..&apos; once decoded"),
                "{param}={spelling}: {}",
                page.text()
            );
        }
    }
    let fine = get(
        &format!(
            "{}/v2/gh/org/repo/main?urlpath=lab/tree/x.ipynb",
            world.edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(fine.status, 200);
}

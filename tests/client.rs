//! BinderHub's own client against the edge (issue 14, point 3): `@jupyterhub/binderhub-client`
//! from npm, run by Node (`tests/js/binderhub_client.mjs`), talks to the real `bindery edge`
//! with the real components; GitHub and the worker are scripted peers, the registry is the
//! real `docker-registry`. (`tests/system.rs` drives the same client over the whole path
//! with the real worker, JupyterHub and a real build.)
//!
//! The client reports a stream that ends before it calls `close()` as a failure ("Event
//! stream closed unexpectedly"), even right after `ready`: the edge keeps the stream open
//! after its last event, with keepalives, for a bounded time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bindery_core::image;
use bindery_core::sse::{KEEPALIVE, LINGER_KEEPALIVES};
use bindery_core::worker_api::LaunchRequest;
use bindery_system_tests::edge::Edge;
use bindery_system_tests::node::{self, phases};
use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::events_and_tail;
use serde_json::{Value, json};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const LAUNCH_ID: &str = "launch0123456789";
const WORKER_TOKEN: &str = "worker-secret-token";
const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Runs BinderHub's client for `spec` against the edge's `/build`.
fn binderhub_client(edge: &Edge, spec: &str, options: &Value) -> Value {
    node::binderhub_client(&format!("{}/build", edge.url), spec, options)
}

/// Recorded GitHub: `main` and the commit are at SHA.
async fn github() -> Peer {
    Peer::start(|seen: &Seen| {
        let path = seen.uri.as_str();
        if path.ends_with("/commits/main") || path.ends_with(&format!("/commits/{SHA}")) {
            return Answer::json(200, &json!({"sha": SHA}));
        }
        Answer::json(422, &json!({"message": "No commit found for SHA"}))
    })
    .await
}

/// A scripted worker: accepts launches (keeping their requests) and plays `script` as the
/// launch's events, numbered from 1, then ends its stream, as the worker does.
async fn worker(script: Arc<Mutex<Vec<Value>>>) -> Peer {
    Peer::start(move |seen: &Seen| {
        if seen.header("authorization") != Some(&format!("Bearer {WORKER_TOKEN}")) {
            return Answer::json(401, &json!({"error": "bad token"}));
        }
        match (seen.method.as_str(), seen.uri.as_str()) {
            ("POST", "/api/v1/launches") => Answer::json(
                202,
                &json!({"id": LAUNCH_ID, "events_url": format!("/api/v1/launches/{LAUNCH_ID}/events")}),
            ),
            ("GET", uri) if uri == format!("/api/v1/launches/{LAUNCH_ID}/events") => {
                let after: usize = seen
                    .header("last-event-id")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = String::from(":keepalive\n\n");
                for (i, event) in script.lock().unwrap().iter().enumerate().skip(after) {
                    body.push_str(&format!("id: {}\ndata: {event}\n\n", i + 1));
                }
                Answer::with(200, &[("content-type", "text/event-stream")], body)
            }
            _ => Answer::json(404, &json!({"error": "not found"})),
        }
    })
    .await
}

struct World {
    _github: Peer,
    worker: Peer,
    registry: Registry,
    script: Arc<Mutex<Vec<Value>>>,
    prefix: String,
    edge: Edge,
}

impl World {
    async fn start(name: &str, extra: &[(&'static str, &str)]) -> World {
        let dir = scratch(name);
        let github = github().await;
        let script = Arc::new(Mutex::new(Vec::new()));
        let worker = worker(script.clone()).await;
        std::fs::create_dir_all(dir.join("registry")).unwrap();
        let registry = Registry::start(&dir.join("registry"), Auth::None).await;
        let prefix = format!("{}/binder-", registry.host);
        let mut vars: Vec<(&str, String)> = vec![
            ("worker_url", worker.url()),
            ("worker_token", WORKER_TOKEN.into()),
            ("registry_url", registry.url.clone()),
            ("image_prefix", prefix.clone()),
            ("github_api", github.url()),
            ("extra_outbound_host", "http://127.0.0.1:*".into()),
            ("build_token_secret", HEX.into()),
            // This scripted worker does not count `/build`; tests/brakes.rs covers the limit.
            ("build_rate_limit", "0".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let edge = Edge::start(&dir.join("edge"), &vars).await;
        World {
            _github: github,
            worker,
            registry,
            script,
            prefix,
            edge,
        }
    }

    fn image(&self) -> String {
        image::image_name(&self.prefix, "org-repo", SHA)
    }

    async fn push_image(&self) {
        let split = image::split_image(&self.image());
        self.registry
            .push(&split.repository, &split.tag, true)
            .await;
    }

    fn play(&self, events: Vec<Value>) {
        *self.script.lock().unwrap() = events;
    }

    /// The launch requests the worker received.
    fn launches(&self) -> Vec<LaunchRequest> {
        self.worker
            .seen()
            .iter()
            .filter(|s| s.method == "POST" && s.uri == "/api/v1/launches")
            .map(|s| serde_json::from_slice(&s.body).unwrap())
            .collect()
    }

    /// The build token the real loading page of `/v2/gh/<spec>` carries.
    async fn page_token(&self, spec: &str) -> String {
        node::page_token(&format!("{}/v2/gh/{spec}", self.edge.url)).await
    }
}

fn launching_then_ready(image: &str) -> Vec<Value> {
    vec![
        json!({"phase": "launching", "message": "Server requested\n"}),
        json!({
            "phase": "ready", "message": "server running at http://hub.example/user/x/\n",
            "url": "http://hub.example/user/x/", "token": "tok123", "image": image,
        }),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_that_awaits_before_closing_sees_ready_and_no_failure() {
    let world = World::start("client-ready", &[]).await;
    world.push_image().await;
    world.play(launching_then_ready(&world.image()));
    // As the issue tried it, three times: `ready`, a 50 ms await, then `close()`.
    for run in 0..3 {
        let got = binderhub_client(
            &world.edge,
            "gh/org/repo/main",
            &json!({"readyDelayMs": 50}),
        );
        assert_eq!(
            phases(&got),
            ["built", "launching", "ready"],
            "run {run}: {got:#}"
        );
        assert_eq!(got["closed"], true, "{got:#}");
        let ready = &got["events"][2];
        assert_eq!(ready["token"], "tok123", "{got:#}");
        assert_eq!(ready["url"], "http://hub.example/user/x/", "{got:#}");
        assert_eq!(got["rejections"], json!([]), "{got:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_of_a_build_sees_every_event_and_no_failure() {
    let world = World::start("client-slow", &[]).await;
    let image = world.image();
    let mut script = vec![
        json!({"phase": "building", "message": "Step 1/2 : FROM busybox\n"}),
        json!({"phase": "building", "message": "Step 2/2 : RUN true\n"}),
        json!({"phase": "built", "message": "Built image, launching...\n", "imageName": image}),
    ];
    script.extend(launching_then_ready(&image));
    world.play(script);
    // It awaits after every event, and a second after `ready` before closing.
    let got = binderhub_client(
        &world.edge,
        "gh/org/repo/main",
        &json!({"eventDelayMs": 100, "readyDelayMs": 1000}),
    );
    assert_eq!(
        phases(&got),
        [
            "waiting",
            "building",
            "building",
            "built",
            "launching",
            "ready"
        ],
        "{got:#}"
    );
    assert_eq!(got["events"][3]["imageName"], image.as_str(), "{got:#}");
    assert_eq!(world.launches().len(), 1);
    assert!(!world.launches()[0].image_present);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_reaches_the_client_as_one_failure_with_its_message() {
    let world = World::start("client-failed", &[]).await;
    world.play(vec![
        json!({"phase": "building", "message": "Step 1/2 : FROM busybox\n"}),
        json!({"phase": "failed", "status_code": 500, "message": "Failed to build image x\n"}),
    ]);
    let got = binderhub_client(&world.edge, "gh/org/repo/main", &json!({}));
    let phases = phases(&got);
    assert_eq!(phases[..3], ["waiting", "building", "failed"], "{got:#}");
    assert_eq!(
        got["events"][2]["message"], "Failed to build image x\n",
        "the worker's failure comes first: {got:#}"
    );
    // The library then stops by throwing its own `EventStreamClose`, whose `name` is
    // "Error", so it also yields "Error in event stream: Error" (as it does against
    // BinderHub). What it must not say is that the stream closed under it.
    for event in got["events"].as_array().unwrap() {
        assert_ne!(
            event["message"], "Event stream closed unexpectedly\n",
            "{got:#}"
        );
    }
    assert_eq!(got["closed"], false, "the client stopped by itself");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_launches_with_the_loading_pages_build_token_and_a_forged_one_is_refused() {
    let world = World::start("client-token", &[]).await;
    world.push_image().await;
    world.play(launching_then_ready(&world.image()));
    let token = world.page_token("org/repo/main").await;
    let got = binderhub_client(
        &world.edge,
        "gh/org/repo/main",
        &json!({"buildToken": token, "readyDelayMs": 50}),
    );
    assert_eq!(phases(&got), ["built", "launching", "ready"], "{got:#}");
    assert!(
        got["buildUrl"]
            .as_str()
            .unwrap()
            .contains(&format!("build_token={token}")),
        "{got:#}"
    );

    // The token of another link does not open this one.
    let other = world.page_token("org/repo/other").await;
    let got = binderhub_client(
        &world.edge,
        "gh/org/repo/main",
        &json!({"buildToken": other}),
    );
    // The library's own "Error in event stream" follows (see the test of a failed build).
    assert_eq!(phases(&got)[0], "failed", "{got:#}");
    assert_eq!(got["events"][0]["status_code"], 403, "{got:#}");
    assert_eq!(
        got["events"][0]["message"], "Invalid build token\n",
        "{got:#}"
    );
    assert_eq!(
        world.launches().len(),
        1,
        "the refused request launched nothing"
    );
}

/// A client that never closes holds the stream, and the edge instance serving it, only
/// for the bounded time after `ready`: the stream ends by itself, and nothing but
/// keepalives came after `ready`. (The deadline is generous: this is no timing test.)
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_closes_is_let_go_after_a_few_keepalives() {
    let world = World::start("client-bound", &[]).await;
    world.push_image().await;
    world.play(launching_then_ready(&world.image()));
    let url = format!("{}/build/gh/org/repo/main", world.edge.url);
    // A loop of such clients, some at once.
    for _ in 0..2 {
        let clients = (0..4).map(|_| {
            events_and_tail(
                &url,
                &[("accept", "text/event-stream")],
                Duration::from_secs(120),
            )
        });
        for tail in futures::future::join_all(clients).await {
            let last = &tail.events.last().unwrap().event;
            assert_eq!(last.phase.as_str(), "ready", "{:?}", tail.events);
            assert!(tail.ended, "the edge ended the stream by itself");
            let after = String::from_utf8(tail.after).unwrap();
            let keepalives = after.matches(KEEPALIVE).count();
            assert_eq!(
                after,
                KEEPALIVE.repeat(keepalives),
                "only keepalives after ready"
            );
            assert!(
                (1..=LINGER_KEEPALIVES as usize).contains(&keepalives),
                "{keepalives} keepalives"
            );
        }
    }
    // Each of them launched once (the scripted worker counts), and the edge still answers.
    assert_eq!(world.launches().len(), 8);
    assert_eq!(
        bindery_system_tests::sse::get(&format!("{}/versions", world.edge.url), &[])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_only_through_the_client_is_refused_unless_allowed_then_builds_and_launches_nothing()
{
    // Off by default, with BinderHub's 400.
    let world = World::start("client-build-only-off", &[]).await;
    let got = binderhub_client(&world.edge, "gh/org/repo/main", &json!({"buildOnly": true}));
    assert!(
        got["buildUrl"]
            .as_str()
            .unwrap()
            .ends_with("?build_only=true"),
        "{got:#}"
    );
    assert_eq!(phases(&got)[0], "failed", "{got:#}");
    assert_eq!(got["events"][0]["status_code"], 400, "{got:#}");
    assert_eq!(
        got["events"][0]["message"],
        format!("{}\n", bindery_core::launch::BUILD_ONLY_NOT_ALLOWED),
        "{got:#}"
    );
    assert!(world.launches().is_empty());
    drop(world);

    let world = World::start("client-build-only", &[("allow_build_only", "true")]).await;
    let image = world.image();
    // A missing image: the worker is asked for a build-only launch, whose last event is
    // BinderHub's `ready` naming the image.
    world.play(vec![
        json!({"phase": "building", "message": "Step 1/1 : FROM busybox\n"}),
        json!({"phase": "ready", "message": "Done! Image built\n", "imageName": image}),
    ]);
    let got = binderhub_client(
        &world.edge,
        "gh/org/repo/main",
        &json!({"buildOnly": true, "readyDelayMs": 50}),
    );
    assert_eq!(phases(&got), ["waiting", "building", "ready"], "{got:#}");
    assert_eq!(got["events"][2]["imageName"], image.as_str(), "{got:#}");
    assert_eq!(got["events"][2]["message"], "Done! Image built\n");
    let launches = world.launches();
    assert_eq!(launches.len(), 1);
    assert!(launches[0].build_only, "{:?}", launches[0]);

    // The image is there now (the registry says so): done at once, the worker not asked.
    world.push_image().await;
    let resolve = bindery_system_tests::sse::get(
        &format!("{}/api/v1/resolve/gh/org/repo/main", world.edge.url),
        &[],
    )
    .await;
    assert_eq!(resolve.json()["image_present"], true, "{}", resolve.text());
    let got = binderhub_client(
        &world.edge,
        "gh/org/repo/main",
        &json!({"buildOnly": true, "readyDelayMs": 50}),
    );
    assert_eq!(phases(&got), ["ready"], "{got:#}");
    assert_eq!(got["events"][0]["message"], "Done! Found built image\n");
    assert_eq!(got["events"][0]["imageName"], image.as_str());
    assert_eq!(world.launches().len(), 1, "no second launch");
}

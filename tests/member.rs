//! A Bindery edge as a member of a BinderHub federation (issue 14, point 2), end to end:
//! the real `bindery edge` with the real components, the real `docker-registry`, and
//! scripted GitHub and worker peers. The federation's redirector reads `/health` and
//! `/versions` in BinderHub's shapes; pages on other sites (thebe, Jupyter Book) start
//! launches through `/build` when `cors_allow_origin` lets them, which headless Chromium
//! checks from a page served on another origin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bindery_system_tests::browser;
use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::get;
use serde_json::{Value, json};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const WORKER_TOKEN: &str = "worker-secret-token";
const LAUNCH_ID: &str = "launch0123456789";
const BUILD_IMAGE: &str = "quay.io/jupyterhub/repo2docker:2024.07.0";

/// GitHub's commits API: every ref is at SHA.
async fn github() -> Peer {
    Peer::start(|seen: &Seen| {
        if seen.uri.contains("/commits/") {
            return Answer::json(200, &json!({"sha": SHA}));
        }
        Answer::json(404, &json!({"message": "Not Found"}))
    })
    .await
}

/// A worker: BinderHub's health checks, a Kubernetes `builder_info`, and launches that
/// go straight to `ready`.
async fn worker() -> Peer {
    Peer::start(|seen: &Seen| {
        let authorized = seen.header("authorization") == Some(&format!("Bearer {WORKER_TOKEN}"));
        match (seen.method.as_str(), seen.uri.as_str()) {
            ("GET", "/health") => Answer::json(
                200,
                &json!({"ok": true, "checks": [
                    {"service": "JupyterHub API", "ok": true},
                    {"service": "Kubernetes API", "ok": true},
                    {"service": "Pod quota", "ok": true, "total_pods": 12, "build_pods": 2,
                     "user_pods": 10, "quota": 300, "_ignore_failure": true},
                ]}),
            ),
            ("GET", "/versions") => {
                Answer::json(200, &json!({"builder_info": {"build_image": BUILD_IMAGE}}))
            }
            _ if !authorized => Answer::json(401, &json!({"error": "bad token"})),
            ("POST", "/api/v1/launches") => Answer::json(
                202,
                &json!({"id": LAUNCH_ID, "events_url": format!("/api/v1/launches/{LAUNCH_ID}/events")}),
            ),
            ("GET", uri) if uri == format!("/api/v1/launches/{LAUNCH_ID}/events") => {
                let events = [
                    json!({"phase": "launching", "message": "Server requested\n"}),
                    json!({"phase": "ready", "message": "server running at http://hub.example/user/x/\n",
                           "url": "http://hub.example/user/x/", "token": "tok123"}),
                ];
                let mut body = String::new();
                for (i, event) in events.iter().enumerate() {
                    body.push_str(&format!("id: {}\ndata: {event}\n\n", i + 1));
                }
                Answer::with(200, &[("content-type", "text/event-stream")], body)
            }
            _ => Answer::json(404, &json!({"error": "not found"})),
        }
    })
    .await
}

/// A page of another site (a Jupyter Book chapter, say), on its own port.
async fn book_page() -> Peer {
    Peer::start(|_: &Seen| {
        Answer::with(
            200,
            &[("content-type", "text/html; charset=utf-8")],
            "<!doctype html><html><head><title>A book</title></head><body><p>Chapter 1</p></body></html>",
        )
    })
    .await
}

struct Member {
    _github: Peer,
    worker: Peer,
    _registry: Registry,
    edge: Edge,
}

impl Member {
    async fn start(name: &str, extra: &[(&'static str, String)]) -> Member {
        let dir = scratch(name);
        let github = github().await;
        let worker = worker().await;
        std::fs::create_dir_all(dir.join("registry")).unwrap();
        let registry = Registry::start(&dir.join("registry"), Auth::None).await;
        let mut vars: Vec<(&'static str, String)> = vec![
            ("worker_url", worker.url()),
            ("worker_token", WORKER_TOKEN.into()),
            ("registry_url", registry.url.clone()),
            ("image_prefix", format!("{}/binder-", registry.host)),
            ("github_api", github.url()),
            ("extra_outbound_host", "http://127.0.0.1:*".into()),
            ("build_rate_limit", "0".into()),
        ];
        vars.extend(extra.iter().cloned());
        let edge = Edge::start(&dir.join("edge"), &vars).await;
        Member {
            _github: github,
            worker,
            _registry: registry,
            edge,
        }
    }
}

/// Runs `tests/js/cors.cjs` in headless Chromium under the reaper.
fn browse(page_url: &str, build_url: &str, profile: &Path) -> Value {
    browser::run(
        "cors.cjs",
        &[page_url.as_ref(), build_url.as_ref(), profile.as_os_str()],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_on_an_allowed_origin_starts_a_launch_through_build_and_another_origin_cannot_read()
{
    let allowed = book_page().await;
    let foreign = book_page().await;
    let member = Member::start("member-cors", &[("cors_allow_origin", allowed.url())]).await;
    let build_url = format!("{}/build/gh/org/repo/main", member.edge.url);
    let dir = scratch("member-cors-browser");

    let got = browse(
        &format!("{}/chapter.html", allowed.url()),
        &build_url,
        &dir.join("allowed"),
    );
    assert_eq!(got["pageOrigin"], allowed.url(), "{got}");
    assert_ne!(
        allowed.url(),
        member.edge.url,
        "the page is on another origin"
    );
    assert_eq!(
        got["eventSource"]["phases"],
        json!(["waiting", "launching", "ready"]),
        "{got}"
    );
    assert_eq!(
        got["eventSource"]["url"], "http://hub.example/user/x/",
        "{got}"
    );
    assert_eq!(got["fetch"]["status"], 200, "{got}");
    assert_eq!(
        got["fetch"]["phases"],
        json!(["waiting", "launching", "ready"]),
        "{got}"
    );
    assert_eq!(got["fetch"]["error"], Value::Null, "{got}");
    // `cache-control` is not a header a page may send across origins unasked: the browser
    // asked with a preflight first (which Playwright does not show), and went on because
    // the preflight allowed this origin; the foreign page below is refused at that step.
    let answers = got["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{got}");
    assert!(
        answers
            .iter()
            .filter(|a| a["method"] == "GET")
            .all(|a| a["allowOrigin"] == allowed.url()),
        "{got}"
    );
    let launches = |member: &Member| {
        member
            .worker
            .seen()
            .iter()
            .filter(|s| s.method == "POST" && s.uri == "/api/v1/launches")
            .count()
    };
    assert_eq!(launches(&member), 2, "one launch per read");

    // The same launch from a page on an origin that is not listed: the browser withholds
    // every answer from the page.
    let got = browse(
        &format!("{}/chapter.html", foreign.url()),
        &build_url,
        &dir.join("foreign"),
    );
    assert_eq!(got["pageOrigin"], foreign.url(), "{got}");
    assert_eq!(got["eventSource"]["phases"], json!([]), "{got}");
    assert_eq!(got["eventSource"]["error"], "error", "{got}");
    assert_eq!(
        got["eventSource"]["readyState"], 2,
        "closed, not reconnecting: {got}"
    );
    assert_eq!(got["fetch"]["phases"], json!([]), "{got}");
    assert!(
        got["fetch"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TypeError")),
        "{got}"
    );
    assert!(
        got["answers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["allowOrigin"].is_null()),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_versions_answer_what_a_federations_redirector_reads() {
    let member = Member::start("member-health", &[]).await;
    let health = get(&format!("{}/health", member.edge.url), &[]).await;
    assert_eq!(health.status, 200, "{}", health.text());
    let body = health.json();
    assert_eq!(body["ok"], true);
    let services: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "JupyterHub API",
            "Kubernetes API",
            "Pod quota",
            "Docker registry",
            "Bindery worker"
        ]
    );
    // The redirector's rules: no check with `ok: false`, and the pod quota's headroom
    // (`total_pods + 10 < quota`) read from the worker's counts.
    let checks = body["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{body}");
    let quota = checks.iter().find(|c| c["service"] == "Pod quota").unwrap();
    assert_eq!(quota["total_pods"], 12);
    assert_eq!(quota["quota"], 300);
    assert_eq!(quota["_ignore_failure"], true);

    let versions = get(&format!("{}/versions", member.edge.url), &[]).await;
    assert_eq!(versions.status, 200);
    assert_eq!(versions.header("access-control-allow-origin"), Some("*"));
    let body = versions.json();
    assert_eq!(body["builder_info"], json!({"build_image": BUILD_IMAGE}));
    assert_eq!(body["builder"], BUILD_IMAGE);
    assert!(body["binderhub"].as_str().unwrap().starts_with("bindery-"));
    // Two members of one release answer the same bytes, which the redirector compares.
    let again = get(&format!("{}/versions", member.edge.url), &[]).await;
    assert_eq!(again.body, versions.body);
    assert_eq!(member.worker.count("/versions"), 1, "kept for a minute");
}

#[tokio::test(flavor = "multi_thread")]
async fn binderhubs_other_routes_answer_through_spin_toml() {
    let member = Member::start(
        "member-routes",
        &[("about_message", "<p>Run by the lab</p>".into())],
    )
    .await;
    let base = &member.edge.url;
    let providers = get(&format!("{base}/api/repoproviders"), &[]).await;
    assert_eq!(providers.status, 200);
    assert_eq!(providers.json(), bindery_core::provider::repo_providers());
    let about = get(&format!("{base}/about"), &[]).await;
    assert_eq!(about.status, 200);
    assert!(
        about.text().contains("<p>Run by the lab</p>"),
        "{}",
        about.text()
    );
    let old = get(&format!("{base}/assets/images/badge.svg"), &[]).await;
    let badge = get(&format!("{base}/badge.svg"), &[]).await;
    assert_eq!(old.status, 200);
    assert_eq!(old.body, badge.body);
    let icon = get(&format!("{base}/favicon_fail.ico"), &[]).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/x-icon"));
    assert_eq!(
        icon.body,
        bindery_core::favicon::Favicon::Fail.ico(),
        "the core's icon"
    );
}

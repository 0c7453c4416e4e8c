//! Federation mode end to end (issue 14, point 1): a real `bindery edge` with `federation`
//! set in front of two real `bindery edge` members (the prime and another) and two
//! scripted members whose `/versions` and `/health` a test changes (health edge cases).
//!
//! The real members reach a scripted worker and registry that answer their `/health`
//! checks, so they pass the federation's checks as any Bindery member would: their
//! `/versions` equal, their `/health` 200. Waiting for the federation's state uses
//! `/active_hosts`, polled until it shows what the members' answers imply (the checks
//! run after requests, every second here), never a fixed sleep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bindery_core::federation::{self, FederationConfig, FederationState};
use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{Got, get};
use serde_json::{Value, json};

const HEX: &str = "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";
const PUBLIC: &str = "https://binder.example";
const BANNED: &str =
    "Sorry, o/r/HEAD is not allowed to launch. Please contact admins for more info!\n";

/// What a scripted member answers: its `/versions` and its `/health`.
#[derive(Clone)]
struct Script {
    versions: Value,
    health: (u16, Value),
}

fn quota(total: u64) -> Value {
    json!({"ok": true, "checks": [
        {"service": "JupyterHub API", "ok": true},
        {"service": "Pod quota", "total_pods": total, "build_pods": 0, "user_pods": total,
         "quota": 100, "ok": true, "_ignore_failure": true}]})
}

async fn scripted(script: Arc<Mutex<Script>>) -> Peer {
    Peer::start(move |seen| {
        let s = script.lock().unwrap().clone();
        match seen.uri.as_str() {
            "/versions" => Answer::json(200, &s.versions),
            "/health" => Answer::json(s.health.0, &s.health.1),
            _ => Answer::with(404, &[], "scripted member"),
        }
    })
    .await
}

/// A real member edge: `banned_specs` refuses every launch after the build token check,
/// so `/build` tells a valid token (the ban's message) from a refused one.
async fn member(name: &str, worker: &Peer, registry: &Peer) -> Edge {
    Edge::start(
        &scratch(name).join("edge"),
        &[
            ("worker_url", worker.url()),
            ("worker_token", "federation-test".into()),
            ("registry_url", registry.url()),
            ("image_prefix", "127.0.0.1:5000/binder-".into()),
            ("build_token_secret", HEX.into()),
            ("banned_specs", ".*".into()),
            ("build_rate_limit", "0".into()),
            ("public_url", PUBLIC.into()),
        ],
    )
    .await
}

fn location(got: &Got) -> String {
    assert_eq!(got.status, 307, "{}", got.text());
    got.header("location").unwrap().to_owned()
}

/// The member URL a `/build` went to.
fn member_of(got: &Got, urls: &[&str]) -> String {
    let location = location(got);
    urls.iter()
        .find(|u| location.starts_with(&format!("{u}/")))
        .unwrap_or_else(|| panic!("{location} is no member's"))
        .to_string()
}

async fn active(fed: &Edge) -> Vec<String> {
    let got = get(&format!("{}/active_hosts", fed.url), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let mut names: Vec<String> = got.json()["active_hosts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Polls `/active_hosts` until it lists exactly `expected` (60 s at most).
async fn wait_for(fed: &Edge, expected: &[&str]) {
    let mut last = Vec::new();
    for _ in 0..240 {
        last = active(fed).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "active hosts stayed {last:?}, expected {expected:?}\n{}",
        fed.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federating_edge_redirects_to_healthy_members_and_proxies_the_rest_to_the_prime() {
    // The real members' worker and registry: healthy until the test says otherwise.
    let worker_up = Arc::new(Mutex::new(true));
    let up = worker_up.clone();
    let worker = Peer::start(move |seen| match seen.uri.as_str() {
        "/health" if *up.lock().unwrap() => Answer::json(200, &json!({"ok": true, "checks": []})),
        "/health" => Answer::json(503, &json!({"ok": false, "checks": []})),
        _ => Answer::with(404, &[], "scripted worker"),
    })
    .await;
    let registry = Peer::start(|_| Answer::json(200, &json!({}))).await;
    let prime = member("federation-prime", &worker, &registry).await;
    let other = member("federation-other", &worker, &registry).await;
    let versions = get(&format!("{}/versions", prime.url), &[]).await.json();
    let script = Arc::new(Mutex::new(Script {
        versions: versions.clone(),
        health: (200, quota(1)),
    }));
    let c = scripted(script.clone()).await;
    let light = scripted(Arc::new(Mutex::new(Script {
        versions: versions.clone(),
        health: (200, quota(1)),
    })))
    .await;

    let config = json!({
        // The chart's own keys, ignored.
        "enabled": true, "image": {"name": "x"},
        "check": {"period": 1, "jitter": 0, "retries": 1, "timeout": 3, "failed_period": 1},
        "load_balancer": "rendezvous",
        "pod_headroom": 10,
        "host_cookie_age_hours": 4,
        "hosts": {
            "a": {"url": prime.url, "weight": 1, "health": format!("{}/health", prime.url),
                  "versions": format!("{}/versions", prime.url), "prime": true},
            "b": {"url": format!("{}/", other.url), "weight": 1},
            "c": {"url": c.url(), "weight": 1},
            "light": {"url": light.url(), "weight": 0},
            "retired": null,
        }
    });
    let text = config.to_string();
    let fed = Edge::start(
        &scratch("federation").join("edge"),
        &[
            ("federation", text.clone()),
            ("federation_outbound_host", "http://127.0.0.1:*".into()),
            ("public_url", PUBLIC.into()),
        ],
    )
    .await;
    let urls = [
        prime.url.as_str(),
        other.url.as_str(),
        &c.url(),
        &light.url(),
    ];
    let parsed = FederationConfig::parse(&text).unwrap().unwrap();
    let all_healthy = FederationState::new("all", 0);
    let expected = |path: &str| {
        federation::choose(&parsed, &all_healthy, path, None, 0.5)
            .unwrap()
            .member
            .url
            .clone()
    };

    // Before any check every member counts. The redirect keeps path and query, sets the
    // cookie for the path, carries BinderHub's CORS headers, and goes where the
    // redirector's rendezvous hashing sends the repository.
    let build = |path: String, cookie: Option<String>| {
        let url = format!("{}{path}", fed.url);
        async move {
            match cookie {
                Some(c) => get(&url, &[("cookie", &c)]).await,
                None => get(&url, &[]).await,
            }
        }
    };
    let got = build("/build/gh/o/r/HEAD?build_token=t&x=1".into(), None).await;
    let chosen = member_of(&got, &urls);
    assert_eq!(chosen, expected("/build/gh/o/r/HEAD"));
    assert_eq!(
        location(&got),
        format!("{chosen}/build/gh/o/r/HEAD?build_token=t&x=1")
    );
    assert_eq!(
        got.header("set-cookie").unwrap(),
        format!("host={chosen}; Max-Age=14400; Path=/build/gh/o/r/HEAD")
    );
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        got.header("access-control-allow-headers"),
        Some("cache-control")
    );

    // The real Bindery members pass the checks: still listed once c has been checked
    // twice (every member is checked in the same rounds).
    for _ in 0..240 {
        if c.count("/versions") >= 2 {
            break;
        }
        get(&format!("{}/active_hosts", fed.url), &[]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(c.count("/health") >= 2, "{}", fed.log_text());
    wait_for(&fed, &["a", "b", "c", "light"]).await;

    // Every ref of a repository lands on one member; repositories spread over the three
    // weighted members; weight 0 never receives one.
    let mut spread = std::collections::BTreeSet::new();
    for i in 0..30 {
        let repo = format!("/build/gh/owner/repo-{i}");
        let first = member_of(&build(format!("{repo}/HEAD"), None).await, &urls);
        assert_eq!(first, expected(&format!("{repo}/HEAD")));
        for r in ["main", "v1.0"] {
            let again = member_of(&build(format!("{repo}/{r}"), None).await, &urls);
            assert_eq!(again, first, "{repo}/{r}");
        }
        spread.insert(first);
    }
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(!spread.contains(&light.url()));
    // The cookie wins when it names a healthy member, in either quoting.
    let not_chosen = [prime.url.clone(), other.url.clone(), c.url()]
        .into_iter()
        .find(|u| *u != chosen)
        .unwrap();
    for cookie in [
        format!("host={not_chosen}"),
        format!("x=1; host=\"{not_chosen}\""),
    ] {
        let got = build("/build/gh/o/r/HEAD".into(), Some(cookie)).await;
        assert_eq!(member_of(&got, &urls), not_chosen);
    }

    // Versions that differ from the prime's take c out, and the cookie no longer wins.
    script.lock().unwrap().versions = json!({"binderhub": "another"});
    wait_for(&fed, &["a", "b", "light"]).await;
    for i in 0..20 {
        let got = build(format!("/build/gh/owner/repo-{i}/HEAD"), None).await;
        assert_ne!(member_of(&got, &urls), c.url());
    }
    let got = build(
        "/build/gh/o/r/HEAD".into(),
        Some(format!("host={}", c.url())),
    )
    .await;
    assert_ne!(member_of(&got, &urls), c.url());
    // Back in step: back in the rotation.
    script.lock().unwrap().versions = versions.clone();
    wait_for(&fed, &["a", "b", "c", "light"]).await;
    // Pod headroom: 90 of 100 pods leaves less than 10 free.
    script.lock().unwrap().health = (200, quota(90));
    wait_for(&fed, &["a", "b", "light"]).await;
    script.lock().unwrap().health = (200, quota(89));
    wait_for(&fed, &["a", "b", "c", "light"]).await;

    // A build token minted by the prime through the federation names the federation's
    // origin and verifies on another member.
    let page = get(&format!("{}/v2/gh/o/r/HEAD", fed.url), &[]).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let start = html
        .find("<script id=\"config\" type=\"application/json\">")
        .unwrap();
    let config_json = &html[start..];
    let config_json =
        &config_json[config_json.find('>').unwrap() + 1..config_json.find("</script>").unwrap()];
    let token = serde_json::from_str::<Value>(config_json).unwrap()["build_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["origin"], "binder.example");
    let on_other = |origin: &'static str| {
        let url = format!("{}/build/gh/o/r/HEAD?build_token={token}", other.url);
        async move {
            let got = get(&url, &[("accept", "text/event-stream"), ("origin", origin)]).await;
            let text = got.text();
            let data = text
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_owned();
            serde_json::from_str::<Value>(&data).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(on_other(PUBLIC).await, BANNED);
    assert_eq!(
        on_other("https://elsewhere.example").await,
        "Invalid build token\n"
    );
    // Other routes are the prime's answers; badges stay with the federating edge.
    let prime_home = get(&format!("{}/", prime.url), &[]).await;
    let fed_home = get(&format!("{}/", fed.url), &[]).await;
    assert_eq!((fed_home.status, fed_home.text()), (200, prime_home.text()));
    assert_eq!(get(&format!("{}/nowhere", fed.url), &[]).await.status, 404);
    let badge = get(&format!("{}/badge_logo.svg", fed.url), &[]).await;
    assert_eq!(badge.status, 200);
    assert!(badge.text().contains("<svg"));

    // Nobody healthy: only the prime gets builds, unhealthy as it is.
    *worker_up.lock().unwrap() = false;
    script.lock().unwrap().health = (503, json!({"ok": false, "checks": []}));
    // The light member weighs nothing, so the healthy set has no candidate but itself.
    wait_for(&fed, &["light"]).await;
    for i in 0..20 {
        let got = build(format!("/build/gh/owner/repo-{i}/HEAD"), None).await;
        assert_eq!(member_of(&got, &urls), prime.url);
    }
    // The prime comes back.
    *worker_up.lock().unwrap() = true;
    wait_for(&fed, &["a", "b", "light"]).await;

    drop((fed, prime, other));
}

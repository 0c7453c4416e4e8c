//! The edge's `/metrics`, end to end: the real `bindery edge` binary and the real
//! components of `spin.toml` count into the host's `metrics` store; the registry is the
//! real `docker-registry`; GitHub is a scripted peer answering with a recorded commits API
//! answer (its `x-ratelimit-remaining` included).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bindery_core::image;
use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{get, send};
use serde_json::json;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// GitHub's commits API as recorded: `main` at SHA, with the rate limit left; 422 for any
/// other ref.
async fn github() -> Peer {
    Peer::start(|seen: &Seen| {
        if seen.uri.ends_with("/commits/main") {
            return Answer::with(
                200,
                &[
                    ("content-type", "application/json; charset=utf-8"),
                    ("etag", "\"etag-main\""),
                    ("x-ratelimit-limit", "5000"),
                    ("x-ratelimit-remaining", "4321"),
                    ("x-ratelimit-reset", "1765000000"),
                ],
                json!({"sha": SHA}).to_string(),
            );
        }
        Answer::json(422, &json!({"message": "No commit found for SHA"}))
    })
    .await
}

/// The samples of a `/metrics` text, by series.
fn samples(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a whole number"))
        })
        .collect()
}

async fn scrape(edge: &Edge) -> BTreeMap<String, i64> {
    let got = get(&format!("{}/metrics", edge.url), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        got.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    samples(&got.text())
}

fn requests(route: &str, status: u16) -> String {
    format!("bindery_edge_requests_total{{route=\"{route}\",status=\"{status}\"}}")
}

fn cache(cache: &str, result: &str) -> String {
    format!("bindery_edge_cache_lookups_total{{cache=\"{cache}\",result=\"{result}\"}}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_counts_routes_statuses_caches_providers_and_the_github_rate_limit() {
    let dir = scratch("metrics");
    let github = github().await;
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    let registry = Registry::start(&dir.join("registry"), Auth::None).await;
    let prefix = format!("{}/binder-", registry.host);
    let vars: Vec<(&str, String)> = vec![
        ("registry_url", registry.url.clone()),
        ("image_prefix", prefix.clone()),
        ("github_api", github.url()),
        ("extra_outbound_host", "http://127.0.0.1:*".into()),
    ];
    let edge = Edge::start(&dir.join("edge"), &vars).await;
    let before = scrape(&edge).await;
    assert_eq!(
        before.get(&requests("/versions", 200)),
        Some(&1),
        "{before:?}"
    );
    assert!(
        !before.keys().any(|k| k.starts_with("bindery_edge_cache")),
        "nothing looked up yet: {before:?}"
    );

    // The image of `org/present` is in the registry; that of `org/absent` is not.
    let present = image::image_name(&prefix, "org-present", SHA);
    let split = image::split_image(&present);
    registry.push(&split.repository, &split.tag, true).await;
    let resolve = |repo: &str| format!("{}/api/v1/resolve/gh/org/{repo}/main", edge.url);
    for (repo, exists) in [("present", true), ("absent", false)] {
        for round in 0..2 {
            let got = get(&resolve(repo), &[]).await;
            assert_eq!(got.status, 200, "{}", got.text());
            assert_eq!(got.json()["image_present"], exists, "{repo} {round}");
        }
    }
    // A ref GitHub does not know: one more provider request, a ref miss, no image lookup.
    let gone = get(
        &format!("{}/api/v1/resolve/gh/org/present/gone", edge.url),
        &[],
    )
    .await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(
        get(&format!("{}/badge.svg", edge.url), &[]).await.status,
        200
    );
    let refused = send("POST", &format!("{}/badge.svg", edge.url), &[], Vec::new()).await;
    assert_eq!(refused.status, 405);

    let after = scrape(&edge).await;
    let github_calls = github.count("/repos/");
    assert_eq!(
        github_calls, 3,
        "main twice (one per repository), gone once"
    );
    let expected = [
        (requests("/api/v1/resolve/...", 200), 4),
        (requests("/api/v1/resolve/...", 404), 1),
        (requests("/badge.svg", 200), 1),
        (requests("/badge.svg", 405), 1),
        // The first scrape, and the start-up's check.
        (requests("/metrics", 200), 1),
        (requests("/versions", 200), 1),
        (cache("ref", "miss"), 3),
        (cache("ref", "hit"), 2),
        (cache("image", "miss"), 2),
        (cache("image", "hit"), 2),
        (
            "bindery_edge_provider_requests_total{provider=\"GitHub\"}".to_owned(),
            github_calls as i64,
        ),
        ("binderhub_github_rate_limit_remaining".to_owned(), 4321),
    ];
    for (series, value) in &expected {
        assert_eq!(after.get(series), Some(value), "{series} in {after:#?}");
    }
    assert_eq!(after.len(), expected.len(), "no other series: {after:#?}");
    edge.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_are_counted_exactly_and_distinct_paths_add_no_series() {
    let dir = scratch("metrics-flood");
    let edge = Edge::start(&dir.join("edge"), &[]).await;
    let url = edge.url.clone();
    // What the clients saw, as the series that should count it; the start-up's check first.
    let mut seen: BTreeMap<String, i64> = BTreeMap::from([(requests("/versions", 200), 1)]);

    // 200 at once, each in its own fresh instance. The host may refuse some (at most 100
    // in flight per client address): each answer is counted under the status it had.
    let badges: Vec<_> = (0..200)
        .map(|_| {
            let url = format!("{url}/badge.svg");
            tokio::spawn(async move { get(&url, &[]).await.status })
        })
        .collect();
    for badge in badges {
        *seen
            .entry(requests("/badge.svg", badge.await.unwrap()))
            .or_default() += 1;
    }

    // Distinct paths an attacker makes up: no route of its own, a route with made-up specs of a
    // provider that does not exist, a live badge of one. Each counts under its route
    // pattern: no path or spec becomes a label.
    for chunk in 0..15 {
        let mut flood = Vec::new();
        for i in chunk * 20..(chunk + 1) * 20 {
            for (route, path) in [
                // spin.toml's catch-all `/...` (launch: federation mode's proxy, else 404).
                ("/...", format!("/nowhere/{i}/x{i}")),
                (
                    "/api/v1/resolve/...",
                    format!("/api/v1/resolve/nope/org/repo{i}/main"),
                ),
                ("/status/...", format!("/status/nope/org{i}.svg")),
            ] {
                let url = format!("{url}{path}");
                flood.push(tokio::spawn(
                    async move { (route, get(&url, &[]).await.status) },
                ));
            }
        }
        for request in flood {
            let (route, status) = request.await.unwrap();
            *seen.entry(requests(route, status)).or_default() += 1;
        }
    }

    let after = scrape(&edge).await;
    assert_eq!(
        after, seen,
        "every answer counted once, under its route and status"
    );
    let badges: i64 = seen
        .iter()
        .filter(|(k, _)| k.contains("route=\"/badge.svg\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(badges, 200);
    assert_eq!(seen.get(&requests("/...", 404)), Some(&300));
    assert!(
        after.len() <= 10,
        "a few series for 1,100 requests: {after:#?}"
    );
    edge.stop();
}

//! Every provider through the edge, against recorded provider answers served on loopback,
//! and the registry's authentication schemes against the real `docker-registry`.
//!
//! One scripted peer plays all provider APIs: the edge's endpoint variables (`github_api`,
//! `gitlab_api`, `doi_resolver`, `figshare_api`, `hydroshare_base`) point at it, and the
//! DOI resolver's redirects lead back to it, as doi.org leads to Zenodo or a Dataverse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bindery_core::image;
use bindery_system_tests::edge::Edge;
use bindery_system_tests::peer::{Answer, Peer, Seen};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{events, get};
use serde_json::json;

const SHA: &str = "38e50c71130fcf56655685f0992f4f125bef3879";
const GL_SHA: &str = "b3344b7f17c335a817c5d7608c5e47fd7cabc023";
const GIST_SHA: &str = "7daa381aae8409bfe28193e2ed8f767c26371237";

fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

/// Recorded answers of every provider, by path.
fn providers(seen: &Seen, me: &str) -> Answer {
    let uri = seen.uri.as_str();
    match uri {
        "/gh/repos/org/repo/commits/v1" => {
            if seen.header("if-none-match") == Some("\"e-v1\"") {
                return Answer::with(304, &[("etag", "\"e-v1\"")], "");
            }
            Answer::with(
                200,
                &[("etag", "\"e-v1\""), ("content-type", "application/json")],
                json!({"sha": SHA}).to_string(),
            )
        }
        // Pinned commits, as the commits and gist revision APIs answer for ones that exist.
        u if u == format!("/gh/repos/org/repo/commits/{SHA}") => {
            Answer::json(200, &json!({"sha": SHA}))
        }
        u if u
            == format!(
                "/gl/api/v4/projects/gitlab-org%2Fgitlab-foss/repository/commits/{GL_SHA}"
            ) =>
        {
            Answer::json(200, &json!({"id": GL_SHA}))
        }
        u if u == format!("/gh/gists/8a658f7f63b13768d1e75fa2464f5092/{GIST_SHA}") => Answer::json(
            200,
            &json!({"public": true, "history": [{"version": GIST_SHA}]}),
        ),
        u if u.starts_with("/gh/repos/org/limited/commits/") => Answer::with(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "4102444800"),
            ],
            json!({"message": "API rate limit exceeded"}).to_string(),
        ),
        "/gh/gists/8a658f7f63b13768d1e75fa2464f5092" => Answer::json(
            200,
            &json!({"public": true, "history": [{"version": GIST_SHA}, {"version": SHA}]}),
        ),
        "/gl/api/v4/projects/gitlab-org%2Fgitlab-foss/repository/commits/v10.0.6" => {
            Answer::json(200, &json!({"id": GL_SHA}))
        }
        "/git/repo.git/info/refs?service=git-upload-pack" => {
            let body = format!(
                "{}0000{}{}0000",
                pkt("# service=git-upload-pack\n"),
                pkt(&format!("{SHA} HEAD\0symref=HEAD:refs/heads/main\n")),
                pkt(&format!("{SHA} refs/heads/main\n"))
            );
            Answer::with(
                200,
                &[(
                    "content-type",
                    "application/x-git-upload-pack-advertisement",
                )],
                body,
            )
        }
        "/doi/10.5281/zenodo.3242073" => Answer::with(
            302,
            &[("location", &format!("{me}/zenodo/record/3242073"))],
            "",
        ),
        "/zenodo/record/3242073" => {
            Answer::with(301, &[("location", "/zenodo/records/3242074")], "")
        }
        "/zenodo/records/3242074" => {
            Answer::with(200, &[("content-type", "text/html")], "<html>record</html>")
        }
        "/doi/10.6084/m9.figshare.9782777" => Answer::with(
            302,
            &[("location", &format!("{me}/figshare/articles/9782777"))],
            "",
        ),
        "/figshare/articles/9782777" => Answer::with(200, &[], "<html>article</html>"),
        "/figshare-api/articles/9782777/versions" => Answer::json(
            200,
            &json!([{"version": 1}, {"version": 3}, {"version": 2}]),
        ),
        "/doi/10.7910/DVN/TJCLKP" => Answer::with(
            302,
            &[(
                "location",
                &format!("{me}/dataset.xhtml?persistentId=doi:10.7910/DVN/TJCLKP"),
            )],
            "",
        ),
        "/dataset.xhtml?persistentId=doi:10.7910/DVN/TJCLKP" => {
            Answer::with(200, &[], "<html>dataset</html>")
        }
        "/api/datasets/:persistentId?persistentId=doi%3A10.7910%2FDVN%2FTJCLKP" => Answer::json(
            200,
            &json!({"status": "OK", "data": {"id": 3035124, "latestVersion": {"versionNumber": 4, "versionMinorNumber": 0}}}),
        ),
        "/hs/hsapi/resource/142c59757ed54de1816777828c9716e7/scimeta/elements" => Answer::json(
            200,
            &json!({"dates": [{"type": "modified", "start_date": "2018-12-27T18:16:46.071815Z"}]}),
        ),
        "/ckan/api/3/action/package_show?id=turtles" => Answer::json(
            200,
            &json!({"success": true, "result": {"metadata_modified": "2024-04-02T02:10:31.123456"}}),
        ),
        _ => Answer::json(404, &json!({"message": "Not Found"})),
    }
}

async fn provider_peer() -> Peer {
    // The peer needs its own URL for absolute redirects: learn it from the Host header.
    Peer::start(|seen: &Seen| {
        let me = format!("http://{}", seen.header("host").unwrap_or("127.0.0.1"));
        providers(seen, &me)
    })
    .await
}

async fn edge_for(
    name: &str,
    peer: &Peer,
    registry: &Registry,
    extra: &[(&'static str, String)],
) -> Edge {
    let url = peer.url();
    let mut vars: Vec<(&'static str, String)> = vec![
        ("worker_url", "http://127.0.0.1:9".into()),
        ("worker_token", "t".into()),
        ("registry_url", registry.url.clone()),
        ("image_prefix", format!("{}/binder-", registry.host)),
        ("github_api", format!("{url}/gh")),
        ("gitlab_api", format!("{url}/gl/api/v4")),
        ("doi_resolver", format!("{url}/doi")),
        ("figshare_api", format!("{url}/figshare-api")),
        ("hydroshare_base", format!("{url}/hs")),
        ("extra_outbound_host", "http://127.0.0.1:*".into()),
        // No worker here counts `/build`; tests/brakes.rs covers the limit.
        ("build_rate_limit", "0".into()),
    ];
    vars.extend(extra.iter().cloned());
    Edge::start(&scratch(name).join("edge"), &vars).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_resolves_through_the_edge_to_binderhubs_image_name() {
    let peer = provider_peer().await;
    let dir = scratch("providers-registry");
    let registry = Registry::start(&dir, Auth::None).await;
    let edge = edge_for("providers", &peer, &registry, &[]).await;
    let git_url = percent(&format!("{}/git/repo.git", peer.url()));
    let ckan_url = percent(&format!("{}/ckan/dataset/turtles", peer.url()));
    // (path after /api/v1/resolve/, resolved ref, build slug)
    let cases = [
        (
            "gh/org/repo/v1".to_string(),
            SHA.to_string(),
            "org-repo".to_string(),
        ),
        (
            "gl/gitlab-org%2Fgitlab-foss/v10.0.6".into(),
            GL_SHA.into(),
            "gitlab_-org-gitlab_-foss".into(),
        ),
        (
            "gist/mariusvniekerk/8a658f7f63b13768d1e75fa2464f5092/HEAD".into(),
            GIST_SHA.into(),
            "8a658f7f63b13768d1e75fa2464f5092".into(),
        ),
        (
            format!("git/{git_url}/main"),
            SHA.into(),
            format!("{}/git/repo.git", peer.url()),
        ),
        (
            "zenodo/10.5281/zenodo.3242073".into(),
            "3242074".into(),
            "zenodo-3242074".into(),
        ),
        (
            "figshare/10.6084/m9.figshare.9782777".into(),
            "9782777.v3".into(),
            "figshare-9782777.v3".into(),
        ),
        (
            "dataverse/10.7910/DVN/TJCLKP".into(),
            "3035124.v4.0".into(),
            "dataverse-dvn-2ftjclkp".into(),
        ),
        (
            "hydroshare/142c59757ed54de1816777828c9716e7".into(),
            "142c59757ed54de1816777828c9716e7.v1545934606".into(),
            "hydroshare-142c59757ed54de1816777828c9716e7.v1545934606".into(),
        ),
        (
            format!("ckan/{ckan_url}"),
            "turtles.v1712023831".into(),
            "ckan-turtles".into(),
        ),
    ];
    for (path, resolved_ref, slug) in &cases {
        let got = get(&format!("{}/api/v1/resolve/{path}", edge.url), &[]).await;
        assert_eq!(got.status, 200, "{path}: {}", got.text());
        let body = got.json();
        assert_eq!(body["resolved_ref"], *resolved_ref, "{path}");
        let expected = image::image_name(&format!("{}/binder-", registry.host), slug, resolved_ref);
        assert_eq!(body["image"], expected, "{path}");
        assert_eq!(body["image_present"], false, "{path}");
        assert_eq!(got.header("x-bindery-cache"), Some("miss"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn github_revalidates_an_expired_ref_with_its_etag_and_reports_rate_limits() {
    let peer = provider_peer().await;
    let registry = Registry::start(&scratch("etag-registry"), Auth::None).await;
    let edge = edge_for("etag", &peer, &registry, &[("ref_ttl_seconds", "1".into())]).await;
    let url = format!("{}/api/v1/resolve/gh/org/repo/v1", edge.url);
    assert_eq!(get(&url, &[]).await.header("x-bindery-cache"), Some("miss"));
    assert_eq!(get(&url, &[]).await.header("x-bindery-cache"), Some("hit"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let again = get(&url, &[]).await;
    assert_eq!(again.json()["resolved_ref"], SHA);
    let conditional: Vec<_> = peer
        .seen()
        .into_iter()
        .filter(|s| s.uri == "/gh/repos/org/repo/commits/v1")
        .collect();
    assert_eq!(conditional.len(), 2, "one fetch, one revalidation");
    assert_eq!(conditional[1].header("if-none-match"), Some("\"e-v1\""));

    let limited = get(
        &format!("{}/api/v1/resolve/gh/org/limited/main", edge.url),
        &[],
    )
    .await;
    assert_eq!(limited.status, 429);
    assert!(
        limited.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("GitHub rate limit exceeded. Try again in")
    );
    let (_, got, _) = events(
        &format!("{}/build/gh/org/limited/main", edge.url),
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(got[0].event.status_code, Some(429));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_check_works_with_basic_auth_and_refuses_bad_credentials() {
    let peer = provider_peer().await;
    let dir = scratch("basic-registry");
    let registry = Registry::start(
        &dir,
        Auth::Basic {
            username: "puller".into(),
            password: "s3cret".into(),
        },
    )
    .await;
    let img = image::image_name(&format!("{}/binder-", registry.host), "org-repo", SHA);
    let split = image::split_image(&img);
    registry.push(&split.repository, &split.tag, false).await;

    let good = edge_for(
        "basic",
        &peer,
        &registry,
        &[
            ("registry_username", "puller".into()),
            ("registry_password", "s3cret".into()),
        ],
    )
    .await;
    let got = get(&format!("{}/api/v1/resolve/gh/org/repo/v1", good.url), &[]).await;
    assert_eq!(got.json()["image_present"], true, "{}", got.text());
    assert!(
        !good.log_text().contains("s3cret"),
        "the registry password never reaches the log"
    );

    let bad = edge_for(
        "basic-bad",
        &peer,
        &registry,
        &[
            ("registry_username", "puller".into()),
            ("registry_password", "wrong".into()),
        ],
    )
    .await;
    let got = get(&format!("{}/api/v1/resolve/gh/org/repo/v1", bad.url), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json()["image_present"],
        serde_json::Value::Null,
        "a refused check is reported as unknown, not as missing"
    );
    assert_eq!(got.header("x-bindery-image-cache"), Some("error"));
}

fn percent(s: &str) -> String {
    bindery_core::resolve::encode_all(s)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_check_follows_a_bearer_challenge_and_caches_the_token() {
    let peer = provider_peer().await;
    let dir = scratch("token-registry");
    let registry = Registry::start(
        &dir,
        Auth::Token {
            username: "pusher".into(),
            password: "p4ss".into(),
        },
    )
    .await;
    let prefix = format!("{}/binder-", registry.host);
    let present = image::image_name(&prefix, "org-repo", SHA);
    let split = image::split_image(&present);
    registry.push(&split.repository, &split.tag, true).await;

    // Anonymous pulls are allowed by this token server: no registry credentials at the edge.
    let edge = edge_for(
        "token",
        &peer,
        &registry,
        &[("image_missing_ttl_seconds", "1".into())],
    )
    .await;
    let got = get(&format!("{}/api/v1/resolve/gh/org/repo/v1", edge.url), &[]).await;
    assert_eq!(got.json()["image_present"], true, "{}", got.text());
    let missing = get(
        &format!(
            "{}/api/v1/resolve/gl/gitlab-org%2Fgitlab-foss/v10.0.6",
            edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(missing.json()["image_present"], false, "{}", missing.text());

    // "Missing" expires after a second: the next check asks the registry again, with the
    // token it already has.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = get(
        &format!(
            "{}/api/v1/resolve/gl/gitlab-org%2Fgitlab-foss/v10.0.6",
            edge.url
        ),
        &[],
    )
    .await;
    assert_eq!(again.header("x-bindery-image-cache"), Some("miss"));

    let tokens = std::fs::read_to_string(dir.join("token-server.log")).unwrap();
    let edge_tokens: Vec<&str> = tokens
        .lines()
        .filter(|l| l.contains("GET /token") && l.contains("%3Apull&"))
        .collect();
    assert_eq!(
        edge_tokens.len(),
        2,
        "one token per repository, reused while valid:\n{tokens}"
    );
    let log = std::fs::read_to_string(dir.join("registry.log")).unwrap();
    let heads = log
        .lines()
        .filter(|l| {
            l.contains("http.request.method=HEAD")
                && l.contains("gitlab-5f")
                && l.contains("response completed")
        })
        .count();
    assert!(
        heads >= 2,
        "the second check reached the registry with the cached token"
    );

    // With pull credentials the token request carries them: the right ones get a token,
    // a wrong password is refused by the token server and the check reports an error.
    for (name, password, present, cache) in [
        ("token-user", "p4ss", serde_json::Value::Bool(true), "miss"),
        ("token-wrong", "wrong", serde_json::Value::Null, "error"),
    ] {
        let edge = edge_for(
            name,
            &peer,
            &registry,
            &[
                ("registry_username", "pusher".into()),
                ("registry_password", password.into()),
            ],
        )
        .await;
        let got = get(&format!("{}/api/v1/resolve/gh/org/repo/v1", edge.url), &[]).await;
        assert_eq!(
            got.json()["image_present"],
            present,
            "{name}: {}",
            got.text()
        );
        assert_eq!(got.header("x-bindery-image-cache"), Some(cache), "{name}");
    }
    let tokens = std::fs::read_to_string(dir.join("token-server.log")).unwrap();
    assert!(
        tokens
            .lines()
            .any(|l| l.contains("GET /token") && l.contains(" 401 ")),
        "the wrong password reached the token server:\n{tokens}"
    );
}

/// Issue 12: a link pinned to a commit is checked with its provider (GitHub's commits
/// API, GitLab's, the gist revision API) through the real edge: one that exists resolves
/// once and is then answered from the cache, a made-up one is a 404, a rate limit a 429.
#[tokio::test(flavor = "multi_thread")]
async fn pinned_commits_are_checked_with_each_provider() {
    let peer = provider_peer().await;
    let registry = Registry::start(&scratch("pins-registry"), Auth::None).await;
    let edge = edge_for("pins", &peer, &registry, &[]).await;
    let made_up = "5e2f0c9a7b3d4e1f8a6b0c2d4e6f8a0b1c3d5e7f";
    let gist = "gist/mariusvniekerk/8a658f7f63b13768d1e75fa2464f5092";
    let gitlab = "gl/gitlab-org%2Fgitlab-foss";
    // (spec, status, the provider request it makes)
    let cases = [
        (
            format!("gh/org/repo/{SHA}"),
            200,
            format!("/gh/repos/org/repo/commits/{SHA}"),
        ),
        (
            format!("gh/org/repo/{made_up}"),
            404,
            format!("/gh/repos/org/repo/commits/{made_up}"),
        ),
        (
            format!("gh/org/limited/{made_up}"),
            429,
            format!("/gh/repos/org/limited/commits/{made_up}"),
        ),
        (
            format!("{gitlab}/{GL_SHA}"),
            200,
            format!("/gl/api/v4/projects/gitlab-org%2Fgitlab-foss/repository/commits/{GL_SHA}"),
        ),
        (
            format!("{gitlab}/{made_up}"),
            404,
            format!("/gl/api/v4/projects/gitlab-org%2Fgitlab-foss/repository/commits/{made_up}"),
        ),
        (
            format!("{gist}/{GIST_SHA}"),
            200,
            format!("/gh/gists/8a658f7f63b13768d1e75fa2464f5092/{GIST_SHA}"),
        ),
        (
            format!("{gist}/{made_up}"),
            404,
            format!("/gh/gists/8a658f7f63b13768d1e75fa2464f5092/{made_up}"),
        ),
    ];
    for (spec, status, upstream) in &cases {
        let url = format!("{}/api/v1/resolve/{spec}", edge.url);
        let got = get(&url, &[]).await;
        assert_eq!(got.status, *status, "{spec}: {}", got.text());
        assert_eq!(peer.count(upstream), 1, "{spec}");
        let again = get(&url, &[]).await;
        assert_eq!(again.status, *status, "{spec}");
        if *status == 200 {
            assert_eq!(again.header("x-bindery-cache"), Some("hit"), "{spec}");
            assert_eq!(
                peer.count(upstream),
                1,
                "{spec}: checked once, cached for good"
            );
        } else {
            assert_eq!(peer.count(upstream), 2, "{spec}: nothing cached");
        }
    }
}

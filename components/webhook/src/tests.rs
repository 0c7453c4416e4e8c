#![allow(clippy::unwrap_used)]

use bindery_core::cache::{CacheTtl, CachedRef, RefSource};
use bindery_core::provider::ProviderSettings;
use bindery_core::webhook::RepoScope;
use bindery_edge::cache::MemoryKv;
use bindery_edge::config::{
    BANNED_SPECS, GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SECRET, IMAGE_PREFIX, PREBUILD_SPECS,
    WORKER_TOKEN, WORKER_URL,
};
use bindery_edge::fetch::FetchError;
use bindery_edge::resolve::{ResolveSource, resolve_spec};
use bindery_edge::testing::{ScriptedFetch, block_on, response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

const NOW: u64 = 1_700_000_000;
const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";
const SECRET: &str = "hook-secret";
const WORKER: &str = "http://127.0.0.1:8585";
const PREFIX: &str = "127.0.0.1:5000/binder-";

fn config(extra: &[(&'static str, &'static str)]) -> Result<EdgeConfig, bindery_edge::ConfigError> {
    let base = [
        (WORKER_URL, WORKER),
        (WORKER_TOKEN, "worker-token"),
        (IMAGE_PREFIX, PREFIX),
        (GITHUB_WEBHOOK_SECRET, SECRET),
        (GITLAB_WEBHOOK_SECRET, SECRET),
        (PREBUILD_SPECS, "o/,group%2F"),
    ];
    EdgeConfig::from_source(|name| {
        Ok(extra
            .iter()
            .chain(base.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned()))
    })
}

fn cfg() -> Result<EdgeConfig, bindery_edge::ConfigError> {
    config(&[])
}

fn github_push(branch: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "after": after,
        "deleted": after.bytes().all(|b| b == b'0'),
        "repository": {
            "full_name": "o/r",
            "html_url": "https://github.com/o/r",
            "default_branch": "main",
        },
    })
    .to_string()
    .into_bytes()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

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

fn github(event: &str, delivery: &str, body: Vec<u8>) -> Request<Vec<u8>> {
    Request::post("http://127.0.0.1:3000/hooks/github")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .unwrap()
}

const GITHUB_COMMITS: &str = "https://api.github.com/repos/o/r/commits/";

/// A GitHub whose `o/r` has each `(ref, commit)` of `refs` (with an ETag naming the
/// commit) and no other ref, and a worker that accepts builds.
fn github_at(refs: &[(&str, &str)]) -> ScriptedFetch {
    let fetch = worker_accepts();
    for (name, sha) in refs {
        fetch.on(
            "GET",
            &format!("{GITHUB_COMMITS}{name}"),
            response(
                200,
                &[("etag", &format!("\"{sha}\""))],
                format!(r#"{{"sha":"{sha}"}}"#),
            ),
        );
    }
    fetch.on(
        "GET",
        GITHUB_COMMITS,
        response(422, &[], r#"{"message":"No commit found for SHA"}"#),
    );
    fetch
}

/// `main` and `HEAD` at SHA, `dev` at SHA too.
fn provider() -> ScriptedFetch {
    github_at(&[("main", SHA), ("HEAD", SHA), ("dev", SHA)])
}

/// How many prebuilds were asked of the worker.
fn builds(fetch: &ScriptedFetch) -> usize {
    fetch
        .log()
        .iter()
        .filter(|line| line.ends_with("/api/v1/builds"))
        .count()
}

/// How many calls went to a provider.
fn provider_calls(fetch: &ScriptedFetch) -> usize {
    fetch.calls() - builds(fetch)
}

fn worker_accepts() -> ScriptedFetch {
    let fetch = ScriptedFetch::new();
    fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/builds"),
        response(
            202,
            &[],
            r#"{"id":"b1","events_url":"/api/v1/builds/b1/events"}"#,
        ),
    );
    fetch
}

fn answer(response: &Response<Vec<u8>>) -> (u16, Value) {
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body()).unwrap(),
    )
}

fn image() -> String {
    image_name(PREFIX, "o-r", SHA)
}

fn github_push_from(branch: &str, before: &str, after: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&github_push(branch, after)).unwrap();
    body["before"] = json!(before);
    body.to_string().into_bytes()
}

/// The commit the ref cache holds for a link, fresh or not.
fn held(cache: &Cache<'_>, link: &str) -> Option<String> {
    let spec = Spec::parse_path(link, &ProviderSettings::default()).unwrap();
    cache
        .cached_ref(&spec, NOW)
        .and_then(Lookup::any)
        .map(|e| e.resolved_ref)
}

/// The commits of the prebuilds asked of the worker, in order.
fn built(fetch: &ScriptedFetch) -> Vec<String> {
    fetch
        .requests()
        .iter()
        .filter(|r| r.uri().path() == "/api/v1/builds")
        .map(|r| {
            serde_json::from_slice::<BuildRequest>(r.body())
                .unwrap()
                .resolved_ref
        })
        .collect()
}

#[test]
fn a_replayed_or_forged_push_cannot_move_a_branch() {
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    // GitHub says `feature` is at B. Every push below is validly signed with the shared
    // secret (which every repository owner who set the hook up knows), under a new
    // delivery id; whatever its `after`, the cache ends up holding what GitHub says.
    let cases: &[(&str, Vec<u8>)] = &[
        (
            "a forged push to a commit that is not the branch's",
            github_push("feature", A),
        ),
        (
            "a replayed old push (SHA -> A)",
            github_push_from("feature", SHA, A),
        ),
        (
            "a forged push that deletes the branch",
            github_push("feature", &"0".repeat(40)),
        ),
        ("the true push (A -> B)", github_push_from("feature", A, B)),
        ("the true push, replayed", github_push_from("feature", A, B)),
    ];
    for (i, (case, body)) in cases.iter().enumerate() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = github_at(&[("feature", B)]);
        let delivery = format!("d{i}");
        let (status, summary) = answer(&block_on(handle(
            &github("push", &delivery, body.clone()),
            cfg,
            &cache,
            &fetch,
            NOW,
        )));
        assert_eq!(status, 202, "{case}: {summary}");
        assert_eq!(held(&cache, "gh/o/r/feature").as_deref(), Some(B), "{case}");
        assert_eq!(summary["commit"], B, "{case}: {summary}");
        assert_eq!(
            summary["refreshed"],
            json!(["feature"]),
            "{case}: {summary}"
        );
        assert_eq!(
            built(&fetch),
            [B],
            "{case}: only the provider's commit is built"
        );
        let entry: CachedRef = cache.get_fresh("v1/ref/gh/o%2Fr/feature", NOW).unwrap();
        assert_eq!(
            entry.source,
            RefSource::Api,
            "{case}: the provider's answer"
        );
    }

    // Replays against a cache that already holds the provider's answer: the entry stays,
    // nothing is built twice.
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = github_at(&[("feature", B)]);
    for (i, (case, body)) in cases.iter().enumerate() {
        let delivery = format!("again{i}");
        block_on(handle(
            &github("push", &delivery, body.clone()),
            cfg,
            &cache,
            &fetch,
            NOW + 1,
        ));
        assert_eq!(held(&cache, "gh/o/r/feature").as_deref(), Some(B), "{case}");
    }
    assert_eq!(built(&fetch), [B], "one prebuild, then `already building`");
}

#[test]
fn a_push_prebuilds_the_commit_the_provider_names_not_the_pushed_one() {
    const PUSHED: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = github_at(&[("dev", SHA)]);
    let request = github("push", "d1", github_push("dev", PUSHED));
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["pushed"].as_str(), body["commit"].as_str()),
        (Some(PUSHED), Some(SHA))
    );
    assert_eq!(body["image"], image());
    assert_eq!(body["prebuild"], "queued");
    assert_eq!(built(&fetch), [SHA]);
    assert_eq!(
        cache.status(&image(), NOW).unwrap().status,
        LastStatus::Building
    );
    assert_eq!(
        cache.status(&image_name(PREFIX, "o-r", PUSHED), NOW),
        None,
        "nothing is known about the pushed commit"
    );
}

#[test]
fn an_unreachable_provider_changes_nothing_and_a_redelivery_retries() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    // The cache holds `main` at SHA from an earlier launch.
    let earlier = provider();
    let spec = Spec::parse_path("gh/o/r/main", &ProviderSettings::default()).unwrap();
    block_on(resolve_spec(&spec, &cfg().unwrap(), &cache, &earlier, NOW));
    assert_eq!(held(&cache, "gh/o/r/main").as_deref(), Some(SHA));

    const NEW: &str = "cccccccccccccccccccccccccccccccccccccccc";
    let request = github("push", "d1", github_push("main", NEW));
    for down in [
        {
            let unreachable = worker_accepts();
            unreachable.fail(
                "GET",
                GITHUB_COMMITS,
                FetchError::Unreachable {
                    origin: "https://api.github.com".into(),
                    reason: "connection refused".into(),
                },
            );
            unreachable
        },
        {
            let limited = worker_accepts();
            limited.on(
                "GET",
                GITHUB_COMMITS,
                response(403, &[("x-ratelimit-remaining", "0")], "{}"),
            );
            limited
        },
    ] {
        let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &down, NOW + 1)));
        assert_eq!(
            (status, body["status"].as_str()),
            (202, Some("provider unreachable")),
            "{body}"
        );
        assert_eq!(
            held(&cache, "gh/o/r/main").as_deref(),
            Some(SHA),
            "nothing dropped or set"
        );
        assert_eq!(builds(&down), 0);
    }
    // The delivery was not remembered: the provider's redelivery is followed.
    let up = github_at(&[("main", NEW), ("HEAD", NEW)]);
    let (_, body) = answer(&block_on(handle(&request, cfg, &cache, &up, NOW + 2)));
    assert_eq!(body["refreshed"], json!(["main", "HEAD"]), "{body}");
    assert_eq!(held(&cache, "gh/o/r/main").as_deref(), Some(NEW));
    assert_eq!(built(&up), [NEW]);
}

#[test]
fn a_per_repository_secret_verifies_for_its_repository_and_no_other() {
    let own = RepoScope::parse("gh/o/r")
        .unwrap()
        .secret(SECRET.as_bytes());
    let others = RepoScope::parse("gh/o/other")
        .unwrap()
        .secret(SECRET.as_bytes());
    let body = github_push("dev", SHA);
    let other_body = String::from_utf8(body.clone())
        .unwrap()
        .replace("o/r", "o/other")
        .into_bytes();
    let cases: &[(&str, &[u8], &str, u16)] = &[
        ("the repository's own secret", &body, &own, 202),
        ("the shared secret", &body, SECRET, 202),
        ("another repository's secret", &body, &others, 401),
        (
            "o/r's secret on a push about o/other",
            &other_body,
            &own,
            401,
        ),
        ("the derived secret of nothing", &body, "0000", 401),
    ];
    for (i, (case, body, key, expected)) in cases.iter().enumerate() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = provider();
        let mut request = github("push", &format!("d{i}"), body.to_vec());
        request.headers_mut().insert(
            "x-hub-signature-256",
            sign_with(key.as_bytes(), body).parse().unwrap(),
        );
        let (status, answer_body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW)));
        assert_eq!(status, *expected, "{case}: {answer_body}");
        if *expected != 202 {
            assert!(kv.keys().is_empty(), "{case}");
            assert_eq!(fetch.calls(), 0, "{case}");
        }
    }
    // GitLab: the derived secret is the token.
    let token = RepoScope::parse("gl/group/project")
        .unwrap()
        .secret(SECRET.as_bytes());
    let body = json!({
        "object_kind": "push", "ref": "refs/heads/main", "after": SHA, "checkout_sha": SHA,
        "project": {"path_with_namespace": "Group/Project", "web_url": "https://gitlab.com/Group/Project"},
    })
    .to_string()
    .into_bytes();
    for (key, expected) in [(token.as_str(), 202), (own.as_str(), 401)] {
        let request = Request::post("http://h/hooks/gitlab")
            .header("x-gitlab-token", key)
            .header("x-gitlab-event", "Push Hook")
            .body(body.clone())
            .unwrap();
        let kv = MemoryKv::default();
        let status = block_on(handle(
            &request,
            cfg,
            &Cache::new(&kv),
            &ScriptedFetch::new(),
            NOW,
        ))
        .status();
        assert_eq!(status, expected);
    }
}

#[test]
fn a_push_to_the_default_branch_refreshes_branch_and_head_and_prebuilds() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = provider();
    let request = github("push", "d1", github_push("main", SHA));
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["spec"], "gh/o/r/main");
    assert_eq!(body["refreshed"], json!(["main", "HEAD"]));
    assert_eq!(body["prebuild"], "queued");
    assert_eq!(body["build_id"], "b1");
    assert_eq!(body["delivery"], "d1");
    assert_eq!(body["image"], image());

    let sent = fetch
        .requests()
        .iter()
        .find(|r| r.uri().path() == "/api/v1/builds")
        .map(|r| (r.headers().clone(), r.body().clone()))
        .unwrap();
    assert_eq!(sent.0["authorization"], "Bearer worker-token");
    let build: BuildRequest = serde_json::from_slice(&sent.1).unwrap();
    assert_eq!(
        (
            build.spec.as_str(),
            build.repo_url.as_str(),
            build.resolved_ref.as_str()
        ),
        ("o/r/main", "https://github.com/o/r", SHA)
    );
    assert_eq!(build.image, image());
    assert_eq!(
        cache.status(&image(), NOW).unwrap().status,
        LastStatus::Building
    );

    // The launch path now resolves both links from the cache, with no provider call.
    let edge = cfg().unwrap();
    let nobody = ScriptedFetch::new();
    for link in ["gh/o/r/main", "gh/o/r/HEAD"] {
        let spec = Spec::parse_path(link, &ProviderSettings::default()).unwrap();
        let result = block_on(resolve_spec(&spec, &edge, &cache, &nobody, NOW + 30));
        assert_eq!(result.source, ResolveSource::Cache, "{link}");
        let resolved = result.resolved().unwrap();
        assert_eq!(resolved.resolved_ref, SHA);
        assert_eq!(resolved.build_slug, "o-r");
    }
    assert_eq!(nobody.calls(), 0);
    // It is the provider's answer, kept as long as any resolved branch.
    let entry: CachedRef = cache
        .get_fresh(
            &spec_ref_key(&Spec::parse_path("gh/o/r/main", &ProviderSettings::default()).unwrap()),
            NOW,
        )
        .unwrap();
    assert_eq!(entry.source, RefSource::Api);
    assert_eq!(entry.expires_at, NOW + 60);

    // The next push revalidates with the ETag: the provider's 304 keeps the entry.
    let revalidating = worker_accepts();
    revalidating.on("GET", GITHUB_COMMITS, response(304, &[], ""));
    let again = github("push", "d2", github_push("main", SHA));
    let (_, body) = answer(&block_on(handle(
        &again,
        cfg,
        &cache,
        &revalidating,
        NOW + 10,
    )));
    assert_eq!(body["refreshed"], json!(["main", "HEAD"]), "{body}");
    assert!(
        revalidating
            .requests()
            .iter()
            .any(|r| r.headers().get("if-none-match").is_some()),
        "{:?}",
        revalidating.log()
    );
    assert_eq!(held(&cache, "gh/o/r/main").as_deref(), Some(SHA));
}

#[test]
fn a_redelivery_does_nothing_twice() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = provider();
    let request = github("push", "d1", github_push("dev", SHA));
    assert_eq!(
        block_on(handle(&request, cfg, &cache, &fetch, NOW)).status(),
        202
    );
    let asked = provider_calls(&fetch);
    let keys = kv.keys();
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW + 5)));
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("already processed"))
    );
    assert_eq!(builds(&fetch), 1);
    assert_eq!(provider_calls(&fetch), asked, "not even a refresh");
    assert_eq!(kv.keys(), keys);
}

#[test]
fn bad_or_missing_signatures_are_refused_without_side_effects() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let body = github_push("main", SHA);
    let mut forged = github("push", "d1", body.clone());
    forged.headers_mut().insert(
        "x-hub-signature-256",
        format!("sha256={}", "0".repeat(64)).parse().unwrap(),
    );
    let (status, message) = answer(&block_on(handle(&forged, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 401, "{message}");
    let mut unsigned = github("push", "d2", body);
    unsigned.headers_mut().remove("x-hub-signature-256");
    assert_eq!(
        block_on(handle(&unsigned, cfg, &cache, &fetch, NOW)).status(),
        401
    );
    assert!(kv.keys().is_empty());
    assert_eq!(fetch.calls(), 0);
}

#[test]
fn an_unset_secret_refuses_every_delivery() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let no_secret = || config(&[(GITHUB_WEBHOOK_SECRET, ""), (GITLAB_WEBHOOK_SECRET, " ")]);
    let request = github("push", "d1", github_push("main", SHA));
    let (status, body) = answer(&block_on(handle(&request, no_secret, &cache, &fetch, NOW)));
    assert_eq!(status, 403);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("not configured") && message.contains("github_webhook_secret"),
        "{message}"
    );
    let gitlab = Request::post("http://h/hooks/gitlab")
        .header("x-gitlab-token", "")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(
        block_on(handle(&gitlab, no_secret, &cache, &fetch, NOW)).status(),
        403
    );
    assert!(kv.keys().is_empty());
    assert_eq!(fetch.calls(), 0);
}

#[test]
fn pings_unknown_events_bad_json_and_big_bodies() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let ping = github("ping", "p1", br#"{"zen":"hi"}"#.to_vec());
    assert_eq!(
        answer(&block_on(handle(&ping, cfg, &cache, &fetch, NOW))),
        (200, json!({"status": "pong"}))
    );
    let issues = github("issues", "i1", b"{}".to_vec());
    let (status, body) = answer(&block_on(handle(&issues, cfg, &cache, &fetch, NOW)));
    assert_eq!((status, body["status"].as_str()), (202, Some("ignored")));
    let bad = github("push", "b1", b"{not json".to_vec());
    let (status, body) = answer(&block_on(handle(&bad, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("failed to parse the webhook body")
    );
    let big = github("push", "big", vec![b' '; MAX_BODY_BYTES + 1]);
    assert_eq!(
        block_on(handle(&big, cfg, &cache, &fetch, NOW)).status(),
        413
    );
    let bad_id = github("push", "a/b", github_push("main", SHA));
    assert_eq!(
        block_on(handle(&bad_id, cfg, &cache, &fetch, NOW)).status(),
        400
    );
    assert_eq!(fetch.calls(), 0);
}

#[test]
fn routes_and_methods() {
    let cache = Cache::disabled();
    let fetch = ScriptedFetch::new();
    let get = Request::get("http://h/hooks/github")
        .body(Vec::new())
        .unwrap();
    let r = block_on(handle(&get, cfg, &cache, &fetch, NOW));
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "POST")
    );
    let other = Request::post("http://h/hooks/bitbucket")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        block_on(handle(&other, cfg, &cache, &fetch, NOW)).status(),
        404
    );
    assert_eq!(route("/hooks/gitlab/"), Some(PushProvider::GitLab));
    let broken = || config(&[(PREBUILD_SPECS, "(")]);
    let push = github("push", "d", github_push("main", SHA));
    let (status, body) = answer(&block_on(handle(&push, broken, &cache, &fetch, NOW)));
    assert_eq!(status, 500);
    assert!(body["message"].as_str().unwrap().contains("prebuild_specs"));
}

#[test]
fn prebuilds_are_skipped_when_present_unlisted_banned_or_building() {
    let fetch = provider();
    let ttl = CacheTtl::default();
    let prebuild =
        |cfg: Result<EdgeConfig, bindery_edge::ConfigError>, kv: &MemoryKv, branch: &str| {
            let cache = Cache::new(kv);
            let request = github(
                "push",
                &format!("d-{branch}-{}", kv.keys().len()),
                github_push(branch, SHA),
            );
            let (_, body) = answer(&block_on(handle(&request, || cfg, &cache, &fetch, NOW)));
            body["prebuild"].as_str().unwrap().to_owned()
        };
    let kv = MemoryKv::default();
    Cache::new(&kv).put_present(&image(), None, NOW, &ttl);
    assert_eq!(prebuild(cfg(), &kv, "main"), "skipped: image present");
    let kv = MemoryKv::default();
    assert_eq!(
        prebuild(config(&[(PREBUILD_SPECS, "x/")]), &kv, "main"),
        "skipped: not in prebuild_specs"
    );
    assert_eq!(
        prebuild(config(&[(PREBUILD_SPECS, "")]), &kv, "main"),
        "skipped: not in prebuild_specs"
    );
    assert_eq!(
        prebuild(config(&[(BANNED_SPECS, "O/R")]), &kv, "main"),
        "skipped: banned"
    );
    Cache::new(&kv).put_status(&image(), LastStatus::Building, NOW, &ttl);
    assert_eq!(prebuild(cfg(), &kv, "main"), "skipped: already building");
    assert_eq!(builds(&fetch), 0);
}

#[test]
fn a_failed_prebuild_request_is_a_502_and_a_redelivery_retries() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    // GitHub answers; the worker does not.
    let down = ScriptedFetch::new();
    down.on(
        "GET",
        GITHUB_COMMITS,
        response(200, &[], format!(r#"{{"sha":"{SHA}"}}"#)),
    );
    let request = github("push", "d1", github_push("main", SHA));
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &down, NOW)));
    assert_eq!(status, 502);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed to queue a prebuild"),
        "{body}"
    );
    assert_eq!(cache.status(&image(), NOW), None);
    let up = provider();
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &up, NOW + 1)));
    assert_eq!((status, body["prebuild"].as_str()), (202, Some("queued")));
}

#[test]
fn a_deleted_branch_drops_its_entry() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = provider();
    block_on(handle(
        &github("push", "d1", github_push("dev", SHA)),
        cfg,
        &cache,
        &fetch,
        NOW,
    ));
    assert!(kv.keys().contains(&"v1/ref/gh/o%2Fr/dev".to_owned()));
    // The provider confirms: `dev` is gone.
    let fetch = github_at(&[]);
    let deleted = github("push", "d2", github_push("dev", &"0".repeat(40)));
    let (status, body) = answer(&block_on(handle(&deleted, cfg, &cache, &fetch, NOW + 1)));
    assert_eq!((status, &body["deleted"]), (202, &json!(["dev"])));
    assert!(!kv.keys().contains(&"v1/ref/gh/o%2Fr/dev".to_owned()));
}

#[test]
fn a_push_about_another_host_is_ignored() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let body = String::from_utf8(github_push("main", SHA))
        .unwrap()
        .replace("https://github.com/o/r", "https://ghe.example.org/o/r")
        .into_bytes();
    let (status, body) = answer(&block_on(handle(
        &github("push", "d1", body),
        cfg,
        &cache,
        &fetch,
        NOW,
    )));
    assert_eq!((status, body["status"].as_str()), (202, Some("ignored")));
    assert!(
        kv.keys().iter().all(|k| k.starts_with("v1/hook/")),
        "{:?}",
        kv.keys()
    );
}

#[test]
fn a_gitlab_push_writes_the_keys_the_gl_launch_link_reads() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    fetch.on(
        "GET",
        "https://gitlab.com/api/v4/projects/group%2Fsub-group%2Fproject/repository/commits/feature%2Fx",
        response(200, &[], format!(r#"{{"id":"{SHA}"}}"#)),
    );
    let body = json!({
        "object_kind": "push",
        "ref": "refs/heads/feature/x",
        "after": SHA,
        "checkout_sha": SHA,
        "project": {
            "path_with_namespace": "group/sub-group/project",
            "web_url": "https://gitlab.com/group/sub-group/project",
            "default_branch": "main",
        },
    })
    .to_string()
    .into_bytes();
    let request = Request::post("http://h/hooks/gitlab")
        .header("x-gitlab-token", SECRET)
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-event-uuid", "uuid-1")
        .body(body)
        .unwrap();
    let (status, answer_body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 202, "{answer_body}");
    assert_eq!(
        answer_body["spec"],
        "gl/group%2Fsub-group%2Fproject/feature%2Fx"
    );
    assert_eq!(answer_body["refreshed"], json!(["feature/x"]));
    assert_eq!(answer_body["prebuild"], "queued");

    let edge = cfg().unwrap();
    let nobody = ScriptedFetch::new();
    for link in [
        "gl/group%2Fsub-group%2Fproject/feature%2Fx",
        "gl/group%2Fsub-group%2Fproject/feature/x",
    ] {
        let spec = Spec::parse_path(link, &ProviderSettings::default()).unwrap();
        let result = block_on(resolve_spec(&spec, &edge, &cache, &nobody, NOW + 1));
        assert_eq!(result.source, ResolveSource::Cache, "{link}");
        assert_eq!(
            result.resolved().unwrap().build_slug,
            "group-sub_-group-project"
        );
    }
    // Idempotency-Key is the fallback delivery id.
    let mut again = request.clone();
    again.headers_mut().remove("x-gitlab-event-uuid");
    again
        .headers_mut()
        .insert("idempotency-key", "uuid-1".parse().unwrap());
    let (_, body) = answer(&block_on(handle(&again, cfg, &cache, &fetch, NOW + 2)));
    assert_eq!(body["status"], "already processed");
    let mut wrong = request;
    wrong
        .headers_mut()
        .insert("x-gitlab-token", "nope".parse().unwrap());
    assert_eq!(
        block_on(handle(&wrong, cfg, &cache, &fetch, NOW + 3)).status(),
        401
    );
}

#![allow(clippy::unwrap_used)]

use bindery_core::cache::{CacheTtl, CachedRef};
use bindery_core::provider::ProviderSettings;
use bindery_edge::cache::MemoryKv;
use bindery_edge::config::{
    BANNED_SPECS, GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SECRET, IMAGE_PREFIX, PREBUILD_SPECS,
    WORKER_TOKEN, WORKER_URL,
};
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

fn github(event: &str, delivery: &str, body: Vec<u8>) -> Request<Vec<u8>> {
    Request::post("http://127.0.0.1:3000/hooks/github")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .unwrap()
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

#[test]
fn a_push_that_does_not_follow_the_cached_ref_drops_it_instead_of_setting_it_back() {
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let cached = |cache: &Cache<'_>| {
        let spec = Spec::parse_path("gh/o/r/feature", &ProviderSettings::default()).unwrap();
        cache
            .cached_ref(&spec, NOW)
            .and_then(Lookup::any)
            .map(|e| e.resolved_ref)
    };

    // A → B on a branch the cache holds at A: the ref moves to B.
    let first = github("push", "d1", github_push_from("feature", SHA, A));
    block_on(handle(&first, cfg, &cache, &fetch, NOW));
    assert_eq!(cached(&cache).as_deref(), Some(A), "no entry: written");
    let next = github("push", "d2", github_push_from("feature", A, B));
    let (_, body) = answer(&block_on(handle(&next, cfg, &cache, &fetch, NOW)));
    assert_eq!(body["refreshed"], json!(["feature"]), "{body}");
    assert_eq!(cached(&cache).as_deref(), Some(B));

    // The first push again, under a new delivery id (a replay, or a late delivery): it
    // moves SHA → A, but the cache is at B. The entry goes, and is not set back to A.
    let builds = fetch.calls();
    let replay = github("push", "d3", github_push_from("feature", SHA, A));
    let (status, body) = answer(&block_on(handle(&replay, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["dropped"], json!(["feature"]), "{body}");
    assert_eq!(cached(&cache), None);
    assert_eq!(fetch.calls(), builds, "no prebuild of the old commit");
    // Sent once more, now that no entry is left: still not written.
    let again = github("push", "d4", github_push_from("feature", SHA, A));
    let (_, body) = answer(&block_on(handle(&again, cfg, &cache, &fetch, NOW + 10)));
    assert_eq!(body["dropped"], json!(["feature"]), "{body}");
    assert_eq!(cached(&cache), None);
    // The branch moving on from where it really is gets written again.
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";
    let moves_on = github("push", "d5", github_push_from("feature", B, C));
    block_on(handle(&moves_on, cfg, &cache, &fetch, NOW + 20));
    assert_eq!(cached(&cache).as_deref(), Some(C));
    assert_eq!(fetch.calls(), builds + 1, "a prebuild of the new commit");
}

#[test]
fn a_stale_push_to_the_default_branch_drops_head_too() {
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let current = github("push", "d1", github_push_from("main", A, SHA));
    block_on(handle(&current, cfg, &cache, &fetch, NOW));
    let builds = fetch.calls();
    let held = |link: &str| {
        let spec = Spec::parse_path(link, &ProviderSettings::default()).unwrap();
        cache
            .cached_ref(&spec, NOW)
            .and_then(Lookup::any)
            .map(|e| e.resolved_ref)
    };
    assert_eq!(held("gh/o/r/HEAD").as_deref(), Some(SHA));
    // An old push of main (… → A) while the cache holds SHA.
    let old = github(
        "push",
        "d2",
        github_push_from("main", "1".repeat(40).as_str(), A),
    );
    let (_, body) = answer(&block_on(handle(&old, cfg, &cache, &fetch, NOW)));
    assert_eq!(body["dropped"], json!(["main", "HEAD"]), "{body}");
    assert_eq!((held("gh/o/r/main"), held("gh/o/r/HEAD")), (None, None));
    assert_eq!(fetch.calls(), builds, "no prebuild of the old commit");
}

#[test]
fn a_push_to_the_default_branch_refreshes_branch_and_head_and_prebuilds() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let request = github("push", "d1", github_push("main", SHA));
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW)));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["spec"], "gh/o/r/main");
    assert_eq!(body["refreshed"], json!(["main", "HEAD"]));
    assert_eq!(body["prebuild"], "queued");
    assert_eq!(body["build_id"], "b1");
    assert_eq!(body["delivery"], "d1");
    assert_eq!(body["image"], image());

    let sent = &fetch.requests()[0];
    assert_eq!(sent.headers()["authorization"], "Bearer worker-token");
    let build: BuildRequest = serde_json::from_slice(sent.body()).unwrap();
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
        let result = block_on(resolve_spec(&spec, &edge, &cache, &nobody, NOW + 60));
        assert_eq!(result.source, ResolveSource::Cache, "{link}");
        let resolved = result.resolved().unwrap();
        assert_eq!(resolved.resolved_ref, SHA);
        assert_eq!(resolved.build_slug, "o-r");
    }
    assert_eq!(nobody.calls(), 0);
    let entry: CachedRef = cache
        .get_fresh(
            &spec_ref_key(&Spec::parse_path("gh/o/r/main", &ProviderSettings::default()).unwrap()),
            NOW,
        )
        .unwrap();
    assert_eq!(entry.source, RefSource::Webhook);
    assert_eq!(entry.expires_at, NOW + 3600);
}

#[test]
fn a_redelivery_does_nothing_twice() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    let request = github("push", "d1", github_push("dev", SHA));
    assert_eq!(
        block_on(handle(&request, cfg, &cache, &fetch, NOW)).status(),
        202
    );
    let keys = kv.keys();
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &fetch, NOW + 5)));
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("already processed"))
    );
    assert_eq!(fetch.calls(), 1);
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
    let fetch = worker_accepts();
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
    assert_eq!(fetch.calls(), 0);
}

#[test]
fn a_failed_prebuild_request_is_a_502_and_a_redelivery_retries() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let down = ScriptedFetch::new();
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
    let up = worker_accepts();
    let (status, body) = answer(&block_on(handle(&request, cfg, &cache, &up, NOW + 1)));
    assert_eq!((status, body["prebuild"].as_str()), (202, Some("queued")));
}

#[test]
fn a_deleted_branch_drops_its_entry() {
    let kv = MemoryKv::default();
    let cache = Cache::new(&kv);
    let fetch = worker_accepts();
    block_on(handle(
        &github("push", "d1", github_push("dev", SHA)),
        cfg,
        &cache,
        &fetch,
        NOW,
    ));
    assert!(kv.keys().contains(&"v1/ref/gh/o%2Fr/dev".to_owned()));
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

//! BinderHub's own test cases, read as data from `tests/data/vectors.json` and run against
//! `bindery-core`. Network vectors resolve against the recorded answers in
//! `tests/data/upstream.json`, keyed by the URL the resolver asks for, so a wrong request
//! URL fails as surely as a wrong answer.
//!
//! Kinds that belong to later parts of Bindery are skipped by name in [`SKIPPED_KINDS`];
//! the test fails when a kind is neither handled nor listed, so nothing is skipped silently.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use bindery_core::launch::{self, OpenTarget};
use bindery_core::policy;
use bindery_core::provider::{ProviderId, ProviderSettings, Spec, github, strip_suffix};
use bindery_core::registry::{self, BearerChallenge, RegistryAuth};
use bindery_core::resolve::{Credentials, Outcome, Resolver, Step};
use bindery_core::{image, validate};
use serde_json::Value;

/// Vector kinds that test parts of Bindery other than the core, with the reason.
const SKIPPED_KINDS: &[(&str, &str)] = &[
    (
        "ban_networks",
        "HTTP-level behaviour of the edge (issue 3); the matching itself is covered by ip_in_networks",
    ),
    (
        "build_affinity",
        "sticky build node affinity belongs to the worker's Kubernetes executor (issue 4)",
    ),
    (
        "build_only",
        "Bindery has no build_only flag on /build: prebuilds are the worker's POST /api/v1/builds (issue 4)",
    ),
    (
        "client_build_url",
        "the loading page's JavaScript client (issue 3)",
    ),
    (
        "registry_helper",
        "BinderHub's ExternalRegistryHelper micro-service protocol is not supported",
    ),
];

fn data(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the resolver against the recorded answers.
fn resolve_recorded(spec: &Spec, settings: &ProviderSettings) -> Outcome {
    let upstream = data("upstream.json");
    let mut resolver = Resolver::new(spec, settings, &Credentials::default(), None);
    let mut step = resolver.start();
    for _ in 0..20 {
        match step {
            Step::Done(outcome) => return outcome,
            Step::LsRemote { url, .. } => panic!("unexpected ls-remote of {url}"),
            Step::Fetch(req) => {
                let url = req.uri().to_string();
                let rec = upstream
                    .get(&url)
                    .unwrap_or_else(|| panic!("no recorded answer for {url}"));
                let mut builder =
                    http::Response::builder().status(rec["status"].as_u64().unwrap() as u16);
                if let Some(headers) = rec.get("headers").and_then(Value::as_object) {
                    for (k, v) in headers {
                        builder = builder.header(k, v.as_str().unwrap());
                    }
                }
                let body = match (rec.get("pkt_lines"), rec.get("body")) {
                    (Some(lines), _) => lines
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| match l.as_str() {
                            Some(l) => format!("{:04x}{l}", l.len() + 4),
                            None => "0000".into(),
                        })
                        .collect::<String>()
                        .into_bytes(),
                    (None, Some(Value::String(text))) => text.clone().into_bytes(),
                    (None, Some(json)) => json.to_string().into_bytes(),
                    (None, None) => Vec::new(),
                };
                step = resolver.on_response(&builder.body(body).unwrap(), 1_700_000_000);
            }
        }
    }
    panic!("resolution of {} did not finish", spec.raw());
}

fn check_provider_resolve(v: &Value) {
    let provider = ProviderId::parse(s(v, "provider")).unwrap();
    let mut settings = ProviderSettings::default();
    if let Some(allow) = v
        .pointer("/config/allow_secret_gist")
        .and_then(Value::as_bool)
    {
        settings.allow_secret_gist = allow;
    }
    let expect = &v["expect"];
    let spec = Spec::parse(provider, s(v, "spec"), &settings).unwrap();
    if let Some(url) = expect.get("repo_url").and_then(Value::as_str) {
        assert_eq!(spec.repo_url(), url);
    }
    if let Some(r) = expect.get("unresolved_ref").and_then(Value::as_str) {
        assert_eq!(spec.unresolved_ref(), Some(r));
    }
    let outcome = resolve_recorded(&spec, &settings);
    if expect.get("error").is_some() {
        assert!(
            matches!(outcome, Outcome::Failed(_)),
            "expected an error, got {outcome:?}"
        );
        return;
    }
    if expect.get("resolved_ref").is_some_and(Value::is_null) {
        assert!(
            matches!(outcome, Outcome::NotFound(_)),
            "expected not found, got {outcome:?}"
        );
        return;
    }
    let Outcome::Resolved(r) = outcome else {
        panic!("expected a resolution, got {outcome:?}")
    };
    let exact = expect
        .get("resolved_ref_from_recorded_fixture")
        .or_else(|| {
            expect
                .get("resolved_ref")
                .filter(|x| !x.as_str().unwrap_or("<").starts_with('<'))
        });
    if let Some(exact) = exact.and_then(Value::as_str) {
        assert_eq!(r.resolved_ref, exact);
    }
    if expect.get("resolved_ref").and_then(Value::as_str) == Some("<any 40-hex sha>") {
        assert!(validate::is_full_commit(&r.resolved_ref));
    }
    if let Some(p) = expect.get("resolved_ref_prefix").and_then(Value::as_str) {
        assert!(r.resolved_ref.starts_with(p));
    }
    if let Some(c) = expect.get("resolved_ref_contains").and_then(Value::as_str) {
        assert!(
            r.resolved_ref.contains(c),
            "{} does not contain {c}",
            r.resolved_ref
        );
    }
    if let Some(re) = expect.get("resolved_ref_regex").and_then(Value::as_str) {
        assert!(regex::Regex::new(re).unwrap().is_match(&r.resolved_ref));
    }
    for (key, got) in [
        ("resolved_spec", &r.resolved_spec),
        ("resolved_ref_url", &r.ref_url),
        ("build_slug", &r.build_slug),
    ] {
        if let Some(want) = expect.get(key).and_then(Value::as_str) {
            assert_eq!(got, want, "{key}");
        }
    }
    if let Some(p) = expect.get("build_slug_prefix").and_then(Value::as_str) {
        assert!(r.build_slug.starts_with(p));
    }
}

fn check_image_name(v: &Value) {
    let input = &v["input"];
    let expect = &v["expect"];
    let (slug, r, prefix) = (
        s(input, "build_slug"),
        s(input, "resolved_ref"),
        s(input, "image_prefix"),
    );
    let name = image::image_name(prefix, slug, r);
    assert_eq!(name, s(expect, "image_name"));
    let split = image::split_image(&name);
    if let Some(repo) = expect.get("registry_repository").and_then(Value::as_str) {
        assert_eq!(split.repository, repo);
        assert_eq!(split.tag, s(expect, "registry_tag"));
    }
    if let Some(build) = expect.get("build_pod_name").and_then(Value::as_str) {
        assert_eq!(image::build_name(slug, r), build);
    }
    let provider = ProviderId::parse(s(v, "provider")).unwrap();
    let spec = Spec::parse(provider, s(v, "spec"), &ProviderSettings::default()).unwrap();
    assert_eq!(
        spec.build_slug(Some(r)).as_deref(),
        Some(slug),
        "the spec derives the vector's slug"
    );
    if let Some(req) = expect.get("binder_request").and_then(Value::as_str) {
        assert_eq!(launch::binder_request(provider, spec.raw()), req);
        let persistent = launch::binder_persistent_request(provider, &spec.resolved_spec(r));
        assert_eq!(persistent, s(expect, "binder_persistent_request"));
        assert_eq!(spec.ref_url(r), s(expect, "binder_ref_url"));
        assert_eq!(spec.repo_url(), s(expect, "repo_url"));
        let user = launch::hub_username(&spec.repo_url(), "3ilc7xl2");
        let prefix = s(expect, "hub_username_prefix");
        assert!(user.starts_with(prefix));
        assert_eq!(
            user.len() - prefix.len(),
            expect["hub_username_suffix_len"].as_u64().unwrap() as usize
        );
    }
}

fn check_provider_parse(v: &Value) {
    let provider = ProviderId::parse(s(v, "provider")).unwrap();
    let spec = Spec::parse(provider, s(v, "spec"), &ProviderSettings::default()).unwrap();
    let expect = &v["expect"];
    let record = v.pointer("/state/record_id").and_then(Value::as_str);
    if let Some(url) = expect.get("repo_url").and_then(Value::as_str) {
        assert_eq!(spec.repo_url(), url);
    }
    if let Some(r) = expect.get("unresolved_ref").and_then(Value::as_str) {
        assert_eq!(spec.unresolved_ref(), Some(r));
    }
    if let Some(slug) = expect.get("build_slug").and_then(Value::as_str) {
        assert_eq!(spec.build_slug(record).as_deref(), Some(slug));
    }
    if let Some(rs) = expect.get("resolved_spec").and_then(Value::as_str) {
        assert_eq!(spec.resolved_spec(record.unwrap()), rs);
    }
    if let Some(ns) = expect.get("namespace").and_then(Value::as_str) {
        let Spec::GitLab(gl) = &spec else {
            panic!("namespace on a non-GitLab spec")
        };
        assert_eq!(gl.namespace, ns);
    }
}

fn spec_policy(v: &Value) -> policy::SpecPolicy {
    let list = |k: &str| {
        v.pointer(&format!("/config/{k}"))
            .map(strings)
            .unwrap_or_default()
    };
    let spec_config = v
        .pointer("/config/spec_config")
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    policy::SpecPolicy::new(
        &list("banned_specs"),
        &list("allowed_specs"),
        &list("high_quota_specs"),
        spec_config,
    )
    .unwrap()
}

fn check_repo_config(v: &Value) {
    let spec_config = v.pointer("/config/spec_config").cloned().unwrap();
    let quota = v
        .pointer("/settings/per_repo_quota")
        .and_then(Value::as_u64)
        .map(|q| q as u32);
    let result = policy::repo_config_from_value(&spec_config, s(v, "spec"), quota, None);
    match v.pointer("/expect/repo_config") {
        Some(want) => assert_eq!(Value::Object(result.unwrap()), *want),
        None => assert!(result.is_err(), "expected an error"),
    }
}

fn check_registry_defaults(v: &Value) {
    let mut config = v.pointer("/input/docker_config").cloned().unwrap();
    // The vector writes the auth field as `base64('user:pass')`; encode what it names.
    for entry in config["auths"].as_object_mut().unwrap().values_mut() {
        let text = s(entry, "auth");
        let inner = text.trim_start_matches("base64('").trim_end_matches("')");
        entry["auth"] = Value::String(base64::engine::general_purpose::STANDARD.encode(inner));
    }
    let auth = registry::from_docker_config(config.to_string().as_bytes()).unwrap();
    let expect = &v["expect"];
    assert_eq!(auth.url, s(expect, "url"));
    assert_eq!(auth.username, s(expect, "username"));
    assert_eq!(auth.password, s(expect, "password"));
    if let Some(t) = expect.get("token_url").and_then(Value::as_str) {
        assert_eq!(auth.token_url.as_deref(), Some(t));
    }
    if let Some(a) = expect.get("auth_config_url").and_then(Value::as_str) {
        assert_eq!(auth.auth_config_url, a);
    }
}

fn check_registry_manifest(v: &Value) {
    let (image_repo, tag) = (s(&v["input"], "image"), s(&v["input"], "tag"));
    let url = "https://registry.example.org";
    let challenge = if v.pointer("/input/token_url_known") == Some(&Value::Bool(true)) {
        BearerChallenge::for_token_url("https://registry.example.org/v2/token", image_repo)
    } else {
        let basic = RegistryAuth::Basic {
            username: "user".into(),
            password: "pass".into(),
        };
        let first = registry::manifest_request(url, image_repo, tag, &basic).unwrap();
        assert!(
            first.headers()["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        let mut headers = http::HeaderMap::new();
        let header = format!(
            "Bearer realm=\"{url}/token\",service=\"example\",scope=\"repository:{image_repo}:pull\""
        );
        headers.insert("www-authenticate", header.parse().unwrap());
        match registry::interpret_manifest_response(401, &headers) {
            registry::ManifestAnswer::Challenge(c) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    };
    let token_req = registry::token_request(&challenge, Some(("user", "pass"))).unwrap();
    let query = token_req.uri().query().unwrap_or_default().to_string();
    assert!(
        query.contains(&format!("scope=repository%3A{image_repo}%3Apull")),
        "{query}"
    );
    assert!(
        token_req.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let token = registry::parse_token_response(200, br#"{"token": "t0k"}"#, 0).unwrap();
    let again = registry::manifest_request(url, image_repo, tag, &token.auth()).unwrap();
    assert_eq!(
        again.uri().to_string(),
        format!("{url}/v2/{image_repo}/manifests/{tag}")
    );
    assert_eq!(again.headers()["authorization"], "Bearer t0k");
}

fn check_rate_limit(v: &Value) {
    let input = &v["input"];
    let limit = input["limit"].as_u64().unwrap() as u32;
    let period = input["period_seconds"].as_u64().unwrap();
    let mut limiter = policy::RateLimiter::new(limit, period);
    let now = 1_000_000;
    if let Some(calls) = input.get("calls_same_key").and_then(Value::as_u64) {
        let states: Vec<_> = (0..calls).map(|_| limiter.increment("ip", now)).collect();
        assert_eq!(
            (states[0].remaining, states[0].reset),
            (i64::from(limit) - 1, now + period)
        );
        for (i, st) in states.iter().enumerate() {
            assert_eq!(st.remaining, i64::from(limit) - 1 - i as i64);
            assert_eq!(st.exceeded, i >= limit as usize, "call {}", i + 1);
        }
        assert_eq!(
            states.last().unwrap().remaining,
            v.pointer("/expect/final_remaining")
                .unwrap()
                .as_i64()
                .unwrap()
        );
    } else {
        for _ in 0..5 {
            limiter.increment("ip", now);
        }
        let later = limiter.increment("ip", now + 65);
        assert_eq!(
            (later.remaining, later.reset),
            (i64::from(limit) - 1, now + 65 + period)
        );
    }
}

/// The redirector's split of keys `key-0..key-99` over weighted buckets.
fn check_rendezvous(v: &Value) {
    use bindery_core::federation::rendezvous;
    let buckets: Vec<(String, f64)> = v["input"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b[0].as_str().unwrap().to_owned(), b[1].as_f64().unwrap()))
        .collect();
    assert_eq!(s(&v["input"], "keys"), "key-0..key-99");
    let named: Vec<(&str, f64)> = buckets.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..100 {
        let top = rendezvous::rank(&format!("key-{i}"), &named).unwrap();
        *counts.entry(named[top].0.to_owned()).or_default() += 1;
    }
    let expected: BTreeMap<String, u64> =
        serde_json::from_value(v["expect"]["top_counts"].clone()).unwrap();
    assert_eq!(counts, expected);
}

fn check(v: &Value) -> Result<(), &'static str> {
    let expect = &v["expect"];
    match s(v, "kind") {
        "strip_suffix" => assert_eq!(
            strip_suffix(s(&v["input"], "text"), s(&v["input"], "suffix")),
            s(expect, "result")
        ),
        "gh_spec_tokenize" => match github::tokenize(s(v, "spec")) {
            Ok((user, repo, r)) => {
                assert_eq!(
                    (user.as_str(), repo.as_str(), r.as_str()),
                    (
                        s(expect, "user"),
                        s(expect, "repo"),
                        s(expect, "unresolved_ref")
                    )
                );
            }
            Err(e) => assert!(e.to_string().contains(s(expect, "message_contains")), "{e}"),
        },
        "provider_resolve" => check_provider_resolve(v),
        "provider_parse" => check_provider_parse(v),
        "image_name" => check_image_name(v),
        "federation_rendezvous" => check_rendezvous(v),
        "git_url_validate" => assert!(
            Spec::parse(ProviderId::Git, s(v, "spec"), &ProviderSettings::default()).is_err()
        ),
        "image_basename_and_tag" => {
            let split = image::split_image(v["input"].as_str().unwrap());
            assert_eq!(
                (split.repository.as_str(), split.tag.as_str()),
                (s(expect, "basename"), s(expect, "tag"))
            );
        }
        "build_name" => {
            let input = &v["input"];
            let name = image::build_name_with_prefix(
                s(input, "prefix"),
                s(input, "build_slug"),
                s(input, "ref"),
            );
            assert_eq!(name, s(expect, "computed_value"));
            let last = name.chars().last().unwrap().to_string();
            assert!(!strings(&expect["last_char_not_in"]).contains(&last));
        }
        "is_banned" => assert_eq!(
            spec_policy(v).is_banned(s(v, "spec")),
            expect["banned"].as_bool().unwrap()
        ),
        "has_higher_quota" => assert_eq!(
            spec_policy(v).has_higher_quota(s(v, "spec")),
            expect["higher_quota"].as_bool().unwrap()
        ),
        "repo_config" => check_repo_config(v),
        "launch_quota" => {
            let input = &v["input"];
            let running = strings(&input["running_images"]);
            let refs: Vec<&str> = running.iter().map(String::as_str).collect();
            let count = policy::count_running(&refs, s(input, "image"));
            assert_eq!(
                (u64::from(count.total), u64::from(count.matching)),
                (
                    expect["total"].as_u64().unwrap(),
                    expect["matching"].as_u64().unwrap()
                )
            );
            let quota = input
                .pointer("/repo_config/quota")
                .and_then(Value::as_u64)
                .map(|q| q as u32);
            assert_eq!(quota, expect["quota"].as_u64().map(|q| q as u32));
            let total_quota = input["total_quota"].as_u64().map(|q| q as u32);
            let admitted =
                policy::check_quota(count, quota, total_quota) == policy::QuotaDecision::Admit;
            assert_eq!(admitted, count.matching < quota.unwrap_or(u32::MAX));
        }
        "ip_in_networks" => {
            let nets = strings(&v["input"]["networks"]);
            let refs: Vec<&str> = nets.iter().map(String::as_str).collect();
            let ip = s(&v["input"], "ip").parse().unwrap();
            assert_eq!(
                policy::ip_in_networks(ip, &refs).unwrap(),
                expect["match"].as_bool().unwrap()
            );
        }
        "rate_limit" => check_rate_limit(v),
        "registry_defaults" => check_registry_defaults(v),
        "www_authenticate_parse" => {
            match registry::parse_www_authenticate(v["input"].as_str().unwrap()) {
                Ok(c) => assert_eq!(
                    (c.realm.as_str(), c.service.as_str(), c.scope.as_str()),
                    (s(expect, "realm"), s(expect, "service"), s(expect, "scope"))
                ),
                Err(e) => assert!(
                    e.to_string().starts_with(s(expect, "message_startswith")),
                    "{e}"
                ),
            }
        }
        "registry_manifest" => check_registry_manifest(v),
        "r2d_args" => {
            let input = &v["input"];
            let args = launch::Repo2DockerArgs {
                git_ref: s(input, "ref").into(),
                image: s(input, "image_name").into(),
                push: !s(input, "push_secret").is_empty(),
                appendix: Some(s(input, "appendix").to_string()),
                extra_args: strings(&input["repo2docker_extra_args"]),
                repo: "https://github.com/org/repo".into(),
            };
            let out = launch::repo2docker_args(&args).unwrap();
            assert_eq!(
                out.last().map(String::as_str),
                Some("https://github.com/org/repo")
            );
            assert_eq!(out[..out.len() - 1], strings(&expect["args"])[..]);
        }
        "byte_spec" => {
            let input = &v["input"];
            for key in ["memory_limit", "memory_request"] {
                assert_eq!(
                    policy::parse_byte_spec(s(input, key)).unwrap(),
                    expect[key].as_u64().unwrap()
                );
            }
        }
        "build_check_accept" => {
            let accept = v["input"]["accept"].as_str();
            assert!(!launch::accepts_event_stream(accept));
            let want = s(&expect["events"][0], "message_contains");
            assert!(launch::MISSING_ACCEPT.contains(want));
        }
        "http_redirect" => {
            let path = s(&v["input"], "path");
            let target = launch::legacy_redirect(path.strip_prefix("/repo/").unwrap()).unwrap();
            assert_eq!(target, s(expect, "location"));
        }
        "ui_detect_regex" => {
            let provider = ProviderId::parse(s(v, "provider")).unwrap();
            assert_eq!(
                launch::detect_repo(provider, v["input"].as_str().unwrap()),
                s(expect, "repo_group")
            );
        }
        "ui_launch_url" => {
            let input = &v["input"];
            let provider = ProviderId::parse(s(v, "provider")).unwrap();
            let value = input
                .get("open_value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let open = match input.get("open_kind").and_then(Value::as_str) {
                Some("file") => Some(OpenTarget::File(value)),
                Some("url") => Some(OpenTarget::Url(value)),
                _ => None,
            };
            let r = input.get("ref").and_then(Value::as_str).unwrap_or_default();
            let link = launch::launch_link(
                s(input, "public_base_url"),
                provider,
                s(input, "repo"),
                r,
                open.as_ref(),
            );
            assert_eq!(link, s(expect, "launch_url"));
        }
        "ui_route" => {
            let path = s(&v["input"], "path");
            let page = path
                .strip_prefix("/v2/")
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(p, spec)| {
                    ProviderId::parse(p)
                        .ok()
                        .filter(|p| p.ui_route_matches(spec))
                })
                .map_or("not_found", |_| "loading");
            assert_eq!(page, s(expect, "page"));
        }
        kind => {
            return match SKIPPED_KINDS.iter().find(|(k, _)| *k == kind) {
                Some(_) => Err("skipped"),
                None => panic!("vector kind {kind} is neither tested nor listed in SKIPPED_KINDS"),
            };
        }
    }
    Ok(())
}

#[test]
fn every_vector_of_binderhub_passes_or_is_skipped_by_kind() {
    let vectors = data("vectors.json");
    let mut passed: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for v in vectors.as_array().unwrap() {
        let (id, kind) = (s(v, "id").to_string(), s(v, "kind").to_string());
        match std::panic::catch_unwind(|| check(v)) {
            Ok(Ok(())) => *passed.entry(kind).or_default() += 1,
            Ok(Err(_)) => *skipped.entry(kind).or_default() += 1,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                failures.push(format!("{id} ({kind}): {}", msg.unwrap_or_default()));
            }
        }
    }
    println!("vectors passed by kind: {passed:?}");
    println!("vectors skipped by kind: {skipped:?}");
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed.values().sum::<usize>() >= 90,
        "too few vectors ran: {passed:?}"
    );
}

#[test]
fn the_vendored_vectors_match_the_shared_reference_when_it_is_present() {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/vectors.json");
    if let Ok(reference) = std::fs::read_to_string(&shared) {
        let reference: Value = serde_json::from_str(&reference).unwrap();
        assert_eq!(
            reference,
            data("vectors.json"),
            "tests/data/vectors.json drifted from {}",
            shared.display()
        );
    }
}

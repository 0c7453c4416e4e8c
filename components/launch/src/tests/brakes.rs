//! `/build`'s brakes, natively: build tokens minted by `/v2` and checked by `/build`, and
//! the per-client rate limit the worker counts (issue 12, points 1 and 2).

use bindery_core::build_token::{self, Claims};
use bindery_core::cache::build_token_secret_key;
use bindery_core::events::Phase;
use bindery_core::worker_api::AdmissionRequest;
use bindery_edge::config::{
    BANNED_SPECS, BUILD_RATE_LIMIT, BUILD_RATE_PERIOD_SECONDS, BUILD_TOKEN_CHECK_ORIGIN,
    BUILD_TOKEN_SECRET,
};
use bindery_edge::fetch::FetchError;
use bindery_edge::testing::response;

use super::*;

const SSE: (&str, &str) = ("accept", "text/event-stream");
const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ADMISSIONS: &str = "http://127.0.0.1:8585/api/v1/admissions";
const PATH: &str = "/build/gh/o/r/main";

/// Every spec is banned, so a request that passes the brakes stops at the ban: no
/// provider, registry or launch call, and a message that tells it apart.
fn world(extra: &[(&'static str, &str)]) -> World {
    let mut all = extra.to_vec();
    all.push((BANNED_SPECS, ".*"));
    World::new(&all)
}

fn banned() -> (Option<u16>, String) {
    (
        Some(403),
        format!("{}\n", bindery_core::policy::banned_message("o/r/main")),
    )
}

fn invalid() -> (Option<u16>, String) {
    (Some(403), "Invalid build token\n".into())
}

impl World {
    /// The `x-ratelimit-*` headers and the stream of `GET path`, as the entry sends them.
    fn open(&self, path: &str, headers: &[(&str, &str)]) -> (Vec<(&'static str, String)>, String) {
        let request = request("GET", path, headers);
        let Answer::Stream { provider, spec } =
            self.with_env(|env| block_on(routes::handle(&request, env)))
        else {
            panic!("{path} answered without an event stream");
        };
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let headers = self.with_env(|env| {
            let opened = block_on(build::open(&request, &provider, &spec, env));
            let headers = opened.headers.clone();
            let mut stream = build::Stream::new(&mut sent);
            block_on(build::proceed(
                opened,
                &request,
                &provider,
                &spec,
                env,
                &mut stream,
            ));
            headers
        });
        (headers, String::from_utf8(sent.concat()).unwrap())
    }

    /// The token the loading page of `/v2/<spec>` carries in its configuration.
    fn page_token(&self, spec: &str, headers: &[(&str, &str)]) -> Option<String> {
        let page = self.get("GET", &format!("/v2/{spec}"), headers);
        let html = String::from_utf8(page.into_body()).unwrap();
        let start = html.find("<script id=\"config\" type=\"application/json\">")?;
        let json = &html[start..];
        let json = &json[json.find('>')? + 1..json.find("</script>")?];
        let config: serde_json::Value = serde_json::from_str(json).ok()?;
        config["build_token"].as_str().map(str::to_owned)
    }
}

fn only_event(text: &str) -> (Option<u16>, String) {
    let events = events(text);
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0].1.phase, Phase::Failed, "{text}");
    (events[0].1.status_code, events[0].1.message.clone())
}

fn minted(aud: &str, origin: &str, exp: u64, secret: &str) -> String {
    let secret = build_token::parse_secret(secret).unwrap();
    build_token::mint(
        &secret,
        &Claims {
            aud: aud.into(),
            origin: origin.into(),
            exp,
        },
    )
}

#[test]
fn build_tokens_from_the_page_pass_and_forged_expired_foreign_ones_are_refused() {
    let world = world(&[(BUILD_TOKEN_SECRET, HEX)]);
    let page = world
        .page_token("gh/o/r/main", &[])
        .expect("the page carries a token");
    let other_secret = "ff".repeat(32);
    let q = |token: &str| format!("{PATH}?build_token={token}");
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        (Option<u16>, String),
    );
    let cases: Vec<Case<'_>> = vec![
        ("the page's token", q(&page), vec![SSE], banned()),
        ("no token, no limit", PATH.into(), vec![SSE], banned()),
        ("an empty token is none", q(""), vec![SSE], banned()),
        ("garbage", q("not.a.token"), vec![SSE], invalid()),
        (
            "forged: another secret",
            q(&minted("gh/o/r/main", "edge.test", NOW + 60, &other_secret)),
            vec![SSE],
            invalid(),
        ),
        (
            "expired",
            q(&minted("gh/o/r/main", "edge.test", NOW, HEX)),
            vec![SSE],
            invalid(),
        ),
        (
            "for another spec",
            q(&minted("gh/o/r/other", "edge.test", NOW + 60, HEX)),
            vec![SSE],
            invalid(),
        ),
        (
            "for another provider",
            q(&minted("gl/o/r/main", "edge.test", NOW + 60, HEX)),
            vec![SSE],
            invalid(),
        ),
        (
            "from another origin",
            q(&page),
            vec![SSE, ("origin", "https://evil.example")],
            invalid(),
        ),
        (
            "minted for another host",
            q(&minted("gh/o/r/main", "evil.example", NOW + 60, HEX)),
            vec![SSE],
            invalid(),
        ),
        (
            "the same origin, named by Origin",
            q(&page),
            vec![SSE, ("origin", "http://edge.test")],
            banned(),
        ),
    ];
    for (name, path, headers, expected) in cases {
        let (ratelimit, text) = world.open(&path, &headers);
        assert_eq!(only_event(&text), expected, "{name}");
        assert!(ratelimit.is_empty(), "{name}: the limit is off");
    }
    assert_eq!(world.fetch.calls(), 0, "{:?}", world.fetch.log());
}

#[test]
fn without_origin_checks_a_token_from_another_site_passes_but_nothing_else_does() {
    let world = world(&[
        (BUILD_TOKEN_SECRET, HEX),
        (BUILD_TOKEN_CHECK_ORIGIN, "false"),
    ]);
    let foreign = minted("gh/o/r/main", "evil.example", NOW + 60, HEX);
    let (_, text) = world.open(&format!("{PATH}?build_token={foreign}"), &[SSE]);
    assert_eq!(only_event(&text), banned());
    let wrong_spec = minted("gh/o/r/x", "evil.example", NOW + 60, HEX);
    let (_, text) = world.open(&format!("{PATH}?build_token={wrong_spec}"), &[SSE]);
    assert_eq!(only_event(&text), invalid());
}

#[test]
fn without_a_configured_secret_one_is_generated_once_kept_in_the_store_and_shared() {
    let world = world(&[]);
    let before = world.kv.keys();
    let first = world.page_token("gh/o/r/main", &[]).expect("a token");
    let stored = world.kv.keys();
    let added: Vec<&String> = stored.iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(added, [&build_token_secret_key()], "one secret, kept");
    let second = world.page_token("gh/o/r/main", &[]).expect("a token");
    assert_eq!(world.kv.keys(), stored, "not generated again");
    // Each request is a fresh instance: the tokens of both pages verify on `/build`.
    for token in [first, second] {
        let (_, text) = world.open(&format!("{PATH}?build_token={token}"), &[SSE]);
        assert_eq!(only_event(&text), banned());
    }
    // Another store is another secret: its tokens fail here.
    let elsewhere = super::World::new(&[])
        .page_token("gh/o/r/main", &[])
        .unwrap();
    let (_, text) = world.open(&format!("{PATH}?build_token={elsewhere}"), &[SSE]);
    assert_eq!(only_event(&text), invalid());
}

fn admission(remaining: i64, exceeded: bool) -> http::Response<Vec<u8>> {
    response(
        200,
        &[],
        format!(
            r#"{{"remaining":{remaining},"reset":{},"limit":2,"exceeded":{exceeded}}}"#,
            NOW + 1200
        ),
    )
}

#[test]
fn the_worker_counts_each_tokenless_build_first_and_past_the_limit_it_is_429() {
    let world = world(&[(BUILD_RATE_LIMIT, "2"), (BUILD_RATE_PERIOD_SECONDS, "1800")]);
    world
        .fetch
        .once("POST", ADMISSIONS, admission(1, false))
        .once("POST", ADMISSIONS, admission(0, false))
        .on("POST", ADMISSIONS, admission(-1, true));
    let expected = [
        ("1", banned()),
        ("0", banned()),
        (
            "-1",
            (
                Some(429),
                "Rate limit exceeded. Try again in 1200 seconds.\n".into(),
            ),
        ),
    ];
    for (remaining, event) in expected {
        let (headers, text) = world.open(PATH, &[SSE]);
        assert_eq!(only_event(&text), event, "remaining {remaining}");
        assert_eq!(
            headers,
            [
                ("x-ratelimit-limit", "2".to_owned()),
                ("x-ratelimit-remaining", remaining.to_owned()),
                ("x-ratelimit-reset", (NOW + 1200).to_string()),
            ]
        );
    }
    // Nothing but the admissions was asked, each with the client and the settings.
    let requests = world.fetch.requests();
    assert_eq!(requests.len(), 3, "{:?}", world.fetch.log());
    for sent in requests.iter() {
        assert_eq!(sent.uri(), ADMISSIONS);
        assert_eq!(sent.headers()["authorization"], "Bearer worker-token");
        let body: AdmissionRequest = serde_json::from_slice(sent.body()).unwrap();
        assert_eq!(
            body,
            AdmissionRequest {
                client: "198.51.100.7".into(),
                limit: 2,
                period_seconds: 1800,
            }
        );
    }
}

#[test]
fn a_valid_token_is_not_counted_and_an_unreachable_worker_refuses_before_any_other_call() {
    let world = world(&[(BUILD_RATE_LIMIT, "2"), (BUILD_TOKEN_SECRET, HEX)]);
    world.fetch.fail(
        "POST",
        ADMISSIONS,
        FetchError::Unreachable {
            origin: WORKER.into(),
            reason: "connection refused".into(),
        },
    );
    let token = world.page_token("gh/o/r/main", &[]).unwrap();
    let (headers, text) = world.open(&format!("{PATH}?build_token={token}"), &[SSE]);
    assert_eq!(only_event(&text), banned());
    assert!(headers.is_empty());
    assert_eq!(world.fetch.calls(), 0, "a valid token skips the count");
    // Fail closed: no worker, no launch, and no provider or registry call for nothing.
    let (headers, text) = world.open(PATH, &[SSE]);
    let (status, message) = only_event(&text);
    assert_eq!(status, Some(503), "{message}");
    assert!(
        message.starts_with("Failed to start the launch: "),
        "{message}"
    );
    assert!(headers.is_empty());
    assert_eq!(world.fetch.log(), [format!("POST {ADMISSIONS}")]);
    // A banned network or a missing Accept is refused before the count.
    let (_, text) = world.open(PATH, &[]);
    assert_eq!(only_event(&text).0, Some(400));
    assert_eq!(world.fetch.calls(), 1);
}

#[test]
fn an_expired_token_on_a_reconnect_is_counted_instead_of_refused() {
    let world = world(&[(BUILD_RATE_LIMIT, "2"), (BUILD_TOKEN_SECRET, HEX)]);
    world.fetch.on("POST", ADMISSIONS, admission(1, false));
    let expired = minted("gh/o/r/main", "edge.test", NOW - 1, HEX);
    let path = format!("{PATH}?build_token={expired}");
    let (headers, text) = world.open(&path, &[SSE, ("last-event-id", "x")]);
    assert_eq!(only_event(&text), banned());
    assert_eq!(headers.len(), 3);
    let (_, text) = world.open(&path, &[SSE]);
    assert_eq!(
        only_event(&text),
        invalid(),
        "without Last-Event-ID it is refused"
    );
}

//! Federation mode at the route level: the redirect, the cookie, `/active_hosts`, the
//! proxy to the prime with its headers, and health checks after the answer.

use bindery_core::federation::health::HEALTH_REASONS;
use bindery_core::metrics::{FEDERATION_HEALTH, FEDERATION_REDIRECT_COUNT, series_key};
use bindery_edge::config::{FEDERATION, PUBLIC_URL};
use bindery_edge::testing::block_on;
use serde_json::{Value, json};

use super::*;
use crate::routes::federation::refresh;

const FED: &str = r#"{"check": {"period": 10, "jitter": 0, "retries": 1, "failed_period": 60},
    "load_balancer": "rendezvous", "host_cookie_age_hours": 2,
    "hosts": {
      "prime": {"url": "http://prime.test", "weight": 1, "prime": true},
      "m1": {"url": "http://m1.test/", "weight": 1},
      "m2": {"url": "http://m2.test", "weight": 1},
      "gone": null}}"#;

fn world() -> World {
    World::unconfirmed(&[(FEDERATION, FED), (PUBLIC_URL, "https://fed.example")])
}

fn header<'a>(response: &'a http::Response<Vec<u8>>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn answer(status: u16, body: &Value) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

fn script_member(world: &World, url: &str, versions: &Value, pods: u64) {
    world
        .fetch
        .on("GET", &format!("{url}/versions"), answer(200, versions));
    let health = json!({"ok": true, "checks": [
        {"service": "Pod quota", "total_pods": pods, "quota": 100, "ok": true}]});
    world
        .fetch
        .on("GET", &format!("{url}/health"), answer(200, &health));
}

#[test]
fn not_a_federation_reads_one_variable_and_answers_as_before() {
    let world = World::unconfirmed(&[]);
    let response = world.get("GET", "/elsewhere", &[]);
    assert_eq!(response.status(), 404);
    assert_eq!(world.vars.loads.borrow()[0], [FEDERATION]);
}

#[test]
fn build_is_redirected_with_query_cookie_and_cors() {
    let world = world();
    let response = world.get("GET", "/build/gh/Owner/Repo/main?build_token=t&x=1", &[]);
    assert_eq!(response.status(), 307);
    let location = header(&response, "location");
    let member = ["http://prime.test", "http://m1.test", "http://m2.test"]
        .into_iter()
        .find(|m| location.starts_with(m))
        .unwrap_or_else(|| panic!("{location}"));
    assert_eq!(
        location,
        format!("{member}/build/gh/Owner/Repo/main?build_token=t&x=1")
    );
    assert_eq!(
        header(&response, "set-cookie"),
        format!("host={member}; Max-Age=7200; Path=/build/gh/Owner/Repo/main")
    );
    assert_eq!(header(&response, "access-control-allow-origin"), "*");
    assert_eq!(
        header(&response, "access-control-allow-headers"),
        "cache-control"
    );
    // Every ref of the repository goes to the same member; the cookie wins when it names
    // a member.
    for r in ["HEAD", "v2", "abc"] {
        let other = world.get("GET", &format!("/build/gh/owner/repo/{r}"), &[]);
        assert!(header(&other, "location").starts_with(member), "{r}");
    }
    let chosen = if member == "http://m2.test" {
        "http://m1.test"
    } else {
        "http://m2.test"
    };
    let with_cookie = world.get(
        "GET",
        "/build/gh/owner/repo/main",
        &[("cookie", &format!("a=b; host=\"{chosen}\""))],
    );
    assert!(header(&with_cookie, "location").starts_with(chosen));
    // Nothing was fetched to answer: the checks come after.
    assert_eq!(world.fetch.calls(), 0);
    // Each redirect is counted for its member and why it was chosen.
    let name = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches(".test")
            .to_owned()
    };
    let key = |member: &str, reason: &str| {
        series_key(&FEDERATION_REDIRECT_COUNT, &[member, reason]).unwrap()
    };
    let recorded = bindery_edge::metrics::recorded();
    assert_eq!(
        recorded.get(&key(&name(member), "load_balancer")),
        Some(&4),
        "{recorded:?}"
    );
    assert_eq!(
        recorded.get(&key(&name(chosen), "cookie")),
        Some(&1),
        "{recorded:?}"
    );
}

#[test]
fn health_checks_after_the_answer_take_unhealthy_members_out() {
    let world = world();
    let versions = json!({"binderhub": "1"});
    script_member(&world, "http://prime.test", &versions, 1);
    script_member(&world, "http://m1.test", &json!({"binderhub": "2"}), 1);
    script_member(&world, "http://m2.test", &versions, 95);
    let first =
        world.with_env(|env| block_on(routes::handle(&request("GET", "/active_hosts", &[]), env)));
    let Answer::ThenRefresh(response) = first else {
        panic!("the first request finds every member due");
    };
    let hosts: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(hosts["active_hosts"].as_object().unwrap().len(), 3);
    world.with_env(|env| block_on(refresh(env)));
    // m1: versions differ from the prime's; m2: 95 + 10 >= 100 pods.
    let recorded = bindery_edge::metrics::recorded();
    for (member, reason) in [("prime", ""), ("m1", "versions"), ("m2", "Pod quota")] {
        for other in HEALTH_REASONS {
            let key = series_key(&FEDERATION_HEALTH, &[member, other]).unwrap();
            let expected = i64::from(other == reason);
            assert_eq!(recorded.get(&key), Some(&expected), "{key}: {recorded:?}");
        }
    }
    let response = world.get("GET", "/active_hosts", &[]);
    let hosts: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(
        hosts,
        json!({"active_hosts": {"prime": {"url": "http://prime.test", "weight": 1, "prime": true}}})
    );
    for i in 0..20 {
        let response = world.get("GET", &format!("/build/gh/o/repo-{i}/HEAD"), &[]);
        assert!(header(&response, "location").starts_with("http://prime.test/"));
    }
    // A cookie naming an unhealthy member no longer wins.
    let response = world.get(
        "GET",
        "/build/gh/o/r/HEAD",
        &[("cookie", "host=http://m1.test")],
    );
    assert!(header(&response, "location").starts_with("http://prime.test/"));
    // Nothing is due until the period passes: the answers are whole again.
    let again =
        world.with_env(|env| block_on(routes::handle(&request("GET", "/active_hosts", &[]), env)));
    assert!(matches!(again, Answer::Whole(_)));
}

#[test]
fn everything_else_is_proxied_to_the_prime_with_the_federations_origin() {
    let world = world();
    let page = http::Response::builder()
        .status(200)
        .header("content-type", "text/html")
        .header("connection", "close")
        .header("content-length", "2")
        .body(b"ok".to_vec())
        .unwrap();
    world
        .fetch
        .on("GET", "http://prime.test/v2/gh/o/r/HEAD", page);
    let response = world.get(
        "GET",
        "/v2/gh/o/r/HEAD?urlpath=lab",
        &[
            ("host", "fed.example"),
            ("user-agent", "test"),
            ("x-forwarded-for", "203.0.113.9"),
            ("cookie", "secret=1"),
        ],
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), b"ok");
    assert_eq!(header(&response, "content-type"), "text/html");
    assert!(response.headers().get("connection").is_none());
    let requests = world.fetch.requests();
    let sent = &requests[0];
    assert_eq!(sent.uri(), "http://prime.test/v2/gh/o/r/HEAD?urlpath=lab");
    let h = |name: &str| {
        sent.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(h("origin"), "https://fed.example");
    assert_eq!(h("x-binder-launch-host"), "https://fed.example/");
    assert_eq!(h("x-forwarded-host"), "fed.example");
    assert_eq!(h("user-agent"), "test");
    assert_eq!(h("x-forwarded-for"), "203.0.113.9, 198.51.100.7");
    assert_eq!(h("cookie"), "", "the federation's cookies stay with it");
}

#[test]
fn an_unreachable_prime_is_a_502_and_other_methods_a_405() {
    let world = world();
    let response = world.get("GET", "/", &[]);
    assert_eq!(response.status(), 502);
    assert!(String::from_utf8_lossy(response.body()).contains("prime"));
    assert_eq!(world.get("POST", "/v2/gh/o/r/HEAD", &[]).status(), 405);
}

#[test]
fn a_bad_federation_variable_is_a_500_naming_it() {
    let world = World::unconfirmed(&[(FEDERATION, r#"{"hosts": {}}"#)]);
    let response = world.get("GET", "/build/gh/o/r/HEAD", &[]);
    assert_eq!(response.status(), 500);
    let text = String::from_utf8_lossy(response.body()).into_owned();
    assert!(
        text.contains("`federation` is invalid") && text.contains("prime"),
        "{text}"
    );
}

#[test]
fn a_refresh_waits_while_another_request_holds_the_lease() {
    let world = world();
    let fed = bindery_edge::federation::Federation::parse(FED)
        .unwrap()
        .unwrap();
    assert!(fed.take_lease(&world.cache(), "another request", NOW));
    world.with_env(|env| block_on(refresh(env)));
    assert_eq!(world.fetch.calls(), 0, "no member was asked");
    // Once it is given back, the next refresh checks.
    fed.release_lease(&world.cache());
    world.with_env(|env| block_on(refresh(env)));
    assert_eq!(
        world.fetch.calls(),
        6,
        "/versions and /health of three members"
    );
}

//! What a BinderHub federation reads from a member, natively: `/health` with the worker's
//! checks, `/versions` with the worker's `builder_info`, and `cors_allow_origin` on every
//! answer, the event stream's included (issue 14, point 2).

use bindery_core::cache::edge_versions_key;
use bindery_core::worker_api::BINDERY_VERSION;
use bindery_edge::config::{BANNED_SPECS, CORS_ALLOW_ORIGIN};
use bindery_edge::fetch::FetchError;
use bindery_edge::testing::response;
use serde_json::{Value, json};

use super::other_routes::WORKER_HEALTH;
use super::*;

const BOOK: &str = "https://book.example.org";

fn json_of(response: &http::Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// The headers `/build` sends before its events, and the events.
fn stream_headers(
    world: &World,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let request = request("GET", path, headers);
    let Answer::Stream { provider, spec } =
        world.with_env(|env| block_on(routes::handle(&request, env)))
    else {
        panic!("{path} answered without an event stream");
    };
    world.with_env(|env| block_on(build::open(&request, &provider, &spec, env)).headers)
}

#[test]
fn versions_carry_the_workers_builder_info_cached_and_kept_when_the_worker_is_gone() {
    let world = World::new(&[]);
    world.fetch.once(
        "GET",
        &format!("{WORKER}/versions"),
        response(
            200,
            &[],
            r#"{"builder_info": {"build_image": "quay.io/jupyterhub/repo2docker:2024.07.0"}}"#,
        ),
    );
    let first = world.get("GET", "/versions", &[]);
    assert_eq!(first.status(), 200);
    assert_eq!(
        json_of(&first),
        json!({
            "binderhub": BINDERY_VERSION,
            "builder_info": {"build_image": "quay.io/jupyterhub/repo2docker:2024.07.0"},
            "builder": "quay.io/jupyterhub/repo2docker:2024.07.0",
        })
    );
    assert_eq!(first.headers()["access-control-allow-origin"], "*");
    assert_eq!(first.headers()["x-bindery-cache"], "miss");
    let again = world.get("GET", "/versions", &[]);
    assert_eq!(again.headers()["x-bindery-cache"], "hit");
    assert_eq!(again.body(), first.body());
    assert_eq!(world.fetch.calls(), 1);

    // Expired, and the worker does not answer: the last answer it gave.
    world.cache().put(
        &edge_versions_key(),
        &json!({"builder_info": {"repo2docker-version": "2026.4.0"}, "expires_at": NOW - 1}),
    );
    world.fetch.fail(
        "GET",
        &format!("{WORKER}/versions"),
        FetchError::Unreachable {
            origin: "x".into(),
            reason: "gone".into(),
        },
    );
    let stale = world.get("GET", "/versions", &[]);
    assert_eq!(stale.headers()["x-bindery-cache"], "stale");
    assert_eq!(
        json_of(&stale),
        json!({"binderhub": BINDERY_VERSION, "builder_info": {"repo2docker-version": "2026.4.0"}})
    );
    // Never an answer: an empty builder_info, which a federation's prime does not match.
    let fresh = World::new(&[]);
    fresh.fetch.on(
        "GET",
        &format!("{WORKER}/versions"),
        response(500, &[], "{}"),
    );
    let none = fresh.get("GET", "/versions", &[]);
    assert_eq!(none.status(), 200);
    assert_eq!(
        json_of(&none),
        json!({"binderhub": BINDERY_VERSION, "builder_info": {}})
    );
}

#[test]
fn health_passes_on_the_workers_failing_checks_and_is_503() {
    let world = World::new(&[]);
    let down = r#"{"ok": false, "checks": [
        {"service": "JupyterHub API", "ok": false},
        {"service": "Pod quota", "ok": false, "total_pods": 105, "quota": 100, "_ignore_failure": true}
    ]}"#;
    world
        .fetch
        .on("GET", &format!("{WORKER}/health"), response(503, &[], down));
    world
        .fetch
        .on("GET", &format!("{REGISTRY}/v2/"), response(200, &[], "{}"));
    let health = world.get("GET", "/health", &[]);
    assert_eq!(health.status(), 503);
    assert_eq!(
        json_of(&health),
        json!({"ok": false, "checks": [
            {"service": "JupyterHub API", "ok": false},
            {"service": "Pod quota", "ok": false, "total_pods": 105, "quota": 100, "_ignore_failure": true},
            {"service": "Docker registry", "ok": true},
            {"service": "Bindery worker", "ok": true},
        ]})
    );
    // A healthy worker whose registry the edge cannot reach.
    let world = World::new(&[]);
    world.fetch.on(
        "GET",
        &format!("{WORKER}/health"),
        response(200, &[], WORKER_HEALTH),
    );
    world.fetch.fail(
        "GET",
        &format!("{REGISTRY}/v2/"),
        FetchError::Unreachable {
            origin: "x".into(),
            reason: "gone".into(),
        },
    );
    let health = world.get("GET", "/health", &[]);
    assert_eq!(health.status(), 503);
    let body = json_of(&health);
    assert_eq!(
        body["checks"][1],
        json!({"service": "Docker registry", "ok": false})
    );
}

#[test]
fn without_cors_allow_origin_only_the_resolve_api_versions_and_preflights_allow_any_origin() {
    let world = World::new(&[]);
    let origin = [("origin", BOOK)];
    for path in ["/", "/v2/gh/o/r/main", "/health", "/nowhere"] {
        let answer = world.get("GET", path, &origin);
        assert!(
            !answer.headers().contains_key("access-control-allow-origin"),
            "{path}"
        );
    }
    assert!(
        !stream_headers(
            &world,
            "/build/gh/o/r/main",
            &[("accept", "text/event-stream")]
        )
        .iter()
        .any(|(n, _)| *n == "access-control-allow-origin")
    );
    world
        .fetch
        .on("HEAD", &format!("{REGISTRY}/v2/"), response(404, &[], ""));
    let resolve = world.get("GET", &format!("/api/v1/resolve/gh/o/r/{SHA}"), &origin);
    assert_eq!(resolve.headers()["access-control-allow-origin"], "*");
}

#[test]
fn a_listed_origin_is_allowed_on_every_route_and_the_event_stream_and_another_is_not() {
    let world = World::new(&[(CORS_ALLOW_ORIGIN, &format!("{BOOK} http://127.0.0.1:8080"))]);
    world.fetch.on(
        "GET",
        &format!("{WORKER}/versions"),
        response(200, &[], r#"{"builder_info": {}}"#),
    );
    let allowed = [("origin", BOOK)];
    let foreign = [("origin", "https://evil.example")];
    for path in [
        "/",
        "/v2/gh/o/r/main",
        "/health",
        "/versions",
        "/repo/o/r",
        "/nowhere",
    ] {
        let answer = world.get("GET", path, &allowed);
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            BOOK,
            "{path}"
        );
        assert_eq!(answer.headers()["vary"], "Origin", "{path}");
        let answer = world.get("GET", path, &foreign);
        assert!(
            !answer.headers().contains_key("access-control-allow-origin"),
            "{path}: {:?}",
            answer.headers()
        );
        assert_eq!(answer.headers()["vary"], "Origin", "{path}");
    }
    let preflight = world.get("OPTIONS", "/build/gh/o/r/main", &allowed);
    assert_eq!(preflight.headers()["access-control-allow-origin"], BOOK);
    let preflight = world.get("OPTIONS", "/build/gh/o/r/main", &foreign);
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let head = world.get("HEAD", "/build/gh/o/r/main", &allowed);
    assert_eq!(head.headers()["access-control-allow-origin"], BOOK);

    let sse = ("accept", "text/event-stream");
    let headers = stream_headers(&world, "/build/gh/o/r/main", &[sse, ("origin", BOOK)]);
    assert!(
        headers.contains(&("access-control-allow-origin", BOOK.to_owned())),
        "{headers:?}"
    );
    assert!(headers.contains(&("vary", "Origin".to_owned())));
    let headers = stream_headers(&world, "/build/gh/o/r/main", &[sse, foreign[0]]);
    assert!(
        !headers
            .iter()
            .any(|(n, _)| *n == "access-control-allow-origin")
    );
}

#[test]
fn any_origin_reads_even_a_refused_event_stream() {
    let world = World::new(&[(CORS_ALLOW_ORIGIN, "*"), (BANNED_SPECS, ".*")]);
    let headers = stream_headers(
        &world,
        "/build/gh/o/r/main",
        &[("accept", "text/event-stream"), ("origin", BOOK)],
    );
    assert!(
        headers.contains(&("access-control-allow-origin", "*".to_owned())),
        "{headers:?}"
    );
    let text = world.stream("/build/gh/o/r/main", &[("accept", "text/event-stream")]);
    assert!(text.contains("\"phase\":\"failed\""), "{text}");
    // A value that is not an origin is refused, naming the variable, not sent.
    let bad = World::new(&[(CORS_ALLOW_ORIGIN, "https://a.org/path")]);
    let text = bad.stream("/build/gh/o/r/main", &[("accept", "text/event-stream")]);
    assert!(text.contains("cors_allow_origin"), "{text}");
    let home = bad.get("GET", "/", &[("origin", "https://a.org")]);
    assert!(!home.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn repoproviders_and_about_answer_as_binderhub() {
    let world = World::new(&[(
        bindery_edge::config::ABOUT_MESSAGE,
        "<p>Run by <b>the lab</b></p>",
    )]);
    let providers = world.get("GET", "/api/repoproviders", &[]);
    assert_eq!(providers.status(), 200);
    assert_eq!(
        json_of(&providers),
        bindery_core::provider::repo_providers()
    );
    let about = world.get("GET", "/about", &[]);
    assert_eq!(about.status(), 200);
    let page = String::from_utf8_lossy(about.body()).into_owned();
    assert!(page.contains("<p>Run by <b>the lab</b></p>"), "{page}");
    assert!(page.contains(BINDERY_VERSION), "{page}");
    // A page: its policy lets no script of the message run.
    let policy = about.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let banned = World::new(&[(
        bindery_edge::config::BAN_NETWORKS,
        "198.51.100.0/24=a test network",
    )]);
    assert_eq!(banned.get("GET", "/about", &[]).status(), 403);
}

const FEDERATION: &str = "https://mybinder.org";
const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The JSON configuration a loading page carries.
fn page_config(page: &http::Response<Vec<u8>>) -> Value {
    let text = String::from_utf8_lossy(page.body()).into_owned();
    let start = text
        .find("<script id=\"config\" type=\"application/json\">")
        .unwrap();
    let rest = &text[start..];
    let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(json).unwrap()
}

#[test]
fn behind_a_federation_links_and_binder_launch_host_name_it_and_a_proxied_page_streams_through_it()
{
    use bindery_edge::config::{BADGE_BASE_URL, BUILD_TOKEN_SECRET};
    let world = World::new(&[(BADGE_BASE_URL, FEDERATION), (BUILD_TOKEN_SECRET, HEX)]);
    // A visitor of this member itself: shared links name the federation, the stream stays.
    let direct = world.get("GET", "/v2/gh/o/r/main", &[]);
    assert_eq!(direct.status(), 200);
    let config = page_config(&direct);
    assert_eq!(config["share_url"], "https://mybinder.org/v2/gh/o/r/main");
    assert_eq!(config["build_url"], "http://edge.test/build/gh/o/r/main");
    let home = world.get("GET", "/", &[]);
    assert!(
        String::from_utf8_lossy(home.body()).contains("\"base_url\":\"https://mybinder.org/\""),
        "the home page's links and badges name the federation"
    );
    // The redirector's proxy to its prime: the stream goes to the federation, which picks
    // a member, and the token names the federation's origin, which that member checks.
    let proxied = world.get(
        "GET",
        "/v2/gh/o/r/main",
        &[("x-binder-launch-host", "https://mybinder.org/")],
    );
    let config = page_config(&proxied);
    assert_eq!(
        config["build_url"],
        "https://mybinder.org/build/gh/o/r/main"
    );
    let policy = proxied.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        policy.contains("connect-src 'self' https://mybinder.org"),
        "{policy}"
    );
    let secret = bindery_core::build_token::parse_secret(HEX).unwrap();
    let token = config["build_token"].as_str().unwrap();
    let origin = bindery_core::build_token::verify(&secret, token, "gh/o/r/main", NOW).unwrap();
    assert_eq!(origin.as_deref(), Some("mybinder.org"));
    // Another value of the header is not believed.
    let forged = world.get(
        "GET",
        "/v2/gh/o/r/main",
        &[("x-binder-launch-host", "https://evil.example/")],
    );
    let config = page_config(&forged);
    assert_eq!(config["build_url"], "http://edge.test/build/gh/o/r/main");
    let token = config["build_token"].as_str().unwrap();
    let origin = bindery_core::build_token::verify(&secret, token, "gh/o/r/main", NOW).unwrap();
    assert_eq!(origin.as_deref(), Some("edge.test"));

    // The launch the worker is asked for carries the federation as binder_launch_host.
    world.cache().put_missing(
        &pinned_image(),
        NOW,
        &bindery_core::cache::CacheTtl::default(),
    );
    world.fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/launches"),
        response(503, &[], "{}"),
    );
    world.stream(
        &format!("/build/gh/o/r/{SHA}"),
        &[("accept", "text/event-stream")],
    );
    let requests = world.fetch.requests();
    let launch = requests
        .iter()
        .find(|r| r.method() == "POST" && r.uri().path() == "/api/v1/launches")
        .expect("a launch request");
    let body: Value = serde_json::from_slice(launch.body()).unwrap();
    assert_eq!(body["launch_host"], "https://mybinder.org/");
}

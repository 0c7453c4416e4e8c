//! `/build`'s brakes end to end (issue 12, points 1 and 2): the real `bindery edge` runs the
//! real launch component from `spin.toml`, and the real worker, in this process, counts
//! every token-less `/build` per client address.
//!
//! Every spec is banned, so a request that passes the brakes stops at the ban with
//! BinderHub's message: the test tells admitted (403 "not allowed to launch") from refused
//! (429 "Rate limit exceeded", 403 "Invalid build token") without any provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use bindery_core::build_token::{self, Claims};
use bindery_system_tests::edge::Edge;
use bindery_system_tests::scratch;
use bindery_system_tests::sse::{Got, get};
use bindery_worker::{Secret, WorkerConfig};
use serde_json::Value;

const TOKEN: &str = "brakes-worker-token";
const HEX: &str = "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";
const SSE: (&str, &str) = ("accept", "text/event-stream");

struct World {
    edge: Edge,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl World {
    async fn start(name: &str, extra: &[(&'static str, &str)]) -> World {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let worker_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Launches would fail at this hub; none is asked for here.
        let config = WorkerConfig::new(
            Secret::new(TOKEN),
            "http://127.0.0.1:9/",
            Secret::new("hub"),
            "127.0.0.1:5000/binder-",
        );
        tokio::spawn(bindery_worker::serve(listener, config, async {
            let _ = stopped.await;
        }));
        let mut vars: Vec<(&str, String)> = vec![
            ("worker_url", worker_url),
            ("worker_token", TOKEN.into()),
            ("image_prefix", "127.0.0.1:5000/binder-".into()),
            ("banned_specs", ".*".into()),
            // Another address per test client: X-Forwarded-For from loopback is believed.
            ("trusted_proxies", "127.0.0.1/32".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let edge = Edge::start(&scratch(name).join("edge"), &vars).await;
        World {
            edge,
            stop: Some(stop),
        }
    }

    async fn build(&self, spec: &str, query: &str, headers: &[(&str, &str)]) -> Got {
        let mut all = vec![SSE];
        all.extend_from_slice(headers);
        get(&format!("{}/build/gh/{spec}{query}", self.edge.url), &all).await
    }

    /// The build token the real loading page of `/v2/gh/<spec>` carries.
    async fn page_token(&self, spec: &str) -> String {
        let page = get(&format!("{}/v2/gh/{spec}", self.edge.url), &[]).await;
        let html = page.text();
        let start = html
            .find("<script id=\"config\" type=\"application/json\">")
            .unwrap();
        let json = &html[start..];
        let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
        let config: Value = serde_json::from_str(json).unwrap();
        config["build_token"].as_str().expect("a token").to_owned()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The one `failed` event of an answer: status and message.
fn failure(got: &Got) -> (u64, String) {
    assert_eq!(got.status, 200, "errors are events on a 200 stream");
    let text = got.text();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no event: {text}"));
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["phase"], "failed", "{text}");
    (
        event["status_code"].as_u64().unwrap(),
        event["message"].as_str().unwrap().to_owned(),
    )
}

fn header(got: &Got, name: &str) -> Option<String> {
    got.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

const BANNED: &str =
    "Sorry, o/r/main is not allowed to launch. Please contact admins for more info!\n";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_tokenless_builds_admit_exactly_the_limit_and_page_tokens_are_not_counted()
{
    let world = World::start("brakes-flood", &[]).await;
    let client = [("x-forwarded-for", "203.0.113.10")];
    let flood = (0..50).map(|_| world.build("o/r/main", "", &client));
    let answers = futures::future::join_all(flood).await;
    let mut admitted = 0;
    let mut remaining: Vec<i64> = Vec::new();
    for got in &answers {
        let (status, message) = failure(got);
        match status {
            403 => {
                assert_eq!(message, BANNED);
                admitted += 1;
            }
            429 => assert!(
                message.starts_with("Rate limit exceeded. Try again in ")
                    && message.ends_with(" seconds.\n"),
                "{message}"
            ),
            other => panic!("{other}: {message}"),
        }
        assert_eq!(header(got, "x-ratelimit-limit").as_deref(), Some("10"));
        let reset: u64 = header(got, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > now() && reset <= now() + 3600, "{reset}");
        remaining.push(
            header(got, "x-ratelimit-remaining")
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    assert_eq!(admitted, 10, "exactly the limit");
    remaining.sort_unstable();
    assert_eq!(remaining, (-40..10).collect::<Vec<_>>(), "each count once");

    // Sequentially too: still refused; another address has its own window.
    for _ in 0..3 {
        assert_eq!(failure(&world.build("o/r/main", "", &client).await).0, 429);
    }
    let other = world
        .build("o/r/main", "", &[("x-forwarded-for", "203.0.113.11")])
        .await;
    assert_eq!(failure(&other), (403, BANNED.into()));
    assert_eq!(
        header(&other, "x-ratelimit-remaining").as_deref(),
        Some("9")
    );

    // The loading page's token (the secret generated and kept in the store) skips the
    // count, however often, and the answer carries no rate-limit headers.
    let token = world.page_token("o/r/main").await;
    for _ in 0..12 {
        let got = world
            .build("o/r/main", &format!("?build_token={token}"), &client)
            .await;
        assert_eq!(failure(&got), (403, BANNED.into()));
        assert_eq!(header(&got, "x-ratelimit-remaining"), None);
    }
    // A token for another link is refused, not counted.
    let foreign = world.page_token("o/other/main").await;
    let got = world
        .build("o/r/main", &format!("?build_token={foreign}"), &client)
        .await;
    assert_eq!(failure(&got), (403, "Invalid build token\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_foreign_spec_and_foreign_origin_tokens_are_refused() {
    let world = World::start("brakes-tokens", &[("build_token_secret", HEX)]).await;
    let mint = |secret: &str, aud: &str, origin: &str, exp: u64| {
        build_token::mint(
            &build_token::parse_secret(secret).unwrap(),
            &Claims {
                aud: aud.into(),
                origin: origin.into(),
                exp,
            },
        )
    };
    let host = world.edge.url.trim_start_matches("http://").to_owned();
    let page = world.page_token("o/r/main").await;
    let invalid = (403, "Invalid build token\n".to_owned());
    let banned = (403, BANNED.to_owned());
    /// Name, token, `Origin` header, the failure expected.
    type Case<'a> = (&'a str, String, Option<&'a str>, (u64, String));
    let cases: Vec<Case<'_>> = vec![
        ("the page's", page.clone(), None, banned.clone()),
        (
            "minted here with the secret",
            mint(HEX, "gh/o/r/main", &host, now() + 60),
            None,
            banned.clone(),
        ),
        (
            "forged",
            mint(&"ab".repeat(32), "gh/o/r/main", &host, now() + 60),
            None,
            invalid.clone(),
        ),
        (
            "expired",
            mint(HEX, "gh/o/r/main", &host, now() - 1),
            None,
            invalid.clone(),
        ),
        (
            "another spec",
            mint(HEX, "gh/o/r/HEAD", &host, now() + 60),
            None,
            invalid.clone(),
        ),
        (
            "another origin",
            page.clone(),
            Some("https://evil.example"),
            invalid.clone(),
        ),
        (
            "minted for another site",
            mint(HEX, "gh/o/r/main", "evil.example", now() + 60),
            None,
            invalid.clone(),
        ),
    ];
    for (name, token, origin, expected) in cases {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let got = world
            .build("o/r/main", &format!("?build_token={token}"), &headers)
            .await;
        assert_eq!(failure(&got), expected, "{name}");
    }
}

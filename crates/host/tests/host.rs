//! The host running real spin-sdk 5.2 components (`crates/host/probe`, built by
//! `cargo xtask build`) behind real sockets.

mod support;

use std::time::{Duration, Instant};

use bindery_host::{HostError, KvBackend};
use http_body_util::BodyExt;
use support::{RunningHost, TestApp, Upstream, get, get_json, probe_manifest, send};

#[tokio::test]
async fn requests_are_routed_with_spin_headers() {
    let manifest = format!(
        "{}\n[[trigger.http]]\nroute = \"/users/:name/...\"\ncomponent = \"probe\"\n",
        probe_manifest("", "")
    );
    let app = TestApp::new(&manifest);
    let host = app.start().await;
    let addr = host.addr;

    let response = send(
        addr,
        "GET",
        "/probe/headers?x=1",
        "",
        &[("spin-client-addr", "6.6.6.6:1"), ("x-custom", "kept")],
    )
    .await;
    let (status, body) = support::read(response).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let headers = &json["headers"];
    let expected = [
        ("spin-full-url", format!("http://{addr}/probe/headers?x=1")),
        ("spin-path-info", "/headers".to_owned()),
        ("spin-matched-route", "/probe/...".to_owned()),
        ("spin-raw-component-route", "/probe/...".to_owned()),
        ("spin-component-route", "/probe".to_owned()),
        ("spin-base-path", "/".to_owned()),
        ("x-custom", "kept".to_owned()),
    ];
    for (name, value) in expected {
        assert_eq!(headers[name], value, "{name} in {headers}");
    }
    let client_addr = headers["spin-client-addr"]
        .as_str()
        .expect("spin-client-addr");
    assert!(
        client_addr.starts_with("127.0.0.1:"),
        "a client cannot spoof spin-client-addr: {client_addr}"
    );
    assert_eq!(json["path"], "/probe/headers?x=1");

    // A Host header that is no authority is refused before a component sees it.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(
            b"GET /probe/headers HTTP/1.1\r\nhost: bad host\r\nconnection: close\r\n\r\n",
        )
        .await
        .expect("write");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("Host header is malformed"), "{answer}");
    }

    let (status, json) = get_json(addr, "/users/ada/headers").await;
    assert_eq!(status, 200);
    assert_eq!(json["headers"]["spin-path-match-name"], "ada");
    assert_eq!(json["headers"]["spin-path-info"], "/headers");
    assert_eq!(json["headers"]["spin-component-route"], "/users/:name");

    let (status, body) = get(addr, "/nowhere").await;
    assert_eq!((status, body.as_str()), (404, "no route for /nowhere\n"));
    host.stop().await;
}

#[tokio::test]
async fn variables_come_from_defaults_templates_and_the_environment() {
    let manifest = probe_manifest(
        "[component.probe.variables]\ngreeting = \"{{ greeting }}, {{ who }}!\"\nliteral = \"as written\"\n",
        "[variables]\ngreeting = { default = \"hello\" }\nwho = { default = \"world\" }\n",
    );
    let mut app = TestApp::new(&manifest);
    let host = app.start().await;
    assert_eq!(
        get_json(host.addr, "/probe/var/greeting").await.1["value"],
        "hello, world!"
    );
    assert_eq!(
        get_json(host.addr, "/probe/var/literal").await.1["value"],
        "as written"
    );
    let (status, json) = get_json(host.addr, "/probe/var/who").await;
    assert_eq!(
        status, 404,
        "app variables reach a component only through its own variables"
    );
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Undefined"),
        "{json}"
    );
    host.stop().await;

    app.config.env = Some(
        [("SPIN_VARIABLE_WHO".to_owned(), "edge".to_owned())]
            .into_iter()
            .collect(),
    );
    let host = app.start().await;
    assert_eq!(
        get_json(host.addr, "/probe/var/greeting").await.1["value"],
        "hello, edge!"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_missing_required_variable_stops_start_up_naming_it() {
    let manifest = probe_manifest(
        "[component.probe.variables]\ntoken = \"{{ worker_token }}\"\n",
        "[variables]\nworker_token = { required = true, secret = true }\n",
    );
    let app = TestApp::new(&manifest);
    let err = app.bind().await.expect_err("start-up fails");
    assert!(matches!(err, HostError::Variable(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "variable `worker_token` is required: set SPIN_VARIABLE_WORKER_TOKEN"
    );
}

#[tokio::test]
async fn key_value_data_survives_a_host_restart() {
    let manifest = format!(
        "{}\n[[trigger.http]]\nroute = \"/nokv/...\"\ncomponent = \"nokv\"\n\n[component.nokv]\nsource = \"{}\"\n",
        probe_manifest("key_value_stores = [\"default\"]", ""),
        support::probe().display()
    );
    let mut app = TestApp::new(&manifest);
    app.config.kv = KvBackend::Redb;

    let host = app.start().await;
    let response = send(host.addr, "PUT", "/probe/kv/answer", "42", &[]).await;
    let (status, body) = support::read(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("stored"), "{body}");
    assert_eq!(
        get_json(host.addr, "/probe/kv/answer").await.1["value"],
        "42"
    );
    let (_, denied) = get_json(host.addr, "/nokv/kv/answer").await;
    assert!(
        denied["error"]
            .as_str()
            .unwrap_or_default()
            .contains("AccessDenied"),
        "{denied}"
    );
    host.stop().await;

    let host = app.start().await;
    let (status, json) = get_json(host.addr, "/probe/kv/answer").await;
    assert_eq!(status, 200);
    assert_eq!(
        json["value"], "42",
        "the value survives the restart: {json}"
    );
    assert_eq!(json["keys"], serde_json::json!(["answer"]));
    host.stop().await;
    assert!(
        app.config
            .data_dir
            .join(bindery_host::kv::KV_FILE_NAME)
            .is_file()
    );
}

#[tokio::test]
async fn the_host_sweeps_expired_entries_a_component_wrote_in_the_background() {
    let mut app = TestApp::new(&probe_manifest("key_value_stores = [\"default\"]", ""));
    app.config.kv = KvBackend::Redb;
    app.config.kv_sweep = bindery_host::KvSweep {
        interval: Duration::from_millis(200),
        grace: Duration::ZERO,
    };
    let host = app.start().await;
    // (key, value, whether the sweep leaves it)
    let entries = [
        ("expired", r#"{"present":false,"expires_at":1}"#, false),
        (
            "fresh",
            r#"{"present":false,"expires_at":99999999999}"#,
            true,
        ),
        ("opaque", "an app's own format", true),
    ];
    for (key, value, _) in entries {
        let response = send(host.addr, "PUT", &format!("/probe/kv/{key}"), value, &[]).await;
        assert_eq!(support::read(response).await.0, 200);
    }
    let started = Instant::now();
    while !get_json(host.addr, "/probe/kv/expired").await.1["value"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the expired entry is swept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (key, value, kept) in entries {
        let json = get_json(host.addr, &format!("/probe/kv/{key}")).await.1;
        let expected = if kept {
            serde_json::json!(value)
        } else {
            serde_json::Value::Null
        };
        assert_eq!(json["value"], expected, "{key}");
    }
    host.stop().await;
}

#[tokio::test]
async fn outbound_calls_reach_allowed_hosts_and_refused_ones_fail_in_the_guest() {
    let allowed = Upstream::start("hello from upstream").await;
    let other = Upstream::start("must not be reached").await;
    let manifest = probe_manifest(
        &format!("allowed_outbound_hosts = [\"http://{}\"]", allowed.addr),
        "",
    );
    let app = TestApp::new(&manifest);
    let host = app.start().await;

    let (status, json) = get_json(
        host.addr,
        &format!("/probe/fetch?url=http://{}/hello", allowed.addr),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json["status"], 200, "{json}");
    assert_eq!(json["body"], "hello from upstream");

    let (_, json) = get_json(
        host.addr,
        &format!("/probe/fetch?url=http://{}/secret?token=x", other.addr),
    )
    .await;
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{json}"
    );
    let (_, json) = get_json(host.addr, "/probe/fetch?url=https://example.org/").await;
    assert!(
        json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{json}"
    );

    // Several calls share the pooled client.
    for _ in 0..3 {
        let (_, json) = get_json(
            host.addr,
            &format!("/probe/fetch?url=http://{}/again", allowed.addr),
        )
        .await;
        assert_eq!(json["status"], 200, "{json}");
    }
    host.stop().await;
}

#[tokio::test]
async fn a_streamed_response_arrives_in_pieces_as_it_is_written() {
    let app = TestApp::new(&probe_manifest("", ""));
    let host = app.start().await;
    let response = send(host.addr, "GET", "/probe/stream", "", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    let mut body = response.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            arrivals.push(started.elapsed());
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert_eq!(
        text,
        "data: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\ndata: chunk 3\n\n"
    );
    assert!(arrivals.len() >= 4, "{arrivals:?}");
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(600),
        "chunks came together, not as written: {arrivals:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_component_importing_outside_the_world_is_refused_by_name() {
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"bad\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"reads-files\"\n[component.reads-files]\nsource = \"{}\"\n",
        support::forbidden().display()
    );
    let err = TestApp::new(&manifest).bind().await.expect_err("refused");
    let message = err.to_string();
    assert!(
        message.starts_with("component `reads-files` imports `wasi:filesystem/"),
        "{message}"
    );
    assert!(
        message.contains("which an edge component may not use"),
        "{message}"
    );
}

#[tokio::test]
async fn every_built_component_instantiates_against_the_world() {
    let dir = support::wasm_dir();
    support::probe();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("wasm dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".wasm") || name == "bindery_host_forbidden.wasm" {
            continue;
        }
        bindery_host::check_component(&path, &support::shared_cache())
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}: {:?}", std::error::Error::source(&err)));
        checked.push(name);
    }
    eprintln!("instantiated against the world: {checked:?}");
    // The edge's own components are built before the tests (`cargo xtask test`): each
    // of them must have been checked, not merely whatever the directory held.
    for expected in [
        "bindery_host_probe.wasm",
        "bindery_launch.wasm",
        "bindery_badge.wasm",
        "bindery_webhook.wasm",
    ] {
        assert!(
            checked.contains(&expected.to_owned()),
            "{expected} in {checked:?}"
        );
    }
    let err = bindery_host::check_component(&support::forbidden(), &support::shared_cache())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("wasi:filesystem/"), "{err}");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let app = TestApp::new(&probe_manifest("", ""));
    let host = app.start().await;
    let addr = host.addr;
    let slow = tokio::spawn(async move {
        support::read(send(addr, "GET", "/probe/slow", "", &[]).await).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    host.stop().await;
    assert!(
        stopping.elapsed() >= Duration::from_millis(500),
        "shutdown waited for the request"
    );
    let (status, body) = slow.await.expect("slow request");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("slept_ms"), "{body}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn a_component_that_sets_no_response_or_traps_gets_a_500() {
    let app = TestApp::new(&probe_manifest("", ""));
    let host = app.start().await;
    let (status, body) = get(host.addr, "/probe/silent").await;
    assert_eq!(
        (status, body.as_str()),
        (500, "component probe set no response\n")
    );
    let (status, body) = get(host.addr, "/probe/trap").await;
    assert_eq!((status, body.as_str()), (500, "component probe failed\n"));
    // A failed request does not poison the next one: each gets a fresh instance.
    let (status, _) = get(host.addr, "/probe/headers").await;
    assert_eq!(status, 200);
    host.stop().await;
}

#[tokio::test]
async fn a_guest_that_never_returns_is_stopped_at_the_request_deadline() {
    let mut app = TestApp::new(&probe_manifest("", ""));
    app.config.request_deadline = Duration::from_secs(2);
    let host = app.start().await;
    // Without the deadline the loop would hold its serving thread for good, and the
    // client's own time limit would fail this test.
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(60), get(host.addr, "/probe/spin"))
            .await
            .expect("the request deadline ended the request");
    assert_eq!((status, body.as_str()), (500, "component probe failed\n"));
    let (status, _) = get(host.addr, "/probe/headers").await;
    assert_eq!(status, 200, "the host goes on serving");
    host.stop().await;
}

#[tokio::test]
async fn components_are_compiled_once_then_loaded_precompiled() {
    let mut app = TestApp::new(&probe_manifest("", ""));
    let cache = tempfile::tempdir().expect("cache dir");
    app.config.cache_dir = Some(cache.path().to_owned());
    let first = app.bind().await.expect("first start");
    let compile = first.load_reports()[0].clone();
    drop(first);
    let second = app.bind().await.expect("second start");
    let load = second.load_reports()[0].clone();
    let host = RunningHost::serve(second);
    assert!(
        compile.compiled && !load.compiled,
        "{compile:?} then {load:?}"
    );
    eprintln!(
        "cold start of the probe: compiled in {:?}, precompiled load in {:?}",
        compile.elapsed, load.elapsed
    );
    assert_eq!(get(host.addr, "/probe/headers").await.0, 200);
    host.stop().await;
}

//! The worker against a real JupyterHub (one per test binary, shared), plus its API rules.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bindery_core::events::Phase;
use bindery_core::worker_api::HealthCheck;
use bindery_worker::executor::{ExecutorSettings, LocalSettings};
use http::{Method, StatusCode};
use serde_json::Value;
use support::{
    TOKEN, authed, call, failed_spawns, follow, hub, hub_users, launch_request, post_launch, worker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_on_the_real_hub_streams_launching_then_ready_and_the_server_answers() {
    let hub = hub();
    let worker = worker(support::config(&hub.url)).await;
    let request = launch_request("bindery-tests", "full-launch");
    let events_url = post_launch(&worker, &request).await;
    let stream = follow(&events_url, None, None).await;
    assert!(stream.ended);
    let ids: Vec<u64> = stream.events.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids are 1..n"
    );
    let (last, before) = stream.events.split_last().unwrap();
    assert!(
        before.iter().all(|(_, e)| e.phase == Phase::Launching),
        "{:?}",
        stream.events
    );
    assert_eq!(before[0].1.message, "Launching server...\n");
    assert!(
        before.len() >= 2,
        "the hub's progress is relayed: {before:?}"
    );
    let ready = &last.1;
    assert_eq!(ready.phase, Phase::Ready, "{ready:?}");
    let url = ready.url.clone().unwrap();
    let token = ready.token.clone().unwrap();
    assert!(
        url.starts_with(&format!("{}user/bindery-tests-full-launch-", hub.url)),
        "{url}"
    );
    assert_eq!(token.len(), 22);
    assert_eq!(ready.image.as_deref(), Some(request.image.as_str()));
    assert_eq!(ready.repo_url.as_deref(), Some(request.repo_url.as_str()));
    assert_eq!(
        ready.binder_ref_url.as_deref(),
        Some(request.ref_url.as_str())
    );
    assert_eq!(
        ready.binder_launch_host.as_deref(),
        Some(request.launch_host.as_str())
    );
    assert_eq!(
        ready.binder_request.as_deref(),
        Some(request.binder_request.as_str())
    );
    assert_eq!(
        ready.binder_persistent_request.as_deref(),
        Some(request.binder_persistent_request.as_str())
    );
    assert_eq!(ready.binder_client_ip.as_deref(), Some("192.0.2.7"));

    let (status, body) = call(
        Method::GET,
        &format!("{url}api/status?token={token}"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _) = call(Method::GET, &format!("{url}api/status"), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the server needs the token");

    let (_, metrics) = call(Method::GET, &format!("{}/metrics", worker.base), &[], None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("binderhub_launch_count{status=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("binderhub_inprogress_launches 0"),
        "{metrics}"
    );

    // Tidy up: stop the server and remove the user.
    let user = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    support::delete_hub_user(&hub, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_spawn_is_tried_a_bounded_number_of_times_each_under_a_new_user_all_deleted() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.hub_retries = 2;
    config.launch_retries = 3;
    let worker = worker(config).await;
    let request = launch_request("bindery-tests", "will-fail");
    let stream = follow(&post_launch(&worker, &request).await, None, None).await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Failed, "{:?}", stream.events);
    assert_eq!(last.status_code, Some(500));
    assert!(
        last.message
            .starts_with(&format!("Failed to launch image {}: ", request.image)),
        "{}",
        last.message
    );
    assert!(
        last.message.ends_with(" (gave up after 3 attempts)\n"),
        "{}",
        last.message
    );
    let retries: Vec<&str> = stream
        .events
        .iter()
        .filter(|(_, e)| e.phase == Phase::Launching && e.message.contains("retrying"))
        .map(|(_, e)| e.message.as_str())
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(retries[0].starts_with("Launch attempt 1 failed, retrying..."));
    assert!(retries[1].starts_with("Launch attempt 2 failed, retrying..."));
    let mut tried = failed_spawns(&hub, "bindery-tests-will-fail-");
    tried.dedup();
    assert_eq!(tried.len(), 3, "one fresh user per attempt: {tried:?}");
    let users = hub_users(&hub).await;
    assert!(
        !users
            .iter()
            .any(|u| u.starts_with("bindery-tests-will-fail-")),
        "every attempt's user was deleted: {users:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_that_fails_once_is_retried_under_a_fresh_name_and_the_first_user_is_deleted() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.launch_retries = 4;
    let worker = worker(config).await;
    let request = launch_request("bindery-tests", "flaky-once");
    let stream = follow(&post_launch(&worker, &request).await, None, None).await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Ready, "{:?}", stream.events);
    let retried: Vec<&str> = stream
        .events
        .iter()
        .map(|(_, e)| e.message.as_str())
        .filter(|m| m.contains("retrying"))
        .collect();
    assert_eq!(retried.len(), 1, "{:?}", stream.events);
    assert!(retried[0].starts_with("Launch attempt 1 failed, retrying..."));

    let url = last.url.clone().unwrap();
    let ready_user = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let failed = failed_spawns(&hub, "bindery-tests-flaky-once-");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_ne!(failed[0], ready_user, "the second attempt has a new name");
    assert!(ready_user.starts_with("bindery-tests-flaky-once-"));
    let users = hub_users(&hub).await;
    assert!(users.contains(&ready_user), "{users:?}");
    assert!(
        !users.contains(&failed[0]),
        "the first attempt's user was deleted: {users:?}"
    );

    let (_, metrics) = call(Method::GET, &format!("{}/metrics", worker.base), &[], None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("binderhub_launch_time_seconds_count{status=\"retry\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("binderhub_launch_count{status=\"success\"} 1"),
        "{metrics}"
    );

    // Tidy up: stop the server and remove the user.
    support::delete_hub_user(&hub, &ready_user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_worker_mid_spawn_deletes_the_user_of_the_launch_in_flight() {
    let hub = hub();
    let worker = worker(support::config(&hub.url)).await;
    // `slow` images take 3 s to spawn on the test hub.
    let request = launch_request("bindery-tests", "slow-stopped");
    let prefix = "bindery-tests-slow-stopped-";
    // The hub's database outlives test runs: only a user made by this launch counts.
    let before = hub_users(&hub).await;
    post_launch(&worker, &request).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let user = loop {
        if let Some(user) = hub_users(&hub)
            .await
            .into_iter()
            .find(|u| u.starts_with(prefix) && !before.contains(u))
        {
            break user;
        }
        assert!(
            Instant::now() < deadline,
            "the launch never created its user"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // As SIGTERM does: `serve` returns after the HTTP drain and the shutdown phase.
    worker.stop().await;
    let users = hub_users(&hub).await;
    assert!(
        !users.contains(&user),
        "the user of the launch in flight outlived the worker: {users:?}"
    );
}

/// A stand-in hub API that answers every user creation `409` (a user of that name
/// exists: someone else's) and records every request line.
async fn conflicting_hub() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = Arc::clone(&record);
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.uri().path()));
                let (status, body) = match *req.method() {
                    Method::POST => (409, r#"{"status": 409, "message": "User already exists"}"#),
                    _ => (404, r#"{"status": 404, "message": "Not found"}"#),
                };
                async move {
                    let mut response = http::Response::new(Full::new(bytes::Bytes::from(body)));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_whose_user_creation_got_409_deletes_no_user() {
    let (hub_url, seen) = conflicting_hub().await;
    let worker = worker(support::config(&hub_url)).await;
    let stream = follow(
        &post_launch(&worker, &launch_request("bindery-tests", "name-clash")).await,
        None,
        None,
    )
    .await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Failed, "{:?}", stream.events);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.starts_with("POST /hub/api/users/")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r.starts_with("DELETE")),
        "the user of that name is someone else's: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_the_hub_refuses_with_403_is_not_retried_and_says_why() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.hub_api_token = bindery_worker::Secret::new("not-the-hub-token");
    config.launch_retries = 4;
    let worker = worker(config).await;
    let request = launch_request("bindery-tests", "refused");
    let stream = follow(&post_launch(&worker, &request).await, None, None).await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Failed, "{:?}", stream.events);
    assert!(
        !stream
            .events
            .iter()
            .any(|(_, e)| e.message.contains("retrying")),
        "{:?}",
        stream.events
    );
    assert!(
        last.message.contains("credentials") && !last.message.contains("gave up"),
        "{}",
        last.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_last_event_id_gets_every_event_exactly_once() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.keepalive_interval = Duration::from_millis(300);
    let worker = worker(config).await;
    // Slow, then failing: the stream stays quiet for 3 s between its two events.
    let events_url = post_launch(
        &worker,
        &launch_request("bindery-tests", "slow-fail-replay"),
    )
    .await;
    let first = follow(&events_url, None, Some(1)).await;
    assert_eq!(first.events.len(), 1);
    assert!(!first.ended);
    let rest = follow(&events_url, Some(first.events[0].0), None).await;
    assert!(rest.ended);
    assert!(
        rest.keepalives >= 2,
        "a quiet live stream sends keepalives: {rest:?}"
    );
    let ids: Vec<u64> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(rest.events.last().unwrap().1.phase, Phase::Failed);

    // A finished stream replays whole and ends; resuming at its end gives nothing and ends.
    let replay = follow(&events_url, None, None).await;
    assert!(replay.ended);
    assert_eq!(replay.events.len(), ids.len());
    assert_eq!(replay.keepalives, 0);
    let tail = follow(&events_url, Some(ids.len() as u64), None).await;
    assert!(tail.ended && tail.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_launches_with_a_total_quota_of_three_admit_exactly_three() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.total_quota = Some(3);
    let worker = worker(config).await;
    let request = launch_request("bindery-tests", "slow-fail-quota");
    let posts = (0..50).map(|_| post_launch(&worker, &request));
    let urls = futures::future::join_all(posts).await;
    let streams = futures::future::join_all(urls.iter().map(|u| follow(u, None, None))).await;
    let finals: Vec<_> = streams
        .iter()
        .map(|s| s.events.last().unwrap().1.clone())
        .collect();
    assert!(finals.iter().all(|e| e.phase == Phase::Failed));
    let refused: Vec<_> = finals
        .iter()
        .filter(|e| e.status_code == Some(429))
        .collect();
    assert_eq!(refused.len(), 47, "{finals:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.message == "Too many users on this BinderHub! Try again soon.\n")
    );
    let (_, metrics) = call(Method::GET, &format!("{}/metrics", worker.base), &[], None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("binderhub_launch_count{status=\"pod_quota\"} 47"),
        "{metrics}"
    );
    assert!(
        metrics.contains("binderhub_launch_count{status=\"failure\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_repo_quotas_come_from_spec_config_and_high_quota_specs_under_concurrent_launches() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.per_repo_quota = Some(1);
    config.per_repo_quota_higher = Some(2);
    config.spec_policy = Some(
        bindery_core::policy::SpecPolicy::new(
            &[],
            &[],
            &["bindery-tests/slow-fail-popular/".to_owned()],
            serde_json::json!([
                {"pattern": "bindery-tests/slow-fail-workshop/", "config": {"quota": 3}},
            ]),
        )
        .unwrap(),
    );
    let worker = worker(config).await;
    // Slow, then failing: every admitted launch holds its slot for 3 s.
    let repos = [
        ("slow-fail-workshop", 3),
        ("slow-fail-popular", 2),
        ("slow-fail-plain", 1),
    ];
    let mut posts = Vec::new();
    for (repo, _) in repos {
        let request = launch_request("bindery-tests", repo);
        for _ in 0..8 {
            let request = request.clone();
            let worker = &worker;
            posts.push(async move { (repo, post_launch(worker, &request).await) });
        }
    }
    let urls = futures::future::join_all(posts).await;
    let streams = futures::future::join_all(
        urls.iter()
            .map(|(repo, url)| async move { (*repo, follow(url, None, None).await) }),
    )
    .await;
    for (repo, quota) in repos {
        let finals: Vec<_> = streams
            .iter()
            .filter(|(r, _)| *r == repo)
            .map(|(_, s)| s.events.last().unwrap().1.clone())
            .collect();
        assert_eq!(finals.len(), 8);
        let refused: Vec<_> = finals
            .iter()
            .filter(|e| e.status_code == Some(429))
            .collect();
        assert_eq!(refused.len(), 8 - quota, "{repo}: {finals:?}");
        let message = format!(
            "Too many users running https://github.com/bindery-tests/{repo}! Try again soon.\n"
        );
        assert!(refused.iter().all(|e| e.message == message), "{refused:?}");
    }
}

fn check<'a>(body: &'a Value, service: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == service)
        .unwrap_or_else(|| panic!("no {service} check in {body}"))
}

async fn health_of(worker: &support::Worker) -> (StatusCode, Value) {
    let (status, body) = call(Method::GET, &format!("{}/health", worker.base), &[], None).await;
    (status, serde_json::from_slice(&body).unwrap())
}

/// An executor that builds nothing and counts its health checks, each of which waits for
/// `release` (so that concurrent `/health` requests overlap it).
#[derive(Debug)]
struct CountingHealth {
    checks: std::sync::atomic::AtomicUsize,
    release: tokio::sync::watch::Sender<bool>,
}

impl bindery_worker::executor::Executor for CountingHealth {
    fn start(
        &self,
        _spec: &bindery_worker::executor::BuildSpec,
    ) -> bindery_worker::executor::BuildHandle {
        unreachable!("no builds in this test")
    }

    fn health(&self) -> futures::future::BoxFuture<'_, Vec<HealthCheck>> {
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut release = self.release.subscribe();
        Box::pin(async move {
            let _ = release.wait_for(|r| *r).await;
            vec![HealthCheck::new("Counting", true)]
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_requests_on_a_stale_cache_run_the_checks_once() {
    let executor = Arc::new(CountingHealth {
        checks: std::sync::atomic::AtomicUsize::new(0),
        release: tokio::sync::watch::channel(false).0,
    });
    let config = support::config("http://127.0.0.1:9/");
    let state = bindery_worker::server::AppState::with_executor(config, executor.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(bindery_worker::server::serve(
        Arc::new(state),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{base}/health");
            tokio::spawn(async move { call(Method::GET, &url, &[], None).await })
        })
        .collect();
    // The first refresh is running; give the other requests time to line up behind it.
    while executor.checks.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    executor.release.send_replace(true);
    for request in requests {
        let (status, body) = request.await.unwrap();
        // The hub at 127.0.0.1:9 does not answer.
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(check(&body, "Counting")["ok"], true, "{body}");
    }
    assert_eq!(
        executor.checks.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "every request ran the health checks"
    );
    let _ = stop.send(());
    served.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_the_hub_the_container_engine_and_the_registry_and_answers_503_when_one_is_down()
 {
    let hub = hub();
    let dir = tempfile::tempdir().unwrap();
    let registry = support::start_registry(dir.path());
    let mut config = support::config(&hub.url);
    config.builds.executor = ExecutorSettings::Local(LocalSettings {
        engine: Some("podman".into()),
        ..LocalSettings::default()
    });
    config.builds.registry_url = Some(format!("http://{}", registry.addr));
    let up = worker(config.clone()).await;
    let (status, body) = health_of(&up).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["checks"][0]["service"], "JupyterHub API");
    assert_eq!(check(&body, "JupyterHub API")["ok"], true);
    assert_eq!(check(&body, "Container engine")["ok"], true, "{body}");
    assert_eq!(check(&body, "Container engine")["engine"], "podman");
    assert_eq!(check(&body, "Docker registry")["ok"], true, "{body}");
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["service"] != "Pod quota"),
        "the pod quota is a Kubernetes check: {body}"
    );
    let (status, _) = call(Method::HEAD, &format!("{}/health", up.base), &[], None).await;
    assert_eq!(status, StatusCode::OK);

    // docker whose daemon is not there, and a registry that is gone.
    let mut broken = config.clone();
    broken.builds.executor = ExecutorSettings::Local(LocalSettings {
        engine: Some("docker".into()),
        env: vec![(
            "DOCKER_HOST".into(),
            format!("unix://{}/no-such.sock", dir.path().display()),
        )],
        ..LocalSettings::default()
    });
    broken.builds.registry_url = Some("http://127.0.0.1:9".into());
    let broken = worker(broken).await;
    let (status, body) = health_of(&broken).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(check(&body, "JupyterHub API")["ok"], true);
    assert_eq!(check(&body, "Container engine")["ok"], false, "{body}");
    assert_eq!(check(&body, "Docker registry")["ok"], false, "{body}");
    let (status, head) = call(Method::HEAD, &format!("{}/health", broken.base), &[], None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(head.is_empty());

    let mut no_hub = support::config("http://127.0.0.1:9/");
    no_hub.builds.executor = ExecutorSettings::Local(LocalSettings {
        engine: Some("podman".into()),
        ..LocalSettings::default()
    });
    let down = worker(no_hub).await;
    let (status, body) = health_of(&down).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ok"], false);
    assert_eq!(check(&body, "JupyterHub API")["ok"], false);
    assert_eq!(check(&body, "Container engine")["ok"], true);
}

#[tokio::test]
async fn every_api_route_needs_the_bearer_token_but_health_and_metrics_do_not() {
    let worker = worker(support::config("http://127.0.0.1:9/")).await;
    let base = &worker.base;
    let body = serde_json::to_string(&launch_request("o", "r")).unwrap();
    for (method, path) in [
        (Method::POST, "/api/v1/launches"),
        (Method::POST, "/api/v1/builds"),
        (Method::GET, "/api/v1/builds?image=x"),
        (Method::GET, "/api/v1/launches/0123456789abcdef/events"),
        (Method::GET, "/api/v1/builds/0123456789abcdef/log"),
    ] {
        for auth in [None, Some("Bearer wrong-token"), Some(TOKEN)] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let (status, _) = call(
                method.clone(),
                &format!("{base}{path}"),
                &headers,
                Some(body.clone()),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
        }
    }
    let (status, _) = call(Method::GET, &format!("{base}/metrics"), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = authed(
        Method::GET,
        &format!("{base}/api/v1/launches/0123456789abcdef/events"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_refused_with_400_naming_the_problem() {
    let worker = worker(support::config("http://127.0.0.1:9/")).await;
    let url = format!("{}/api/v1/launches", worker.base);
    let good = launch_request("org", "repo");
    let with = |f: &dyn Fn(&mut bindery_core::worker_api::LaunchRequest)| {
        let mut r = good.clone();
        f(&mut r);
        serde_json::to_string(&r).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid launch request"),
        ("{}".into(), "missing field"),
        (
            with(&|r| r.provider = "nope".into()),
            "No provider found for prefix",
        ),
        (
            with(&|r| r.spec = "only-a-user".into()),
            "invalid launch request",
        ),
        (with(&|r| r.resolved_ref = "main".into()), "resolved ref"),
        (
            with(&|r| r.resolved_ref = "--upload-pack=evil".into()),
            "resolved ref",
        ),
        (
            with(&|r| r.image = "docker.io/evil/image:latest".into()),
            "is not the image of this build slug",
        ),
        (
            with(&|r| r.build_slug = "other-slug".into()),
            "is not the image of this build slug",
        ),
        (
            with(&|r| r.repo_url = "-oProxyCommand=x".into()),
            "repo_url",
        ),
        (
            with(&|r| r.launch_path = "https://evil.example/".into()),
            "launch_path",
        ),
        (with(&|r| r.client_ip = "not-an-ip".into()), "client_ip"),
        (
            with(&|r| r.binder_request = "v2/gl/x\n".into()),
            "binder_request",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = authed(Method::POST, &url, Some(body.clone())).await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert!(
            answer.contains(needle),
            "{body} -> {answer} (wanted {needle:?})"
        );
    }
    let build = serde_json::json!({
        "provider": "gh", "spec": "org/repo/main", "repo_url": "https://github.com/org/repo",
        "resolved_ref": good.resolved_ref, "image": "elsewhere/x:1", "build_slug": good.build_slug,
    });
    let (status, _) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(build.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let events_url = post_launch(&worker, &good).await;
    let auth = format!("Bearer {TOKEN}");
    let (status, _) = call(
        Method::GET,
        &events_url,
        &[("authorization", &auth), ("last-event-id", "x1")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_missing_image_or_a_prebuild_fails_cleanly_when_repo2docker_cannot_start() {
    let mut config = support::config("http://127.0.0.1:9/");
    config.builds.executor = ExecutorSettings::Local(LocalSettings {
        repo2docker: "/nonexistent/repo2docker".into(),
        ..LocalSettings::default()
    });
    let worker = worker(config).await;
    let mut launch = launch_request("org", "unbuilt");
    launch.image_present = false;
    let stream = follow(&post_launch(&worker, &launch).await, None, None).await;
    assert_eq!(stream.events.len(), 1);
    let failed = &stream.events[0].1;
    assert_eq!(failed.phase, Phase::Failed);
    assert!(
        failed.message.starts_with(&format!(
            "Failed to build image {}: failed to start /nonexistent/repo2docker",
            launch.image
        )),
        "{}",
        failed.message
    );

    let build = serde_json::json!({
        "provider": "gh", "spec": "org/unbuilt/main", "repo_url": launch.repo_url,
        "resolved_ref": launch.resolved_ref, "image": launch.image, "build_slug": launch.build_slug,
    });
    let (status, body) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(build.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: Value = serde_json::from_slice(&body).unwrap();
    let id = accepted["id"].as_str().unwrap();
    let events = follow(
        &format!(
            "{}{}",
            worker.base,
            accepted["events_url"].as_str().unwrap()
        ),
        None,
        None,
    )
    .await;
    assert!(events.ended && events.events.len() == 1);
    let image =
        percent_encoding::utf8_percent_encode(&launch.image, percent_encoding::NON_ALPHANUMERIC);
    let (status, info) = authed(
        Method::GET,
        &format!("{}/api/v1/builds?image={image}", worker.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["id"], id);
    assert_eq!(info["state"], "failed");
    let (status, log) = authed(
        Method::GET,
        &format!("{}/api/v1/builds/{id}/log", worker.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&log).contains("failed to start /nonexistent/repo2docker"));
    let (status, _) = authed(
        Method::GET,
        &format!("{}/api/v1/builds?image=nope", worker.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_admissions_of_one_client_admit_exactly_the_limit_over_http() {
    let worker = worker(support::config("http://127.0.0.1:9/")).await;
    let url = format!("{}/api/v1/admissions", worker.base);
    let body = r#"{"client":"203.0.113.7","limit":10,"period_seconds":3600}"#;
    let posts = (0..50).map(|_| authed(Method::POST, &url, Some(body.to_owned())));
    let answers = futures::future::join_all(posts).await;
    let states: Vec<Value> = answers
        .iter()
        .map(|(status, bytes)| {
            assert_eq!(*status, StatusCode::OK);
            serde_json::from_slice(bytes).unwrap()
        })
        .collect();
    let admitted = states.iter().filter(|s| s["exceeded"] == false).count();
    assert_eq!(admitted, 10, "{states:?}");
    assert!(states.iter().all(|s| s["limit"] == 10));
    // Another client has its own window; nonsense is refused; the token is needed.
    let other = r#"{"client":"203.0.113.8","limit":10,"period_seconds":3600}"#;
    let (_, bytes) = authed(Method::POST, &url, Some(other.to_owned())).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap()["remaining"],
        9
    );
    let bad = r#"{"client":"","limit":10,"period_seconds":3600}"#;
    let (status, _) = authed(Method::POST, &url, Some(bad.to_owned())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(Method::POST, &url, &[], Some(other.to_owned())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A `build_only` launch (BinderHub's API-only mode) builds, then ends with `ready`
/// naming the image in place of `built`, and starts nothing: the hub here does not even
/// answer. repo2docker is a script that prints one line and succeeds (the real one builds
/// and pushes in `tests/system.rs`).
#[tokio::test]
async fn a_build_only_launch_builds_and_ends_with_ready_naming_the_image_without_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("repo2docker");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho '{\"phase\": \"building\", \"message\": \"Step 1/1 : FROM busybox\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = support::config("http://127.0.0.1:9/");
    config.builds.executor = ExecutorSettings::Local(LocalSettings {
        repo2docker: fake,
        ..LocalSettings::default()
    });
    let worker = worker(config).await;
    let mut launch = launch_request("org", "buildonly");
    launch.image_present = false;
    launch.build_only = true;
    let stream = follow(&post_launch(&worker, &launch).await, None, None).await;
    assert!(stream.ended);
    let phases: Vec<Phase> = stream.events.iter().map(|(_, e)| e.phase).collect();
    assert_eq!(phases.last(), Some(&Phase::Ready), "{:?}", stream.events);
    assert!(phases.contains(&Phase::Building), "{:?}", stream.events);
    assert!(!phases.contains(&Phase::Built), "ready stands in its place");
    assert!(!phases.contains(&Phase::Launching), "{:?}", stream.events);
    let done = &stream.events.last().unwrap().1;
    assert_eq!(done.message, "Done! Image built\n");
    assert_eq!(done.image_name.as_deref(), Some(launch.image.as_str()));
    assert_eq!(done.url, None, "no server");

    // An image that is there: done at once.
    let mut present = launch_request("org", "there");
    present.build_only = true;
    let stream = follow(&post_launch(&worker, &present).await, None, None).await;
    assert_eq!(stream.events.len(), 1, "{:?}", stream.events);
    assert_eq!(stream.events[0].1.message, "Done! Found built image\n");

    let (_, metrics) = call(Method::GET, &format!("{}/metrics", worker.base), &[], None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("binderhub_build_count{status=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("binderhub_launch_count{status="),
        "no launch: {metrics}"
    );
}

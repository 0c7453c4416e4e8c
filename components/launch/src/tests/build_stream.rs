//! `/build`: refusals, worker failures and the relay, natively.

use bindery_core::cache::{LastStatus, Lookup};
use bindery_core::events::{Phase, ReadyInfo};
use bindery_core::launch::MISSING_ACCEPT;
use bindery_core::policy;
use bindery_core::sse;
use bindery_core::worker_api::LaunchRequest;
use bindery_edge::config::{ALLOW_BUILD_ONLY, BAN_NETWORKS, BANNED_SPECS};
use bindery_edge::testing::response;

use super::*;

const SSE: (&str, &str) = ("accept", "text/event-stream");

fn pinned_path() -> String {
    format!("/build/gh/o/r/{SHA}")
}

fn events_url() -> String {
    format!("{WORKER}/api/v1/launches/{LAUNCH_ID}/events")
}

/// A world whose image is known missing and whose worker accepts the launch.
fn accepting_world() -> World {
    let world = World::new(&[]);
    world
        .cache()
        .put_missing(&pinned_image(), NOW, &CacheTtl::default());
    world.fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/launches"),
        response(
            202,
            &[],
            format!(r#"{{"id":"{LAUNCH_ID}","events_url":"/api/v1/launches/{LAUNCH_ID}/events"}}"#),
        ),
    );
    world
}

/// The only event of a refused stream: its status and message.
fn refusal(text: &str) -> (Option<u16>, String) {
    let events = events(text);
    assert_eq!(events.len(), 1, "{text}");
    let (id, event) = &events[0];
    assert_eq!((id, event.phase), (&None, Phase::Failed), "{text}");
    (event.status_code, event.message.clone())
}

#[test]
fn a_bad_spec_or_provider_fails_with_400_before_any_call() {
    let world = World::new(&[]);
    for path in ["/build/gh/o", "/build/nope/o/r/main"] {
        let (status, message) = refusal(&world.stream(path, &[SSE]));
        assert_eq!(status, Some(400), "{path}: {message}");
        assert!(!message.is_empty());
    }
    assert_eq!(world.fetch.calls(), 0);
}

#[test]
fn a_banned_network_is_refused_first_even_without_accept() {
    let world = World::new(&[(BAN_NETWORKS, "198.51.100.0/24=a test network")]);
    let text = world.stream(&pinned_path(), &[]);
    assert_eq!(
        refusal(&text),
        (
            Some(403),
            format!("{}\n", policy::ip_banned_message("a test network"))
        )
    );
    assert_eq!(world.fetch.calls(), 0);
}

#[test]
fn a_banned_spec_is_refused_with_binderhubs_message() {
    let world = World::new(&[(BANNED_SPECS, "^o/r.*")]);
    let text = world.stream(&pinned_path(), &[SSE]);
    let spec = format!("o/r/{SHA}");
    let message = format!("{}\n", policy::banned_message(&spec));
    assert_eq!(refusal(&text), (Some(403), message));
    assert_eq!(world.fetch.calls(), 0);
}

#[test]
fn a_request_without_accept_event_stream_is_refused() {
    let world = accepting_world();
    let text = world.stream(&pinned_path(), &[("accept", "text/html")]);
    assert_eq!(refusal(&text), (Some(400), format!("{MISSING_ACCEPT}\n")));
    assert_eq!(world.fetch.calls(), 0);
}

#[test]
fn a_worker_that_refuses_the_launch_fails_the_stream_with_its_answer() {
    let world = World::new(&[]);
    world
        .cache()
        .put_missing(&pinned_image(), NOW, &CacheTtl::default());
    world.fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/launches"),
        response(400, &[], "invalid launch request: build_slug is empty"),
    );
    let events = events(&world.stream(&pinned_path(), &[SSE]));
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].1.phase, Phase::Waiting);
    let failed = &events[1].1;
    assert_eq!(failed.status_code, Some(503));
    assert_eq!(
        failed.message,
        "Failed to start the launch: the worker answered http 400: \"invalid launch request: build_slug is empty\"\n"
    );
    // Nothing was launched, so the badge does not say "building".
    assert!(world.cache().status(&pinned_image(), NOW).is_none());
}

#[test]
fn an_unreachable_worker_fails_the_stream_naming_it() {
    let world = World::new(&[]);
    world
        .cache()
        .put_missing(&pinned_image(), NOW, &CacheTtl::default());
    let events = events(&world.stream(&pinned_path(), &[SSE]));
    let failed = &events.last().unwrap().1;
    assert_eq!(failed.status_code, Some(503));
    assert!(
        failed
            .message
            .starts_with("Failed to start the launch: failed to reach http://127.0.0.1:8585"),
        "{}",
        failed.message
    );
    assert_eq!(
        world.fetch.log(),
        [format!("POST {WORKER}/api/v1/launches")]
    );
}

#[test]
fn a_launch_is_relayed_to_ready_with_keepalives_and_resumable_ids() {
    let world = accepting_world();
    let image = pinned_image();
    let building = worker_event(1, &Event::new(Phase::Building, "Step 1/3\n"));
    let (head, tail) = building.split_at(building.len() / 2);
    let built = worker_event(2, &Event::built(image.clone(), false));
    let ready = worker_event(
        3,
        &Event::ready(ReadyInfo {
            url: Some("http://hub.test/user/x/".into()),
            token: Some("server-token".into()),
            ..ReadyInfo::default()
        }),
    );
    // The worker's chunks do not follow event boundaries.
    world.fetch.stream(
        "GET",
        &events_url(),
        200,
        &[head, tail, ": keepalive\n\n", &built, &ready],
    );

    let text = world.stream(&pinned_path(), &[SSE]);
    assert!(
        text.contains(": keepalive\n"),
        "the keepalive is relayed: {text}"
    );
    let events = events(&text);
    let shown: Vec<(Option<&str>, Phase)> = events
        .iter()
        .map(|(id, e)| (id.as_deref(), e.phase))
        .collect();
    let id = |n: u64| format!("{LAUNCH_ID}:{n}");
    assert_eq!(
        shown,
        [
            (None, Phase::Waiting),
            (Some(id(1).as_str()), Phase::Building),
            (Some(id(2).as_str()), Phase::Built),
            (Some(id(3).as_str()), Phase::Ready),
        ]
    );
    assert_eq!(events[3].1.token.as_deref(), Some("server-token"));

    let requests = world.fetch.requests();
    assert_eq!(requests.len(), 2);
    let launch: LaunchRequest = serde_json::from_slice(requests[0].body()).unwrap();
    assert_eq!(launch.image, image);
    assert!(!launch.image_present);
    assert_eq!(launch.resolved_ref, SHA);
    assert_eq!(launch.launch_host, "http://edge.test/");
    assert_eq!(launch.client_ip, "198.51.100.7");
    assert_eq!(
        launch.validate(PREFIX, &bindery_core::provider::ProviderSettings::default()),
        Ok(())
    );
    assert_eq!(
        requests[1].headers()["authorization"],
        "Bearer worker-token"
    );
    assert!(requests[1].headers().get("last-event-id").is_none());
    drop(requests);

    // The build's result is what the badge and the next launch read.
    let cache = world.cache();
    assert!(matches!(
        cache.image_presence(&image, NOW),
        Some(Lookup::Fresh(p)) if p.present
    ));
    assert_eq!(
        cache.status(&image, NOW).map(|s| s.status),
        Some(LastStatus::Built)
    );
}

#[test]
fn a_reconnect_with_last_event_id_follows_the_same_launch_after_that_event() {
    let world = accepting_world();
    let ready = worker_event(8, &Event::ready(ReadyInfo::default()));
    world.fetch.stream("GET", &events_url(), 200, &[&ready]);
    let last = format!("{LAUNCH_ID}:7");
    let events = events(&world.stream(&pinned_path(), &[SSE, ("last-event-id", &last)]));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].0.as_deref(),
        Some(format!("{LAUNCH_ID}:8").as_str())
    );
    assert_eq!(events[0].1.phase, Phase::Ready);
    // No second launch: only the events of the first, after the last one seen.
    assert_eq!(world.fetch.log(), [format!("GET {}", events_url())]);
    assert_eq!(world.fetch.requests()[0].headers()["last-event-id"], "7");
}

#[test]
fn a_garbage_last_event_id_starts_a_new_launch() {
    let world = accepting_world();
    let failed = worker_event(1, &Event::failed(Some(500), "no"));
    world.fetch.stream("GET", &events_url(), 200, &[&failed]);
    world.stream(&pinned_path(), &[SSE, ("last-event-id", "../x:1")]);
    assert_eq!(world.fetch.requests()[0].method(), "POST");
}

#[test]
fn a_launch_unknown_to_the_worker_or_a_cut_stream_fails() {
    let world = accepting_world();
    world
        .fetch
        .on("GET", &events_url(), response(404, &[], "no such launch"));
    let text = world.stream(&pinned_path(), &[SSE]);
    let failed = events(&text).pop().unwrap().1;
    assert_eq!(failed.status_code, Some(404));
    assert!(
        failed.message.contains("no longer known"),
        "{}",
        failed.message
    );

    let world = accepting_world();
    let building = worker_event(1, &Event::new(Phase::Building, "x\n"));
    world.fetch.stream("GET", &events_url(), 200, &[&building]);
    let text = world.stream(&pinned_path(), &[SSE]);
    let failed = events(&text).pop().unwrap().1;
    assert_eq!(
        (failed.status_code, failed.message.as_str()),
        (
            Some(502),
            "The build service closed the event stream unexpectedly\n"
        )
    );
}

#[test]
fn a_failed_launch_forgets_the_cached_image_and_records_the_failure() {
    let world = accepting_world();
    let image = pinned_image();
    world
        .cache()
        .put_present(&image, None, NOW, &CacheTtl::default());
    let failed = worker_event(4, &Event::failed(Some(500), "pull failed"));
    world.fetch.stream("GET", &events_url(), 200, &[&failed]);
    let events = events(&world.stream(&pinned_path(), &[SSE]));
    assert_eq!(events[0].1.phase, Phase::Built, "the cache said present");
    assert_eq!(events[1].1.phase, Phase::Failed);
    assert!(world.cache().image_presence(&image, NOW).is_none());
}

#[test]
fn a_head_of_the_stream_answers_its_headers_without_launching() {
    let world = accepting_world();
    let response = world.get("HEAD", &pinned_path(), &[SSE]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(world.fetch.calls(), 0);
}

#[test]
fn a_pinned_commit_is_checked_with_github_once_and_a_made_up_one_fails_404() {
    let commit = format!("https://api.github.com/repos/o/r/commits/{SHA}");
    // Made up: GitHub's 422, and nothing else is asked or remembered.
    let world = World::unconfirmed(&[]);
    world.fetch.on(
        "GET",
        &commit,
        response(422, &[], r#"{"message":"No commit found for SHA"}"#),
    );
    let (status, _) = refusal(&world.stream(&pinned_path(), &[SSE]));
    assert_eq!(status, Some(404));
    assert_eq!(world.fetch.log(), [format!("GET {commit}")]);
    assert!(world.kv.keys().is_empty(), "{:?}", world.kv.keys());
    // Real: confirmed once, then the launch goes on; the next launch asks GitHub nothing.
    let world = World::unconfirmed(&[]);
    world.fetch.once(
        "GET",
        &commit,
        response(200, &[], format!(r#"{{"sha":"{SHA}"}}"#)),
    );
    world
        .cache()
        .put_missing(&pinned_image(), NOW, &CacheTtl::default());
    world.fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/launches"),
        response(500, &[], "down"),
    );
    for _ in 0..2 {
        let text = world.stream(&pinned_path(), &[SSE]);
        assert_eq!(
            events(&text).last().unwrap().1.status_code,
            Some(503),
            "{text}"
        );
    }
    let asked: Vec<String> = world.fetch.log();
    assert_eq!(
        asked.iter().filter(|l| l.contains("/commits/")).count(),
        1,
        "{asked:?}"
    );
}

/// The text after the `ready` event of a stream.
fn after_ready(text: &str) -> &str {
    let at = text.find("\"phase\":\"ready\"").expect("a ready event");
    let rest = &text[at..];
    &rest[rest.find("\n\n").expect("the event's end") + 2..]
}

#[test]
fn after_the_last_event_the_stream_stays_open_with_only_a_bounded_number_of_keepalives() {
    let world = accepting_world();
    let ready = worker_event(1, &Event::ready(ReadyInfo::default()));
    world.fetch.stream("GET", &events_url(), 200, &[&ready]);
    let text = world.stream(&pinned_path(), &[SSE]);
    assert_eq!(
        after_ready(&text),
        sse::KEEPALIVE.repeat(sse::LINGER_KEEPALIVES as usize),
        "{text}"
    );

    // After a failed launch too: the client decides when to go.
    let world = accepting_world();
    let failed = worker_event(1, &Event::failed(Some(500), "no"));
    world.fetch.stream("GET", &events_url(), 200, &[&failed]);
    let text = world.stream(&pinned_path(), &[SSE]);
    assert!(
        text.ends_with(&format!(
            "\"status_code\":500}}\n\n{}",
            sse::KEEPALIVE.repeat(sse::LINGER_KEEPALIVES as usize)
        )),
        "{text}"
    );
}

#[test]
fn a_refusal_before_any_launch_ends_the_stream_at_once() {
    // Cheap to ask again, so a flood of refused requests holds no instance longer.
    let world = World::new(&[(BANNED_SPECS, "^o/r.*")]);
    let text = world.stream(&pinned_path(), &[SSE]);
    assert_eq!(refusal(&text).0, Some(403));
    assert!(!text.contains("keepalive"), "{text}");
}

thread_local! {
    static PAUSES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn counting_pause(
    _: std::time::Duration,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    PAUSES.with(|p| p.set(p.get() + 1));
    Box::pin(std::future::ready(()))
}

/// A client that reads `left` writes, then goes away (every later write fails).
struct Leaving {
    left: usize,
    sent: Vec<Vec<u8>>,
}

impl futures::Sink<Vec<u8>> for Leaving {
    type Error = ();

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ()>> {
        std::task::Poll::Ready(if self.left == 0 { Err(()) } else { Ok(()) })
    }

    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Vec<u8>) -> Result<(), ()> {
        self.left -= 1;
        self.sent.push(item);
        Ok(())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn a_client_that_left_ends_the_kept_open_stream_at_the_next_keepalive() {
    // `left` writes reach the client: `waiting`, then `ready` (2) or not even that (1).
    for (left, pauses) in [(2, 1), (1, 0)] {
        let world = accepting_world();
        let ready = worker_event(1, &Event::ready(ReadyInfo::default()));
        world.fetch.stream("GET", &events_url(), 200, &[&ready]);
        let request = request("GET", &pinned_path(), &[SSE]);
        let open = || Cache::new(&world.kv);
        let mut env = Env::new(&world.vars, &open, &world.fetch, || NOW);
        env.pause = counting_pause;
        let mut stream = build::Stream::new(Leaving {
            left,
            sent: Vec::new(),
        });
        PAUSES.with(|p| p.set(0));
        block_on(build::run(
            &request,
            "gh",
            &format!("o/r/{SHA}"),
            &env,
            &mut stream,
        ));
        assert!(!stream.is_open());
        assert_eq!(PAUSES.with(std::cell::Cell::get), pauses, "left {left}");
    }
}

fn build_only_path() -> String {
    format!("{}?build_only=true", pinned_path())
}

#[test]
fn build_only_is_refused_with_binderhubs_400_unless_the_edge_allows_it() {
    let world = accepting_world();
    let (status, message) = refusal(&world.stream(&build_only_path(), &[SSE]));
    assert_eq!(
        (status, message),
        (
            Some(400),
            format!("{}\n", bindery_core::launch::BUILD_ONLY_NOT_ALLOWED)
        )
    );
    assert_eq!(world.fetch.calls(), 0, "refused before anything is asked");
    // Anything but `true` is a launch, as in BinderHub.
    let text = world.stream(&format!("{}?build_only=1", pinned_path()), &[SSE]);
    assert_eq!(events(&text)[0].1.phase, Phase::Waiting, "{text}");
}

#[test]
fn build_only_of_a_present_image_answers_ready_without_the_worker() {
    let world = World::new(&[(ALLOW_BUILD_ONLY, "true")]);
    world
        .cache()
        .put_present(&pinned_image(), None, NOW, &CacheTtl::default());
    let text = world.stream(&build_only_path(), &[SSE]);
    let events = events(&text);
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0].1, Event::build_only_done(pinned_image(), true));
    assert_eq!(world.fetch.calls(), 0, "no launch");
    assert_eq!(
        after_ready(&text),
        sse::KEEPALIVE.repeat(sse::LINGER_KEEPALIVES as usize)
    );
}

#[test]
fn build_only_of_a_missing_image_asks_the_worker_for_a_build_only_launch() {
    let world = World::new(&[(ALLOW_BUILD_ONLY, "true")]);
    let image = pinned_image();
    world.cache().put_missing(&image, NOW, &CacheTtl::default());
    world.fetch.on(
        "POST",
        &format!("{WORKER}/api/v1/launches"),
        response(
            202,
            &[],
            format!(r#"{{"id":"{LAUNCH_ID}","events_url":"/api/v1/launches/{LAUNCH_ID}/events"}}"#),
        ),
    );
    let building = worker_event(1, &Event::new(Phase::Building, "Step 1/1\n"));
    let done = worker_event(2, &Event::build_only_done(image.clone(), false));
    world
        .fetch
        .stream("GET", &events_url(), 200, &[&building, &done]);
    let events = events(&world.stream(&build_only_path(), &[SSE]));
    let phases: Vec<Phase> = events.iter().map(|(_, e)| e.phase).collect();
    assert_eq!(phases, [Phase::Waiting, Phase::Building, Phase::Ready]);
    assert_eq!(events[2].1.message, "Done! Image built\n");
    let launch: LaunchRequest = serde_json::from_slice(world.fetch.requests()[0].body()).unwrap();
    assert!(launch.build_only);
    assert_eq!(
        launch.validate(PREFIX, &bindery_core::provider::ProviderSettings::default()),
        Ok(())
    );
    // The image is known present now, for the badge and the next launch.
    assert!(matches!(
        world.cache().image_presence(&image, NOW),
        Some(Lookup::Fresh(p)) if p.present
    ));
}

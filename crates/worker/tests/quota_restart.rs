//! Quotas survive a worker restart (issue 13): a restarted worker counts the servers the
//! real JupyterHub runs before it admits anything. A test binary of its own, so that its
//! hub's servers are not counted by the quota tests of `worker.rs`.

#![allow(clippy::unwrap_used)]

mod support;

use bindery_core::events::Phase;
use support::{follow, hub, launch_request, post_launch, worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_counts_the_hubs_servers_and_refuses_past_the_quota_before_building() {
    let hub = hub();
    let mut config = support::config(&hub.url);
    config.per_repo_quota = Some(1);
    config.total_quota = Some(2);
    let running = launch_request("bindery-tests", "restart-quota");
    let first = worker(config.clone()).await;
    let stream = follow(&post_launch(&first, &running).await, None, None).await;
    let ready = &stream.events.last().unwrap().1;
    assert_eq!(ready.phase, Phase::Ready, "{:?}", stream.events);
    let user = ready
        .url
        .as_deref()
        .unwrap()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // The worker stops; the server stays on the hub.
    first.stop().await;

    let second = worker(config).await;
    let mut missing = launch_request("bindery-tests", "restart-quota");
    // Its image is missing: refused before any build starts.
    missing.image_present = false;
    let cases = [
        (
            running.clone(),
            "Too many users running https://github.com/bindery-tests/restart-quota! Try again soon.\n",
        ),
        (
            missing,
            "Too many users running https://github.com/bindery-tests/restart-quota! Try again soon.\n",
        ),
    ];
    for (request, message) in cases {
        let stream = follow(&post_launch(&second, &request).await, None, None).await;
        let events: Vec<_> = stream.events.iter().map(|(_, e)| e).collect();
        assert_eq!(
            events.len(),
            1,
            "refused at once, nothing built: {events:?}"
        );
        assert_eq!(events[0].phase, Phase::Failed);
        assert_eq!(events[0].status_code, Some(429));
        assert_eq!(events[0].message, message);
    }
    // Another repository still fits the total of two; then the total is reached.
    let other = launch_request("bindery-tests", "restart-quota-other");
    let stream = follow(&post_launch(&second, &other).await, None, None).await;
    let ready_other = stream.events.last().unwrap().1.clone();
    assert_eq!(ready_other.phase, Phase::Ready, "{:?}", stream.events);
    let third = launch_request("bindery-tests", "restart-quota-third");
    let stream = follow(&post_launch(&second, &third).await, None, None).await;
    let refused = &stream.events.last().unwrap().1;
    assert_eq!(refused.status_code, Some(429));
    assert_eq!(
        refused.message,
        "Too many users on this BinderHub! Try again soon.\n"
    );
    second.stop().await;

    let other_user = ready_other
        .url
        .as_deref()
        .unwrap()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    support::delete_hub_user(&hub, &user).await;
    support::delete_hub_user(&hub, &other_user).await;
}

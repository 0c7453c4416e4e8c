//! What a client can make the worker hold is bounded (issue 13): the build queue per
//! client address and in total, the length of a build output line, and the bytes a
//! build's or a launch's log keeps. Builds run a repo2docker stand-in; no hub is needed.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use bindery_core::events::Phase;
use bindery_core::worker_api::Accepted;
use bindery_worker::WorkerConfig;
use bindery_worker::executor::{ExecutorSettings, LocalSettings};
use http::{Method, StatusCode};
use support::{authed, follow, launch_request, worker};

/// A repo2docker stand-in. `$STAND_IN_MODE` picks what it does: `wait` (one line, then
/// 30 s of silence: its build stays running), `loud` (a 100 KiB line, 40,000 numbered
/// lines of about 80 bytes, a last line, exit 0).
const STAND_IN: &str = r#"#!/bin/sh
case "$STAND_IN_MODE" in
wait)
  printf '%s\n' '{"phase": "building", "message": "working\n"}'
  sleep 30 ;;
loud)
  head -c 102400 /dev/zero | tr '\0' 'a'; echo
  seq 1 40000 | sed 's/^/a build output line that says very little, over and over: /'
  echo 'the very last line'
  exit 0 ;;
esac
"#;

fn stand_in(name: &str, mode: &str) -> LocalSettings {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/worker-bounds")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.canonicalize().unwrap().join("repo2docker");
    std::fs::write(&program, STAND_IN).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&program)
        .status()
        .unwrap();
    LocalSettings {
        repo2docker: program,
        env: vec![("STAND_IN_MODE".into(), mode.into())],
        ..LocalSettings::default()
    }
}

fn config(settings: LocalSettings) -> WorkerConfig {
    // No hub: its servers cannot be counted at start, which delays nothing.
    let mut config = support::config("http://127.0.0.1:9/");
    config.builds.executor = ExecutorSettings::Local(settings);
    config
}

/// Posts a launch of `org/repo` (its image missing) from `client`; its events URL.
async fn launch_from(base: &str, client: &str, repo: &str) -> String {
    let mut request = launch_request("flood", repo);
    request.image_present = false;
    request.client_ip = client.into();
    let (status, body) = authed(
        Method::POST,
        &format!("{base}/api/v1/launches"),
        Some(serde_json::to_string(&request).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: Accepted = serde_json::from_slice(&body).unwrap();
    format!("{base}{}", accepted.events_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_launches_is_refused_at_once_per_client_with_429_and_in_total_with_503() {
    // (per-client limit, total limit, launches as (client, repo), the refusal status of
    // each launch: None = admitted, it waits for or runs its build).
    type Case = (
        usize,
        usize,
        Vec<(&'static str, &'static str)>,
        Vec<Option<u16>>,
    );
    let one_client: Vec<_> = ["r1", "r2", "r1", "r3", "r4", "r2"]
        .into_iter()
        .map(|repo| ("192.0.2.1", repo))
        .collect();
    let many_clients: Vec<_> = (1..=8)
        .map(|n| {
            let client: &'static str = format!("198.51.100.{n}").leak();
            let repo: &'static str = format!("m{n}").leak();
            (client, repo)
        })
        .chain([("198.51.100.1", "m2"), ("198.51.100.9", "m9")])
        .collect();
    let cases: [Case; 2] = [
        // One address: two distinct builds; more launches of those builds are free.
        (
            2,
            100,
            one_client,
            vec![None, None, None, Some(429), Some(429), None],
        ),
        // Many addresses: five builds in the whole worker; a launch of a queued image
        // needs no new build.
        (
            5,
            5,
            many_clients,
            vec![
                None,
                None,
                None,
                None,
                None,
                Some(503),
                Some(503),
                Some(503),
                None,
                Some(503),
            ],
        ),
    ];
    for (n, (per_client, total, launches, expected)) in cases.into_iter().enumerate() {
        let mut config = config(stand_in(&format!("flood-{n}"), "wait"));
        config.builds.max_concurrent = 1;
        config.builds.pending.per_client = per_client;
        config.builds.pending.total = total;
        let worker = worker(config).await;
        let mut got = Vec::new();
        for (client, repo) in &launches {
            // One at a time, each seen admitted or refused before the next one asks.
            let url = launch_from(&worker.base, client, repo).await;
            let first = follow(&url, None, Some(1)).await;
            let (_, event) = &first.events[0];
            got.push((event.phase == Phase::Failed).then(|| event.status_code.unwrap()));
            if event.phase == Phase::Failed {
                let said = if event.status_code == Some(429) {
                    "Too many builds requested from your address"
                } else {
                    "This BinderHub is building too many images right now"
                };
                assert!(event.message.starts_with(said), "{event:?}");
                assert!(event.message.contains("Try again"), "{event:?}");
            }
        }
        assert_eq!(got, expected, "case {n}: {launches:?}");
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loud_build_is_kept_with_its_lines_cut_and_its_log_capped_head_and_tail() {
    let mut config = config(stand_in("loud", "loud"));
    config.max_log_bytes = 256 * 1024;
    let worker = worker(config).await;
    let url = launch_from(&worker.base, "192.0.2.1", "loud").await;
    // The live follower sees the whole build go by, each line at most 16 KiB.
    let live = follow(&url, None, None).await;
    assert!(live.ended);
    assert!(
        live.events.iter().any(|(_, e)| e.phase == Phase::Built),
        "{:?}",
        live.events.last()
    );
    let longest = live.events.iter().map(|(_, e)| e.message.len()).max();
    assert!(longest < Some(16 * 1024 + 64), "{longest:?}");
    assert!(
        live.events[0]
            .1
            .message
            .ends_with(" [line cut: 102400 bytes]\n")
    );
    // A later reader of the launch gets the kept log: head, marker, tail, under the cap.
    let replay = follow(&url, None, None).await;
    let kept: usize = replay.events.iter().map(|(_, e)| e.message.len()).sum();
    assert!(kept < 256 * 1024, "{kept} bytes replayed");
    let text: String = replay
        .events
        .iter()
        .map(|(_, e)| e.message.as_str())
        .collect();
    assert!(text.contains("bytes of log cut here"), "no marker");
    assert!(text.contains("over and over: 1\n"), "the head is kept");
    assert!(text.contains("the very last line\n"), "the tail is kept");
    // The build's stored log is capped the same way.
    let build_id = {
        let (status, body) = authed(
            Method::GET,
            &format!(
                "{}/api/v1/builds?image={}",
                worker.base,
                percent_encoding::utf8_percent_encode(
                    &launch_request("flood", "loud").image,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
        info["id"].as_str().unwrap().to_owned()
    };
    let (status, log) = authed(
        Method::GET,
        &format!("{}/api/v1/builds/{build_id}/log", worker.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.len() < 256 * 1024, "{} bytes stored", log.len());
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("bytes of log cut here") && log.contains("the very last line"));
    worker.stop().await;
}

//! The local executor and the build queue: a real repo2docker build through podman into a
//! real registry, and a scripted `repo2docker` for timeouts, cancelling, one build per image
//! and queue positions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/git_http.rs"]
mod git_http;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bindery_core::events::{Event, Phase};
use bindery_core::worker_api::{Accepted, BuildRequest};
use bindery_worker::WorkerConfig;
use bindery_worker::build_hosts::BuildHosts;
use bindery_worker::executor::{
    BuildOutcome, BuildSpec, Executor, ExecutorSettings, LocalExecutor, LocalSettings,
};
use git_http::{GitHttp, bare_repository};
use http::{Method, StatusCode};
use serde_json::Value;
use support::{Registry, authed, follow, launch_request, start_registry, worker};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fresh scratch directory under `target/`.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/worker-local-build")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // No `..` in paths: repository URLs holding one are refused.
    dir.canonicalize().unwrap()
}

/// A scripted repo2docker. It appends one line per run to `$FAKE_R2D_COUNT` and its
/// arguments to `$FAKE_R2D_ARGS`; `$FAKE_R2D_MODE` picks what it does:
/// `ok` (two json lines, `$FAKE_R2D_SLEEP` seconds, exit 0), `fail` (a line, exit 1),
/// `silent` (a background `sleep` whose pid goes to `$FAKE_R2D_PIDS`, then nothing),
/// `chatty` (a line every 0.1 s forever).
const FAKE_R2D: &str = r#"#!/bin/sh
echo run >> "$FAKE_R2D_COUNT"
echo "$@" >> "$FAKE_R2D_ARGS"
case "$FAKE_R2D_MODE" in
ok)
  printf '%s\n' '{"phase": "fetching", "message": "Fetching the repository\n"}'
  echo 'a line on stderr' >&2
  sleep "${FAKE_R2D_SLEEP:-0}"
  printf '%s\n' '{"phase": "building", "message": "Step 1/1 : RUN echo built\n"}'
  exit 0 ;;
fail)
  printf '%s\n' '{"phase": "failure", "message": "The command returned a non-zero code: 1\n"}'
  exit 1 ;;
silent)
  sleep 300 &
  echo "$$ $!" > "$FAKE_R2D_PIDS"
  wait ;;
chatty)
  echo $$ > "$FAKE_R2D_PIDS"
  while true; do printf '%s\n' '{"phase": "building", "message": "still going\n"}'; sleep 0.1; done ;;
esac
"#;

struct Fake {
    dir: PathBuf,
    program: PathBuf,
}

impl Fake {
    fn new(name: &str) -> Fake {
        let dir = scratch(name);
        let program = dir.join("repo2docker");
        std::fs::write(&program, FAKE_R2D).unwrap();
        Command::new("chmod")
            .arg("+x")
            .arg(&program)
            .status()
            .unwrap();
        Fake { dir, program }
    }

    fn settings(&self, mode: &str, sleep: f64) -> LocalSettings {
        let env = |k: &str, v: String| (k.to_owned(), v);
        LocalSettings {
            repo2docker: self.program.clone(),
            env: vec![
                env("FAKE_R2D_MODE", mode.into()),
                env("FAKE_R2D_SLEEP", sleep.to_string()),
                env("FAKE_R2D_COUNT", self.path("count")),
                env("FAKE_R2D_ARGS", self.path("args")),
                env("FAKE_R2D_PIDS", self.path("pids")),
            ],
            ..LocalSettings::default()
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.join("count"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("pids"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }
}

/// Whether `pid` is still running (a zombie left to PID 1, which reaps nothing here,
/// counts as gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Whether `pid` stops running within a few seconds: SIGKILL is delivered asynchronously,
/// so a killed process may still be on its way out when `kill` returns.
fn gone_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn spec(image: &str) -> BuildSpec {
    BuildSpec {
        image: image.into(),
        build_name: "test-build".into(),
        repo: "https://github.com/org/repo".into(),
        git_ref: SHA.into(),
    }
}

async fn run_to_end(executor: &LocalExecutor, spec: &BuildSpec) -> (Vec<Event>, BuildOutcome) {
    let mut handle = executor.start(spec);
    let mut events = Vec::new();
    while let Some(event) = handle.events.recv().await {
        events.push(event);
    }
    (events, handle.outcome.await.unwrap())
}

fn config_with(settings: LocalSettings) -> WorkerConfig {
    let mut config = support::config("http://127.0.0.1:9/");
    config.builds.executor = ExecutorSettings::Local(settings);
    config
}

fn build_request(org: &str, repo: &str) -> BuildRequest {
    let launch = launch_request(org, repo);
    BuildRequest {
        provider: launch.provider,
        spec: launch.spec,
        repo_url: launch.repo_url,
        resolved_ref: launch.resolved_ref,
        image: launch.image,
        build_slug: launch.build_slug,
    }
}

async fn post_build(base: &str, request: &BuildRequest) -> Accepted {
    let (status, body) = authed(
        Method::POST,
        &format!("{base}/api/v1/builds"),
        Some(serde_json::to_string(request).unwrap()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

async fn build_info(base: &str, image: &str) -> Value {
    let image = percent_encoding::utf8_percent_encode(image, percent_encoding::NON_ALPHANUMERIC);
    let (status, body) = authed(
        Method::GET,
        &format!("{base}/api/v1/builds?image={image}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

async fn metrics(base: &str) -> String {
    let (_, body) = authed(Method::GET, &format!("{base}/metrics"), None).await;
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_arguments_are_binderhubs_plus_engine_config_and_push_with_the_repository_last() {
    let executor = LocalExecutor::new(LocalSettings {
        engine: Some("docker".into()),
        config_file: Some("/etc/r2d.py".into()),
        push: true,
        ..LocalSettings::default()
    });
    let args = executor.arguments(&spec("reg/binder-x:1")).unwrap();
    assert_eq!(
        args,
        [
            &format!("--ref={SHA}"),
            "--image=reg/binder-x:1",
            "--no-clean",
            "--no-run",
            "--json-logs",
            "--user-name=jovyan",
            "--user-id=1000",
            "--push",
            "--engine",
            "docker",
            "--config",
            "/etc/r2d.py",
            "https://github.com/org/repo",
        ]
    );
}

#[tokio::test]
async fn json_lines_become_events_stderr_lines_unknown_and_exit_zero_succeeds() {
    let fake = Fake::new("lines");
    let (events, outcome) = run_to_end(
        &LocalExecutor::new(fake.settings("ok", 0.0)),
        &spec("r/a:1"),
    )
    .await;
    assert_eq!(outcome, BuildOutcome::Succeeded);
    // stdout and stderr are two pipes read side by side: their lines keep their order
    // within a pipe, not across the two.
    let json: Vec<(Phase, &str)> = events
        .iter()
        .filter(|e| e.phase != Phase::Unknown)
        .map(|e| (e.phase, e.message.as_str()))
        .collect();
    assert_eq!(
        json,
        [
            (Phase::Fetching, "Fetching the repository\n"),
            (Phase::Building, "Step 1/1 : RUN echo built\n"),
        ]
    );
    assert!(
        events
            .iter()
            .any(|e| e.phase == Phase::Unknown && e.message == "a line on stderr\n")
    );
}

#[tokio::test]
async fn a_silent_build_fails_after_the_idle_time_and_leaves_no_process_behind() {
    let fake = Fake::new("idle");
    let settings = LocalSettings {
        idle_timeout: Duration::from_secs(1),
        build_timeout: Duration::from_secs(60),
        ..fake.settings("silent", 0.0)
    };
    let started = Instant::now();
    let (_, outcome) = run_to_end(&LocalExecutor::new(settings), &spec("r/a:1")).await;
    assert_eq!(
        outcome,
        BuildOutcome::Failed("the build printed nothing for 1 seconds and was stopped".into())
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let pids = fake.pids();
    assert_eq!(pids.len(), 2, "the script and its sleep");
    for pid in pids {
        assert!(gone_soon(pid), "process {pid} outlived its build");
    }
}

#[tokio::test]
async fn a_build_over_the_build_timeout_fails_saying_so_and_leaves_no_process_behind() {
    let fake = Fake::new("timeout");
    let settings = LocalSettings {
        idle_timeout: Duration::from_secs(30),
        build_timeout: Duration::from_millis(1500),
        ..fake.settings("chatty", 0.0)
    };
    let (events, outcome) = run_to_end(&LocalExecutor::new(settings), &spec("r/a:1")).await;
    assert_eq!(
        outcome,
        BuildOutcome::Failed(
            "the build took longer than the build timeout of 1.5 seconds and was stopped".into()
        )
    );
    assert!(events.len() >= 5, "it kept printing: {}", events.len());
    for pid in fake.pids() {
        assert!(gone_soon(pid), "process {pid} outlived its build");
    }
}

#[tokio::test]
async fn a_cancelled_build_is_killed_with_its_process_group() {
    let fake = Fake::new("cancel");
    let executor = LocalExecutor::new(fake.settings("silent", 0.0));
    let mut handle = executor.start(&spec("r/a:1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.pids().len() < 2 {
        assert!(Instant::now() < deadline, "the fake never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.cancel.send_replace(true);
    while handle.events.recv().await.is_some() {}
    assert_eq!(
        handle.outcome.await.unwrap(),
        BuildOutcome::Failed("the build was cancelled".into())
    );
    for pid in fake.pids() {
        assert!(gone_soon(pid), "process {pid} outlived its build");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_worker_mid_build_kills_the_build_group_and_reaps_the_child() {
    let fake = Fake::new("stop-worker");
    let worker = worker(config_with(fake.settings("silent", 0.0))).await;
    let request = build_request("org", "stopped-mid-build");
    post_build(&worker.base, &request).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.pids().len() < 2 {
        assert!(Instant::now() < deadline, "the fake never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let [child, grandchild] = fake.pids()[..] else {
        panic!("expected two pids, got {:?}", fake.pids())
    };
    assert!(running(child) && running(grandchild));
    // As SIGTERM does: `serve` returns after the HTTP drain and the shutdown phase.
    worker.stop().await;
    // The child was waited for: not even a zombie is left of it.
    assert!(
        !Path::new(&format!("/proc/{child}")).exists(),
        "repo2docker ({child}) was not reaped when the worker stopped"
    );
    // The rest of its group was killed (left to PID 1, it may stay a zombie).
    assert!(
        gone_soon(grandchild),
        "process {grandchild} of the build's group outlived the worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_launches_of_one_missing_image_start_one_build_and_all_see_built() {
    let fake = Fake::new("twenty");
    let worker = worker(config_with(fake.settings("ok", 1.0))).await;
    let mut launch = launch_request("org", "popular");
    launch.image_present = false;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let launch = launch.clone();
        let base = worker.base.clone();
        streams.push(tokio::spawn(async move {
            let (status, body) = authed(
                Method::POST,
                &format!("{base}/api/v1/launches"),
                Some(serde_json::to_string(&launch).unwrap()),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            let accepted: Accepted = serde_json::from_slice(&body).unwrap();
            follow(&format!("{base}{}", accepted.events_url), None, None).await
        }));
    }
    for stream in streams {
        let stream = stream.await.unwrap();
        assert!(stream.ended);
        let built: Vec<&Event> = stream
            .events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.phase == Phase::Built)
            .collect();
        assert_eq!(built.len(), 1, "{:?}", stream.events);
        assert_eq!(built[0].message, "Built image, launching...\n");
        assert_eq!(built[0].image_name.as_deref(), Some(launch.image.as_str()));
        assert!(
            stream
                .events
                .iter()
                .any(|(_, e)| e.message == "Step 1/1 : RUN echo built\n")
        );
    }
    assert_eq!(fake.runs(), 1, "exactly one repo2docker run");
    let info = build_info(&worker.base, &launch.image).await;
    assert_eq!(info["state"], "succeeded");
    let text = metrics(&worker.base).await;
    assert!(
        text.contains("binderhub_build_count{status=\"success\"} 1"),
        "{text}"
    );
    assert!(text.contains("binderhub_build_time_seconds_count{status=\"success\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_build_slot_three_images_queue_and_learn_their_positions() {
    let fake = Fake::new("queue");
    let mut config = config_with(fake.settings("ok", 1.5));
    config.builds.max_concurrent = 1;
    let worker = worker(config).await;
    let requests: Vec<BuildRequest> = ["first", "second", "third"]
        .iter()
        .map(|r| build_request("org", r))
        .collect();
    let mut accepted = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let a = post_build(&worker.base, request).await;
        let url = format!("{}{}", worker.base, a.events_url);
        // Wait until this build is in line (or running) before the next one asks.
        let first = follow(&url, None, Some(1)).await;
        if i > 0 {
            assert_eq!(first.events[0].1.queue_position, Some(i as u32));
        }
        accepted.push(url);
    }
    assert_eq!(
        build_info(&worker.base, &requests[2].image).await["state"],
        "queued"
    );
    let text = metrics(&worker.base).await;
    assert!(text.contains("bindery_build_queue_length 2"), "{text}");
    assert!(text.contains("binderhub_inprogress_builds 1"), "{text}");
    let mut positions = Vec::new();
    for url in &accepted {
        let stream = follow(url, None, None).await;
        assert!(stream.ended);
        let (_, last) = stream.events.last().unwrap();
        assert_eq!(last.phase, Phase::Built, "a build stream ends with built");
        positions.push(
            stream
                .events
                .iter()
                .filter_map(|(_, e)| e.queue_position)
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(positions, [vec![], vec![1], vec![2, 1]]);
    let info = build_info(&worker.base, &requests[2].image).await;
    assert_eq!(info["state"], "succeeded");
    assert!(info["started"].as_u64().unwrap() <= info["finished"].as_u64().unwrap());
    assert_eq!(fake.runs(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_log_is_kept_after_the_build_and_survives_a_worker_restart() {
    let fake = Fake::new("restart");
    let mut config = config_with(fake.settings("fail", 0.0));
    config.builds.log_store = Some(fake.dir.join("logs.redb"));
    let request = build_request("org", "broken");
    let first = worker(config.clone()).await;
    let accepted = post_build(&first.base, &request).await;
    let stream = follow(
        &format!("{}{}", first.base, accepted.events_url),
        None,
        None,
    )
    .await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Failed);
    assert!(
        last.message
            .contains("the build failed: repo2docker exit status: 1"),
        "{}",
        last.message
    );
    drop(first);
    // The database is single-writer: wait until the stopped worker has let go of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bindery_worker::server::AppState::new(config.clone())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the first worker kept the log store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = worker(config).await;
    let (status, log) = authed(
        Method::GET,
        &format!("{}/api/v1/builds/{}/log", second.base, accepted.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("The command returned a non-zero code: 1"),
        "{log}"
    );
    assert!(log.contains("Failed to build image"), "{log}");
    let info = build_info(&second.base, &request.image).await;
    assert_eq!(info["id"], accepted.id.as_str());
    assert_eq!(info["state"], "failed");
}

// ---- the real build: repo2docker 2026.4.0 through podman into docker-registry ----

fn venv_bin() -> PathBuf {
    let python = std::env::var_os("BINDERY_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python"),
        PathBuf::from,
    );
    python.parent().unwrap().to_path_buf()
}

const PODMAN_SHIM: &str = r#"#!/bin/bash
# podman 4.3 lacks `buildx version` and `buildx build --push`, which repo2docker uses.
if [ "$1" = buildx ] && [ "$2" = version ]; then echo "podman-buildx-shim"; exit 0; fi
if [ "$1" = buildx ] && [ "$2" = build ]; then
  shift 2; args=(); tags=(); push=0; prev=
  for a in "$@"; do
    if [ "$a" = --push ]; then push=1; else args+=("$a"); fi
    [ "$prev" = --tag ] && tags+=("$a"); prev=$a
  done
  /usr/bin/podman build --network none "${args[@]}" || exit $?
  if [ $push = 1 ]; then for t in "${tags[@]}"; do /usr/bin/podman push "$t" || exit $?; done; fi
  exit 0
fi
exec /usr/bin/podman "$@"
"#;

const BASE_IMAGE: &str = "localhost/bindery-test-base:latest";

/// Podman's configuration under `dir`, for a registry at `registry`: the environment of
/// the repo2docker child. The base image is imported once per test binary.
fn podman_env(dir: &Path, registry: &str) -> Vec<(String, String)> {
    let containers = dir.join("containers.conf");
    std::fs::write(
        &containers,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    let registries = dir.join("registries.conf");
    std::fs::write(
        &registries,
        format!("unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"),
    )
    .unwrap();
    let shim = dir.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    for name in ["podman", "docker"] {
        std::fs::write(shim.join(name), PODMAN_SHIM).unwrap();
    }
    Command::new("chmod")
        .arg("-R")
        .arg("+x")
        .arg(&shim)
        .status()
        .unwrap();
    let env = vec![
        (
            "CONTAINERS_CONF".to_owned(),
            containers.display().to_string(),
        ),
        (
            "CONTAINERS_REGISTRIES_CONF".to_owned(),
            registries.display().to_string(),
        ),
        // repo2docker drives the `podman` CLI when DOCKER_HOST mentions podman.
        (
            "DOCKER_HOST".to_owned(),
            "unix:///nonexistent/podman.sock".to_owned(),
        ),
        (
            "PATH".to_owned(),
            format!(
                "{}:{}:{}",
                shim.display(),
                venv_bin().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
    ];
    static IMPORTED: OnceLock<()> = OnceLock::new();
    IMPORTED.get_or_init(|| {
        let exists = Command::new("podman")
            .args(["image", "exists", BASE_IMAGE])
            .envs(env.iter().cloned())
            .status()
            .expect("podman (apt-get install podman buildah runc; cargo xtask test sets it up)");
        if !exists.success() {
            let root = dir.join("base-rootfs");
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
            std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
            let tar = dir.join("base.tar");
            assert!(
                Command::new("tar")
                    .arg("-C")
                    .arg(&root)
                    .arg("-cf")
                    .arg(&tar)
                    .arg(".")
                    .status()
                    .unwrap()
                    .success()
            );
            let imported = Command::new("podman")
                .arg("import")
                .arg(&tar)
                .arg(BASE_IMAGE)
                .envs(env.iter().cloned())
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(imported.success(), "podman import failed");
        }
    });
    env
}

/// A git repository whose Dockerfile ends with `run`, served over HTTP on loopback; returns
/// the server, the repository URL and the commit.
async fn git_repo(dir: &Path, run: &str) -> (GitHttp, String, String) {
    let root = dir.join("git");
    std::fs::create_dir_all(&root).unwrap();
    let dockerfile = format!("FROM {BASE_IMAGE}\nRUN {run}\n");
    let sha = bare_repository(&root, &[("Dockerfile", &dockerfile)]);
    let server = GitHttp::start(root).await;
    let url = format!("{}/repo.git", server.url);
    (server, url, sha)
}

fn real_config(dir: &Path, registry: &Registry) -> WorkerConfig {
    let offline = dir.join("offline_config.py");
    std::fs::write(
        &offline,
        "from repo2docker import contentproviders\nc.Repo2Docker.content_providers = [contentproviders.Local, contentproviders.Git]\n",
    )
    .unwrap();
    let mut config = support::config("http://127.0.0.1:9/");
    config.image_prefix = format!("{}/bindery-test-", registry.addr);
    config.builds.registry_url = Some(format!("http://{}", registry.addr));
    config.builds.executor = ExecutorSettings::Local(LocalSettings {
        repo2docker: venv_bin().join("repo2docker"),
        push: true,
        config_file: Some(offline),
        env: podman_env(dir, &registry.addr),
        build_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(60),
        ..LocalSettings::default()
    });
    // The repository is served on loopback, which builds reach only when allowed.
    config.builds.hosts =
        BuildHosts::new(&["127.0.0.1".into()], &[], Duration::from_secs(5)).unwrap();
    config
}

/// The prebuild of the `git` link to `repo_url` at `sha` (the build slug of a `git` link is
/// its URL).
fn real_build_request(config: &WorkerConfig, repo_url: &str, sha: &str) -> BuildRequest {
    BuildRequest {
        provider: "git".into(),
        spec: format!("{}/main", bindery_core::resolve::encode_all(repo_url)),
        repo_url: repo_url.into(),
        resolved_ref: sha.into(),
        image: bindery_core::image_name(&config.image_prefix, repo_url, sha),
        build_slug: repo_url.into(),
    }
}

async fn manifest_status(registry: &Registry, image: &str) -> StatusCode {
    let name = bindery_core::image::split_image(image);
    let request = http::Request::head(format!(
        "http://{}/v2/{}/manifests/{}",
        registry.addr, name.repository, name.tag
    ))
    .header("accept", "application/vnd.oci.image.manifest.v1+json")
    .body(http_body_util::Full::new(bytes::Bytes::new()))
    .unwrap();
    support::client().request(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_repo2docker_build_through_podman_pushes_the_image_and_a_second_request_finds_it() {
    let dir = scratch("real-ok");
    let registry = start_registry(&dir);
    let (git, repo_url, sha) = git_repo(&dir, "echo built > /built.txt").await;
    let config = real_config(&dir, &registry);
    let request = real_build_request(&config, &repo_url, &sha);
    assert!(request.image.starts_with(&registry.addr));
    assert_eq!(
        manifest_status(&registry, &request.image).await,
        StatusCode::NOT_FOUND
    );
    let worker = worker(config).await;

    let started = Instant::now();
    let accepted = post_build(&worker.base, &request).await;
    let stream = follow(
        &format!("{}{}", worker.base, accepted.events_url),
        None,
        None,
    )
    .await;
    let took = started.elapsed();
    eprintln!("real build and push took {took:?}");
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Built, "{:#?}", stream.events);
    assert_eq!(last.message, "Built image, launching...\n");
    assert!(
        stream
            .events
            .iter()
            .any(|(_, e)| e.phase == Phase::Building),
        "{:?}",
        stream
            .events
            .iter()
            .map(|(_, e)| e.to_json())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        manifest_status(&registry, &request.image).await,
        StatusCode::OK
    );
    assert!(git.connections() > 0, "repo2docker cloned over HTTP");

    // Another request for the image finds it in the registry and does not build again.
    let again = post_build(&worker.base, &request).await;
    assert_ne!(again.id, accepted.id);
    let stream = follow(&format!("{}{}", worker.base, again.events_url), None, None).await;
    assert_eq!(stream.events.len(), 1);
    assert_eq!(
        stream.events[0].1.message,
        "Found built image, launching...\n"
    );
    // Podman keeps its images outside `target/`: drop the one this test built.
    let _ = Command::new("podman")
        .arg("rmi")
        .arg(&request.image)
        .envs(podman_env(&dir, &registry.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_build_whose_dockerfile_fails_ends_in_failed() {
    let dir = scratch("real-fail");
    let registry = start_registry(&dir);
    let (_git, repo_url, sha) = git_repo(&dir, "false").await;
    let config = real_config(&dir, &registry);
    let request = real_build_request(&config, &repo_url, &sha);
    let worker = worker(config).await;
    let accepted = post_build(&worker.base, &request).await;
    let stream = follow(
        &format!("{}{}", worker.base, accepted.events_url),
        None,
        None,
    )
    .await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Failed, "{:#?}", stream.events);
    assert!(
        last.message.contains("the build failed"),
        "{}",
        last.message
    );
    assert_eq!(
        manifest_status(&registry, &request.image).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        build_info(&worker.base, &request.image).await["state"],
        "failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_names_the_version_of_the_real_repo2docker_asked_once() {
    let program = venv_bin().join("jupyter-repo2docker");
    let printed = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&printed.stdout).trim().to_owned();
    assert!(!expected.is_empty(), "repo2docker printed no version");
    let fake = Fake::new("versions");
    let mut settings = fake.settings("ok", 0.0);
    settings.repo2docker = program;
    let worker = worker(config_with(settings)).await;
    let (status, body) =
        support::call(Method::GET, &format!("{}/versions", worker.base), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"builder_info": {"repo2docker-version": expected}})
    );

    // A repo2docker that cannot say is asked again, and says nothing meanwhile.
    let mut silent = fake.settings("ok", 0.0);
    silent.repo2docker = fake.path("no-such-repo2docker").into();
    let executor = LocalExecutor::new(silent);
    assert_eq!(executor.repo2docker_version().await, None);
}

/// `GET /api/v1/images?image=` of `worker`: the status and the answer.
async fn image_lookup(base: &str, image: &str) -> (StatusCode, Value) {
    let url = format!(
        "{base}/api/v1/images?image={}",
        bindery_core::resolve::encode_all(image)
    );
    let (status, body) = authed(Method::GET, &url, None).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Issue 15: without a registry (`bindery up`'s `registry_url = "none"`) a real build stays
/// in podman, which the worker asks whether an image exists: its image API (what an edge
/// with `use_registry = false` asks) and the re-check before a second build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registry_a_real_build_stays_in_podman_where_the_worker_finds_it() {
    let dir = scratch("real-no-registry");
    let registry = start_registry(&dir);
    let (_git, repo_url, sha) = git_repo(&dir, "echo built > /built.txt").await;
    let mut config = real_config(&dir, &registry);
    config.image_prefix = "localhost/bindery-test-no-registry-".into();
    config.builds.registry_url = None;
    if let ExecutorSettings::Local(local) = &mut config.builds.executor {
        local.push = false;
    }
    let env = podman_env(&dir, &registry.addr);
    let request = real_build_request(&config, &repo_url, &sha);
    let worker = worker(config).await;
    let (status, answer) = image_lookup(&worker.base, &request.image).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"image": request.image, "present": false})
    );

    let accepted = post_build(&worker.base, &request).await;
    let url = format!("{}{}", worker.base, accepted.events_url);
    let stream = follow(&url, None, None).await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Built, "{:#?}", stream.events);
    let in_podman = Command::new("podman")
        .args(["image", "exists", &request.image])
        .envs(env.iter().cloned())
        .status()
        .unwrap();
    assert!(in_podman.success(), "the image is in podman's store");
    assert_eq!(
        manifest_status(&registry, &request.image).await,
        StatusCode::NOT_FOUND,
        "nothing is pushed"
    );
    let (status, answer) = image_lookup(&worker.base, &request.image).await;
    assert_eq!(
        (status, &answer["present"]),
        (StatusCode::OK, &Value::Bool(true))
    );

    // A second request finds the image in podman and builds nothing.
    let again = post_build(&worker.base, &request).await;
    let url = format!("{}{}", worker.base, again.events_url);
    let stream = follow(&url, None, None).await;
    assert_eq!(stream.events.len(), 1, "{:#?}", stream.events);
    assert_eq!(
        stream.events[0].1.message,
        "Found built image, launching...\n"
    );

    // Only names of this worker's images reach podman's command line.
    for (bad, needle) in [
        (
            "docker.io/library/busybox:latest",
            "not under this worker's image prefix",
        ),
        (
            "localhost/bindery-test-no-registry-x:--format=x",
            "not an image name",
        ),
        (
            "localhost/bindery-test-no-registry-x y:1",
            "not an image name",
        ),
    ] {
        let (status, answer) = image_lookup(&worker.base, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    let (status, _) = authed(Method::GET, &format!("{}/api/v1/images", worker.base), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = support::call(
        Method::GET,
        &format!("{}/api/v1/images?image=x", worker.base),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let _ = Command::new("podman")
        .args(["rmi", "-f", &request.image])
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

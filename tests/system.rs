//! The whole path with real parts: `bindery up` (the edge host with the real components and
//! the in-process worker with the local executor), a real JupyterHub, the real
//! `docker-registry`, repo2docker building through podman, a git server over smart HTTP
//! (`git http-backend`), headless Chromium driven by playwright-core, and BinderHub's own
//! API client (`@jupyterhub/binderhub-client` from npm, run by Node) for a launch with a
//! build token and a `build_only` build.
//!
//! What is not real, and why: the image repo2docker builds is a busybox image (nothing can
//! be pulled offline, so the repository's Dockerfile starts from a busybox root file system
//! imported into podman), and busybox cannot run Jupyter. The hub's spawner therefore checks
//! that the image named in user_options is in the registry, as a kubelet would pull it,
//! and then runs jupyter-server on this machine with the launch token instead of the image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use bindery_core::events::Phase;
use bindery_system_tests::browser;
use bindery_system_tests::git::GitServer;
use bindery_system_tests::hub::Hub;
use bindery_system_tests::node;
use bindery_system_tests::podman::{GATE_IN_BUILD, Podman};
use bindery_system_tests::registry::{Auth, Registry};
use bindery_system_tests::sse::{events, get};
use bindery_system_tests::up::Up;
use bindery_system_tests::{free_port, scratch, workspace};
use serde_json::{Value, json};

const BASE_IMAGE: &str = "localhost/bindery-system-test-base:latest";
/// Printed by the repository's build before it waits for the gate file: the browser waits
/// for it in the page's log, takes the screenshot, then creates the file.
const MARK: &str = "bindery-system-test: building";
const HUB_TOKEN: &str = "system-test-hub-token-0123456789abcdef";
const WORKER_TOKEN: &str = "system-test-worker-token";
/// The spawner's registry requests carry this user agent (tests/py/jupyterhub_system.py).
const SPAWNER_AGENT: &str = "bindery-system-test-spawner";

fn venv_bin() -> PathBuf {
    PathBuf::from(
        std::env::var("BINDERY_PYTHON")
            .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`"),
    )
    .parent()
    .unwrap()
    .to_path_buf()
}

/// The registry's access-log lines for requests that did not come from the hub's spawner:
/// the requests Bindery (edge, worker, repo2docker's push) made.
fn bindery_registry_requests(registry: &Registry) -> Vec<String> {
    std::fs::read_to_string(registry.dir.join("registry.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" /v2/") && l.contains("HTTP/1.1\"") && !l.contains(SPAWNER_AGENT))
        .map(str::to_owned)
        .collect()
}

async fn worker_metrics(port: u16) -> String {
    get(&format!("http://127.0.0.1:{port}/metrics"), &[])
        .await
        .text()
}

/// Runs `tests/js/launch.cjs` in headless Chromium and returns what it reports.
fn browse(
    launch_url: &str,
    hub_url: &str,
    screenshot: &std::path::Path,
    profile: &std::path::Path,
    gate: &std::path::Path,
) -> Value {
    let args = [
        OsStr::new(launch_url),
        OsStr::new(hub_url),
        screenshot.as_os_str(),
        OsStr::new(MARK),
        profile.as_os_str(),
        gate.as_os_str(),
    ];
    browser::run("launch.cjs", &args)
}

/// The reaper exits with the wrapped command's status, also when the command fails, leaves
/// orphans behind (which the reaper collects with `waitpid(-1)`, the command's own exit among
/// them when it comes first) or is killed by a signal: a failing browser script must fail
/// the test.
#[test]
fn the_reaper_exits_with_the_wrapped_commands_status() {
    let python = std::env::var("BINDERY_PYTHON")
        .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`");
    let run = |script: &str| {
        Command::new(&python)
            .arg(workspace().join("tests/py/reaper.py"))
            .args(["sh", "-c", script])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(run("exit 0"), Some(0));
    assert_eq!(run("exit 3"), Some(3));
    assert_eq!(run("kill -TERM $$"), Some(128 + 15), "killed by SIGTERM");
    // Orphans exiting together with the command: the reaper's waitpid(-1) collects them
    // and, as it happens, the command itself.
    for _ in 0..5 {
        assert_eq!(
            run("for i in 1 2 3 4 5 6 7 8; do (sleep 0.1 &); done; sleep 0.1; exit 7"),
            Some(7)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_launch_builds_streams_the_log_and_lands_on_the_server_and_a_second_launch_uses_the_cache()
 {
    let dir = scratch("system");
    let registry = Registry::start(&dir.join("registry"), Auth::None).await;
    let mut podman = Podman::new(&dir.join("podman"), &registry.host, &venv_bin());
    podman.import_busybox(&dir.join("podman"), BASE_IMAGE);
    // The build prints MARK, then waits until the browser has taken its screenshot and
    // created `open` in the gate (for at most 100 s, then it fails, before the worker's
    // 120 s idle timeout): the screenshot is of a build still running, however slow the
    // machine.
    let gate = dir.join("gate");
    podman.build_gate(&gate);

    let git = GitServer::start(&dir.join("git")).await;
    // The command prints MARK in two words, so that MARK appears in the log only as the
    // build's output, never as the echo of the RUN line itself.
    let (mark_head, mark_tail) = MARK.split_once(' ').unwrap();
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\n\
         RUN sleep 2 && echo '{mark_head}' '{mark_tail}' && i=0 && \
         while [ ! -e {GATE_IN_BUILD}/open ]; do \
         i=$((i+1)); if [ $i -gt 1000 ]; then echo 'the gate never opened'; exit 1; fi; sleep 0.1; \
         done && echo 'bindery-system-test: built' > /built.txt\n"
    );
    let (repo_url, sha) = git.repository("notebooks", &[("Dockerfile", &dockerfile)]);

    let mut hub = Hub::start(&dir.join("hub"), HUB_TOKEN).await;

    let offline = dir.join("offline_config.py");
    std::fs::write(
        &offline,
        "from repo2docker import contentproviders\nc.Repo2Docker.content_providers = [contentproviders.Local, contentproviders.Git]\n",
    )
    .unwrap();
    let (edge_port, worker_port) = (free_port(), free_port());
    let prefix = format!("{}/bindery-system-", registry.host);
    let mut config = format!(
        "data_dir = \"{data}\"\n\
         registry_url = \"{registry}\"\n\
         image_prefix = \"{prefix}\"\n\
         hub_url = \"{hub}\"\n\
         hub_api_token = \"{HUB_TOKEN}\"\n\
         [edge]\nlisten = \"127.0.0.1:{edge_port}\"\n\
         [edge.variables]\nextra_outbound_host = \"http://127.0.0.1:*\"\nref_ttl_seconds = \"3600\"\n\
         allow_build_only = \"true\"\n\
         [worker]\nlisten = \"127.0.0.1:{worker_port}\"\ntoken = \"{WORKER_TOKEN}\"\n\
         allowed_build_hosts = [\"127.0.0.1\"]\n\
         repo2docker = \"{r2d}\"\nrepo2docker_config = \"{offline}\"\n\
         build_timeout_seconds = 300\nbuild_idle_timeout_seconds = 120\nlaunch_timeout_seconds = 120\n\
         [worker.build_env]\n",
        data = dir.join("data").display(),
        registry = registry.url,
        hub = hub.url,
        r2d = venv_bin().join("repo2docker").display(),
        offline = offline.display(),
    );
    for (name, value) in &podman.env {
        config.push_str(&format!("{name} = \"{value}\"\n"));
    }
    let mut up = Up::start(&dir.join("up"), &config, &[]).await;
    let banner = up.output();
    assert_eq!(up.url, format!("http://127.0.0.1:{edge_port}/"));
    assert!(
        !banner.contains("warning:"),
        "every part is there, so nothing is missing:\n{banner}"
    );

    // ---- First launch, in the browser: a build, its log in the page, then the server.
    let spec = format!("git/{}/main", bindery_core::resolve::encode_all(&repo_url));
    let image = bindery_core::image_name(&prefix, &repo_url, &sha);
    podman.remove_later(&image);
    let screenshot = workspace().join("target/system-tests/loading.png");
    let _ = std::fs::remove_file(&screenshot);
    let seen = browse(
        &format!("{}v2/{spec}", up.url),
        &hub.url,
        &screenshot,
        &dir.join("chromium-profile"),
        &gate.join("open"),
    );
    // Both pages ran under their Content-Security-Policy (issue 12, point 8): the home
    // page's script made a link, the loading page streamed and redirected (below), and the
    // browser refused nothing but the inline script injected into the home page on purpose,
    // which shows the policy is enforced and that refusals are seen.
    assert_eq!(
        seen["homeLink"],
        format!("{}v2/gh/binder-examples/requirements/HEAD", up.url),
        "{seen:#}"
    );
    assert_eq!(
        seen["probeRan"], false,
        "an unlisted inline script ran: {seen:#}"
    );
    assert_eq!(seen["probeReported"], true, "{seen:#}");
    assert_eq!(
        seen["cspViolations"],
        serde_json::json!([]),
        "the pages broke their own policy: {seen:#}"
    );
    for page in [up.url.clone(), format!("{}v2/{spec}", up.url)] {
        let policy = seen["cspHeaders"][&page].as_str().unwrap_or_default();
        assert!(
            policy.contains("script-src 'sha256-") && policy.contains("frame-ancestors 'self'"),
            "{page}: {seen:#}"
        );
    }
    let phases: Vec<&str> = seen["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(phases.contains(&"building"), "{seen:#}\n{}", up.output());
    assert!(
        seen["log"].as_str().unwrap().contains(MARK),
        "the build's own output streamed into the page: {seen:#}"
    );
    // The real loading page carries a build token and sends it on /build (issue 12): its
    // launch is not counted against the per-client limit, so no x-ratelimit-* comes back.
    let builds = seen["builds"].as_array().unwrap();
    assert!(!builds.is_empty(), "{seen:#}");
    for url in builds {
        let url = url.as_str().unwrap();
        let token = url
            .split_once("build_token=")
            .map(|(_, t)| t)
            .unwrap_or_default();
        assert_eq!(token.matches('.').count(), 2, "a JWT on {url}");
    }
    assert!(
        seen["buildHeaders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.get("x-ratelimit-remaining").is_none()),
        "{seen:#}"
    );
    assert_eq!(seen["screenshot"], true, "{seen:#}");
    assert_eq!(
        seen["phaseAtScreenshot"], "building",
        "the line arrived while the build was still running: {seen:#}"
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{}", screenshot.display());
    let final_url = seen["finalUrl"].as_str().unwrap();
    assert!(
        final_url.starts_with(&format!("{}user/", hub.url)),
        "the browser landed on the server: {seen:#}"
    );
    assert_eq!(seen["apiStatus"], 200, "{seen:#}");
    let status: Value = serde_json::from_str(seen["apiBody"].as_str().unwrap()).unwrap();
    assert!(
        status["started"].is_string(),
        "jupyter-server's status: {status}"
    );
    assert_ne!(
        seen["apiNoTokenStatus"], 200,
        "without the launch token the server refuses: {seen:#}"
    );
    // The registry holds what repo2docker pushed, and the spawner found it there.
    assert!(podman.has_image(&image), "{image} was built by podman");
    let spawns = hub.spawns();
    assert_eq!(spawns.len(), 1, "{spawns:?}");
    assert!(
        spawns[0].starts_with("spawn ") && spawns[0].ends_with(&format!(" {image}")),
        "{spawns:?}"
    );

    let metrics = worker_metrics(worker_port).await;
    assert!(
        metrics.contains("binderhub_build_count{status=\"success\"} 1"),
        "{metrics}"
    );
    let git_first = git.requests();
    let registry_first = bindery_registry_requests(&registry);
    assert!(
        git_first.iter().any(|l| l.contains("info/refs")),
        "the edge resolved main over smart HTTP: {git_first:?}"
    );
    assert!(
        git_first
            .iter()
            .any(|l| l.starts_with("POST ") && l.contains("git-upload-pack")),
        "repo2docker cloned over smart HTTP: {git_first:?}"
    );
    assert!(
        registry_first.iter().any(|l| l.contains("\"PUT /v2/")),
        "the build pushed, and the counting sees Bindery's requests: {registry_first:?}"
    );

    // ---- Second launch of the same commit: the edge answers the ref and the image from
    // its cache, the worker does not build, and only the hub is asked.
    let (code, second, _) = events(
        &format!("{}build/{spec}", up.url),
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(code, 200);
    let last = &second.last().unwrap().event;
    assert_eq!(last.phase, Phase::Ready, "{second:#?}");
    assert_eq!(last.image.as_deref(), Some(image.as_str()));
    assert!(
        last.url
            .as_deref()
            .unwrap()
            .starts_with(&format!("{}user/", hub.url))
    );
    assert!(
        second.iter().all(|r| !matches!(
            r.event.phase,
            Phase::Building | Phase::Fetching | Phase::Pushing
        )),
        "no build: {second:#?}"
    );
    assert_eq!(
        git.requests(),
        git_first,
        "no provider call on the second launch"
    );
    assert_eq!(
        bindery_registry_requests(&registry),
        registry_first,
        "no registry call by Bindery on the second launch"
    );
    let metrics = worker_metrics(worker_port).await;
    assert!(
        metrics.contains("binderhub_build_count{status=\"success\"} 1"),
        "still one build: {metrics}"
    );
    assert!(
        !metrics.contains("binderhub_build_count{status=\"failure\"}")
            || metrics.contains("binderhub_build_count{status=\"failure\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("binderhub_launch_count{status=\"success\"} 2"),
        "{metrics}"
    );
    assert_eq!(hub.spawns().len(), 2, "{:?}", hub.spawns());
    let build = get(
        &format!(
            "http://127.0.0.1:{worker_port}/api/v1/builds?image={}",
            bindery_core::resolve::encode_all(&image)
        ),
        &[("authorization", &format!("Bearer {WORKER_TOKEN}"))],
    )
    .await;
    assert_eq!(build.status, 200, "{}", build.text());
    assert_eq!(build.json()["state"], "succeeded", "{}", build.text());

    // ---- BinderHub's own client (issue 14, point 3): the same link through
    // `@jupyterhub/binderhub-client` from npm, with the loading page's build token, as an
    // embedder uses it: it awaits something after `ready` before `close()`, and sees a
    // launch on the real hub and no failure.
    let build_api = format!("{}build", up.url);
    let token = node::page_token(&format!("{}v2/{spec}", up.url)).await;
    let got = node::binderhub_client(
        &build_api,
        &spec,
        &json!({"buildToken": token, "readyDelayMs": 50}),
    );
    let phases = node::phases(&got);
    assert_eq!(phases.first().map(String::as_str), Some("built"), "{got:#}");
    assert_eq!(phases.last().map(String::as_str), Some("ready"), "{got:#}");
    assert!(!phases.iter().any(|p| p == "failed"), "{got:#}");
    let ready = got["events"].as_array().unwrap().last().unwrap();
    assert!(
        ready["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}user/", hub.url)),
        "{got:#}"
    );
    assert!(!ready["token"].as_str().unwrap().is_empty(), "{got:#}");
    assert_eq!(hub.spawns().len(), 3, "{:?}", hub.spawns());

    // ---- build_only through the client (issue 14, point 2): another repository is built
    // by repo2docker and pushed to the registry, and nothing is launched.
    let (only_url, only_sha) = git.repository(
        "prebuilt",
        &[(
            "Dockerfile",
            &format!(
                "FROM {BASE_IMAGE}\nRUN echo 'bindery-system-test: build only' > /built-only.txt\n"
            ),
        )],
    );
    let only_spec = format!("git/{}/main", bindery_core::resolve::encode_all(&only_url));
    let only_image = bindery_core::image_name(&prefix, &only_url, &only_sha);
    podman.remove_later(&only_image);
    let got = node::binderhub_client(
        &build_api,
        &only_spec,
        &json!({"buildOnly": true, "readyDelayMs": 50}),
    );
    let phases = node::phases(&got);
    assert_eq!(
        phases.first().map(String::as_str),
        Some("waiting"),
        "{got:#}"
    );
    assert!(phases.iter().any(|p| p == "building"), "{got:#}");
    assert!(
        !phases
            .iter()
            .any(|p| matches!(p.as_str(), "failed" | "launching" | "built")),
        "{got:#}"
    );
    let done = got["events"].as_array().unwrap().last().unwrap();
    assert_eq!(done["phase"], "ready", "{got:#}");
    assert_eq!(done["message"], "Done! Image built\n", "{got:#}");
    assert_eq!(done["imageName"], only_image.as_str(), "{got:#}");
    assert!(done.get("url").is_none(), "no server: {got:#}");
    assert!(podman.has_image(&only_image), "{only_image} was built");
    let only_repository = bindery_core::image::split_image(&only_image).repository;
    assert!(
        bindery_registry_requests(&registry)
            .iter()
            .any(|l| l.contains("\"PUT /v2/") && l.contains(&only_repository)),
        "repo2docker pushed {only_image}"
    );
    assert_eq!(
        hub.spawns().len(),
        3,
        "nothing launched: {:?}",
        hub.spawns()
    );

    // ---- Everything stops: bindery up drains and exits 0; the hub stops its servers.
    let stopped = up.stop().expect("bindery up stops within 60 s of SIGTERM");
    assert!(stopped.success(), "{stopped:?}\n{}", up.output());
    assert!(hub.stop(), "the hub stops on SIGTERM");
}

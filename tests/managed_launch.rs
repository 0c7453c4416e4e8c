//! Issue 15's whole path on one machine, every part managed by `bindery up`: a Dockerfile
//! repository on a local git server is built by repo2docker through the managed podman,
//! pushed to the managed registry, and launched by the managed JupyterHub as a container
//! running a real Jupyter server. Headless Chromium launches it from the home page's form,
//! sees the build log on the loading page and lands on the server, whose API answers with
//! the launch token; a second launch of the same commit reuses the image; a killed hub is
//! restarted and launches work again; Ctrl-C (SIGINT) leaves no process and no container
//! behind. With `registry_url = "none"` the image stays in podman, where the worker finds it
//! for the edge, and the second launch builds nothing either.
//!
//! Nothing can be pulled here, so the repository's base image is made locally once
//! ([`bindery_system_tests::base_image`]) and kept in podman's storage for later runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bindery_core::events::Phase;
use bindery_system_tests::base_image::{BASE, ensure_base, podman};
use bindery_system_tests::browser;
use bindery_system_tests::git::GitServer;
use bindery_system_tests::sse::{events, get};
use bindery_system_tests::up::{Up, processes_mentioning};
use bindery_system_tests::{free_port, scratch, workspace};
use serde_json::Value;

/// The repository's Dockerfile line the build log shows (podman prints each step).
const MARK: &str = "org.bindery.test=managed";

/// The site whose pages may start launches and talk to their servers.
const BOOK: &str = "https://book.example.org";

/// Launches `spec` through the edge's `/build` stream; the phases seen and the ready event.
async fn launch(up: &Up, spec: &str) -> (Vec<Phase>, serde_json::Value) {
    let (status, received, _) = events(
        &format!("{}build/{spec}", up.url),
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let phases: Vec<Phase> = received.iter().map(|r| r.event.phase).collect();
    let last = received.last().expect("events").event.clone();
    assert_eq!(
        last.phase,
        Phase::Ready,
        "{phases:?} {last:?}\n{}",
        up.output()
    );
    (phases, serde_json::to_value(&last).unwrap())
}

/// A running `bindery up` with every part managed, and a repository to launch.
struct Setup {
    dir: PathBuf,
    data: PathBuf,
    up: Up,
    _git: GitServer,
    repo_url: String,
    sha: String,
    hub: u16,
}

impl Setup {
    /// The base image, a git server with the repository, and `bindery up` on free ports with
    /// its own data dir; `registry` is the top-level `registry_url` line, or empty for the
    /// managed registry on `registry_port`.
    async fn start(name: &str, registry: &str, registry_port: u16) -> Setup {
        let python = PathBuf::from(
            std::env::var("BINDERY_PYTHON")
                .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`"),
        );
        let dir = scratch(name);
        ensure_base(
            &workspace().join("target/system-tests/managed-base"),
            &python,
        );
        let git = GitServer::start(&dir.join("git")).await;
        let (repo_url, sha) = git.repository(
            "jupyter",
            &[("Dockerfile", &format!("FROM {BASE}\nLABEL {MARK}\n"))],
        );
        let offline = dir.join("offline_config.py");
        std::fs::write(
            &offline,
            "from repo2docker import contentproviders\nc.Repo2Docker.content_providers = \
             [contentproviders.Local, contentproviders.Git]\n",
        )
        .unwrap();
        let data = dir.join("data");
        let (edge, hub) = (free_port(), free_port());
        let config = format!(
            "data_dir = \"{data}\"\n{registry}\n\
             [edge]\nlisten = \"127.0.0.1:{edge}\"\n\
             [edge.variables]\nextra_outbound_host = \"http://127.0.0.1:*\"\n\
             cors_allow_origin = \"{BOOK}\"\n\
             [worker]\nrepo2docker = \"{r2d}\"\nrepo2docker_config = \"{offline}\"\n\
             build_timeout_seconds = 300\nlaunch_timeout_seconds = 120\n\
             allowed_build_hosts = [\"127.0.0.1\"]\n\
             [managed]\nregistry_listen = \"127.0.0.1:{registry_port}\"\n\
             hub_listen = \"127.0.0.1:{hub}\"\npython = \"{python}\"\n",
            data = data.display(),
            r2d = python
                .parent()
                .unwrap()
                .join("jupyter-repo2docker")
                .display(),
            offline = offline.display(),
            python = python.display(),
        );
        let up = Up::start(&dir, &config, &[]).await;
        assert!(
            up.output().contains("managed:  engine    podman"),
            "{}",
            up.output()
        );
        Setup {
            dir,
            data,
            up,
            _git: git,
            repo_url,
            sha,
            hub,
        }
    }

    fn hub_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.hub)
    }

    fn spec(&self) -> String {
        format!(
            "git/{}/main",
            bindery_core::resolve::encode_all(&self.repo_url)
        )
    }

    /// Asks the server of a `ready` event's `url` for its status with `token`.
    async fn server_status(&self, url: &str, token: &str) -> u16 {
        let auth = format!("token {token}");
        let status = get(
            &format!("{url}api/status"),
            &[("authorization", auth.as_str())],
        )
        .await;
        assert!(
            status.status != 200 || status.json()["started"].is_string(),
            "{}",
            status.text()
        );
        status.status
    }

    /// Checks that the edge's `cors_allow_origin` reached the server at `url` as its
    /// `allow_origin` (issue 14): a page of that site may talk to the server it started,
    /// another site's may not.
    async fn check_allow_origin(&self, url: &str, token: &str) {
        let auth = format!("token {token}");
        let from_book = get(
            &format!("{url}api/status"),
            &[("authorization", auth.as_str()), ("origin", BOOK)],
        )
        .await;
        assert_eq!(from_book.status, 200, "{}", from_book.text());
        assert_eq!(
            from_book.header("access-control-allow-origin"),
            Some(BOOK),
            "{:?}",
            from_book.headers
        );
        let from_elsewhere = get(
            &format!("{url}api/status"),
            &[
                ("authorization", auth.as_str()),
                ("origin", "https://elsewhere.example"),
            ],
        )
        .await;
        // jupyter-server names its one allowed origin whoever asks; a browser on another
        // site sees that it is not its own and withholds the answer.
        for refused in ["https://elsewhere.example", "*"] {
            assert_ne!(
                from_elsewhere.header("access-control-allow-origin"),
                Some(refused)
            );
        }
    }

    /// Stops `bindery up` with `signal` and checks that nothing it started is left: no
    /// process mentioning its data dir, no container of an image under `prefix`.
    fn stop_leaving_nothing(&mut self, interrupt: bool, prefix: &str) {
        let status = if interrupt {
            self.up.interrupt()
        } else {
            self.up.stop()
        }
        .expect("bindery up stops within 60 s");
        assert!(status.success(), "{status:?}\n{}", self.up.output());
        let strays = processes_mentioning(&self.data);
        assert!(strays.is_empty(), "left behind: {strays:?}");
        let out = podman(&self.dir)
            .args(["ps", "-a", "--format", "{{.Image}}"])
            .output()
            .unwrap();
        let left = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!left.contains(prefix), "containers left behind: {left}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_launched_from_the_home_page_runs_as_a_real_jupyter_server_on_the_managed_hub()
{
    let registry = free_port();
    let mut setup = Setup::start("managed-launch", "", registry).await;
    let hub_url = setup.hub_url();
    let prefix = format!("127.0.0.1:{registry}/binder-");
    let screenshot = workspace().join("target/system-tests/managed-loading.png");
    let _ = std::fs::remove_file(&screenshot);

    // The browser: the home page's form, the loading page with the build log, the server;
    // then the same commit again.
    let args = [
        OsStr::new(&setup.up.url),
        OsStr::new(&setup.repo_url),
        OsStr::new("main"),
        OsStr::new(&hub_url),
        screenshot.as_os_str(),
        OsStr::new(MARK),
        setup.dir.join("chromium").into_os_string().leak(),
        OsStr::new("2"),
    ];
    let seen = browser::run("home_launch.cjs", &args);
    let rounds = seen["rounds"].as_array().unwrap();
    for (n, round) in rounds.iter().enumerate() {
        let at = |key: &str| round[key].as_str().unwrap_or_default().to_owned();
        assert!(
            at("link").starts_with(&format!("{}v2/git/", setup.up.url)),
            "{round}"
        );
        assert!(at("loadingUrl").contains("/v2/git/"), "{round}");
        assert!(
            at("finalUrl").starts_with(&format!("{hub_url}user/")),
            "{round}\n{}",
            setup.up.output()
        );
        assert_eq!(round["apiStatus"], 200, "{round}");
        let api: Value = serde_json::from_str(&at("apiBody")).unwrap();
        assert!(api["started"].is_string(), "{round}");
        assert_ne!(round["apiNoTokenStatus"], 200, "without the token: {round}");
        eprintln!(
            "launch {n} from the home page: click to server in {} ms",
            round["clickToServerMs"]
        );
    }
    let phases = |n: usize| -> Vec<&str> {
        rounds[n]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect()
    };
    assert!(phases(0).contains(&"building"), "{:?}", phases(0));
    assert!(
        rounds[0]["log"].as_str().unwrap().contains(MARK),
        "the build log shows the Dockerfile's steps: {}",
        rounds[0]
    );
    assert_eq!(rounds[0]["screenshot"], true);
    assert!(screenshot.exists());
    // The same commit again: the image is in the managed registry, nothing is built.
    assert!(!phases(1).contains(&"building"), "{:?}", phases(1));
    assert!(
        !rounds[1]["log"].as_str().unwrap().contains(MARK),
        "{}",
        rounds[1]
    );
    setup
        .up
        .health_green(Duration::from_secs(60))
        .await
        .unwrap();

    // A killed hub is restarted, and launches work again.
    let first = *setup
        .up
        .managed_pids("hub")
        .first()
        .expect("the hub's pid in the banner");
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    for _ in 0..240 {
        if setup.up.managed_pids("hub").len() > 1
            && get(&format!("{hub_url}hub/api/"), &[]).await.status == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        setup.up.managed_pids("hub").len() > 1,
        "restarted:\n{}",
        setup.up.output()
    );
    let (phases, third) = launch(&setup.up, &setup.spec()).await;
    assert!(!phases.contains(&Phase::Building), "{phases:?}");
    let image = third["image"].as_str().unwrap().to_owned();
    assert!(
        image.starts_with(&prefix) && image.contains(&setup.sha[..7]),
        "{third}"
    );
    let status = setup
        .server_status(
            third["url"].as_str().unwrap(),
            third["token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, 200, "after the restart:\n{}", setup.up.output());

    // Ctrl-C: the hub stops its servers' containers, every managed part is reaped.
    setup.stop_leaving_nothing(true, &prefix);
    let _ = podman(&setup.dir).args(["rmi", "-f", &image]).output();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_registry_the_image_stays_in_podman_and_a_second_launch_reuses_it() {
    let mut setup = Setup::start(
        "managed-no-registry",
        "registry_url = \"none\"",
        free_port(),
    )
    .await;
    let out = setup.up.output();
    assert!(
        out.contains("registry: none (images stay in the engine")
            && !out.contains("managed:  registry"),
        "{out}"
    );
    let prefix = "localhost/binder-";

    let (phases, ready) = launch(&setup.up, &setup.spec()).await;
    assert!(phases.contains(&Phase::Building), "{phases:?}");
    let image = ready["image"].as_str().unwrap().to_owned();
    assert!(
        image.starts_with(prefix) && image.contains(&setup.sha[..7]),
        "{ready}"
    );
    assert!(
        podman(&setup.dir)
            .args(["image", "exists", &image])
            .status()
            .unwrap()
            .success(),
        "the image is in podman's store"
    );
    let token = ready["token"].as_str().unwrap();
    let url = ready["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}user/", setup.hub_url())),
        "{ready}"
    );
    assert_eq!(
        setup.server_status(url, token).await,
        200,
        "{}",
        setup.up.output()
    );
    assert_ne!(setup.server_status(url, "not-the-token").await, 200);
    setup.check_allow_origin(url, token).await;

    // The same commit again: the worker finds the image in podman for the edge.
    let (phases, again) = launch(&setup.up, &setup.spec()).await;
    assert!(!phases.contains(&Phase::Building), "{phases:?}");
    assert_eq!(again["image"], ready["image"]);
    let resolved = get(
        &format!("{}api/v1/resolve/{}", setup.up.url, setup.spec()),
        &[],
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text());
    assert_eq!(
        resolved.json()["image"],
        ready["image"],
        "{}",
        resolved.text()
    );
    assert_eq!(
        resolved.json()["image_present"],
        true,
        "{}",
        resolved.text()
    );
    // The edge asked the worker, never a registry (a failed check is logged).
    let out = setup.up.output();
    assert!(!out.contains("image check for"), "{out}");

    // /health asks no registry; every check is green.
    let health = setup
        .up
        .health_green(Duration::from_secs(60))
        .await
        .unwrap();
    let services: Vec<&str> = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["service"].as_str())
        .collect();
    assert!(!services.contains(&"Docker registry"), "{health}");

    setup.stop_leaving_nothing(false, prefix);
    let _ = podman(&setup.dir).args(["rmi", "-f", &image]).output();
}

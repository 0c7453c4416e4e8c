//! Issue 15's whole path on one machine, every part managed by `bindery up`: a Dockerfile
//! repository on a local git server is built by repo2docker through the managed podman,
//! pushed to the managed registry, and launched by the managed JupyterHub as a container
//! running a real Jupyter server, which answers its API with the launch token. A second
//! launch of the same commit reuses the image; SIGTERM leaves no container behind.
//!
//! Nothing can be pulled here, so the repository's base image is made locally once (a
//! Debian root file system from `debootstrap`, with jupyterhub and jupyter-server from
//! wheels the venv's pip downloads) and kept in podman's storage for later runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bindery_core::events::Phase;
use bindery_system_tests::git::GitServer;
use bindery_system_tests::sse::{events, get};
use bindery_system_tests::up::Up;
use bindery_system_tests::{free_port, scratch, workspace};

/// The site whose pages may start launches and talk to their servers.
const BOOK: &str = "https://book.example.org";

/// The base image the repository's Dockerfile starts from.
const BASE: &str = "localhost/bindery-managed-test-jupyter:1";

/// podman with the configuration this machine needs (runc, lowered ulimits): the same file
/// `bindery up` writes for its managed engine.
fn podman(dir: &Path) -> Command {
    let conf = dir.join("containers.conf");
    if !conf.exists() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
    }
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf);
    cmd
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes [`BASE`] unless podman has it: debootstrap, a venv with jupyterhub and
/// jupyter-server (as `jupyterhub-singleuser`), a `jovyan` user, then `podman import`.
fn ensure_base(dir: &Path, python: &Path) {
    if podman(dir)
        .args(["image", "exists", BASE])
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let rootfs = dir.join("rootfs");
    // Left by a run that failed half-way.
    let _ = std::fs::remove_dir_all(&rootfs);
    run(
        Command::new("debootstrap").args([
            "--variant=minbase",
            "--include=python3,python3-venv",
            "bookworm",
            rootfs.to_str().unwrap(),
            "http://deb.debian.org/debian",
        ]),
        "debootstrap",
    );
    let wheels = rootfs.join("tmp/wheels");
    run(
        Command::new(python)
            .args(["-m", "pip", "download", "-q", "--only-binary=:all:"])
            // Debian 12's Python, for the packages' requires-python.
            .args(["--python-version", "3.11.2", "-d"])
            .arg(&wheels)
            .args(["jupyterhub==6.1.1", "jupyter_server==2.21.1"]),
        "pip download",
    );
    run(
        // A clean environment: this machine's PIP_* settings name files the chroot lacks.
        Command::new("chroot")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(&rootfs)
            .args([
                "/bin/sh",
                "-c",
                "python3 -m venv /srv/venv && /srv/venv/bin/pip install -q --no-index \
             --find-links /tmp/wheels jupyterhub==6.1.1 jupyter_server==2.21.1 && \
             rm -rf /tmp/wheels && useradd -m -u 1000 jovyan",
            ]),
        "the venv in the root file system",
    );
    let tar = dir.join("base.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        "tar",
    );
    run(
        podman(dir).args([
            "import",
            "--change",
            "USER jovyan",
            "--change",
            "WORKDIR /home/jovyan",
            "--change",
            "ENV PATH=/srv/venv/bin:/usr/local/bin:/usr/bin:/bin",
            tar.to_str().unwrap(),
            BASE,
        ]),
        "podman import",
    );
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&tar);
}

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

#[tokio::test(flavor = "multi_thread")]
async fn a_dockerfile_repository_runs_as_a_real_jupyter_server_on_the_managed_hub() {
    let python = PathBuf::from(
        std::env::var("BINDERY_PYTHON")
            .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`"),
    );
    let dir = scratch("managed-launch");
    ensure_base(
        &workspace().join("target/system-tests/managed-base"),
        &python,
    );
    let git = GitServer::start(&dir.join("git")).await;
    let (repo_url, sha) = git.repository(
        "jupyter",
        &[(
            "Dockerfile",
            &format!("FROM {BASE}\nLABEL org.bindery.test=managed\n"),
        )],
    );
    let offline = dir.join("offline_config.py");
    std::fs::write(
        &offline,
        "from repo2docker import contentproviders\nc.Repo2Docker.content_providers = \
         [contentproviders.Local, contentproviders.Git]\n",
    )
    .unwrap();
    let data = dir.join("data");
    let (edge, registry, hub) = (free_port(), free_port(), free_port());
    let config = format!(
        "data_dir = \"{data}\"\n\
         [edge]\nlisten = \"127.0.0.1:{edge}\"\n\
         [edge.variables]\nextra_outbound_host = \"http://127.0.0.1:*\"\n\
         cors_allow_origin = \"{BOOK}\"\n\
         [worker]\nrepo2docker = \"{r2d}\"\nrepo2docker_config = \"{offline}\"\n\
         build_timeout_seconds = 300\nlaunch_timeout_seconds = 120\n\
         allowed_build_hosts = [\"127.0.0.1\"]\n\
         [managed]\nregistry_listen = \"127.0.0.1:{registry}\"\n\
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
    let mut up = Up::start(&dir, &config, &[]).await;
    assert!(
        up.output().contains("managed:  engine    podman"),
        "{}",
        up.output()
    );
    let spec = format!("git/{}/main", bindery_core::resolve::encode_all(&repo_url));
    let prefix = format!("127.0.0.1:{registry}/binder-");

    let (phases, ready) = launch(&up, &spec).await;
    assert!(phases.contains(&Phase::Building), "{phases:?}");
    let image = ready["image"].as_str().unwrap().to_owned();
    assert!(
        image.starts_with(&prefix) && image.contains(&sha[..7]),
        "{ready}"
    );
    let url = ready["url"].as_str().unwrap().to_owned();
    let token = ready["token"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{hub}/user/")),
        "{ready}"
    );
    let auth = format!("token {token}");
    let status = get(
        &format!("{url}api/status"),
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!(status.status, 200, "{}\n{}", status.text(), up.output());
    assert!(status.json()["started"].is_string(), "{}", status.text());
    let refused = get(&format!("{url}api/status"), &[]).await;
    assert_ne!(
        refused.status, 200,
        "without the launch token the server refuses"
    );
    // The edge's cors_allow_origin reached the server as its allow_origin (issue 14): a
    // page of that site may talk to the server it started, another site's may not.
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
    // jupyter-server names its one allowed origin whoever asks; a browser on another site
    // sees that it is not its own and withholds the answer.
    assert_ne!(
        from_elsewhere.header("access-control-allow-origin"),
        Some("https://elsewhere.example")
    );
    assert_ne!(
        from_elsewhere.header("access-control-allow-origin"),
        Some("*")
    );

    // The same commit again: the image is in the managed registry, nothing is built.
    let (phases, again) = launch(&up, &spec).await;
    assert!(!phases.contains(&Phase::Building), "{phases:?}");
    assert_eq!(again["image"], ready["image"]);

    // A killed hub is restarted, and launches work again.
    let first = *up
        .managed_pids("hub")
        .first()
        .expect("the hub's pid in the banner");
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    for _ in 0..240 {
        if up.managed_pids("hub").len() > 1
            && get(&format!("http://127.0.0.1:{hub}/hub/api/"), &[])
                .await
                .status
                == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        up.managed_pids("hub").len() > 1,
        "restarted:\n{}",
        up.output()
    );
    let (_, third) = launch(&up, &spec).await;
    let url = third["url"].as_str().unwrap().to_owned();
    let auth = format!("token {}", third["token"].as_str().unwrap());
    let status = get(
        &format!("{url}api/status"),
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!(status.status, 200, "after the restart: {}", status.text());

    let status = up.stop().expect("bindery up stops within 60 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", up.output());
    let out = podman(&dir)
        .args(["ps", "-a", "--format", "{{.Image}}"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!left.contains(&prefix), "containers left behind: {left}");
    let _ = podman(&dir).args(["rmi", "-f", &image]).output();
}

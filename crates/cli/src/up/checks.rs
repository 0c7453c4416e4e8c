//! Start-up checks: what the worker needs (a hub, a registry, a container engine,
//! repo2docker), each missing part noted with what fails and what to do about it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bindery_worker::executor::LocalExecutor;
use bindery_worker::{ExecutorSettings, WorkerConfig};

/// How long each start-up check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What start-up found missing: one line each, printed before serving.
#[derive(Debug, Default)]
pub(super) struct Notes(pub(super) Vec<String>);

impl Notes {
    /// Adds a line.
    pub(super) fn warn(&mut self, text: impl Into<String>) {
        self.0.push(text.into());
    }
}

/// Checks what the worker needs and notes what is missing, with what to do about it; the
/// engine only when `bindery up` has not looked for one already (a managed engine).
pub(super) async fn check_parts(config: &WorkerConfig, notes: &mut Notes, engine_checked: bool) {
    match Probe::new() {
        Ok(probe) => check_services(&probe, config, notes).await,
        Err(e) => notes.warn(format!("the hub and the registry are not checked: {e}")),
    }
    check_builds(config, notes, engine_checked).await;
}

/// Whether JupyterHub's API and the registry answer.
async fn check_services(probe: &Probe, config: &WorkerConfig, notes: &mut Notes) {
    let hub_api = &config.hub_api_url;
    match probe.status(hub_api).await {
        Ok(200) => {}
        Ok(status) => notes.warn(format!(
            "JupyterHub at {hub_api} answered {status}, not 200: launches may fail \
             (check hub_url / hub_api_url)"
        )),
        Err(e) => notes.warn(format!(
            "no JupyterHub answers at {hub_api} ({e}): launches will fail until hub_url \
             (BINDERY_HUB_URL) points at a running hub"
        )),
    }
    match &config.builds.registry_url {
        // registry_url = "none": images stay in the engine, which the worker asks; only
        // builds on this machine leave an image there.
        None => {
            if let ExecutorSettings::Kubernetes(_) = config.builds.executor {
                notes.warn(
                    "no registry with executor = \"kubernetes\": built images are found \
                     nowhere, so every launch builds again; set registry_url",
                );
            }
        }
        Some(url) => {
            let registry = format!("{}/v2/", url.trim_end_matches('/'));
            match probe.status(&registry).await {
                Ok(200 | 401) => {}
                Ok(status) => notes.warn(format!(
                    "{registry} answered {status}: this does not look like a registry; \
                     builds will fail to push"
                )),
                Err(e) => notes.warn(format!(
                    "no registry answers at {url} ({e}): builds will fail to push and every \
                     launch will build again; start one (e.g. `docker-registry serve`) or set \
                     registry_url (BINDERY_REGISTRY_URL)"
                )),
            }
        }
    }
}

/// Whether the local executor finds a container engine that answers, and repo2docker.
async fn check_builds(config: &WorkerConfig, notes: &mut Notes, engine_checked: bool) {
    let ExecutorSettings::Local(local) = &config.builds.executor else {
        return;
    };
    let path = local
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let found = |program: &str| find_program(program, &path);
    // The CLI builds run: podman when DOCKER_HOST mentions it (repo2docker then drives the
    // podman CLI), else the configured engine, else docker.
    let executor = LocalExecutor::new(local.clone());
    let engine = executor.engine();
    let podman_hint = if engine == "docker" && found("podman").is_some() {
        "; podman is installed: let repo2docker drive it with DOCKER_HOST = \"unix:///run/podman/podman.sock\" in [worker.build_env]"
    } else {
        ""
    };
    if engine_checked {
        // Said once already, by the managed engine's choice.
    } else if found("docker").is_none() && found("podman").is_none() {
        notes.warn(
            "no container engine found: install docker or podman; builds will fail until one \
             is installed",
        );
    } else if found(engine).is_none() {
        notes.warn(format!(
            "{engine} is not installed, so builds will fail{podman_hint}"
        ));
    } else if let Err(e) = executor.engine_answers().await {
        // The cause (say, the spawn's io error) is part of the message.
        let e = anyhow::Error::new(e);
        notes.warn(format!(
            "the container engine does not answer: {e:#}; builds will fail until it does{podman_hint}"
        ));
    }
    let r2d = local.repo2docker.display().to_string();
    if find_program(&r2d, &path).is_none() {
        notes.warn(format!(
            "repo2docker not found ({r2d}): builds will fail; install it with `pip install \
             jupyter-repo2docker` or set repo2docker in [worker] (BINDERY_REPO2DOCKER)"
        ));
    }
}

/// Where `program` is: itself when it holds a `/`, else the first match in `path`.
pub(super) fn find_program(program: &str, path: &str) -> Option<PathBuf> {
    let is_file = |p: &Path| p.metadata().is_ok_and(|m| m.is_file());
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_file(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_file(p))
}

/// Why a probe got no status.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    /// The HTTP client could not be built (no TLS backend, ...).
    #[error("failed to set up an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Nothing answered in time.
    #[error("no answer in time")]
    Timeout,
    /// Nothing listens there, or the name does not resolve.
    #[error("failed to connect: {0}")]
    Connect(String),
    /// Something answered, but not with HTTP.
    #[error("not an HTTP answer: {0}")]
    NotHttp(String),
}

/// The start-up probe: one `GET` and its status, within [`CHECK_TIMEOUT`].
#[derive(Debug)]
pub(super) struct Probe {
    client: reqwest::Client,
}

impl Probe {
    /// A probe that connects directly (the hub and registry are usually on this machine,
    /// where a proxy from the environment would only get in the way) and follows no
    /// redirect (the status itself is the answer).
    pub(super) fn new() -> Result<Self, ProbeError> {
        let client = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(ProbeError::Client)?;
        Ok(Self { client })
    }

    /// The status of `GET url`.
    pub(super) async fn status(&self, url: &str) -> Result<u16, ProbeError> {
        match self.client.get(url).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) if e.is_timeout() => Err(ProbeError::Timeout),
            Err(e) if e.is_connect() => Err(ProbeError::Connect(root_cause(&e))),
            Err(e) => Err(ProbeError::NotHttp(root_cause(&e))),
        }
    }
}

/// The innermost cause of `e` ("Connection refused (os error 111)"), which says more
/// than reqwest's own "error sending request for url".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::testing::scratch;
    use super::*;

    #[test]
    fn programs_are_found_by_path_or_in_the_search_path() {
        let dir = scratch("programs");
        let program = dir.join("tool");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        let path = format!("/nonexistent:{}", dir.display());
        assert_eq!(find_program("tool", &path), Some(program.clone()));
        assert_eq!(
            find_program(&program.display().to_string(), ""),
            Some(program)
        );
        assert_eq!(find_program("tool", "/nonexistent"), None);
        assert_eq!(find_program("/nonexistent/tool", &path), None);
        assert_eq!(find_program("", &path), None, "a directory is no program");
    }

    #[tokio::test]
    async fn the_start_up_probe_reads_the_status_and_reports_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let probe = Probe::new().unwrap();
        assert_eq!(
            probe.status(&format!("http://{addr}/v2/")).await.unwrap(),
            401
        );
        let addr = {
            // A port nothing listens on.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        for scheme in ["http", "https"] {
            let closed = probe.status(&format!("{scheme}://{addr}/v2/")).await;
            assert!(
                matches!(closed, Err(ProbeError::Connect(_))),
                "{scheme}: {closed:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_peer_that_does_not_speak_http_is_reported_as_such() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        });
        let answer = Probe::new()
            .unwrap()
            .status(&format!("http://{addr}/"))
            .await;
        assert!(matches!(answer, Err(ProbeError::NotHttp(_))), "{answer:?}");
    }
}

//! Test support: a real JupyterHub shared by the tests of one binary, a worker on port 0,
//! and a small HTTP client that reads event streams.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bindery_core::events::Event;
use bindery_core::sse::{SseDecoder, SseMessage};
use bindery_core::worker_api::LaunchRequest;
use bindery_worker::{Secret, WorkerConfig};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The worker token of every test worker.
pub const TOKEN: &str = "worker-test-token";
/// The binder service's hub token.
pub const HUB_TOKEN: &str = "binder-secret-token-0123456789abcdef";
/// The image prefix of every test worker.
pub const PREFIX: &str = "127.0.0.1:5000/bindery-test-";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running JupyterHub; killed and reaped when the last test using it drops it.
#[derive(Debug)]
pub struct Hub {
    child: Child,
    /// The public (proxy) URL, ending in `/`.
    pub url: String,
    /// The hub API base, ending in `/`.
    pub api: String,
    /// The hub's run directory (its log, homes, and `failed-spawns`).
    pub dir: PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        // SIGTERM lets the hub stop its proxy and servers; PID 1 reaps nothing, so wait.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static HUB: Mutex<Weak<Hub>> = Mutex::new(Weak::new());

fn python() -> PathBuf {
    std::env::var_os("BINDERY_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python"),
        PathBuf::from,
    )
}

/// The shared hub, started on first use (7–12 s).
pub fn hub() -> Arc<Hub> {
    let mut slot = HUB
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(hub) = slot.upgrade() {
        return hub;
    }
    let hub = Arc::new(start_hub());
    *slot = Arc::downgrade(&hub);
    hub
}

fn start_hub() -> Hub {
    let python = python();
    let bin = python.parent().unwrap().to_path_buf();
    let jupyterhub = bin.join("jupyterhub");
    assert!(
        jupyterhub.exists(),
        "{} is missing: run `cargo xtask test` (or pip install the PY_REQUIREMENTS of xtask into target/pyenv)",
        jupyterhub.display()
    );
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("worker-hub");
    let dir = base.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("homes")).unwrap();
    // A run directory of an earlier process with the same pid may hold its failures.
    std::fs::write(dir.join("failed-spawns"), "").unwrap();
    let (port, api_port, proxy_port) = (free_port(), free_port(), free_port());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = std::fs::File::create(dir.join("hub.log")).unwrap();
    let child = Command::new(&jupyterhub)
        .arg("-f")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/jupyterhub_config.py"
        ))
        .current_dir(&dir)
        .env("PATH", path)
        .env("BINDERY_TEST_HUB_DIR", &dir)
        // The database outlives runs: a later start skips creating it (7 s instead of 12 s).
        .env("BINDERY_TEST_HUB_DB", base.join("jupyterhub.sqlite"))
        .env("BINDERY_TEST_HUB_PORT", port.to_string())
        .env("BINDERY_TEST_HUB_API_PORT", api_port.to_string())
        .env("BINDERY_TEST_PROXY_API_PORT", proxy_port.to_string())
        .env("BINDERY_TEST_HUB_API_TOKEN", HUB_TOKEN)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let hub = Hub {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        api: format!("http://127.0.0.1:{port}/hub/api/"),
        dir: dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::process::Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &hub.api])
            .status()
            .is_ok_and(|s| s.success());
        if up {
            return hub;
        }
        assert!(
            Instant::now() < deadline,
            "JupyterHub did not start in 60 s; see {}",
            dir.join("hub.log").display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A worker configuration for `hub_url` with short retry delays.
pub fn config(hub_url: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new(Secret::new(TOKEN), hub_url, Secret::new(HUB_TOKEN), PREFIX);
    config.hub_retries = 1;
    config.hub_retry_delay = Duration::from_millis(50);
    config.launch_timeout = Duration::from_secs(90);
    // One attempt per launch unless a test is about retries.
    config.launch_retries = 1;
    config.launch_retry_delay = Duration::from_millis(100);
    // The launches name github.com, which this machine need not resolve: allowed by name,
    // it is never looked up. Loopback stays refused unless a test allows it.
    config.builds.hosts = bindery_worker::build_hosts::BuildHosts::new(
        &["github.com".to_owned()],
        &[],
        Duration::from_secs(5),
    )
    .unwrap();
    config
}

/// The users whose spawn the test spawner failed on purpose (`fail` and `flaky` images),
/// in order, starting with `prefix`.
pub fn failed_spawns(hub: &Hub, prefix: &str) -> Vec<String> {
    std::fs::read_to_string(hub.dir.join("failed-spawns"))
        .unwrap_or_default()
        .lines()
        .filter(|u| u.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// A worker serving on a free port until dropped.
#[derive(Debug)]
pub struct Worker {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// Stops the worker as a signal would and waits until `serve` has returned: the HTTP
    /// drain and the shutdown phase (builds and launches stopped) are over.
    #[allow(dead_code)]
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a worker with `config` on the current runtime.
pub async fn worker(config: WorkerConfig) -> Worker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        bindery_worker::serve(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Worker {
        base: format!("http://{addr}"),
        stop: Some(stop),
        served: Some(served),
    }
}

/// A launch request for `github.com/<org>/<repo>` at a fixed commit, valid for [`PREFIX`].
pub fn launch_request(org: &str, repo: &str) -> LaunchRequest {
    let resolved_ref = "0123456789abcdef0123456789abcdef01234567";
    let build_slug = format!("{org}-{repo}");
    LaunchRequest {
        provider: "gh".into(),
        spec: format!("{org}/{repo}/main"),
        repo_url: format!("https://github.com/{org}/{repo}"),
        resolved_ref: resolved_ref.into(),
        resolved_spec: format!("{org}/{repo}/{resolved_ref}"),
        image: bindery_core::image_name(PREFIX, &build_slug, resolved_ref),
        image_present: true,
        build_slug,
        ref_url: format!("https://github.com/{org}/{repo}/tree/{resolved_ref}"),
        launch_host: "https://binder.example.org/".into(),
        binder_request: format!("v2/gh/{org}/{repo}/main"),
        binder_persistent_request: format!("v2/gh/{org}/{repo}/{resolved_ref}"),
        launch_path: String::new(),
        client_ip: "192.0.2.7".into(),
        build_only: false,
    }
}

/// A plain HTTP client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request; the whole answer.
pub async fn call(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (StatusCode, Bytes) {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes)
}

/// A worker call with the bearer token.
pub async fn authed(method: Method, url: &str, body: Option<String>) -> (StatusCode, Bytes) {
    let auth = format!("Bearer {TOKEN}");
    call(method, url, &[("authorization", &auth)], body).await
}

/// Posts a launch and returns its events URL (absolute).
pub async fn post_launch(worker: &Worker, request: &LaunchRequest) -> String {
    let url = format!("{}/api/v1/launches", worker.base);
    let (status, body) = authed(
        Method::POST,
        &url,
        Some(serde_json::to_string(request).unwrap()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let accepted: bindery_core::worker_api::Accepted = serde_json::from_slice(&body).unwrap();
    format!("{}{}", worker.base, accepted.events_url)
}

/// What an event stream delivered.
#[derive(Debug, Default)]
pub struct Stream {
    /// `(id, event)` in order.
    pub events: Vec<(u64, Event)>,
    /// How many `:keepalive` comments came.
    pub keepalives: usize,
    /// Whether the server ended the stream.
    pub ended: bool,
}

/// Reads an event stream, resuming after `last_event_id`, until it ends or `stop_after`
/// events came (then the connection is dropped).
pub async fn follow(url: &str, last_event_id: Option<u64>, stop_after: Option<usize>) -> Stream {
    let mut builder = Request::builder()
        .uri(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        builder = builder.header("last-event-id", id.to_string());
    }
    let response = client()
        .request(builder.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut decoder = SseDecoder::new();
    let mut out = Stream::default();
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.unwrap().into_data() else {
                continue;
            };
            for message in decoder.feed(&data) {
                match message {
                    SseMessage::Comment(c) if c == "keepalive" => out.keepalives += 1,
                    SseMessage::Event { id, data, .. } => {
                        let id: u64 = id.expect("every event has an id").parse().unwrap();
                        out.events.push((id, Event::from_json(&data).unwrap()));
                        if stop_after.is_some_and(|n| out.events.len() >= n) {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.ended = true;
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the event stream took longer than 120 s");
    out
}

/// Stops `user`'s server and deletes the user, as the worker does; panics when the hub
/// still has the user afterwards.
#[allow(dead_code)]
pub async fn delete_hub_user(hub: &Hub, user: &str) {
    let client = bindery_worker::hub::HubClient::new(&config(&hub.url)).unwrap();
    client.delete_user(user).await.unwrap();
    let users = hub_users(hub).await;
    assert!(
        !users.iter().any(|u| u == user),
        "{user} is still there: {users:?}"
    );
}

/// The hub's user names (service token).
pub async fn hub_users(hub: &Hub) -> Vec<String> {
    let auth = format!("token {HUB_TOKEN}");
    let (status, body) = call(
        Method::GET,
        &format!("{}users", hub.api),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let users: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    users
        .iter()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect()
}

/// The real `docker-registry`, killed and reaped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real `docker-registry` on a free port, storing under `dir`.
pub fn start_registry(dir: &std::path::Path) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {addr}, secret: bindery-test}}\n",
            dir.join("registry-data").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("docker-registry (apt-get install docker-registry; cargo xtask test sets it up)");
    let registry = Registry { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&registry.addr).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    registry
}

//! Test support: the built probe components, a host on port 0 with a test manifest, a
//! plain HTTP client and a real upstream server. No mocks: every peer is a real socket.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bindery_host::{BoundHost, EngineLimits, HostConfig, HostError, KvBackend};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where `cargo xtask build` puts the wasm components.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("BINDERY_WASM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/wasm"),
    }
}

/// A built component by file name; fails with the command that builds it.
pub fn wasm(file: &str) -> PathBuf {
    let path = wasm_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build` first (or set BINDERY_WASM_DIR)",
        path.display()
    );
    path
}

pub fn probe() -> PathBuf {
    wasm("bindery_host_probe.wasm")
}

pub fn forbidden() -> PathBuf {
    wasm("bindery_host_forbidden.wasm")
}

/// Precompiled components shared by the tests, so each compiles once per build.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bindery-host-precompiled")
}

/// A test app: a manifest in a temporary directory and the host's settings.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub config: HostConfig,
}

impl TestApp {
    /// A host for `manifest` (TOML text), listening on 127.0.0.1:0, small pools, stores in memory.
    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, manifest).expect("write manifest");
        let mut config = HostConfig::new(
            &path,
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().join("data"),
        );
        config.kv = KvBackend::Memory;
        config.cache_dir = Some(shared_cache());
        config.limits = EngineLimits {
            max_instances: 32,
            ..EngineLimits::default()
        };
        config.drain_deadline = Duration::from_secs(10);
        config.env = Some(BTreeMap::new());
        Self { dir, config }
    }

    pub async fn bind(&self) -> Result<BoundHost, HostError> {
        bindery_host::bind(self.config.clone()).await
    }

    pub async fn start(&self) -> RunningHost {
        RunningHost::serve(self.bind().await.expect("the host starts"))
    }
}

/// A manifest with the probe behind `/probe/...`, plus extra TOML appended.
pub fn probe_manifest(component_extra: &str, extra: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "probe-app"
version = "0.1.0"

[[trigger.http]]
route = "/probe/..."
component = "probe"

[component.probe]
source = "{probe}"
{component_extra}
{extra}
"#,
        probe = probe().display(),
    )
}

/// A host serving in a background task until `stop`.
pub struct RunningHost {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HostError>>>,
}

impl RunningHost {
    pub fn serve(host: BoundHost) -> Self {
        let addr = host.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(host.serve(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks for shutdown and waits until `serve` returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("shutdown in time");
            result.expect("serve task").expect("serve ends cleanly");
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends one request on a new connection and returns the response head and body stream.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    sender.send_request(request).await.expect("response")
}

/// GET `path`: the status and the whole body as text.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = send(addr, "GET", path, "", &[]).await;
    read(response).await
}

pub async fn read(response: Response<Incoming>) -> (u16, String) {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GET `path` and parse the JSON body.
pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(addr, path).await;
    let json =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, json)
}

/// A real HTTP server on port 0 that answers every request with `body`; aborted on drop.
pub struct Upstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(body.as_bytes()),
                            )))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

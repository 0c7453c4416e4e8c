//! The HTTP/1.1 server: each request is routed, handed to a fresh instance of its
//! component, and the component's response body is streamed back as it is written.
//!
//! Shutdown is passed in: when the future resolves, the listener closes, connections finish
//! their in-flight requests (bounded by a drain deadline), and `serve` returns once every
//! connection and guest task has ended or the deadline has passed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::client::OutboundClient;
use crate::kv::KvStores;
use crate::routes::{RouteMatch, Router};
use crate::state::{ComponentContext, RequestState};

/// The body of every response the server sends.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A component ready to serve: its settings and its pre-instantiated form.
pub(crate) struct ServedComponent {
    pub(crate) context: Arc<ComponentContext>,
    pub(crate) pre: ProxyPre<RequestState>,
}

/// Everything a request needs, shared by all of them.
pub(crate) struct App {
    pub(crate) engine: Engine,
    pub(crate) router: Router,
    /// Indexed by the router's targets.
    pub(crate) components: Vec<ServedComponent>,
    pub(crate) kv: KvStores,
    pub(crate) client: OutboundClient,
    pub(crate) request_deadline: Duration,
    pub(crate) max_memory: usize,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.router.to_string())
            .finish_non_exhaustive()
    }
}

/// Hop-by-hop headers, which describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// The routing headers Spin gives a component.
const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const SPIN_PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const SPIN_MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const SPIN_RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const SPIN_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const SPIN_BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");

/// A connection handed from the accept loop to a serving thread.
type Handoff = (std::net::TcpStream, SocketAddr, Watcher, mpsc::Sender<()>);

/// Serves `listener` until `shutdown` resolves, then drains for at most `drain_deadline`.
///
/// Connections are served by `threads` threads, each running a single-threaded runtime;
/// a connection, its requests and their guest tasks all stay on one thread. A request
/// on a work-stealing runtime hops between threads (the connection task, the guest task
/// and their wake-ups), which costs more than the guest itself for small answers.
pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_deadline: Duration,
    threads: ServingThreads,
) {
    let ServingThreads {
        mut servers,
        stop,
        in_flight,
        mut all_done,
    } = threads;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let (stream, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Running out of file descriptors is transient: wait instead of spinning.
                    tracing::warn!(error = %err, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(client = %client_addr, error = %err, "failed to hand over a connection");
                continue;
            }
        };
        let mut handoff = (stream, client_addr, graceful.watcher(), in_flight.clone());
        // Round robin; a thread that has gone away passes its turn to the next.
        for _ in 0..servers.len() {
            let server = &servers[next % servers.len()];
            next = next.wrapping_add(1);
            match server.connections.send(handoff) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => handoff = back,
            }
        }
    }
    drop(listener);
    drop(in_flight);
    for server in &mut servers {
        server.close();
    }
    tracing::info!("shutting down: draining in-flight requests");
    let drained = tokio::time::timeout(drain_deadline, async {
        graceful.shutdown().await;
        let _ = all_done.recv().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all requests finished"),
        Err(_) => {
            tracing::warn!(deadline = ?drain_deadline, "drain deadline passed; dropping the remaining requests")
        }
    }
    let _ = stop.send(true);
    // Joining waits for each runtime's blocking work (DNS lookups, KV commits): off the
    // async threads, so that whatever else runs beside the host keeps going.
    let joined = tokio::task::spawn_blocking(move || {
        for server in servers {
            server.join();
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!("failed to join the serving threads");
    }
}

/// The serving threads of a host, started before it serves so that a failure to start
/// them is a start-up error.
pub(crate) struct ServingThreads {
    servers: Vec<ServingThread>,
    /// Tells the threads to drop what is left once draining is over.
    stop: watch::Sender<bool>,
    /// Every connection and guest task holds a clone; when all are dropped, `all_done` ends.
    in_flight: mpsc::Sender<()>,
    all_done: mpsc::Receiver<()>,
}

impl ServingThreads {
    /// Starts `count` (at least one) serving threads for `app`.
    pub(crate) fn start(app: &Arc<App>, count: usize) -> std::io::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let (in_flight, all_done) = mpsc::channel::<()>(1);
        let mut servers = Vec::new();
        for n in 0..count.max(1) {
            match ServingThread::start(n, Arc::clone(app), stopped.clone()) {
                Ok(server) => servers.push(server),
                Err(err) => {
                    let _ = stop.send(true);
                    for mut server in servers {
                        server.close();
                        server.join();
                    }
                    return Err(err);
                }
            }
        }
        Ok(Self {
            servers,
            stop,
            in_flight,
            all_done,
        })
    }
}

impl std::fmt::Debug for ServingThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingThreads")
            .field("threads", &self.servers.len())
            .finish_non_exhaustive()
    }
}

/// One serving thread: a single-threaded runtime fed connections over a channel.
struct ServingThread {
    connections: mpsc::UnboundedSender<Handoff>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServingThread {
    fn start(n: usize, app: Arc<App>, mut stopped: watch::Receiver<bool>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (connections, mut incoming) = mpsc::unbounded_channel::<Handoff>();
        let thread = std::thread::Builder::new()
            .name(format!("bindery-serve-{n}"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some((stream, client_addr, watcher, guard)) = incoming.recv().await
                    {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => {
                                tokio::spawn(connection(
                                    Arc::clone(&app),
                                    stream,
                                    client_addr,
                                    watcher,
                                    guard,
                                ));
                            }
                            Err(err) => {
                                tracing::warn!(client = %client_addr, error = %err, "failed to take over a connection");
                            }
                        }
                    }
                    // No more connections: keep serving those open until draining ends.
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
            })?;
        Ok(Self {
            connections,
            thread: Some(thread),
        })
    }

    /// No more connections for this thread; those it has go on until the stop signal.
    fn close(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.connections, closed));
    }

    fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a serving thread panicked");
        }
    }
}

/// Serves one connection's requests.
async fn connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    client_addr: SocketAddr,
    watcher: Watcher,
    in_flight: mpsc::Sender<()>,
) {
    // The service owns `in_flight`, so the connection counts as in flight until it ends.
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        let guard = in_flight.clone();
        async move { Ok::<_, Infallible>(app.handle(req, client_addr, guard).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(client = %client_addr, error = %err, "connection ended with an error");
    }
}

impl App {
    async fn handle(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
        in_flight: mpsc::Sender<()>,
    ) -> Response<ResponseBody> {
        let path = req.uri().path().to_owned();
        let Some(route) = self.router.route(&path) else {
            return text(StatusCode::NOT_FOUND, format!("no route for {path}\n"));
        };
        let component = &self.components[route.target];
        let req = match spin_request(req, &route, client_addr) {
            Ok(req) => req,
            Err(message) => return text(StatusCode::BAD_REQUEST, format!("{message}\n")),
        };
        self.call(component, req, in_flight).await
    }

    async fn call(
        &self,
        component: &ServedComponent,
        req: Request<Incoming>,
        in_flight: mpsc::Sender<()>,
    ) -> Response<ResponseBody> {
        let id = Arc::clone(&component.context.id);
        let state = RequestState::new(
            Arc::clone(&component.context),
            self.kv.clone(),
            self.client.clone(),
            self.max_memory,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(RequestState::limiter);
        let deadline = Instant::now() + self.request_deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::format_err!("the request deadline passed"))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = (|| -> wasmtime::Result<_> {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, req)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((req, out))
        })();
        let (req, out) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                tracing::error!(component = %id, error = %err, "failed to pass the request to the component");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component {id} could not receive the request\n"),
                );
            }
        };
        let pre = component.pre.clone();
        let request_deadline = self.request_deadline;
        let task_id = Arc::clone(&id);
        // The guest runs in its own task so that it can keep writing the body after the
        // response head has gone out.
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let result = match tokio::time::timeout(request_deadline, run).await {
                Ok(result) => result,
                Err(_) => Err(wasmtime::format_err!(
                    "the request deadline of {request_deadline:?} passed"
                )),
            };
            if let Err(err) = &result {
                tracing::error!(component = %task_id, error = ?err, "the component failed");
            }
            drop(in_flight);
            result.is_ok()
        });
        match receiver.await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(|err| Box::new(err) as _).boxed_unsync())
            }
            Ok(Err(code)) => {
                tracing::warn!(component = %id, error = ?code, "the component answered with an error");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component {id} failed: {code:?}\n"),
                )
            }
            Err(_) => match task.await {
                Ok(true) => {
                    tracing::error!(component = %id, "the component set no response");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component {id} set no response\n"),
                    )
                }
                Ok(false) | Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component {id} failed\n"),
                ),
            },
        }
    }
}

/// Prepares a request as Spin hands it to a component: no hop-by-hop headers, no `spin-*`
/// headers from the client, and the `spin-*` routing headers. The URI stays as hyper read
/// it: the component's authority comes from it or, for the usual origin-form request,
/// from `Host`, which is checked here.
fn spin_request(
    req: Request<Incoming>,
    route: &RouteMatch<'_>,
    client_addr: SocketAddr,
) -> Result<Request<Incoming>, String> {
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or("the request has no Host header")?;
    if http::uri::Authority::try_from(authority.as_str()).is_err() {
        return Err("the request's Host header is malformed".into());
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let full_url = format!("http://{authority}{path_and_query}");

    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    headers.reserve(8 + route.params.len());
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    set(SPIN_FULL_URL, &full_url);
    set(SPIN_PATH_INFO, &route.path_info);
    set(SPIN_MATCHED_ROUTE, route.matched_route);
    set(SPIN_RAW_COMPONENT_ROUTE, route.raw_route);
    set(SPIN_COMPONENT_ROUTE, route.component_route());
    set(SPIN_BASE_PATH, "/");
    set(SPIN_CLIENT_ADDR, &client_addr.to_string());
    for (name, value) in &route.params {
        if let Ok(name) = HeaderName::try_from(format!("spin-path-match-{name}")) {
            set(name, value);
        }
    }
    Ok(Request::from_parts(parts, body))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names instead of a lookup per name.
    if !headers
        .keys()
        .any(|name| name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name))
    {
        return;
    }
    // Names listed in `Connection` are hop-by-hop too; most requests have none.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    // Framing is the server's business: hyper sets it for the body it sends.
    headers.remove(header::TRANSFER_ENCODING);
}

fn text(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, X-Trace"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-trace", "1"),
            ("content-type", "text/plain"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }
}

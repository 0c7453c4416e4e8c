//! One request in its component: a fresh store with the request deadline and memory
//! limits, the instance pre-instantiated at start-up, and the response streamed back while
//! the guest keeps writing its body. The bounds of [`super::guard`] are checked here: the
//! client's share first, then the component's instances, then the body's deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::guard::{ClientLimiter, ClientPermit, DeadlineBody, InstancePool};
use super::spin_request::{spin_request, strip_hop_by_hop};
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
    /// The component's place in the [`InstancePool`] (one per component, not per route).
    pub(crate) slot: usize,
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
    /// The longest a request body may take to arrive (zero: no bound).
    pub(crate) body_deadline: Duration,
    pub(crate) clients: Arc<ClientLimiter>,
    pub(crate) pool: Arc<InstancePool>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.router.to_string())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Routes `req` and answers it with its component, or with a plain-text error; counts
    /// the answer in the `metrics` store by route pattern and status.
    pub(super) async fn handle(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
        in_flight: mpsc::Sender<()>,
    ) -> Response<ResponseBody> {
        let route = self.router.route(req.uri().path());
        let label = route.as_ref().map(|r| (r.target, r.raw_route));
        let response = self.answer(req, route, client_addr, in_flight).await;
        self.kv
            .metrics()
            .count_request(label, response.status().as_u16());
        response
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        route: Option<RouteMatch<'_>>,
        client_addr: SocketAddr,
        in_flight: mpsc::Sender<()>,
    ) -> Response<ResponseBody> {
        let Some(client) = self.clients.admit(client_addr.ip()) else {
            tracing::debug!(client = %client_addr, "too many requests in flight from one client");
            return text_retry(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests in flight from {}: at most {} at once; try again when one has finished\n",
                    client_addr.ip(),
                    self.clients.max()
                ),
            );
        };
        let Some(route) = route else {
            let path = req.uri().path();
            return text(StatusCode::NOT_FOUND, format!("no route for {path}\n"));
        };
        let component = &self.components[route.target];
        let req = match spin_request(req, &route, client_addr) {
            Ok(req) => req,
            Err(err) => return text(StatusCode::BAD_REQUEST, format!("{err}\n")),
        };
        self.call(component, req, (in_flight, client)).await
    }

    /// Runs `req` in a fresh instance of `component`; `held` lives as long as the guest.
    async fn call(
        &self,
        component: &ServedComponent,
        req: Request<Incoming>,
        held: (mpsc::Sender<()>, ClientPermit),
    ) -> Response<ResponseBody> {
        let id = Arc::clone(&component.context.id);
        let Some(instance) = self.pool.take(component.slot) else {
            tracing::warn!(component = %id, "every instance the component may use is busy");
            return text_retry(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "component {id} is busy: every instance it may use is taken; try again shortly\n"
                ),
            );
        };
        let (parts, body) = req.into_parts();
        let (body, body_deadline) = DeadlineBody::new(body, self.body_deadline);
        let req = Request::from_parts(parts, body);
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
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
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
            // The store holds the pool slot: free it before the permit says it is free.
            drop(store);
            drop((held, instance));
            result.is_ok()
        });
        let answer = tokio::select! {
            biased;
            () = body_deadline.passed() => {
                // Dropping the guest's task drops its store: the instance goes back to the pool.
                task.abort();
                tracing::info!(component = %id, deadline = ?self.body_deadline, "a request body did not arrive in time");
                let mut response = text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {:?}\n", self.body_deadline),
                );
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
            answer = &mut receiver => answer,
        };
        match answer {
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

/// A plain-text refusal the client may retry in a second.
fn text_retry(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = text(status, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A plain-text answer from the host itself.
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

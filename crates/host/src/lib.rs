//! `bindery-host` runs the Spin app described by a `spin.toml` on one machine, as Spin
//! would, on wasmtime 48: Spin's routes and `spin-*` headers, variables from the manifest
//! and `SPIN_VARIABLE_*`, durable key-value stores in an embedded database, and each
//! component's `allowed_outbound_hosts` enforced on one pooled client.
//!
//! Start-up ([`bind`]) parses the manifest, resolves variables, opens the stores, loads every
//! component (from the precompiled cache when it can) and checks it against the
//! `bindery:edge` world, then binds the listener. [`BoundHost::serve`] then gives every
//! request a fresh instance of its component until the shutdown future resolves.
//!
//! The map:
//! - [`manifest`]: the subset of Spin's manifest v2 the host runs;
//! - [`routes`]: Spin's routing rules and the values of the `spin-*` headers;
//! - [`variables`]: application and component variables, secrets redacted;
//! - [`kv`]: `fermyon:spin/key-value` and `wasi:keyvalue` on redb (or memory, for tests),
//!   swept of expired entries; the `metrics` store of counters, in memory, which also
//!   counts the requests the server answers by route and status;
//! - [`outbound`]: the allow-list checked in `wasi:http/outgoing-handler`;
//! - [`client`]: the one pooled client allowed calls go through;
//! - [`world`]: the allowed imports (`wit/world.wit`) and the linker that provides them;
//! - [`engine`]: the engine, the epoch ticker and the precompiled-component cache;
//! - `state`: one request's store data; `server`: the HTTP server and graceful shutdown,
//!   with `server::dispatch` (one request in its component), `server::spin_request`
//!   (the request as Spin hands it over) and `server::guard` ([`RequestLimits`]: body
//!   deadline, requests per client, instances reserved per component).

#![warn(missing_docs)]

pub mod client;
pub mod engine;
mod error;
pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod routes;
mod server;
mod state;
pub mod variables;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use client::OutboundTimeouts;
pub use engine::{ComponentError, EngineLimits, LoadReport};
pub use error::HostError;
pub use kv::{KvBackend, KvError, KvStores, KvSweep, SweepReport};
pub use manifest::{Manifest, ManifestError, ManifestRule};
pub use outbound::OutboundError;
pub use routes::RouteError;
pub use server::RequestLimits;
pub use variables::VariableError;

use crate::client::OutboundClient;
use crate::engine::EpochTicker;
use crate::outbound::AllowedHosts;
use crate::routes::Router;
use crate::server::{App, ClientLimiter, InstancePool, ServedComponent, ServingThreads};
use crate::state::ComponentContext;
use crate::variables::Variables;

/// How to run the host.
#[derive(Clone)]
pub struct HostConfig {
    /// The `spin.toml` to run.
    pub manifest: PathBuf,
    /// Where to listen; port 0 picks a free port (see [`BoundHost::local_addr`]).
    pub listen: SocketAddr,
    /// Where durable state lives: the key-value database and the precompiled components.
    pub data_dir: PathBuf,
    /// Where key-value data lives.
    pub kv: KvBackend,
    /// The longest a request may run, including a streamed response body.
    pub request_deadline: Duration,
    /// How long shutdown waits for in-flight requests before dropping them.
    pub drain_deadline: Duration,
    /// Where precompiled components are cached; `None` means `<data_dir>/precompiled`.
    pub cache_dir: Option<PathBuf>,
    /// Pool sizes and per-instance memory.
    pub limits: EngineLimits,
    /// What one client or one route can make the host hold: body time, requests in flight
    /// per client address, instances reserved per component.
    pub requests: RequestLimits,
    /// How often expired key-value entries are swept, and how long past expiry they stay.
    pub kv_sweep: KvSweep,
    /// Outbound timeouts used when a component sets none.
    pub outbound: OutboundTimeouts,
    /// The environment `SPIN_VARIABLE_*` values are read from; `None` means the process's.
    pub env: Option<BTreeMap<String, String>>,
    /// How many threads serve connections, each with its own single-threaded runtime;
    /// 0 means one per available CPU.
    pub serving_threads: usize,
}

impl HostConfig {
    /// A configuration with the defaults: redb stores, a 30-minute request deadline (the
    /// launch component relays event streams for minutes), 30 s to drain on shutdown.
    pub fn new(
        manifest: impl Into<PathBuf>,
        listen: SocketAddr,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            manifest: manifest.into(),
            listen,
            data_dir: data_dir.into(),
            kv: KvBackend::Redb,
            request_deadline: Duration::from_secs(30 * 60),
            drain_deadline: Duration::from_secs(30),
            cache_dir: None,
            limits: EngineLimits::default(),
            requests: RequestLimits::default(),
            kv_sweep: KvSweep::default(),
            outbound: OutboundTimeouts::default(),
            env: None,
            serving_threads: 0,
        }
    }

    fn env_var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `env` may carry secret variable values: show the names only.
        let env_names = self.env.as_ref().map(|env| env.keys().collect::<Vec<_>>());
        f.debug_struct("HostConfig")
            .field("manifest", &self.manifest)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("kv", &self.kv)
            .field("request_deadline", &self.request_deadline)
            .field("drain_deadline", &self.drain_deadline)
            .field("cache_dir", &self.cache_dir)
            .field("limits", &self.limits)
            .field("requests", &self.requests)
            .field("kv_sweep", &self.kv_sweep)
            .field("outbound", &self.outbound)
            .field("env", &env_names)
            .field("serving_threads", &self.serving_threads)
            .finish()
    }
}

/// A host that has loaded its app and bound its listener, ready to serve.
#[derive(Debug)]
pub struct BoundHost {
    listener: TcpListener,
    local_addr: SocketAddr,
    drain_deadline: Duration,
    serving_threads: ServingThreads,
    loads: Vec<LoadReport>,
    _ticker: EpochTicker,
    _sweeper: Option<kv::Sweeper>,
}

impl BoundHost {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How each component was loaded (compiled now or taken from the cache) and how long it took.
    pub fn load_reports(&self) -> &[LoadReport] {
        &self.loads
    }

    /// Serves requests until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), HostError> {
        let BoundHost {
            listener,
            drain_deadline,
            serving_threads,
            _ticker,
            _sweeper,
            ..
        } = self;
        server::serve(listener, shutdown, drain_deadline, serving_threads).await;
        Ok(())
    }
}

/// Loads the app in `config.manifest` and binds the listener; errors name what to fix.
pub async fn bind(config: HostConfig) -> Result<BoundHost, HostError> {
    let started = Instant::now();
    let manifest = Manifest::load(&config.manifest)?;
    let app_vars = Variables::resolve_app(&manifest.variables, |name| config.env_var(name))?;
    let router = Router::new(
        manifest
            .http_triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.route.as_str(), i)),
    )?;

    let engine = engine::engine(config.limits).map_err(|source| HostError::Engine { source })?;
    let linker = world::linker(&engine).map_err(|e| HostError::Engine {
        source: e.into_boxed_dyn_error(),
    })?;
    let cache_dir = config
        .cache_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("precompiled"));

    // One served component per trigger, so a router target is an index; a component
    // behind several routes is loaded once.
    // Each component also gets a slot in the instance pool, numbered in load order.
    type Loaded = (Arc<ComponentContext>, ProxyPre<state::RequestState>, usize);
    let mut loaded: BTreeMap<&str, Loaded> = BTreeMap::new();
    let mut loads = Vec::new();
    let mut components = Vec::with_capacity(manifest.http_triggers.len());
    for trigger in &manifest.http_triggers {
        let id = trigger.component.as_str();
        if !loaded.contains_key(id) {
            let def = &manifest.components[id];
            let context = ComponentContext {
                id: Arc::from(id),
                variables: app_vars.resolve_component(id, &def.variables)?,
                key_value_stores: def.key_value_stores.clone(),
                allowed_hosts: Arc::new(AllowedHosts::parse(
                    id,
                    &def.allowed_outbound_hosts,
                    &app_vars,
                )?),
            };
            let source = manifest.component_source(def);
            let (pre, report) = prepare(&engine, &linker, id, &source, &cache_dir)?;
            tracing::info!(component = id, compiled = report.compiled, elapsed = ?report.elapsed, "component loaded");
            loads.push(report);
            let slot = loaded.len();
            loaded.insert(id, (Arc::new(context), pre, slot));
        }
        let (context, pre, slot) = &loaded[id];
        components.push(ServedComponent {
            context: Arc::clone(context),
            pre: pre.clone(),
            slot: *slot,
        });
    }

    let kv = match config.kv {
        KvBackend::Redb => KvStores::open_redb(&config.data_dir)?,
        KvBackend::Memory => KvStores::in_memory(),
    }
    .with_metrics_for_routes(manifest.http_triggers.len());
    let sweeper = kv.start_sweeping(config.kv_sweep);
    let client = OutboundClient::new(config.outbound).map_err(HostError::Tls)?;
    let ticker = EpochTicker::start(&engine).map_err(HostError::Ticker)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| HostError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| HostError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(
        app = %manifest.application.name,
        address = %local_addr,
        routes = %router,
        elapsed = ?started.elapsed(),
        "bindery edge host ready"
    );
    let app = App {
        engine,
        router,
        components,
        kv,
        client,
        request_deadline: config.request_deadline,
        max_memory: config.limits.max_memory,
        body_deadline: config.requests.body_deadline,
        clients: ClientLimiter::new(config.requests.max_requests_per_client),
        pool: InstancePool::new(
            config.limits.max_instances,
            loaded.len(),
            config.requests.reserved_instances,
        ),
    };
    let app = Arc::new(app);
    let count = match config.serving_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let serving_threads = ServingThreads::start(&app, count).map_err(HostError::Threads)?;
    Ok(BoundHost {
        listener,
        local_addr,
        drain_deadline: config.drain_deadline,
        serving_threads,
        loads,
        _ticker: ticker,
        _sweeper: sweeper,
    })
}

/// Loads a component, checks it against the world and pre-instantiates it.
fn prepare(
    engine: &wasmtime::Engine,
    linker: &wasmtime::component::Linker<state::RequestState>,
    id: &str,
    source: &Path,
    cache_dir: &Path,
) -> Result<(ProxyPre<state::RequestState>, LoadReport), ComponentError> {
    let (component, report) = engine::load_component(engine, id, source, cache_dir)?;
    let link_error = |e: wasmtime::Error| ComponentError::Link {
        id: id.to_owned(),
        source: e.into_boxed_dyn_error(),
    };
    let pre = linker.instantiate_pre(&component).map_err(link_error)?;
    Ok((ProxyPre::new(pre).map_err(link_error)?, report))
}

/// Loads the component at `source`, checks its imports against the `bindery:edge` world
/// and instantiates it once, without serving: what start-up does for each component.
pub async fn check_component(source: &Path, cache_dir: &Path) -> Result<LoadReport, HostError> {
    let engine = engine::engine(EngineLimits {
        max_instances: 4,
        ..EngineLimits::default()
    })
    .map_err(|source| HostError::Engine { source })?;
    let linker = world::linker(&engine).map_err(|e| HostError::Engine {
        source: e.into_boxed_dyn_error(),
    })?;
    let id = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (pre, report) = prepare(&engine, &linker, &id, source, cache_dir)?;
    let context = ComponentContext {
        id: Arc::from(id.as_str()),
        variables: Variables::default(),
        key_value_stores: Vec::new(),
        allowed_hosts: Arc::new(AllowedHosts::default()),
    };
    let client = OutboundClient::new(OutboundTimeouts::default()).map_err(HostError::Tls)?;
    let state = state::RequestState::new(
        Arc::new(context),
        KvStores::in_memory(),
        client,
        EngineLimits::default().max_memory,
    );
    let mut store = wasmtime::Store::new(&engine, state);
    // Instantiation may run guest code, which checks the epoch: give it ten seconds.
    store.set_epoch_deadline(10_000 / engine::EPOCH_TICK.as_millis() as u64);
    let _ticker = EpochTicker::start(&engine).map_err(HostError::Ticker)?;
    pre.instantiate_async(&mut store)
        .await
        .map_err(|e| ComponentError::Link {
            id: id.clone(),
            source: e.into_boxed_dyn_error(),
        })?;
    Ok(report)
}

/// Loads, binds and serves until `shutdown` resolves: `bind(config)` then `serve(shutdown)`.
pub async fn run(config: HostConfig, shutdown: impl Future<Output = ()>) -> Result<(), HostError> {
    bind(config).await?.serve(shutdown).await
}

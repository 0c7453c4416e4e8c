//! The worker's server: its shared state, the HTTP accept loop with a graceful drain, the
//! periodic housekeeping, and the shutdown of builds and launches in flight.
//!
//! The routes are in [`crate::api`]; this module only accepts connections and hands each
//! request to [`api::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::api;
use crate::builds::Builds;
use crate::config::WorkerConfig;
use crate::events::Logs;
use crate::executor::{Executor, ExecutorError};
use crate::health::HealthCache;
use crate::hub::{HubClient, HubError};
use crate::launcher::Launcher;
use crate::logstore::{LogStore, StoreError};
use crate::metrics::Metrics;
use crate::registry::{CheckError, RegistryClient};

/// How long in-flight requests may finish after shutdown is asked for.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Everything the routes share.
#[derive(Debug)]
pub struct AppState {
    pub(crate) config: WorkerConfig,
    pub(crate) launches: Logs,
    pub(crate) builds: Arc<Builds>,
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) metrics: Arc<Metrics>,
    /// The last `/health` answer.
    pub(crate) health: HealthCache,
    /// The per-client windows of `/build` (`POST /api/v1/admissions`).
    pub(crate) admissions: crate::ratelimit::Admissions,
}

/// Why the worker's state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The JupyterHub client could not be built (TLS roots).
    #[error("failed to set up the JupyterHub client")]
    Hub(#[source] HubError),
    /// The registry client could not be built.
    #[error("failed to set up the registry client")]
    Registry(#[source] CheckError),
    /// The build log store could not be opened.
    #[error("failed to open the build log store")]
    Store(#[source] StoreError),
    /// The configured build executor could not be made (the Kubernetes client).
    #[error("failed to set up the build executor")]
    Executor(#[source] ExecutorError),
}

impl AppState {
    /// The state of a worker configured by `config`, building with the executor it
    /// configures.
    pub async fn new(config: WorkerConfig) -> Result<AppState, StateError> {
        let executor = config
            .builds
            .executor
            .executor()
            .await
            .map_err(StateError::Executor)?;
        AppState::with_executor(config, executor)
    }

    /// Counts the servers JupyterHub already runs into the quotas (see
    /// [`crate::quota::Admission::sync`]), waiting at most `deadline`: a hub that does not
    /// answer delays no start, and the next periodic refresh counts them.
    pub async fn count_hub_servers(&self, deadline: Duration) {
        if tokio::time::timeout(deadline, self.launcher.refresh_quota())
            .await
            .is_err()
        {
            tracing::warn!(
                "the hub did not list its servers in time; quotas count them at the next refresh"
            );
        }
        let taken = self.launcher.admission().taken();
        tracing::info!(servers = taken, "quota counted from the hub");
    }

    /// Registers the builds the executor was already running (see [`Builds::adopt`]).
    pub async fn adopt_builds(&self) -> Result<usize, ExecutorError> {
        self.builds.adopt().await
    }

    /// The state of a worker configured by `config`, building with `executor`.
    pub fn with_executor(
        config: WorkerConfig,
        executor: Arc<dyn Executor>,
    ) -> Result<AppState, StateError> {
        let metrics = Arc::new(Metrics::default());
        let hub = HubClient::new(&config).map_err(StateError::Hub)?;
        let logs = || {
            Logs::new(config.max_events_per_log, config.finished_log_ttl)
                .with_max_bytes(config.max_log_bytes)
        };
        let b = &config.builds;
        let registry = match &b.registry_url {
            Some(url) => Some(
                RegistryClient::new(
                    url,
                    b.registry_username.clone(),
                    b.registry_password.clone(),
                )
                .map_err(StateError::Registry)?,
            ),
            None => None,
        };
        let store = LogStore::open(b.log_store.as_deref(), b.log_ttl).map_err(StateError::Store)?;
        let builds = Arc::new(
            Builds::new(
                logs(),
                executor,
                registry,
                store,
                b.max_concurrent,
                Arc::clone(&metrics),
            )
            .with_limits(b.pending),
        );
        Ok(AppState {
            launches: logs(),
            launcher: Arc::new(Launcher::new(
                &config,
                hub,
                Arc::clone(&metrics),
                Arc::clone(&builds),
            )),
            builds,
            metrics,
            config,
            health: HealthCache::default(),
            admissions: crate::ratelimit::Admissions::default(),
        })
    }
}

/// How long stopping the running builds, and separately the launches in flight, may take
/// once the HTTP drain is over.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

impl AppState {
    /// The worker's shutdown phase, after the HTTP drain: stops every running local build
    /// (its process group killed, its child reaped) and every launch in flight (its hub
    /// user deleted), waiting for each at most `STOP_DEADLINE` (15 s).
    pub async fn shutdown(&self) {
        futures::future::join(
            self.builds.shutdown(STOP_DEADLINE),
            self.launcher.shutdown(STOP_DEADLINE),
        )
        .await;
    }
}

/// Serves `listener` until `shutdown` resolves, then drains for a few seconds.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let housekeeping = tokio::spawn(housekeeping(Arc::clone(&state)));
    // The first `/health` finds an answer: a federation polls it with a short time limit.
    state.health.refresh_behind(api::health_checks(&state));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(api::handle(&state, req).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    housekeeping.abort();
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; dropping the remaining connections");
    }
}

/// Forgets old finished logs and frees the quota of servers that stopped.
async fn housekeeping(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.quota_refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the quota was counted from the hub before serving.
    tick.tick().await;
    loop {
        tick.tick().await;
        state.launches.sweep(Instant::now());
        state.builds.sweep(Instant::now());
        state.launcher.refresh_quota().await;
    }
}

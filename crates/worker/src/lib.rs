//! `bindery-worker`: the in-cluster half of Bindery.
//!
//! The edge answers every link it can from its caches and calls the worker only when a
//! server must start (or an image must be built). The worker validates what the edge sends,
//! admits the launch against its quotas, drives JupyterHub's REST API, and records every
//! step as a numbered event that any number of clients can follow and replay.
//!
//! Map of the crate:
//!
//! - [`config`]: [`WorkerConfig`], from a TOML file and the environment; secrets redacted.
//! - [`server`]: the shared state, the accept loop with its drain, housekeeping, shutdown.
//! - [`api`]: the routes: bearer-token check, request validation, SSE event streams.
//! - [`build_hosts`]: which repository hosts builds may reach (`allowed_build_hosts`).
//! - [`health`]: `/health`: the checks, BinderHub's shape, the single-flight cache.
//! - [`events`]: the in-memory, bounded, replayable event log of each launch and build.
//! - [`hub`]: the JupyterHub REST client (create user, spawn, follow progress, delete).
//! - [`launcher`]: a launch from admission to `ready` or `failed`, with retries.
//! - [`ratelimit`]: the per-client limit on the edge's `/build`, counted for every edge host.
//! - [`quota`]: the launch quotas, counted over this worker's launches.
//! - [`builds`]: one build per image: registry re-check, queue, executor, stored log.
//! - [`queue`]: the build queue (at most N at once, positions told to waiting builds).
//! - [`executor`]: the [`executor::Executor`] trait, its one vocabulary (spec, handle,
//!   outcome, error) and the executors: `local` (repo2docker as a child process) and
//!   `kubernetes` (a Job per build; at start-up the worker adopts the Jobs still running).
//! - [`registry`]: the manifest re-check before a build.
//! - [`images`]: where a built image is found (the registry, else the engine), for the
//!   re-check and `GET /api/v1/images`.
//! - [`logstore`]: finished build logs in an embedded redb database.
//! - [`metrics`]: BinderHub's Prometheus metrics, written with the core's text-format writer.
//! - `ids`: random launch ids, hub user suffixes and server tokens.
//! - `outbound`: how the hub and registry clients are made and read bounded answers.

#![warn(missing_docs)]

pub mod api;
pub mod build_hosts;
pub mod builds;
pub mod config;
pub mod events;
pub mod executor;
pub mod health;
pub mod hub;
mod ids;
pub mod images;
pub mod launcher;
pub mod logstore;
pub mod metrics;
mod outbound;
pub mod queue;
pub mod quota;
pub mod ratelimit;
pub mod registry;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{ConfigError, Secret, WorkerConfig};
pub use executor::ExecutorSettings;

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The worker's clients, stores or build executor could not be set up.
    #[error("failed to set up the worker")]
    Setup(#[source] server::StateError),
}

/// Binds `config.listen` and serves until `shutdown` resolves.
pub async fn run(config: WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.listen,
            source,
        })?;
    serve(listener, config, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0) until `shutdown` resolves; then
/// drains the HTTP connections and stops the running local builds and the launches in
/// flight (see [`server::AppState::shutdown`]) before returning.
pub async fn serve(
    listener: TcpListener,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let state = Arc::new(
        server::AppState::new(config)
            .await
            .map_err(RunError::Setup)?,
    );
    match state.adopt_builds().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(builds = n, "adopted running builds"),
        Err(error) => {
            let error = error_chain(&error);
            tracing::warn!(%error, "failed to adopt running builds");
        }
    }
    state
        .count_hub_servers(std::time::Duration::from_secs(10))
        .await;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "bindery worker listening");
    }
    server::serve(Arc::clone(&state), listener, shutdown).await;
    state.shutdown().await;
    Ok(())
}

/// An error with its causes, `: `-separated: what the hub and Kubernetes clients put in
/// messages, since their top-level errors alone ("error sending request") say little.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Waits for every task in `tasks` to end, at most `deadline`. Returns how many were still
/// running when the deadline passed (0 when all ended in time).
pub(crate) async fn join_all_within(
    tasks: &mut tokio::task::JoinSet<()>,
    deadline: std::time::Duration,
) -> usize {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(deadline, all).await.is_err() {
        tasks.len()
    } else {
        0
    }
}

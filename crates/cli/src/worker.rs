//! `bindery worker`: run the in-cluster worker until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bindery_worker::WorkerConfig;

/// Arguments of `bindery worker`. Everything else comes from the environment
/// (`BINDERY_WORKER_TOKEN`, `BINDERY_HUB_URL`, `BINDERY_HUB_API_TOKEN`,
/// `BINDERY_IMAGE_PREFIX`, ...), which wins over the file.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// A TOML file with the worker's settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on (overrides the file and `BINDERY_WORKER_LISTEN`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Loads the configuration and serves until Ctrl-C or SIGTERM.
pub fn run(args: &WorkerArgs) -> anyhow::Result<String> {
    crate::service::init_tracing();
    let mut config = WorkerConfig::load(args.config.as_deref())
        .context("failed to load the worker configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    tracing::info!(?config, "starting the worker");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime
        .block_on(bindery_worker::run(
            config,
            crate::service::shutdown_signal(),
        ))
        .context("failed to run the worker")?;
    // `run` has stopped the builds and launches already; whatever task is left (a build
    // log being stored, a connection past the drain) gets a moment, not forever.
    runtime.shutdown_timeout(crate::up::RUNTIME_SHUTDOWN);
    Ok("bindery worker: stopped".to_owned())
}

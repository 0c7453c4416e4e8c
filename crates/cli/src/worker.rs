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
    init_tracing();
    let mut config = WorkerConfig::load(args.config.as_deref())
        .context("failed to load the worker configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    tracing::info!(?config, "starting the worker");
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime
        .block_on(bindery_worker::run(config, shutdown_signal()))
        .context("failed to run the worker")?;
    Ok("bindery worker: stopped".to_owned())
}

/// Logs to stderr; `RUST_LOG` overrides the default level (info).
fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

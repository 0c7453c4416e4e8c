//! `bindery edge`: run the edge app in a `spin.toml` on this machine, as Spin would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bindery_host::{HostConfig, KvBackend};

/// Arguments of `bindery edge`.
#[derive(Debug, clap::Args)]
pub struct EdgeArgs {
    /// The Spin manifest to run.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where key-value data and precompiled components are kept.
    #[arg(long, default_value = ".bindery/edge")]
    data_dir: PathBuf,
    /// Where precompiled components are cached (default: `<data dir>/precompiled`). Hosts
    /// of the same build can share one.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep key-value data in memory only: it is lost when the host stops.
    #[arg(long)]
    memory_kv: bool,
    /// The longest a request may run, streamed response included, in seconds.
    #[arg(long, default_value_t = 30 * 60, value_name = "SECONDS")]
    request_deadline: u64,
    /// The longest a client may take to send a request body, in seconds (408 past it;
    /// default 10; 0: no bound).
    #[arg(long, value_name = "SECONDS")]
    body_deadline: Option<u64>,
    /// Requests one client address may have in flight at once (429 past it; default 100;
    /// 0: no bound). Behind a reverse proxy every client has the proxy's address.
    #[arg(long, value_name = "N")]
    max_requests_per_client: Option<u32>,
    /// Instances of the pool each component keeps for itself, so a flood on one route
    /// leaves the others theirs (default 32, at most an equal share).
    #[arg(long, value_name = "N")]
    reserved_instances: Option<u32>,
    /// Seconds between sweeps of expired key-value entries (default 600; 0: no sweep).
    #[arg(long, value_name = "SECONDS")]
    kv_sweep_interval: Option<u64>,
    /// How long past its `expires_at` an entry is kept, in seconds (default 3600).
    #[arg(long, value_name = "SECONDS")]
    kv_sweep_grace: Option<u64>,
}

/// Runs the host until Ctrl-C or SIGTERM, then drains in-flight requests.
pub fn run(args: &EdgeArgs) -> anyhow::Result<String> {
    crate::service::init_tracing();
    let mut config = HostConfig::new(&args.manifest, args.listen, &args.data_dir);
    config.request_deadline = Duration::from_secs(args.request_deadline);
    let limits = &mut config.requests;
    if let Some(seconds) = args.body_deadline {
        limits.body_deadline = Duration::from_secs(seconds);
    }
    if let Some(n) = args.max_requests_per_client {
        limits.max_requests_per_client = n;
    }
    if let Some(n) = args.reserved_instances {
        limits.reserved_instances = n;
    }
    if let Some(seconds) = args.kv_sweep_interval {
        config.kv_sweep.interval = Duration::from_secs(seconds);
    }
    if let Some(seconds) = args.kv_sweep_grace {
        config.kv_sweep.grace = Duration::from_secs(seconds);
    }
    config.cache_dir.clone_from(&args.cache_dir);
    if args.memory_kv {
        config.kv = KvBackend::Memory;
    }
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime
        .block_on(bindery_host::run(config, crate::service::shutdown_signal()))
        .with_context(|| format!("failed to run {}", args.manifest.display()))?;
    Ok("bindery edge: stopped".to_owned())
}

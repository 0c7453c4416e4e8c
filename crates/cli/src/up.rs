//! `bindery up`: the whole of Bindery on one machine, in one process.
//!
//! The edge host runs the components of `spin.toml` on the public address; the worker runs
//! beside it on a loopback port with the local executor (repo2docker as a child process),
//! an embedded key-value store for the edge and an embedded build log store for the worker.
//! One file configures both (`bindery.toml`, documented in the repository): the shared
//! settings (registry, image prefix, JupyterHub) reach the worker as its own settings and
//! the edge as Spin variables, so the two always agree. The worker token is generated at
//! start when none is set.
//!
//! A missing part (no JupyterHub, no container engine, no registry, no repo2docker) is a
//! warning that says what fails and what to do, not a reason to refuse to start: the home
//! page, badges and the resolve API work without any of them.
//!
//! - [`file`]: `bindery.toml`'s shape and reading.
//! - [`settings`]: the worker's typed configuration from `[worker]`, the shared keys and
//!   the defaults, and the operator's copy in `worker.toml` (mode 0600, never read back).
//! - [`edge_env`]: the edge's Spin variables, named by `bindery_edge::config`'s constants.
//! - [`checks`]: the start-up checks and their notes.
//! - [`managed`]: the registry, container engine and JupyterHub `bindery up` starts and
//!   supervises itself when none is configured.

mod checks;
mod edge_env;
mod file;
mod managed;
mod settings;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bindery_host::{HostConfig, KvBackend};
use bindery_worker::{ExecutorSettings, WorkerConfig};
use tokio::sync::watch;

use checks::{Notes, check_parts};
use edge_env::{DERIVED_VARIABLES, edge_variables};
use file::read_file;
use managed::{Managed, start_managed};
use settings::worker_config;

/// How long the tasks still on the runtime get once the edge and the worker have stopped
/// (the worker has stopped its builds and launches by then: see
/// `bindery_worker::server::AppState::shutdown`); `bindery worker` uses it too.
pub(crate) const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

/// Arguments of `bindery up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The configuration file (default `bindery.toml`; without it, the defaults apply).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The public address of the edge (overrides `[edge] listen` and `BINDERY_LISTEN`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Runs the edge and the worker until Ctrl-C or SIGTERM, then drains both.
pub fn run(args: &UpArgs) -> anyhow::Result<String> {
    crate::service::init_tracing();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (mut file, source) = read_file(args.config.as_deref())?;
    let mut notes = Notes::default();

    let data_dir = env("BINDERY_DATA_DIR")
        .map(PathBuf::from)
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".bindery"));
    // Absolute: the managed parts run in directories of their own, where a relative path
    // (the default `.bindery`) would name another place.
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let manifest = env("BINDERY_MANIFEST")
        .map(PathBuf::from)
        .or(file.edge.manifest.clone())
        .unwrap_or_else(|| PathBuf::from("spin.toml"));
    let listen = match args.listen {
        Some(listen) => listen,
        None => {
            let text = env("BINDERY_LISTEN")
                .or(file.edge.listen.clone())
                .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
            text.parse()
                .with_context(|| format!("invalid edge listen address {text:?}"))?
        }
    };
    for name in file.edge.variables.keys() {
        if DERIVED_VARIABLES.contains(&name.as_str()) {
            bail!(
                "[edge.variables] must not set {name}: bindery up derives it from the \
                 top-level settings (set registry_url, image_prefix, ... at the top)"
            );
        }
    }

    managed::clear_markers(&mut file);
    // Refuse a bad configuration before starting anything; the settings are built again
    // once the managed parts are up and written into `file`.
    worker_config(&file, &data_dir, &mut Notes::default())?;
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    // Listened for from here on: a Ctrl-C while the managed parts start stops them
    // (they run in their own process groups, so the terminal's signal never reaches them).
    let (stop, stop_requested) = watch::channel(false);
    runtime.spawn(async move {
        crate::service::shutdown_signal().await;
        stop.send_replace(true);
    });
    let managed = runtime.block_on(start_managed(&mut file, &data_dir, &mut notes))?;
    let result = if *stop_requested.borrow() {
        Ok(())
    } else {
        serve_all(
            &runtime,
            &file,
            &source,
            &data_dir,
            &manifest,
            listen,
            notes,
            &managed,
            stop_requested,
        )
    };
    runtime.block_on(managed.stop());
    // `serve` has stopped the worker's builds and launches; whatever task is left gets a
    // moment, not forever (dropping the runtime would wait for blocking tasks without end).
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result?;
    Ok("bindery up: stopped".to_owned())
}

/// Builds the worker's and the edge's settings (the managed parts already written into
/// `file`), prints the banner and serves both until the stop is requested.
#[allow(clippy::too_many_arguments)]
fn serve_all(
    runtime: &tokio::runtime::Runtime,
    file: &file::UpFile,
    source: &str,
    data_dir: &Path,
    manifest: &Path,
    listen: SocketAddr,
    mut notes: Notes,
    managed: &Managed,
    stop_requested: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let worker_config = worker_config(file, data_dir, &mut notes)?;
    let mut host_config = HostConfig::new(manifest, listen, data_dir.join("edge"));
    if file.edge.memory_kv == Some(true) {
        host_config.kv = KvBackend::Memory;
    }
    if let Some(seconds) = file.edge.request_deadline_seconds {
        host_config.request_deadline = Duration::from_secs(seconds);
    }
    if let Some(seconds) = file.edge.body_deadline_seconds {
        host_config.requests.body_deadline = Duration::from_secs(seconds);
    }
    if let Some(n) = file.edge.max_requests_per_client {
        host_config.requests.max_requests_per_client = n;
    }
    if let Some(n) = file.edge.reserved_instances {
        host_config.requests.reserved_instances = n;
    }
    if let Some(seconds) = file.edge.kv_sweep_interval_seconds {
        host_config.kv_sweep.interval = Duration::from_secs(seconds);
    }
    if let Some(seconds) = file.edge.kv_sweep_grace_seconds {
        host_config.kv_sweep.grace = Duration::from_secs(seconds);
    }

    let engine_checked = managed.engine_checked;
    let managed_lines = managed.lines.clone();
    runtime.block_on(async move {
        let worker_listener = tokio::net::TcpListener::bind(worker_config.listen)
            .await
            .with_context(|| {
                format!("failed to listen on {} (the worker)", worker_config.listen)
            })?;
        let worker_addr = worker_listener
            .local_addr()
            .context("failed to read the worker's address")?;
        let (edge_env, overridden) = edge_variables(
            &worker_config,
            worker_addr,
            &file.edge.variables,
            // Not env::vars(), which panics on a variable that is not UTF-8: such a
            // variable cannot be a Spin variable, so it is left out.
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        );
        for name in overridden {
            notes.warn(format!(
                "{name} is ignored: bindery up derives it from the shared settings (set \
                 the BINDERY_* variable or the key in bindery.toml instead)"
            ));
        }
        host_config.env = Some(edge_env);
        check_parts(&worker_config, &mut notes, engine_checked).await;
        let host = bindery_host::bind(host_config)
            .await
            .with_context(|| format!("failed to start the edge ({})", manifest.display()))?;
        print_banner(
            source,
            host.local_addr(),
            worker_addr,
            data_dir,
            &worker_config,
            &managed_lines,
            &notes,
        );
        serve(host, worker_listener, worker_config, stop_requested).await
    })
}

/// Prints where to open Bindery, what runs where, and every note.
fn print_banner(
    source: &str,
    edge: SocketAddr,
    worker: SocketAddr,
    data_dir: &Path,
    config: &WorkerConfig,
    managed: &[String],
    notes: &Notes,
) {
    let shown = if edge.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], edge.port()))
    } else {
        edge
    };
    let engine = match &config.builds.executor {
        // repo2docker drives the podman CLI when DOCKER_HOST mentions podman.
        ExecutorSettings::Local(local) => {
            let podman = local
                .env
                .iter()
                .any(|(k, v)| k == "DOCKER_HOST" && v.contains("podman"));
            let engine = if podman {
                "podman"
            } else {
                local.engine.as_deref().unwrap_or("docker")
            };
            format!("local builds with {engine}")
        }
        ExecutorSettings::Kubernetes(_) => "Kubernetes Jobs".to_owned(),
    };
    let registry = config
        .builds
        .registry_url
        .as_deref()
        .unwrap_or("none (images stay in the engine; the edge asks the worker for them)");
    let reach = if worker.ip().is_loopback() {
        " (loopback)"
    } else {
        " (reachable from other machines: it takes the worker token)"
    };
    let mut out = format!(
        "bindery up: open http://{shown}/\n\
         \x20 settings: {source}\n\
         \x20 edge:     listening on {edge}, state in {}\n\
         \x20 worker:   http://{worker}{reach}, {engine}\n\
         \x20 registry: {registry}, images named {}*\n\
         \x20 hub:      {}\n",
        data_dir.join("edge").display(),
        config.image_prefix,
        config.hub_url,
    );
    for line in managed {
        out.push_str(&format!("  managed:  {line}\n"));
    }
    for note in &notes.0 {
        out.push_str(&format!("warning: {note}\n"));
    }
    out.push_str(if managed.is_empty() {
        "Ctrl-C stops both parts after in-flight requests finish.\n"
    } else {
        "Ctrl-C stops both parts after in-flight requests finish, then the managed parts.\n"
    });
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Serves both parts until the shutdown signal, or until one of them stops on its own
/// (which stops the other); both drain their in-flight requests.
async fn serve(
    host: bindery_host::BoundHost,
    worker_listener: tokio::net::TcpListener,
    worker_config: WorkerConfig,
    mut stop_requested: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let signal = async {
        tokio::select! {
            _ = stop_requested.wait_for(|s| *s) => {
                println!("bindery up: stopping, draining the edge and the worker");
                stop.send_replace(true);
            }
            () = stopped(stopping.clone()) => {}
        }
    };
    let edge = async {
        let result = host.serve(stopped(stopping.clone())).await;
        stop.send_replace(true);
        result.context("the edge failed")
    };
    let worker = async {
        let result =
            bindery_worker::serve(worker_listener, worker_config, stopped(stopping.clone())).await;
        stop.send_replace(true);
        result.context("the worker failed")
    };
    let ((), edge, worker) = tokio::join!(signal, edge, worker);
    edge.and(worker)
}

/// What the tests of the modules of `bindery up` share.
#[cfg(test)]
mod testing {
    #![allow(clippy::expect_used)]

    use std::path::PathBuf;

    use super::file::UpFile;

    /// `text` as a `bindery.toml`.
    pub(super) fn parse(text: &str) -> UpFile {
        toml::from_str(text).expect("valid test file")
    }

    /// A fresh scratch directory named for the test.
    pub(super) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bindery-up-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }
}

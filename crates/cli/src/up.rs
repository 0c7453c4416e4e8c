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

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bindery_host::{HostConfig, KvBackend};
use bindery_worker::WorkerConfig;
use bindery_worker::executor::{ExecutorSettings, LocalExecutor};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The configuration file read when `--config` is not given.
const DEFAULT_CONFIG: &str = "bindery.toml";
/// JupyterHub's own default address: a hub started with no options answers here.
const DEFAULT_HUB_URL: &str = "http://127.0.0.1:8000/";
/// The registry a plain `docker-registry` (or `registry:2`) listens on.
const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:5000";
/// BinderHub's image prefix for that registry.
const DEFAULT_IMAGE_PREFIX: &str = "127.0.0.1:5000/binder-";
/// Sent to the hub when no API token is set; the hub refuses it, and the launch says so.
const PLACEHOLDER_HUB_TOKEN: &str = "unset-hub-api-token";
/// How long each start-up check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the tasks still on the runtime get once the edge and the worker have stopped
/// (the worker has stopped its builds and launches by then: see
/// `bindery_worker::api::AppState::shutdown`); `bindery worker` uses it too.
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

/// The file's shape. Top-level keys are shared by the edge and the worker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpFile {
    data_dir: Option<PathBuf>,
    registry_url: Option<String>,
    registry_username: Option<String>,
    registry_password: Option<String>,
    image_prefix: Option<String>,
    hub_url: Option<String>,
    hub_api_url: Option<String>,
    hub_api_token: Option<String>,
    #[serde(default)]
    edge: EdgeFile,
    /// The worker's own settings (the keys of `bindery worker`'s `worker.toml`).
    #[serde(default)]
    worker: toml::Table,
}

/// The `[edge]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeFile {
    listen: Option<String>,
    manifest: Option<PathBuf>,
    memory_kv: Option<bool>,
    request_deadline_seconds: Option<u64>,
    /// More Spin variables (`github_token`, `public_url`, `extra_outbound_host`, ...).
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The shared keys, copied into the worker's settings unless `[worker]` sets its own.
const SHARED_KEYS: [&str; 7] = [
    "registry_url",
    "registry_username",
    "registry_password",
    "image_prefix",
    "hub_url",
    "hub_api_url",
    "hub_api_token",
];

/// Spin variables `bindery up` derives from the shared settings; `[edge.variables]` may
/// not set them, or the edge and the worker could disagree.
const DERIVED_VARIABLES: [&str; 6] = [
    "worker_url",
    "worker_token",
    "registry_url",
    "registry_username",
    "registry_password",
    "image_prefix",
];

/// What start-up found missing: one line each, printed before serving.
#[derive(Debug, Default)]
struct Notes(Vec<String>);

impl Notes {
    fn warn(&mut self, text: impl Into<String>) {
        self.0.push(text.into());
    }
}

/// Runs the edge and the worker until Ctrl-C or SIGTERM, then drains both.
pub fn run(args: &UpArgs) -> anyhow::Result<String> {
    crate::service::init_tracing();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (file, source) = read_file(args.config.as_deref())?;
    let mut notes = Notes::default();

    let data_dir = env("BINDERY_DATA_DIR")
        .map(PathBuf::from)
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".bindery"));
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

    let worker_config = worker_config(&file, &data_dir, &mut notes)?;
    let mut host_config = HostConfig::new(&manifest, listen, data_dir.join("edge"));
    if file.edge.memory_kv == Some(true) {
        host_config.kv = KvBackend::Memory;
    }
    if let Some(seconds) = file.edge.request_deadline_seconds {
        host_config.request_deadline = Duration::from_secs(seconds);
    }

    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let result = runtime.block_on(async move {
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
        check_parts(&worker_config, &mut notes).await;
        let host = bindery_host::bind(host_config)
            .await
            .with_context(|| format!("failed to start the edge ({})", manifest.display()))?;
        print_banner(
            &source,
            host.local_addr(),
            worker_addr,
            &data_dir,
            &worker_config,
            &notes,
        );
        serve(host, worker_listener, worker_config).await
    });
    // `serve` has stopped the worker's builds and launches; whatever task is left gets a
    // moment, not forever (dropping the runtime would wait for blocking tasks without end).
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result?;
    Ok("bindery up: stopped".to_owned())
}

/// Reads `path` (or `bindery.toml` when it exists); returns the settings and where they
/// came from, for the banner.
fn read_file(path: Option<&Path>) -> anyhow::Result<(UpFile, String)> {
    let (path, required) = match path {
        Some(path) => (path.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((
                UpFile::default(),
                format!("defaults ({DEFAULT_CONFIG} not found)"),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let file = toml::from_str::<UpFile>(&text)
        .with_context(|| format!("failed to parse {}", path.display()))?;
    Ok((file, path.display().to_string()))
}

/// The worker's settings: `[worker]`, the shared keys, `bindery up`'s defaults, then the
/// worker's own environment variables over all of them (as `bindery worker` reads them).
fn worker_config(
    file: &UpFile,
    data_dir: &Path,
    notes: &mut Notes,
) -> anyhow::Result<WorkerConfig> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut table = file.worker.clone();
    let shared = [
        &file.registry_url,
        &file.registry_username,
        &file.registry_password,
        &file.image_prefix,
        &file.hub_url,
        &file.hub_api_url,
        &file.hub_api_token,
    ];
    for (key, value) in SHARED_KEYS.iter().zip(shared) {
        if let Some(value) = value
            && !table.contains_key(*key)
        {
            table.insert((*key).to_owned(), toml::Value::String(value.clone()));
        }
    }
    let mut defaults = |key: &str, value: String| {
        table
            .entry(key)
            .or_insert_with(|| toml::Value::String(value));
    };
    defaults("listen", "127.0.0.1:0".to_owned());
    defaults("image_prefix", DEFAULT_IMAGE_PREFIX.to_owned());
    defaults("registry_url", DEFAULT_REGISTRY_URL.to_owned());
    defaults("hub_url", DEFAULT_HUB_URL.to_owned());
    defaults(
        "build_log_path",
        data_dir
            .join("worker/build-logs.redb")
            .display()
            .to_string(),
    );
    // An empty registry_url means "no registry": builds are not pushed.
    if table
        .get("registry_url")
        .and_then(toml::Value::as_str)
        .is_some_and(str::is_empty)
    {
        table.remove("registry_url");
    }
    let hub_token_set = env("BINDERY_HUB_API_TOKEN").is_some()
        || table
            .get("hub_api_token")
            .and_then(toml::Value::as_str)
            .is_some_and(|t| !t.is_empty());
    if !hub_token_set {
        notes.warn(
            "hub_api_token is not set: launches will fail until it is (hub_api_token in \
             bindery.toml or BINDERY_HUB_API_TOKEN: the api_token of JupyterHub's binder service)",
        );
        table.insert(
            "hub_api_token".into(),
            toml::Value::String(PLACEHOLDER_HUB_TOKEN.into()),
        );
    }
    let token_set = env("BINDERY_WORKER_TOKEN").is_some()
        || table
            .get("token")
            .and_then(toml::Value::as_str)
            .is_some_and(|t| !t.is_empty());
    if !token_set {
        table.insert("token".into(), toml::Value::String(random_token()?));
    }

    // The worker reads its settings the way `bindery worker` does, from a file: written
    // under the data directory, readable by this user only (it may hold secrets).
    let worker_dir = data_dir.join("worker");
    std::fs::create_dir_all(&worker_dir)
        .with_context(|| format!("failed to create {}", worker_dir.display()))?;
    let path = worker_dir.join("worker.toml");
    let text = format!(
        "# Written by `bindery up` at every start from bindery.toml: edit that file instead.\n{}",
        toml::to_string(&table).context("failed to write the worker's settings")?
    );
    write_private(&path, &text)?;
    let config = WorkerConfig::load(Some(&path)).with_context(|| {
        format!(
            "invalid worker settings ([worker] and the shared keys, as written to {})",
            path.display()
        )
    })?;
    if let ExecutorSettings::Kubernetes(_) = config.builds.executor {
        notes.warn(
            "executor = \"kubernetes\": builds run as Jobs in the cluster, not on this machine",
        );
    }
    Ok(config)
}

/// Writes `text` to `path`, readable by this user only: into a new file created with mode
/// 0600 beside it, then renamed over it, so the secrets are never in a file that an earlier
/// run (or an operator) left with looser permissions.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(name);
    // Left behind by a run that died between writing and renaming.
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut out| {
        out.write_all(text.as_bytes())?;
        out.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("failed to write {}", path.display()));
    }
    Ok(())
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("failed to make a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The edge's environment: `[edge.variables]`, then the process's `SPIN_VARIABLE_*` over
/// them, then the values derived from the worker's settings over both, so that the edge
/// always reaches the in-process worker with its token and agrees with it on the registry.
/// Returns the environment and the `SPIN_VARIABLE_*` names that were overridden.
fn edge_variables(
    worker: &WorkerConfig,
    worker_addr: SocketAddr,
    extra: &BTreeMap<String, String>,
    process_env: impl Iterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let key = |name: &str| format!("SPIN_VARIABLE_{}", name.to_uppercase());
    let mut env: BTreeMap<String, String> =
        extra.iter().map(|(k, v)| (key(k), v.clone())).collect();
    env.extend(process_env.filter(|(k, _)| k.starts_with("SPIN_VARIABLE_")));
    let builds = &worker.builds;
    let derived = [
        ("worker_url", format!("http://{worker_addr}")),
        ("worker_token", worker.token.expose().to_owned()),
        ("image_prefix", worker.image_prefix.clone()),
        (
            "registry_username",
            builds.registry_username.clone().unwrap_or_default(),
        ),
        (
            "registry_password",
            builds
                .registry_password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        ),
        (
            "registry_url",
            builds
                .registry_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned())
                // No registry: the edge keeps spin.toml's default and finds nothing there.
                .unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_owned()),
        ),
    ];
    let mut overridden = Vec::new();
    for (name, value) in derived {
        if let Some(old) = env.insert(key(name), value.clone())
            && old != value
        {
            overridden.push(key(name));
        }
    }
    (env, overridden)
}

/// Checks what the worker needs and notes what is missing, with what to do about it.
async fn check_parts(config: &WorkerConfig, notes: &mut Notes) {
    let hub_api = &config.hub_api_url;
    match http_status(hub_api).await {
        Ok(200) => {}
        Ok(status) => notes.warn(format!(
            "JupyterHub at {hub_api} answered {status}, not 200: launches may fail \
             (check hub_url / hub_api_url)"
        )),
        Err(e) => notes.warn(format!(
            "no JupyterHub answers at {hub_api} ({e}): launches will fail until hub_url \
             (BINDERY_HUB_URL) points at a running hub"
        )),
    }
    match &config.builds.registry_url {
        None => notes.warn(
            "no registry_url: images are built into the local engine and never pushed, so \
             the edge never finds them and every launch builds again",
        ),
        Some(url) => {
            let probe = format!("{}/v2/", url.trim_end_matches('/'));
            match http_status(&probe).await {
                Ok(200 | 401) => {}
                Ok(status) => notes.warn(format!(
                    "{probe} answered {status}: this does not look like a registry; \
                     builds will fail to push"
                )),
                Err(e) => notes.warn(format!(
                    "no registry answers at {url} ({e}): builds will fail to push and every \
                     launch will build again; start one (e.g. `docker-registry serve`) or set \
                     registry_url (BINDERY_REGISTRY_URL)"
                )),
            }
        }
    }
    let ExecutorSettings::Local(local) = &config.builds.executor else {
        return;
    };
    let path = local
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let found = |program: &str| find_program(program, &path);
    let engine = local.engine.as_deref().unwrap_or("docker");
    // repo2docker drives the podman CLI when DOCKER_HOST mentions podman.
    let podman_hint = if engine == "docker" && found("podman").is_some() {
        "; podman is installed: let repo2docker drive it with DOCKER_HOST = \"unix:///run/podman/podman.sock\" in [worker.build_env]"
    } else {
        ""
    };
    if found("docker").is_none() && found("podman").is_none() {
        notes.warn(
            "no container engine found: install docker or podman; builds will fail until one \
             is installed",
        );
    } else if found(engine).is_none() {
        notes.warn(format!(
            "{engine} is not installed, so builds will fail{podman_hint}"
        ));
    } else if let Err(e) = LocalExecutor::new(local.clone()).engine_answers().await {
        let e = anyhow::Error::new(e);
        notes.warn(format!(
            "the container engine does not answer: {e:#}; builds will fail until it does{podman_hint}"
        ));
    }
    let r2d = local.repo2docker.display().to_string();
    if find_program(&r2d, &path).is_none() {
        notes.warn(format!(
            "repo2docker not found ({r2d}): builds will fail; install it with `pip install \
             jupyter-repo2docker` or set repo2docker in [worker] (BINDERY_REPO2DOCKER)"
        ));
    }
}

/// Where `program` is: itself when it holds a `/`, else the first match in `path`.
fn find_program(program: &str, path: &str) -> Option<PathBuf> {
    let is_file = |p: &Path| p.metadata().is_ok_and(|m| m.is_file());
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_file(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_file(p))
}

/// The status of `GET url` for a plain-HTTP URL, in [`CHECK_TIMEOUT`]. HTTPS URLs are not
/// checked (reported as answering) rather than pulling a TLS client into start-up.
async fn http_status(url: &str) -> Result<u16, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(200);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("failed to connect: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("failed to send: {e}"))?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream
                .read(&mut head[read..])
                .await
                .map_err(|e| format!("failed to read: {e}"))?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&head[..read]).into_owned();
        line.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| "not an HTTP answer".to_owned())
    };
    tokio::time::timeout(CHECK_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

fn print_banner(
    source: &str,
    edge: SocketAddr,
    worker: SocketAddr,
    data_dir: &Path,
    config: &WorkerConfig,
    notes: &Notes,
) {
    let shown = if edge.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], edge.port()))
    } else {
        edge
    };
    let engine = match &config.builds.executor {
        ExecutorSettings::Local(local) => format!(
            "local builds with {}",
            local.engine.as_deref().unwrap_or("docker")
        ),
        ExecutorSettings::Kubernetes(_) => "Kubernetes Jobs".to_owned(),
    };
    let registry = config.builds.registry_url.as_deref().unwrap_or("none");
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
    for note in &notes.0 {
        out.push_str(&format!("warning: {note}\n"));
    }
    out.push_str("Ctrl-C stops both parts after in-flight requests finish.\n");
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
) -> anyhow::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let signal = async {
        tokio::select! {
            () = crate::service::shutdown_signal() => {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(text: &str) -> UpFile {
        toml::from_str(text).expect("valid test file")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bindery-up-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn shared_settings_reach_the_worker_unless_its_section_sets_its_own() {
        let dir = scratch("shared");
        let file = parse(
            "registry_url = \"http://reg:5000\"\nimage_prefix = \"reg:5000/binder-\"\n\
             hub_url = \"http://hub:8000\"\nhub_api_token = \"hub-secret\"\n\
             [worker]\nregistry_url = \"http://other:5000\"\nmax_concurrent_builds = 3\n",
        );
        let mut notes = Notes::default();
        let config = worker_config(&file, &dir, &mut notes).unwrap();
        assert_eq!(
            config.builds.registry_url.as_deref(),
            Some("http://other:5000")
        );
        assert_eq!(config.image_prefix, "reg:5000/binder-");
        assert_eq!(config.hub_url, "http://hub:8000/");
        assert_eq!(config.hub_api_token.expose(), "hub-secret");
        assert_eq!(config.builds.max_concurrent, 3);
        assert_eq!(config.listen.port(), 0, "a loopback port chosen at start");
        assert_eq!(
            config.builds.log_store,
            Some(dir.join("worker/build-logs.redb"))
        );
        let token = config.token.expose();
        assert_eq!(token.len(), 48, "a generated token: {token}");
        assert!(notes.0.is_empty(), "{:?}", notes.0);
        let again = worker_config(&file, &dir, &mut notes).unwrap();
        assert_ne!(again.token.expose(), token, "a fresh token at every start");
    }

    #[test]
    fn without_a_hub_token_or_registry_the_worker_still_starts_and_the_notes_say_so() {
        let dir = scratch("missing");
        let file = parse("registry_url = \"\"\n");
        let mut notes = Notes::default();
        let config = worker_config(&file, &dir, &mut notes).unwrap();
        assert_eq!(config.builds.registry_url, None, "empty means no registry");
        assert!(!config.builds.executor.local().expect("local builds").push);
        assert_eq!(config.hub_api_token.expose(), PLACEHOLDER_HUB_TOKEN);
        assert_eq!(config.hub_url, DEFAULT_HUB_URL);
        assert_eq!(config.image_prefix, DEFAULT_IMAGE_PREFIX);
        assert!(
            notes
                .0
                .iter()
                .any(|n| n.contains("hub_api_token is not set")),
            "{:?}",
            notes.0
        );
    }

    #[test]
    fn a_bad_worker_setting_is_refused_naming_it() {
        let dir = scratch("bad");
        for (text, named) in [
            ("[worker]\nexecutor = \"nomad\"\n", "nomad"),
            ("[worker]\nlisten = \"nowhere\"\n", "listen"),
            ("hub_url = \"hub:8000\"\n", "hub_url"),
        ] {
            let err = worker_config(&parse(text), &dir, &mut Notes::default()).expect_err(text);
            assert!(format!("{err:#}").contains(named), "{text}: {err:#}");
        }
        let err = toml::from_str::<UpFile>("[edge]\nlisen = \"x\"\n").expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_edge_gets_the_in_process_worker_and_the_shared_settings_whatever_else_is_set() {
        let dir = scratch("edge");
        let file = parse(
            "registry_url = \"http://reg:5000/\"\nimage_prefix = \"reg:5000/b-\"\n\
             hub_api_token = \"t\"\n[worker]\ntoken = \"worker-secret\"\n",
        );
        let config = worker_config(&file, &dir, &mut Notes::default()).unwrap();
        let extra = BTreeMap::from([
            ("github_token".to_owned(), "from-file".to_owned()),
            ("public_url".to_owned(), "https://file/".to_owned()),
        ]);
        let process = [
            ("SPIN_VARIABLE_PUBLIC_URL", "https://env/"),
            ("SPIN_VARIABLE_WORKER_URL", "http://elsewhere:1"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let (env, overridden) = edge_variables(&config, addr, &extra, process.into_iter());
        let var = |name: &str| env.get(name).map(String::as_str);
        let cases = [
            ("SPIN_VARIABLE_WORKER_URL", Some("http://127.0.0.1:4567")),
            ("SPIN_VARIABLE_WORKER_TOKEN", Some("worker-secret")),
            ("SPIN_VARIABLE_REGISTRY_URL", Some("http://reg:5000")),
            ("SPIN_VARIABLE_IMAGE_PREFIX", Some("reg:5000/b-")),
            ("SPIN_VARIABLE_REGISTRY_PASSWORD", Some("")),
            ("SPIN_VARIABLE_GITHUB_TOKEN", Some("from-file")),
            ("SPIN_VARIABLE_PUBLIC_URL", Some("https://env/")),
            ("PATH", None),
        ];
        for (name, expected) in cases {
            assert_eq!(var(name), expected, "{name}");
        }
        assert_eq!(overridden, ["SPIN_VARIABLE_WORKER_URL"]);
    }

    #[test]
    fn programs_are_found_by_path_or_in_the_search_path() {
        let dir = scratch("programs");
        let program = dir.join("tool");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        let path = format!("/nonexistent:{}", dir.display());
        assert_eq!(find_program("tool", &path), Some(program.clone()));
        assert_eq!(
            find_program(&program.display().to_string(), ""),
            Some(program)
        );
        assert_eq!(find_program("tool", "/nonexistent"), None);
        assert_eq!(find_program("/nonexistent/tool", &path), None);
        assert_eq!(find_program("", &path), None, "a directory is no program");
    }

    #[tokio::test]
    async fn the_start_up_probe_reads_the_status_and_reports_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        assert_eq!(http_status(&format!("http://{addr}/v2/")).await, Ok(401));
        let addr = {
            // A port nothing listens on.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let closed = http_status(&format!("http://{addr}/v2/")).await;
        assert!(closed.is_err(), "{closed:?}");
        assert_eq!(http_status("https://hub.example.org/").await, Ok(200));
    }
}

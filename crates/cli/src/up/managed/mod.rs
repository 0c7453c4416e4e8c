//! The parts `bindery up` starts and supervises itself when the operator configures none:
//! a registry, a container engine (podman's API service; a docker daemon that answers is
//! used as it is), and JupyterHub with its proxy. Each is decided from the settings, started
//! in dependency order (registry, engine, proxy, hub), waited for until it answers, named
//! in the banner, restarted with backoff when it dies and stopped in reverse order.
//!
//! A part is managed when its setting is unset or `"managed"` (`registry_url`, `hub_url`;
//! the engine when neither `DOCKER_HOST` nor `build_engine` is set); a configured part is
//! used as it is and never started. `registry_url = "none"` asks for no registry at all:
//! images stay in the engine, and the edge asks the worker whether one exists. The managed
//! parts' addresses and tokens are written into the settings before the worker and the edge
//! read them, so all three agree.
//!
//! - [`supervise`]: one child process under supervision.
//! - [`registry`], [`engine`], [`hub`]: what each part runs and how it is configured.

mod engine;
mod hub;
mod registry;
mod supervise;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::Notes;
use super::checks::find_program;
use super::file::UpFile;
use super::settings::random_token;
use engine::Engine;
use supervise::Running;

/// The value of `registry_url` / `hub_url` that asks for a managed part explicitly.
pub(super) const MANAGED: &str = "managed";
/// Where the managed parts listen unless `[managed]` says otherwise.
const REGISTRY_LISTEN: &str = "127.0.0.1:5000";
const HUB_LISTEN: &str = "127.0.0.1:8000";
/// The venv `cargo xtask run` prepares, relative to the workspace it runs in.
const DEFAULT_PYTHON: &str = "target/pyenv/bin/python";
/// BinderHub's culling defaults (mybinder.org's): 10 minutes idle, 6 hours at most.
const CULL_IDLE: Duration = Duration::from_secs(600);
const CULL_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// The running managed parts, and the banner's lines about them.
#[derive(Debug, Default)]
pub(super) struct Managed {
    parts: Vec<Running>,
    /// One line per part: what it is, where it listens, its pid.
    pub(super) lines: Vec<String>,
    /// Whether the engine was looked for here (so the start-up checks do not repeat it).
    pub(super) engine_checked: bool,
}

impl Managed {
    /// Stops every part, the last started first, each reaped before the next.
    pub(super) async fn stop(mut self) {
        while let Some(part) = self.parts.pop() {
            let name = part.name;
            part.stop().await;
            tracing::info!("managed {name} stopped");
        }
    }

    async fn start(&mut self, spec: supervise::PartSpec, what: String) -> anyhow::Result<()> {
        let part = supervise::start(spec).await?;
        self.lines
            .push(format!("{:<8}  {what} (pid {})", part.name, part.pid()));
        self.parts.push(part);
        Ok(())
    }
}

/// Starts the managed parts the settings ask for and points `file` at them. On an error
/// the parts already started are stopped.
pub(super) async fn start_managed(
    file: &mut UpFile,
    data_dir: &Path,
    notes: &mut Notes,
) -> anyhow::Result<Managed> {
    let mut managed = Managed::default();
    match start_parts(file, data_dir, notes, &mut managed).await {
        Ok(()) => Ok(managed),
        Err(e) => {
            managed.stop().await;
            Err(e)
        }
    }
}

/// The edge's `cors_allow_origin` (`SPIN_VARIABLE_CORS_ALLOW_ORIGIN`, else `[edge.variables]`),
/// as the managed hub's servers take it for their `allow_origin`; a value that is not `*`
/// or origins stops start-up, naming the variable.
fn servers_allow_origin(from_env: Option<String>, file: &UpFile) -> anyhow::Result<Option<String>> {
    const NAME: &str = bindery_edge::config::CORS_ALLOW_ORIGIN;
    let raw = from_env
        .or_else(|| file.edge.variables.get(NAME).cloned())
        .filter(|v| !v.trim().is_empty());
    raw.map(|raw| {
        bindery_core::cors::CorsOrigins::parse(&raw)
            .map(|origins| origins.server_allow_origin())
            .map_err(|e| anyhow::anyhow!("{NAME} is invalid: {e}"))
    })
    .transpose()
}

/// Replaces `"managed"` by unset, which means the same here and, to the worker (when the
/// environment or `[worker]` overrides the part), no URL it has to read.
pub(super) fn clear_markers(file: &mut UpFile) {
    for value in [&mut file.registry_url, &mut file.hub_url] {
        if value.as_deref() == Some(MANAGED) {
            *value = None;
        }
    }
}

/// Whether the setting `key` is left to `bindery up`: unset (or `"managed"`) in the file,
/// in `[worker]` and in the environment.
fn is_managed(file_value: Option<&str>, file: &UpFile, key: &str, env_name: &str) -> bool {
    let env_set = std::env::var(env_name).is_ok_and(|v| !v.is_empty());
    let worker_set = file.worker.contains_key(key);
    !env_set && !worker_set && file_value.is_none_or(|v| v == MANAGED)
}

/// Fails with a clear line when `addr` cannot be listened on (a registry or hub already
/// runs there, say), instead of a part that dies at every restart.
fn check_free(addr: SocketAddr, what: &str, key: &str) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot start the managed {what} on {addr} ({e}): stop what listens there, set \
             [managed] {key} to another address, or configure your own {what}"
        ),
    }
}

async fn start_parts(
    file: &mut UpFile,
    data_dir: &Path,
    notes: &mut Notes,
    managed: &mut Managed,
) -> anyhow::Result<()> {
    let settings = file.managed.clone();
    let path = std::env::var("PATH").unwrap_or_default();
    let python = std::env::var("BINDERY_MANAGED_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or(settings.python.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    // Absolute, since the parts run in their own directories; not canonical, since a venv's
    // python is a symlink that finds its venv by the path it was started as.
    let python = std::path::absolute(&python).unwrap_or(python);

    let registry_managed = is_managed(
        file.registry_url.as_deref(),
        file,
        "registry_url",
        "BINDERY_REGISTRY_URL",
    );
    let hub_managed = is_managed(file.hub_url.as_deref(), file, "hub_url", "BINDERY_HUB_URL");

    // The registry first: the engine's configuration and the hub's image prefix name it.
    let mut registry = None;
    if registry_managed {
        let listen = parse_addr(
            settings.registry_listen.as_deref(),
            REGISTRY_LISTEN,
            "registry_listen",
        )?;
        match find_program(registry::PROGRAM, &path) {
            None => {
                notes.warn(format!(
                    "no registry: {} is not installed (Debian: apt-get install docker-registry; \
                     `cargo xtask run` installs it), so images stay in the container engine \
                     as with registry_url = \"none\"",
                    registry::PROGRAM
                ));
                file.registry_url = Some(super::settings::NO_REGISTRY.to_owned());
            }
            Some(program) => {
                check_free(listen, "registry", "registry_listen")?;
                let dir = data_dir.join("registry");
                let spec = registry::part(&dir, listen, program)
                    .with_context(|| format!("failed to set up {}", dir.display()))?;
                managed
                    .start(
                        spec,
                        format!("http://{listen}, images in {}", dir.join("data").display()),
                    )
                    .await?;
                file.registry_url = Some(format!("http://{listen}"));
                if file.image_prefix.is_none() {
                    file.image_prefix = Some(format!("{listen}/binder-"));
                }
                registry = Some(listen.to_string());
            }
        }
    }

    // The engine: used by repo2docker (the worker's builds) and by the hub's spawner.
    let mut docker_host = None;
    let engine_free = std::env::var_os("DOCKER_HOST").is_none()
        && !file.worker.contains_key("build_engine")
        && !file
            .worker
            .get("build_env")
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key("DOCKER_HOST"));
    if engine_free {
        managed.engine_checked = true;
        let (found, note) = engine::choose(data_dir, &path).await;
        if let Some(note) = note {
            notes.warn(note);
        }
        match &found {
            Engine::Missing => {}
            Engine::Docker => managed
                .lines
                .push(format!("{:<8}  {}", "engine", found.describe())),
            Engine::Podman { socket, dir } => {
                let real = find_program("podman", &path).unwrap_or_else(|| "podman".into());
                let env = engine::podman_env(dir, registry.as_deref(), &real)
                    .with_context(|| format!("failed to set up {}", dir.display()))?;
                managed
                    .start(
                        engine::podman_service(socket, env.clone()),
                        found.describe(),
                    )
                    .await?;
                docker_host = found.docker_host();
                build_env(file, &env, dir, &python, docker_host.as_deref(), &path);
            }
        }
    }

    if hub_managed {
        if !python.exists() {
            notes.warn(format!(
                "no managed JupyterHub: {} is missing (run `cargo xtask run`, which prepares \
                 that venv, or set [managed] python, or hub_url for your own hub)",
                python.display()
            ));
            file.hub_url = None;
            return Ok(());
        }
        let listen = parse_addr(settings.hub_listen.as_deref(), HUB_LISTEN, "hub_listen")?;
        check_free(listen, "JupyterHub", "hub_listen")?;
        let token = std::env::var("BINDERY_HUB_API_TOKEN")
            .ok()
            .filter(|v| !v.is_empty())
            .or(file.hub_api_token.clone());
        let service_token = match token {
            Some(token) => token,
            None => random_token()?,
        };
        let hub = hub::HubSettings {
            python: python.clone(),
            listen,
            api_port: free_port()?,
            proxy_api_port: free_port()?,
            service_token: service_token.clone(),
            proxy_token: random_token()?,
            culler_token: random_token()?,
            // The worker's, whatever sets it (the file, [worker], the environment, the
            // default for the registry or for none).
            image_prefix: super::settings::worker_config(file, data_dir, &mut Notes::default())?
                .image_prefix,
            cull_idle: settings
                .cull_idle_seconds
                .map_or(CULL_IDLE, Duration::from_secs),
            cull_max_age: settings
                .cull_max_age_seconds
                .map_or(CULL_MAX_AGE, Duration::from_secs),
            mem_limit: settings.mem_limit.clone(),
            cpu_limit: settings.cpu_limit,
            docker_host,
            allow_origin: servers_allow_origin(
                std::env::var(format!(
                    "SPIN_VARIABLE_{}",
                    bindery_edge::config::CORS_ALLOW_ORIGIN.to_uppercase()
                ))
                .ok(),
                file,
            )?,
        };
        let dir = data_dir.join("hub");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        managed
            .start(
                hub::proxy_part(&hub, &dir),
                format!("configurable-http-proxy on {listen}"),
            )
            .await?;
        let spec = hub::hub_part(&hub, &dir)
            .with_context(|| format!("failed to set up {}", dir.display()))?;
        managed
            .start(
                spec,
                format!(
                    "JupyterHub {}, anonymous users, servers as containers",
                    hub.url()
                ),
            )
            .await?;
        managed
            .start(
                hub::culler_part(&hub, &dir),
                format!(
                    "jupyterhub-idle-culler: {} s idle, {} s at most",
                    hub.cull_idle.as_secs(),
                    hub.cull_max_age.as_secs()
                ),
            )
            .await?;
        file.hub_url = Some(hub.url());
        file.hub_api_url = None;
        file.hub_api_token = Some(service_token);
    }
    Ok(())
}

/// Points the worker's builds at podman: `DOCKER_HOST` (which makes repo2docker use the
/// podman CLI), podman's configuration, and `PATH` with the buildx shim and the venv's
/// `bin` (repo2docker) first. Keys `[worker.build_env]` sets itself are kept.
fn build_env(
    file: &mut UpFile,
    env: &[(String, OsString)],
    dir: &Path,
    python: &Path,
    docker_host: Option<&str>,
    path: &str,
) {
    let table = file
        .worker
        .entry("build_env")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(table) = table.as_table_mut() else {
        return;
    };
    let mut set = |key: &str, value: String| {
        table
            .entry(key)
            .or_insert_with(|| toml::Value::String(value));
    };
    if let Some(host) = docker_host {
        set("DOCKER_HOST", host.to_owned());
    }
    for (key, value) in env {
        set(key, value.to_string_lossy().into_owned());
    }
    let mut paths = vec![dir.join("shim")];
    if let Some(bin) = python.parent() {
        paths.push(bin.to_path_buf());
    }
    paths.extend(std::env::split_paths(path));
    if let Ok(joined) = std::env::join_paths(paths) {
        set("PATH", joined.to_string_lossy().into_owned());
    }
}

fn parse_addr(value: Option<&str>, default: &str, key: &str) -> anyhow::Result<SocketAddr> {
    let text = value.unwrap_or(default);
    text.parse()
        .with_context(|| format!("invalid [managed] {key} {text:?}"))
}

/// A loopback port free right now (for the hub's and the proxy's internal APIs).
fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener
        .local_addr()
        .context("failed to find a free port")?
        .port())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::testing::parse;
    use super::*;

    #[test]
    fn the_servers_allow_origin_is_the_edges_cors_allow_origin_checked() {
        let file = |value: &str| {
            toml::from_str::<UpFile>(&format!(
                "[edge.variables]\ncors_allow_origin = {value:?}\n"
            ))
            .unwrap()
        };
        assert_eq!(
            servers_allow_origin(
                None,
                &file("https://Book.example.org/  http://127.0.0.1:8080")
            )
            .unwrap()
            .as_deref(),
            Some("https://book.example.org http://127.0.0.1:8080")
        );
        assert_eq!(
            servers_allow_origin(None, &file("*")).unwrap().as_deref(),
            Some("*")
        );
        assert_eq!(servers_allow_origin(None, &file(" ")).unwrap(), None);
        // The environment wins over the file.
        assert_eq!(
            servers_allow_origin(Some("*".into()), &file("https://a.org"))
                .unwrap()
                .as_deref(),
            Some("*")
        );
        let err = servers_allow_origin(None, &file("book.example.org")).unwrap_err();
        assert!(err.to_string().contains("cors_allow_origin"), "{err}");
    }

    #[test]
    fn a_part_is_managed_only_when_nothing_configures_it() {
        let cases = [
            ("", true),
            ("registry_url = \"managed\"\n", true),
            ("registry_url = \"http://reg:5000\"\n", false),
            ("registry_url = \"\"\n", false),
            ("registry_url = \"none\"\n", false),
            ("[worker]\nregistry_url = \"http://reg:5000\"\n", false),
        ];
        for (text, expected) in cases {
            let file = parse(text);
            assert_eq!(
                is_managed(
                    file.registry_url.as_deref(),
                    &file,
                    "registry_url",
                    "BINDERY_TEST_UNSET_VARIABLE"
                ),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn podman_builds_get_the_socket_the_configuration_and_the_shim_but_keep_the_operators_keys() {
        let mut file = parse("[worker.build_env]\nCONTAINERS_CONF = \"/mine.conf\"\n");
        let env = vec![
            (
                "CONTAINERS_CONF".to_owned(),
                OsString::from("/managed.conf"),
            ),
            (
                "CONTAINERS_REGISTRIES_CONF".to_owned(),
                OsString::from("/reg.conf"),
            ),
        ];
        build_env(
            &mut file,
            &env,
            Path::new("/data/engine"),
            Path::new("/venv/bin/python"),
            Some("unix:///data/engine/podman.sock"),
            "/usr/bin:/bin",
        );
        let table = file.worker["build_env"].as_table().unwrap();
        let get = |k: &str| table.get(k).and_then(toml::Value::as_str);
        assert_eq!(get("CONTAINERS_CONF"), Some("/mine.conf"));
        assert_eq!(get("CONTAINERS_REGISTRIES_CONF"), Some("/reg.conf"));
        assert_eq!(get("DOCKER_HOST"), Some("unix:///data/engine/podman.sock"));
        assert_eq!(
            get("PATH"),
            Some("/data/engine/shim:/venv/bin:/usr/bin:/bin")
        );
    }
}

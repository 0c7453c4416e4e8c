//! [`WorkerConfig`]: what the worker needs, from a TOML file and/or the environment.
//!
//! The environment wins over the file, so a Kubernetes Secret can supply the tokens while
//! a ConfigMap holds the rest. Secrets are wrapped in [`Secret`], whose `Debug` prints
//! `Secret(<redacted>)`, so logging the configuration never leaks them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bindery_core::policy::{SpecPolicy, quota_from_repo_config};
use serde::Deserialize;

use crate::executor::local::LocalSettings;
use crate::kube::ExecutorSettings;

/// Secrets are `bindery_core`'s, so the edge and the worker redact them the same way.
pub use bindery_core::Secret;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("failed to parse {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's explanation.
        message: String,
    },
    /// A value (from the file or the environment) has the wrong shape.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// The setting.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// Required settings are missing.
    #[error("missing worker settings: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
}

/// Everything the worker needs to run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The bearer token the edge presents.
    pub token: Secret,
    /// JupyterHub's public base URL, ending in `/` (servers are at `<hub_url>user/<name>/`).
    pub hub_url: String,
    /// JupyterHub's REST API base, ending in `/` (default `<hub_url>hub/api/`).
    pub hub_api_url: String,
    /// The hub API token of the binder service.
    pub hub_api_token: Secret,
    /// The image prefix every image name must start with (`image_name`'s prefix).
    pub image_prefix: String,
    /// Servers per image (all tags); `None` or 0 = unlimited.
    pub per_repo_quota: Option<u32>,
    /// Servers per image for specs matching `high_quota_specs`; `None` or 0 = unlimited.
    pub per_repo_quota_higher: Option<u32>,
    /// `high_quota_specs` and `spec_config` (BinderHub's provider settings, matched against
    /// the spec as the user wrote it): a matching `spec_config` entry's `quota` overrides
    /// the per-repo quota. `None` when neither is set.
    pub spec_policy: Option<SpecPolicy>,
    /// Servers in total; `None` = unlimited, 0 = maintenance (nothing launches).
    pub total_quota: Option<u32>,
    /// How long one launch attempt may take, from creating the user to `ready`.
    pub launch_timeout: Duration,
    /// Attempts per launch (BinderHub's `Launcher.retries`): a failed attempt's user is
    /// deleted and the next attempt starts with a fresh user name.
    pub launch_retries: u32,
    /// The delay before the second attempt; it doubles for each later one.
    pub launch_retry_delay: Duration,
    /// Tries per hub API call on 5xx or connection errors.
    pub hub_retries: u32,
    /// The first delay between tries; it doubles each time.
    pub hub_retry_delay: Duration,
    /// The interval of `:keepalive` comments on a quiet event stream.
    pub keepalive_interval: Duration,
    /// The most events one log keeps; later non-final events are dropped.
    pub max_events_per_log: usize,
    /// How long a finished log stays replayable.
    pub finished_log_ttl: Duration,
    /// How often launched servers are checked against the hub to free their quota.
    pub quota_refresh_interval: Duration,
    /// How long a `/health` answer is reused (BinderHub caches its checks for 15 s), so
    /// that frequent polling does not run every check each time.
    pub health_cache: Duration,
    /// Builds: executor, queue, registry and log keeping.
    pub builds: BuildSettings,
}

/// Which executor runs builds (`executor = "local" | "kubernetes"`, `BINDERY_EXECUTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// repo2docker as a child process (`bindery up`); the default.
    #[default]
    Local,
    /// A Kubernetes Job per build ([`crate::kube::KubeExecutor`]).
    Kubernetes,
}

/// The Kubernetes executor's settings (the `[kubernetes]` section).
///
/// ```toml
/// executor = "kubernetes"
///
/// [kubernetes]
/// api_url = "https://10.0.0.1:6443"        # optional; default: in-cluster or KUBECONFIG
/// namespace = "binder"                     # or BINDERY_KUBERNETES_NAMESPACE
/// builder_image = "quay.io/jupyterhub/repo2docker:2024.07.0"
/// docker_socket = "/var/run/docker.sock"   # on the node
/// push_secret = "binder-build-docker-config"  # a docker config.json Secret; means --push
/// builder_nodes = ["node-a", "node-b"]     # sticky builds: the repo prefers one node
/// build_timeout_seconds = 3600             # activeDeadlineSeconds
/// idle_timeout_seconds = 600               # a silent build fails
/// ttl_seconds_after_finished = 600         # ttlSecondsAfterFinished
///
/// [kubernetes.node_selector]
/// "hub.jupyter.org/node-purpose" = "user"
/// ```
///
/// The top-level `build_timeout_seconds` and `build_idle_timeout_seconds` apply here too
/// unless the section sets its own. When `registry_url` is set, builds push (`--push`)
/// with the credentials of `push_secret`, which defaults to BinderHub's
/// `binder-build-docker-config`; `push_secret = ""` pushes without mounting credentials.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KubernetesSettings {
    /// The API server's URL (plain, no credentials: for tests and proxies such as
    /// `kubectl proxy`); `None` = `kube::Client::try_default()` (in-cluster or KUBECONFIG).
    pub api_url: Option<String>,
    /// The Jobs' shape and how they are followed.
    pub executor: ExecutorSettings,
}

/// How the worker builds images.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Which executor runs builds.
    pub executor: ExecutorKind,
    /// The Kubernetes executor's settings (used when `executor` is `Kubernetes`).
    pub kubernetes: KubernetesSettings,
    /// The local executor's settings (repo2docker program, engine, environment, timeouts).
    pub local: LocalSettings,
    /// The most builds that run at once; the rest wait in the queue.
    pub max_concurrent: usize,
    /// The registry images are pushed to and re-checked in (`http(s)://host[:port]`);
    /// `None` = no push, no re-check.
    pub registry_url: Option<String>,
    /// The registry username (basic auth, or for the token service).
    pub registry_username: Option<String>,
    /// The registry password.
    pub registry_password: Option<Secret>,
    /// The build log database file; `None` keeps finished logs in memory only.
    pub log_store: Option<PathBuf>,
    /// How long finished build logs are kept.
    pub log_ttl: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            executor: ExecutorKind::Local,
            kubernetes: KubernetesSettings::default(),
            local: LocalSettings::default(),
            max_concurrent: 2,
            registry_url: None,
            registry_username: None,
            registry_password: None,
            log_store: None,
            log_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The file's shape: every key optional, durations in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    token: Option<String>,
    hub_url: Option<String>,
    hub_api_url: Option<String>,
    hub_api_token: Option<String>,
    image_prefix: Option<String>,
    per_repo_quota: Option<u32>,
    per_repo_quota_higher: Option<u32>,
    high_quota_specs: Option<Vec<String>>,
    spec_config: Option<serde_json::Value>,
    total_quota: Option<u32>,
    launch_timeout_seconds: Option<f64>,
    launch_retries: Option<u32>,
    launch_retry_delay_seconds: Option<f64>,
    hub_retries: Option<u32>,
    hub_retry_delay_seconds: Option<f64>,
    keepalive_seconds: Option<f64>,
    max_events_per_log: Option<usize>,
    finished_log_ttl_seconds: Option<f64>,
    quota_refresh_seconds: Option<f64>,
    health_cache_seconds: Option<f64>,
    repo2docker: Option<String>,
    build_engine: Option<String>,
    repo2docker_config: Option<String>,
    build_env: Option<BTreeMap<String, String>>,
    max_concurrent_builds: Option<usize>,
    build_timeout_seconds: Option<f64>,
    build_idle_timeout_seconds: Option<f64>,
    registry_url: Option<String>,
    registry_username: Option<String>,
    registry_password: Option<String>,
    build_log_path: Option<String>,
    build_log_ttl_seconds: Option<f64>,
    executor: Option<String>,
    kubernetes: Option<KubeFile>,
}

/// The `[kubernetes]` section's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeFile {
    api_url: Option<String>,
    namespace: Option<String>,
    builder_image: Option<String>,
    docker_socket: Option<String>,
    push_secret: Option<String>,
    node_selector: Option<BTreeMap<String, String>>,
    builder_nodes: Option<Vec<String>>,
    build_timeout_seconds: Option<f64>,
    idle_timeout_seconds: Option<f64>,
    ttl_seconds_after_finished: Option<f64>,
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8585";

impl WorkerConfig {
    /// A configuration with BinderHub's defaults for everything but the four required values.
    pub fn new(
        token: Secret,
        hub_url: &str,
        hub_api_token: Secret,
        image_prefix: impl Into<String>,
    ) -> WorkerConfig {
        let hub_url = with_slash(hub_url);
        WorkerConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8585))),
            token,
            hub_api_url: format!("{hub_url}hub/api/"),
            hub_url,
            hub_api_token,
            image_prefix: image_prefix.into(),
            per_repo_quota: None,
            per_repo_quota_higher: None,
            spec_policy: None,
            total_quota: None,
            launch_timeout: Duration::from_secs(600),
            launch_retries: 4,
            launch_retry_delay: Duration::from_secs(4),
            hub_retries: 4,
            hub_retry_delay: Duration::from_secs(4),
            keepalive_interval: Duration::from_secs(25),
            max_events_per_log: 10_000,
            finished_log_ttl: Duration::from_secs(3600),
            quota_refresh_interval: Duration::from_secs(60),
            health_cache: Duration::from_secs(15),
            builds: BuildSettings::default(),
        }
    }

    /// Loads `file` (when given) and then the process environment over it.
    pub fn load(file: Option<&Path>) -> Result<WorkerConfig, ConfigError> {
        Self::from_sources(file, |name| std::env::var(name).ok())
    }

    /// Loads `file` (when given) and then `env` over it; `env` looks a variable up by name.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, ConfigError> {
        let raw = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: shown,
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        Self::from_file_config(raw, env)
    }

    /// The settings of a worker file given as a parsed table (what `bindery up` derives
    /// from `bindery.toml`), then `env` over them, as [`WorkerConfig::from_sources`] does
    /// for a file.
    pub fn from_table(
        settings: toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, ConfigError> {
        let raw = toml::Value::Table(settings)
            .try_into::<FileConfig>()
            .map_err(|e| ConfigError::Parse {
                path: "the worker settings".into(),
                message: e.to_string(),
            })?;
        Self::from_file_config(raw, env)
    }

    fn from_file_config(
        mut raw: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, ConfigError> {
        let text = |name: &str, slot: &mut Option<String>| {
            if let Some(v) = env(name).filter(|v| !v.is_empty()) {
                *slot = Some(v);
            }
        };
        text("BINDERY_WORKER_LISTEN", &mut raw.listen);
        text("BINDERY_WORKER_TOKEN", &mut raw.token);
        text("BINDERY_HUB_URL", &mut raw.hub_url);
        text("BINDERY_HUB_API_URL", &mut raw.hub_api_url);
        text("BINDERY_HUB_API_TOKEN", &mut raw.hub_api_token);
        text("BINDERY_IMAGE_PREFIX", &mut raw.image_prefix);
        if let Some(v) = number::<u32>(&env, "BINDERY_PER_REPO_QUOTA")? {
            raw.per_repo_quota = Some(v);
        }
        if let Some(v) = number::<u32>(&env, "BINDERY_PER_REPO_QUOTA_HIGHER")? {
            raw.per_repo_quota_higher = Some(v);
        }
        if let Some(v) = number::<u32>(&env, "BINDERY_TOTAL_QUOTA")? {
            raw.total_quota = Some(v);
        }
        if let Some(v) = number::<f64>(&env, "BINDERY_LAUNCH_TIMEOUT")? {
            raw.launch_timeout_seconds = Some(v);
        }
        if let Some(v) = number::<u32>(&env, "BINDERY_LAUNCH_RETRIES")? {
            raw.launch_retries = Some(v);
        }
        text("BINDERY_REPO2DOCKER", &mut raw.repo2docker);
        text("BINDERY_BUILD_ENGINE", &mut raw.build_engine);
        text("BINDERY_REPO2DOCKER_CONFIG", &mut raw.repo2docker_config);
        text("BINDERY_REGISTRY_URL", &mut raw.registry_url);
        text("BINDERY_REGISTRY_USERNAME", &mut raw.registry_username);
        text("BINDERY_REGISTRY_PASSWORD", &mut raw.registry_password);
        text("BINDERY_BUILD_LOG_PATH", &mut raw.build_log_path);
        text("BINDERY_EXECUTOR", &mut raw.executor);
        let mut kube_file = raw.kubernetes.take().unwrap_or_default();
        text("BINDERY_KUBERNETES_API_URL", &mut kube_file.api_url);
        text("BINDERY_KUBERNETES_NAMESPACE", &mut kube_file.namespace);
        if let Some(v) = number::<usize>(&env, "BINDERY_MAX_CONCURRENT_BUILDS")? {
            raw.max_concurrent_builds = Some(v);
        }

        let mut missing = Vec::new();
        if raw.token.is_none() {
            missing.push("the worker token (BINDERY_WORKER_TOKEN or `token`)");
        }
        if raw.hub_url.is_none() {
            missing.push("the JupyterHub URL (BINDERY_HUB_URL or `hub_url`)");
        }
        if raw.hub_api_token.is_none() {
            missing.push("the JupyterHub API token (BINDERY_HUB_API_TOKEN or `hub_api_token`)");
        }
        if raw.image_prefix.is_none() {
            missing.push("the image prefix (BINDERY_IMAGE_PREFIX or `image_prefix`)");
        }
        let (Some(token), Some(hub_url), Some(hub_api_token), Some(image_prefix)) =
            (raw.token, raw.hub_url, raw.hub_api_token, raw.image_prefix)
        else {
            return Err(ConfigError::Missing(missing));
        };
        check_url("hub_url", &hub_url)?;
        let mut config = WorkerConfig::new(
            Secret::new(token),
            &hub_url,
            Secret::new(hub_api_token),
            image_prefix,
        );
        if let Some(listen) = raw.listen {
            config.listen = listen.parse().map_err(|_| ConfigError::Invalid {
                what: "listen address".into(),
                message: format!("{listen:?} is not an address like 127.0.0.1:8585"),
            })?;
        }
        if let Some(api) = raw.hub_api_url {
            check_url("hub_api_url", &api)?;
            config.hub_api_url = with_slash(&api);
        }
        config.per_repo_quota = raw.per_repo_quota;
        config.per_repo_quota_higher = raw.per_repo_quota_higher;
        config.spec_policy = spec_policy(raw.high_quota_specs, raw.spec_config)?;
        config.total_quota = raw.total_quota;
        let seconds = |what: &str, v: Option<f64>, slot: &mut Duration| {
            if let Some(v) = v {
                *slot = Duration::try_from_secs_f64(v).map_err(|_| ConfigError::Invalid {
                    what: what.into(),
                    message: format!("{v} is not a number of seconds"),
                })?;
            }
            Ok::<(), ConfigError>(())
        };
        seconds(
            "launch_timeout_seconds",
            raw.launch_timeout_seconds,
            &mut config.launch_timeout,
        )?;
        seconds(
            "launch_retry_delay_seconds",
            raw.launch_retry_delay_seconds,
            &mut config.launch_retry_delay,
        )?;
        seconds(
            "hub_retry_delay_seconds",
            raw.hub_retry_delay_seconds,
            &mut config.hub_retry_delay,
        )?;
        seconds(
            "keepalive_seconds",
            raw.keepalive_seconds,
            &mut config.keepalive_interval,
        )?;
        seconds(
            "finished_log_ttl_seconds",
            raw.finished_log_ttl_seconds,
            &mut config.finished_log_ttl,
        )?;
        seconds(
            "quota_refresh_seconds",
            raw.quota_refresh_seconds,
            &mut config.quota_refresh_interval,
        )?;
        seconds(
            "health_cache_seconds",
            raw.health_cache_seconds,
            &mut config.health_cache,
        )?;
        let builds = &mut config.builds;
        seconds(
            "build_timeout_seconds",
            raw.build_timeout_seconds,
            &mut builds.local.build_timeout,
        )?;
        seconds(
            "build_idle_timeout_seconds",
            raw.build_idle_timeout_seconds,
            &mut builds.local.idle_timeout,
        )?;
        seconds(
            "build_log_ttl_seconds",
            raw.build_log_ttl_seconds,
            &mut builds.log_ttl,
        )?;
        if let Some(program) = raw.repo2docker {
            builds.local.repo2docker = PathBuf::from(program);
        }
        if let Some(engine) = raw.build_engine {
            if engine != "docker" && engine != "podman" {
                return Err(ConfigError::Invalid {
                    what: "build_engine".into(),
                    message: format!("{engine:?} is neither docker nor podman"),
                });
            }
            builds.local.engine = Some(engine);
        }
        builds.local.config_file = raw.repo2docker_config.map(PathBuf::from);
        builds.local.env = raw.build_env.unwrap_or_default().into_iter().collect();
        if let Some(url) = raw.registry_url {
            check_url("registry_url", &url)?;
            builds.local.push = true;
            builds.registry_url = Some(url);
        }
        builds.registry_username = raw.registry_username;
        builds.registry_password = raw.registry_password.map(Secret::new);
        builds.log_store = raw.build_log_path.map(PathBuf::from);
        if let Some(n) = raw.max_concurrent_builds {
            builds.max_concurrent = n.max(1);
        }
        builds.executor = match raw.executor.as_deref() {
            None | Some("local") => ExecutorKind::Local,
            Some("kubernetes") => ExecutorKind::Kubernetes,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    what: "executor (BINDERY_EXECUTOR or `executor`)".into(),
                    message: format!("{other:?} is neither \"local\" nor \"kubernetes\""),
                });
            }
        };
        let registry_configured = builds.registry_url.is_some();
        let kube = &mut builds.kubernetes;
        kube.executor.job.build_timeout = builds.local.build_timeout;
        kube.executor.idle_timeout = builds.local.idle_timeout;
        seconds(
            "kubernetes.build_timeout_seconds",
            kube_file.build_timeout_seconds,
            &mut kube.executor.job.build_timeout,
        )?;
        seconds(
            "kubernetes.idle_timeout_seconds",
            kube_file.idle_timeout_seconds,
            &mut kube.executor.idle_timeout,
        )?;
        seconds(
            "kubernetes.ttl_seconds_after_finished",
            kube_file.ttl_seconds_after_finished,
            &mut kube.executor.job.ttl_after_finished,
        )?;
        if let Some(url) = kube_file.api_url {
            check_url("kubernetes.api_url", &url)?;
            kube.api_url = Some(url);
        }
        let job = &mut kube.executor.job;
        if let Some(v) = kube_file.namespace {
            job.namespace = v;
        }
        if let Some(v) = kube_file.builder_image {
            job.builder_image = v;
        }
        if let Some(v) = kube_file.docker_socket {
            job.docker_socket = v;
        }
        job.push = registry_configured;
        job.push_secret = match kube_file.push_secret {
            Some(name) if name.is_empty() => None,
            Some(name) => Some(name),
            None if registry_configured => Some(crate::kube::job::DEFAULT_PUSH_SECRET.into()),
            None => None,
        };
        job.node_selector = kube_file.node_selector.unwrap_or_default();
        job.builder_nodes = kube_file.builder_nodes.unwrap_or_default();
        if let Some(n) = raw.hub_retries {
            config.hub_retries = n.max(1);
        }
        if let Some(n) = raw.launch_retries {
            config.launch_retries = n.max(1);
        }
        if let Some(n) = raw.max_events_per_log {
            config.max_events_per_log = n.max(2);
        }
        Ok(config)
    }
}

/// Compiles `high_quota_specs` and `spec_config`, refusing a bad pattern, a malformed
/// entry or a `quota` that is not a non-negative integer (BinderHub refuses them too, but
/// only when a launch evaluates them; here the worker will not start).
fn spec_policy(
    high_quota_specs: Option<Vec<String>>,
    spec_config: Option<serde_json::Value>,
) -> Result<Option<SpecPolicy>, ConfigError> {
    if high_quota_specs.is_none() && spec_config.is_none() {
        return Ok(None);
    }
    let spec_config = spec_config.unwrap_or(serde_json::Value::Null);
    let invalid = |message: String| ConfigError::Invalid {
        what: "high_quota_specs or spec_config".into(),
        message,
    };
    let policy = SpecPolicy::new(
        &[],
        &[],
        &high_quota_specs.unwrap_or_default(),
        spec_config.clone(),
    )
    .map_err(|e| invalid(e.to_string()))?;
    // `new` checked the shape: a list of objects whose `config` is an object.
    for (i, entry) in spec_config.as_array().into_iter().flatten().enumerate() {
        if let Some(config) = entry.get("config").and_then(serde_json::Value::as_object) {
            quota_from_repo_config(config)
                .map_err(|e| invalid(format!("spec_config entry {i}: {e}")))?;
        }
    }
    Ok(Some(policy))
}

fn number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                what: name.into(),
                message: format!("{v:?} is not a number"),
            }),
    }
}

fn check_url(what: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            what: what.into(),
            message: format!("{url:?} is not an http(s) URL"),
        })
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_environment_alone_is_enough_and_secrets_are_redacted() {
        let config = WorkerConfig::from_sources(
            None,
            env_of(&[
                ("BINDERY_WORKER_TOKEN", "worker-secret"),
                ("BINDERY_HUB_URL", "http://hub:8000"),
                ("BINDERY_HUB_API_TOKEN", "hub-secret"),
                ("BINDERY_IMAGE_PREFIX", "reg/binder-"),
                ("BINDERY_TOTAL_QUOTA", "3"),
            ]),
        )
        .expect("config");
        assert_eq!(config.hub_url, "http://hub:8000/");
        assert_eq!(config.hub_api_url, "http://hub:8000/hub/api/");
        assert_eq!(config.total_quota, Some(3));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("worker-secret") && !shown.contains("hub-secret"),
            "{shown}"
        );
    }

    #[test]
    fn launch_retries_default_to_binderhubs_and_are_read_from_the_file_and_environment() {
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, required).expect("write");
        let config = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect("config");
        assert_eq!(config.launch_retries, 4);
        assert_eq!(config.launch_retry_delay, Duration::from_secs(4));
        std::fs::write(
            &path,
            format!("{required}launch_retries = 0\nlaunch_retry_delay_seconds = 0.25\n"),
        )
        .expect("write");
        let config = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect("config");
        assert_eq!(config.launch_retries, 1, "at least one attempt");
        assert_eq!(config.launch_retry_delay, Duration::from_millis(250));
        let config =
            WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_LAUNCH_RETRIES", "2")]))
                .expect("config");
        assert_eq!(config.launch_retries, 2);
    }

    #[test]
    fn a_registry_makes_kubernetes_builds_push_with_the_default_push_secret() {
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\nexecutor = \"kubernetes\"\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let job_of = |extra: &str| {
            std::fs::write(&path, format!("{required}{extra}")).expect("write");
            let config = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect("config");
            config.builds.kubernetes.executor.job
        };
        let job = job_of("");
        assert!(
            !job.push && job.push_secret.is_none(),
            "no registry, no push"
        );
        let job = job_of("registry_url = \"http://reg:5000\"\n");
        assert!(job.push);
        assert_eq!(
            job.push_secret.as_deref(),
            Some("binder-build-docker-config")
        );
        let job =
            job_of("registry_url = \"http://reg:5000\"\n[kubernetes]\npush_secret = \"mine\"\n");
        assert!(job.push);
        assert_eq!(job.push_secret.as_deref(), Some("mine"));
        let job = job_of("registry_url = \"http://reg:5000\"\n[kubernetes]\npush_secret = \"\"\n");
        assert!(
            job.push && job.push_secret.is_none(),
            "push without credentials"
        );
    }

    #[test]
    fn a_missing_setting_is_named_with_its_variable() {
        let err = WorkerConfig::from_sources(None, env_of(&[("BINDERY_HUB_URL", "http://h/")]))
            .expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("BINDERY_WORKER_TOKEN"), "{text}");
        assert!(text.contains("BINDERY_HUB_API_TOKEN"), "{text}");
        assert!(text.contains("BINDERY_IMAGE_PREFIX"), "{text}");
        assert!(!text.contains("BINDERY_HUB_URL"), "{text}");
    }

    #[test]
    fn the_file_is_read_and_the_environment_wins_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "token = \"from-file\"\nhub_url = \"http://file/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\nlisten = \"0.0.0.0:9000\"\nkeepalive_seconds = 0.5\n",
        )
        .expect("write");
        let config =
            WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_HUB_URL", "http://env/")]))
                .expect("config");
        assert_eq!(config.token.expose(), "from-file");
        assert_eq!(config.hub_url, "http://env/");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.keepalive_interval, Duration::from_millis(500));
        std::fs::write(
            &path,
            format!(
                "{}repo2docker = \"/opt/r2d\"\nbuild_engine = \"podman\"\nmax_concurrent_builds = 3\nbuild_idle_timeout_seconds = 30\nregistry_url = \"http://reg:5000\"\nregistry_password = \"reg-secret\"\nbuild_log_path = \"/var/lib/bindery/logs.redb\"\n[build_env]\nDOCKER_HOST = \"unix:///run/podman.sock\"\n",
                "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\n"
            ),
        )
        .expect("write");
        let config = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect("build keys");
        let builds = &config.builds;
        assert_eq!(builds.local.repo2docker, PathBuf::from("/opt/r2d"));
        assert_eq!(builds.local.engine.as_deref(), Some("podman"));
        assert!(builds.local.push, "a registry means --push");
        assert_eq!(builds.max_concurrent, 3);
        assert_eq!(builds.local.idle_timeout, Duration::from_secs(30));
        assert_eq!(
            builds.local.env,
            [(
                "DOCKER_HOST".to_owned(),
                "unix:///run/podman.sock".to_owned()
            )]
        );
        assert!(!format!("{config:?}").contains("reg-secret"));
        std::fs::write(&path, "tokn = \"typo\"\n").expect("write");
        let err = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect_err("unknown key");
        assert!(err.to_string().contains("tokn"), "{err}");
    }

    #[test]
    fn the_kubernetes_section_maps_to_the_executor_settings_and_the_environment_picks_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\nbuild_idle_timeout_seconds = 30\n[kubernetes]\napi_url = \"http://127.0.0.1:6443\"\nnamespace = \"binder\"\nbuilder_image = \"r2d:1\"\ndocker_socket = \"/run/dind.sock\"\npush_secret = \"push\"\nbuilder_nodes = [\"a\", \"b\"]\nbuild_timeout_seconds = 120\nttl_seconds_after_finished = 60\n[kubernetes.node_selector]\npurpose = \"build\"\n",
        )
        .expect("write");
        let config = WorkerConfig::from_sources(Some(&path), env_of(&[])).expect("config");
        assert_eq!(config.builds.executor, ExecutorKind::Local);
        let config =
            WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_EXECUTOR", "kubernetes")]))
                .expect("config");
        let kube = &config.builds.kubernetes;
        assert_eq!(config.builds.executor, ExecutorKind::Kubernetes);
        assert_eq!(kube.api_url.as_deref(), Some("http://127.0.0.1:6443"));
        let job = &kube.executor.job;
        assert_eq!(job.namespace, "binder");
        assert_eq!(job.builder_image, "r2d:1");
        assert_eq!(job.docker_socket, "/run/dind.sock");
        assert_eq!(job.push_secret.as_deref(), Some("push"));
        assert_eq!(job.builder_nodes, ["a", "b"]);
        assert_eq!(
            job.node_selector.get("purpose").map(String::as_str),
            Some("build")
        );
        assert_eq!(job.build_timeout, Duration::from_secs(120));
        assert_eq!(job.ttl_after_finished, Duration::from_secs(60));
        assert_eq!(
            kube.executor.idle_timeout,
            Duration::from_secs(30),
            "the top-level value"
        );
        let err = WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_EXECUTOR", "nomad")]))
            .expect_err("unknown executor");
        assert!(err.to_string().contains("BINDERY_EXECUTOR"), "{err}");
    }
}

//! [`WorkerConfig`]: what the worker needs, from a TOML file and/or the environment.
//!
//! The environment wins over the file, so a Kubernetes Secret can supply the tokens while
//! a ConfigMap holds the rest. Secrets are wrapped in [`Secret`], whose `Debug` prints
//! `Secret(<redacted>)`, so logging the configuration never leaks them.
//!
//! `file` reads the file's shape and lays the environment over it; `load` checks those raw
//! values and makes the typed configuration of them; `pod` checks the build pod's settings.

mod file;
mod load;
mod pod;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bindery_core::policy::SpecPolicy;
use bindery_core::provider::ProviderSettings;

use crate::build_hosts::BuildHosts;
use crate::executor::ExecutorSettings;
use crate::queue::PendingLimits;

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
    /// The provider settings repository URLs depend on, as the edge's: `hydroshare_base`
    /// (`BINDERY_HYDROSHARE_BASE`). A request whose repository URL is not the one its spec
    /// gives under these settings is refused.
    pub providers: ProviderSettings,
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
    /// About the most bytes one launch's or build's log keeps: past it, its first and last
    /// halves stay, with a marker between (and a stored build log is as long at most).
    pub max_log_bytes: usize,
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

/// How the worker builds images.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Which executor runs builds, with its settings (`executor` and the `[kubernetes]`
    /// section; the local executor's keys are top-level: `repo2docker`, `build_engine`, ...).
    pub executor: ExecutorSettings,
    /// The most builds that run at once; the rest wait in the queue.
    pub max_concurrent: usize,
    /// The queue's bounds: builds waiting or running in total (`max_pending_builds`) and
    /// per client address (`max_pending_builds_per_client`).
    pub pending: PendingLimits,
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
    /// Which repository hosts builds may reach (`allowed_build_hosts`, `cluster_networks`,
    /// `build_host_lookup_timeout_seconds`); checked when a launch or build is admitted.
    pub hosts: BuildHosts,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            executor: ExecutorSettings::default(),
            max_concurrent: 2,
            pending: PendingLimits::default(),
            registry_url: None,
            registry_username: None,
            registry_password: None,
            log_store: None,
            log_ttl: Duration::from_secs(7 * 24 * 3600),
            hosts: BuildHosts::default(),
        }
    }
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
            providers: ProviderSettings::default(),
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
            max_log_bytes: crate::events::DEFAULT_MAX_LOG_BYTES,
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
        load::from_raw(file::with_env(file::read(file)?, env)?)
    }

    /// The settings of a worker file given as a parsed table (what `bindery up` derives
    /// from `bindery.toml`), then `env` over them, as [`WorkerConfig::from_sources`] does
    /// for a file.
    pub fn from_table(
        settings: toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, ConfigError> {
        load::from_raw(file::with_env(file::from_table(settings)?, env)?)
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
            match config.builds.executor {
                ExecutorSettings::Kubernetes(kube) => kube.job,
                other => panic!("not the Kubernetes executor: {other:?}"),
            }
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

    #[tokio::test]
    async fn build_hosts_come_from_the_file_or_the_environment_and_bad_entries_stop_the_load() {
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let load = |extra: &str, env: &'static [(&'static str, &'static str)]| {
            std::fs::write(&path, format!("{required}{extra}")).expect("write");
            WorkerConfig::from_sources(Some(&path), env_of(env))
        };
        let loopback = "http://127.0.0.1:8080/r.git";
        let hosts = load("", &[]).expect("config").builds.hosts;
        assert!(
            hosts.check(loopback).await.is_err(),
            "nothing allowed by default"
        );
        let hosts = load("allowed_build_hosts = [\"127.0.0.1:8080\"]\n", &[])
            .expect("config")
            .builds
            .hosts;
        assert_eq!(hosts.check(loopback).await, Ok(()));
        let config = load(
            "build_host_lookup_timeout_seconds = 0.5\n",
            &[
                ("BINDERY_ALLOWED_BUILD_HOSTS", "git.local, 127.0.0.1"),
                ("BINDERY_CLUSTER_NETWORKS", "93.184.216.0/24"),
            ],
        )
        .expect("config");
        let hosts = config.builds.hosts;
        assert_eq!(hosts.check(loopback).await, Ok(()));
        assert_eq!(hosts.dns_timeout(), Duration::from_millis(500));
        let err = hosts.check("https://93.184.216.34/r").await.unwrap_err();
        assert!(err.to_string().contains("cluster_networks"), "{err}");
        for bad in [
            "allowed_build_hosts = [\"*\"]\n",
            "cluster_networks = [\"10.0.0.0/40\"]\n",
        ] {
            let err = load(bad, &[]).expect_err(bad).to_string();
            assert!(
                err.contains("allowed_build_hosts or cluster_networks"),
                "{err}"
            );
        }
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
        assert_eq!(
            config.providers.hydroshare_base,
            "https://www.hydroshare.org"
        );
        let hydroshare = WorkerConfig::from_sources(
            Some(&path),
            env_of(&[("BINDERY_HYDROSHARE_BASE", "http://hs.test/")]),
        )
        .expect("config");
        assert_eq!(hydroshare.providers.hydroshare_base, "http://hs.test");
        let refused = WorkerConfig::from_sources(
            Some(&path),
            env_of(&[("BINDERY_HYDROSHARE_BASE", "hs.test")]),
        );
        assert!(
            matches!(&refused, Err(ConfigError::Invalid { what, .. }) if what == "hydroshare_base"),
            "{refused:?}"
        );
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
        let local = builds.executor.local().expect("the local executor");
        assert_eq!(local.repo2docker, PathBuf::from("/opt/r2d"));
        assert_eq!(local.engine.as_deref(), Some("podman"));
        assert!(local.push, "a registry means --push");
        assert_eq!(builds.max_concurrent, 3);
        assert_eq!(local.idle_timeout, Duration::from_secs(30));
        assert_eq!(
            local.env,
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
        assert_eq!(config.builds.executor.name(), "local");
        let config =
            WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_EXECUTOR", "kubernetes")]))
                .expect("config");
        let ExecutorSettings::Kubernetes(kube) = &config.builds.executor else {
            panic!("not the Kubernetes executor: {:?}", config.builds.executor);
        };
        assert_eq!(kube.api_url.as_deref(), Some("http://127.0.0.1:6443"));
        let job = &kube.job;
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
            kube.idle_timeout,
            Duration::from_secs(30),
            "the top-level value"
        );
        let err = WorkerConfig::from_sources(Some(&path), env_of(&[("BINDERY_EXECUTOR", "nomad")]))
            .expect_err("unknown executor");
        assert!(err.to_string().contains("BINDERY_EXECUTOR"), "{err}");
    }

    #[test]
    fn the_builder_type_and_the_build_pod_settings_are_read_and_checked() {
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\nexecutor = \"kubernetes\"\n[kubernetes]\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let load = |extra: &str| {
            std::fs::write(&path, format!("{required}{extra}")).expect("write");
            WorkerConfig::from_sources(Some(&path), env_of(&[])).map(|config| {
                match config.builds.executor {
                    ExecutorSettings::Kubernetes(kube) => kube,
                    other => panic!("not the Kubernetes executor: {other:?}"),
                }
            })
        };
        use crate::executor::kubernetes::BuilderType;
        let kube = load("").expect("defaults");
        assert_eq!(kube.builder_type, BuilderType::Host);
        assert_eq!(kube.job.docker_socket, "/var/run/docker.sock");
        // (settings, builder type, socket)
        let types = [
            (
                "builder_type = \"dind\"\n",
                BuilderType::Dind,
                "/var/run/dind/docker.sock",
            ),
            (
                "builder_type = \"pink\"\n",
                BuilderType::Pink,
                "/var/run/pink/podman.sock",
            ),
            (
                "builder_type = \"pink\"\ndocker_socket = \"/run/podman.sock\"\n",
                BuilderType::Pink,
                "/run/podman.sock",
            ),
        ];
        for (extra, kind, socket) in types {
            let kube = load(extra).expect(extra);
            assert_eq!(
                (kube.builder_type, kube.job.docker_socket.as_str()),
                (kind, socket)
            );
        }
        let kube = load(concat!(
            "builder_selector = \"component=builder\"\n",
            "repo2docker_extra_args = [\"--Repo2Docker.default_buildpack=None\"]\n",
            "appendix = \"RUN true\"\nimage_pull_secrets = [\"pull\"]\n",
            "tolerations = [{ key = \"k\", operator = \"Exists\", effect = \"NoSchedule\", tolerationSeconds = 5 }]\n",
            "resources = { requests = { cpu = \"500m\" }, limits = { memory = \"2Gi\" } }\n",
            "extra_env = { GIT_LFS_SKIP_SMUDGE = \"1\" }\n",
        ))
        .expect("pod settings");
        assert_eq!(kube.builder_selector, "component=builder");
        let job = &kube.job;
        assert_eq!(job.extra_args, ["--Repo2Docker.default_buildpack=None"]);
        assert_eq!(job.appendix.as_deref(), Some("RUN true"));
        assert_eq!(job.image_pull_secrets, ["pull"]);
        assert_eq!(job.tolerations[0].toleration_seconds, Some(5));
        let resources = job.resources.clone().expect("resources");
        assert_eq!(resources.limits.expect("limits")["memory"].0, "2Gi");
        assert_eq!(job.env["GIT_LFS_SKIP_SMUDGE"], "1");
        // (settings, the setting the error names)
        let refused = [
            ("builder_type = \"docker\"\n", "kubernetes.builder_type"),
            (
                "resources = { limits = { memory = \"2 GB\" } }\n",
                "kubernetes.resources.limits.memory",
            ),
            ("resources = { limit = { memory = \"2Gi\" } }\n", "limit"),
            (
                "tolerations = [{ key = \"k\", operator = \"In\" }]\n",
                "kubernetes.tolerations[0]",
            ),
            (
                "tolerations = [{ key = \"k\", tolerationseconds = 5 }]\n",
                "tolerationseconds",
            ),
            ("extra_env = { \"A=B\" = \"1\" }\n", "kubernetes.extra_env"),
        ];
        for (extra, named) in refused {
            let err = load(extra).expect_err(extra).to_string();
            assert!(err.contains(named), "{extra}: {err}");
        }
    }

    #[test]
    fn the_queue_and_log_bounds_default_and_are_read_from_the_file_and_environment() {
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        // (file lines, environment, (total, per client, log bytes)).
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            (usize, usize, usize),
        );
        let cases: [Case; 4] = [
            ("", &[], (100, 5, 4 * 1024 * 1024)),
            (
                "max_pending_builds = 7\nmax_pending_builds_per_client = 2\nmax_log_bytes = 100000\n",
                &[],
                (7, 2, 100_000),
            ),
            (
                "max_pending_builds = 7\n",
                &[
                    ("BINDERY_MAX_PENDING_BUILDS", "9"),
                    ("BINDERY_MAX_PENDING_BUILDS_PER_CLIENT", "3"),
                ],
                (9, 3, 4 * 1024 * 1024),
            ),
            // Zero would refuse everything; too small a log would keep no whole line.
            (
                "max_pending_builds = 0\nmax_pending_builds_per_client = 0\nmax_log_bytes = 10\n",
                &[],
                (1, 1, 64 * 1024),
            ),
        ];
        for (lines, env, (total, per_client, bytes)) in cases {
            std::fs::write(&path, format!("{required}{lines}")).expect("write");
            let config = WorkerConfig::from_sources(Some(&path), env_of(env)).expect("config");
            assert_eq!(config.builds.pending.total, total, "{lines}");
            assert_eq!(config.builds.pending.per_client, per_client, "{lines}");
            assert_eq!(config.max_log_bytes, bytes, "{lines}");
        }
    }
}

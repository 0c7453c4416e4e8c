//! From the raw values of the file and the environment to a checked [`WorkerConfig`]:
//! required settings named with their variables, URLs, durations, the spec policy, and the
//! executor with its settings.

use std::path::PathBuf;
use std::time::Duration;

use bindery_core::policy::{SpecPolicy, quota_from_repo_config};

use super::file::{FileConfig, KubeFile};
use super::pod;
use super::{BuildSettings, ConfigError, Secret, WorkerConfig, with_slash};
use crate::build_hosts::BuildHosts;
use crate::executor::kubernetes::BuilderType;
use crate::executor::kubernetes::job::DEFAULT_PUSH_SECRET;
use crate::executor::{ExecutorSettings, KubernetesSettings, LocalSettings};

/// Checks `raw` and makes the configuration of it.
pub(super) fn from_raw(mut raw: FileConfig) -> Result<WorkerConfig, ConfigError> {
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
    let (Some(token), Some(hub_url), Some(hub_api_token), Some(image_prefix)) = (
        raw.token.take(),
        raw.hub_url.take(),
        raw.hub_api_token.take(),
        raw.image_prefix.take(),
    ) else {
        return Err(ConfigError::Missing(missing));
    };
    check_url("hub_url", &hub_url)?;
    let mut config = WorkerConfig::new(
        Secret::new(token),
        &hub_url,
        Secret::new(hub_api_token),
        image_prefix,
    );
    if let Some(listen) = raw.listen.take() {
        config.listen = listen.parse().map_err(|_| ConfigError::Invalid {
            what: "listen address".into(),
            message: format!("{listen:?} is not an address like 127.0.0.1:8585"),
        })?;
    }
    if let Some(base) = raw.hydroshare_base.take() {
        check_url("hydroshare_base", &base)?;
        config.providers.hydroshare_base = base.trim_end_matches('/').to_owned();
    }
    if let Some(api) = raw.hub_api_url.take() {
        check_url("hub_api_url", &api)?;
        config.hub_api_url = with_slash(&api);
    }
    config.per_repo_quota = raw.per_repo_quota;
    config.per_repo_quota_higher = raw.per_repo_quota_higher;
    config.spec_policy = spec_policy(raw.high_quota_specs.take(), raw.spec_config.take())?;
    config.total_quota = raw.total_quota;
    for (what, value, slot) in [
        (
            "launch_timeout_seconds",
            raw.launch_timeout_seconds,
            &mut config.launch_timeout,
        ),
        (
            "launch_retry_delay_seconds",
            raw.launch_retry_delay_seconds,
            &mut config.launch_retry_delay,
        ),
        (
            "hub_retry_delay_seconds",
            raw.hub_retry_delay_seconds,
            &mut config.hub_retry_delay,
        ),
        (
            "keepalive_seconds",
            raw.keepalive_seconds,
            &mut config.keepalive_interval,
        ),
        (
            "finished_log_ttl_seconds",
            raw.finished_log_ttl_seconds,
            &mut config.finished_log_ttl,
        ),
        (
            "quota_refresh_seconds",
            raw.quota_refresh_seconds,
            &mut config.quota_refresh_interval,
        ),
        (
            "health_cache_seconds",
            raw.health_cache_seconds,
            &mut config.health_cache,
        ),
    ] {
        seconds(what, value, slot)?;
    }
    config.builds = build_settings(&mut raw)?;
    if let Some(n) = raw.hub_retries {
        config.hub_retries = n.max(1);
    }
    if let Some(n) = raw.launch_retries {
        config.launch_retries = n.max(1);
    }
    if let Some(n) = raw.max_events_per_log {
        config.max_events_per_log = n.max(2);
    }
    // The queue's and the logs' bounds (issue 13).
    if let Some(n) = raw.max_log_bytes {
        config.max_log_bytes = n.max(MIN_LOG_BYTES);
    }
    if let Some(n) = raw.max_pending_builds {
        config.builds.pending.total = n.max(1);
    }
    if let Some(n) = raw.max_pending_builds_per_client {
        config.builds.pending.per_client = n.max(1);
    }
    Ok(config)
}

/// The smallest log byte cap: room for a few whole lines of head and of tail.
const MIN_LOG_BYTES: usize = 64 * 1024;

/// The build settings: the local executor's keys, the registry, the log store, and the
/// executor `executor` names with its settings. Both executors' keys are checked whichever
/// is chosen, so a mistake shows before the operator switches.
fn build_settings(raw: &mut FileConfig) -> Result<BuildSettings, ConfigError> {
    let mut builds = BuildSettings::default();
    let mut local = LocalSettings::default();
    seconds(
        "build_timeout_seconds",
        raw.build_timeout_seconds,
        &mut local.build_timeout,
    )?;
    seconds(
        "build_idle_timeout_seconds",
        raw.build_idle_timeout_seconds,
        &mut local.idle_timeout,
    )?;
    seconds(
        "build_log_ttl_seconds",
        raw.build_log_ttl_seconds,
        &mut builds.log_ttl,
    )?;
    if let Some(program) = raw.repo2docker.take() {
        local.repo2docker = PathBuf::from(program);
    }
    if let Some(engine) = raw.build_engine.take() {
        if engine != "docker" && engine != "podman" {
            return Err(ConfigError::Invalid {
                what: "build_engine".into(),
                message: format!("{engine:?} is neither docker nor podman"),
            });
        }
        local.engine = Some(engine);
    }
    local.config_file = raw.repo2docker_config.take().map(PathBuf::from);
    let mut lookup_timeout = crate::build_hosts::DEFAULT_DNS_TIMEOUT;
    seconds(
        "build_host_lookup_timeout_seconds",
        raw.build_host_lookup_timeout_seconds,
        &mut lookup_timeout,
    )?;
    builds.hosts = BuildHosts::new(
        &raw.allowed_build_hosts.take().unwrap_or_default(),
        &raw.cluster_networks.take().unwrap_or_default(),
        lookup_timeout,
    )
    .map_err(|e| ConfigError::Invalid {
        what: "allowed_build_hosts or cluster_networks".into(),
        message: e.to_string(),
    })?;
    local.env = raw
        .build_env
        .take()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(url) = raw.registry_url.take() {
        check_url("registry_url", &url)?;
        local.push = true;
        builds.registry_url = Some(url);
    }
    builds.registry_username = raw.registry_username.take();
    builds.registry_password = raw.registry_password.take().map(Secret::new);
    builds.log_store = raw.build_log_path.take().map(PathBuf::from);
    if let Some(n) = raw.max_concurrent_builds {
        builds.max_concurrent = n.max(1);
    }
    let on_kubernetes = match raw.executor.as_deref() {
        None | Some("local") => false,
        Some("kubernetes") => true,
        Some(other) => {
            return Err(ConfigError::Invalid {
                what: "executor (BINDERY_EXECUTOR or `executor`)".into(),
                message: format!("{other:?} is neither \"local\" nor \"kubernetes\""),
            });
        }
    };
    let kube_file = raw.kubernetes.take().unwrap_or_default();
    let kubernetes = kubernetes_settings(kube_file, &local, builds.registry_url.is_some())?;
    builds.executor = if on_kubernetes {
        ExecutorSettings::Kubernetes(kubernetes)
    } else {
        ExecutorSettings::Local(local)
    };
    Ok(builds)
}

/// The `[kubernetes]` section over the top-level build timeouts of `local`; a configured
/// registry means `--push` with the default push secret unless the section names one.
fn kubernetes_settings(
    file: KubeFile,
    local: &LocalSettings,
    registry_configured: bool,
) -> Result<KubernetesSettings, ConfigError> {
    let mut kube = KubernetesSettings::default();
    kube.job.build_timeout = local.build_timeout;
    kube.idle_timeout = local.idle_timeout;
    seconds(
        "kubernetes.build_timeout_seconds",
        file.build_timeout_seconds,
        &mut kube.job.build_timeout,
    )?;
    seconds(
        "kubernetes.idle_timeout_seconds",
        file.idle_timeout_seconds,
        &mut kube.idle_timeout,
    )?;
    seconds(
        "kubernetes.ttl_seconds_after_finished",
        file.ttl_seconds_after_finished,
        &mut kube.job.ttl_after_finished,
    )?;
    if let Some(url) = file.api_url {
        check_url("kubernetes.api_url", &url)?;
        kube.api_url = Some(url);
    }
    let job = &mut kube.job;
    if let Some(v) = file.namespace {
        job.namespace = v;
    }
    if let Some(v) = file.builder_image {
        job.builder_image = v;
    }
    if let Some(name) = file.builder_type {
        kube.builder_type = BuilderType::from_name(&name).ok_or_else(|| ConfigError::Invalid {
            what: "kubernetes.builder_type".into(),
            message: format!("{name:?} is none of \"host\", \"dind\", \"pink\""),
        })?;
    }
    job.docker_socket = file
        .docker_socket
        .unwrap_or_else(|| kube.builder_type.default_socket().into());
    if let Some(v) = file.builder_selector {
        kube.builder_selector = v;
    }
    if let Some(resources) = file.resources {
        job.resources = Some(pod::resources(resources)?);
    }
    job.extra_args = file.repo2docker_extra_args.unwrap_or_default();
    job.appendix = file.appendix.filter(|a| !a.is_empty());
    job.env = pod::env(file.extra_env.unwrap_or_default())?;
    job.image_pull_secrets = file.image_pull_secrets.unwrap_or_default();
    job.tolerations = pod::tolerations(file.tolerations.unwrap_or_default())?;
    job.push = registry_configured;
    job.push_secret = match file.push_secret {
        Some(name) if name.is_empty() => None,
        Some(name) => Some(name),
        None if registry_configured => Some(DEFAULT_PUSH_SECRET.into()),
        None => None,
    };
    job.node_selector = file.node_selector.unwrap_or_default();
    job.builder_nodes = file.builder_nodes.unwrap_or_default();
    Ok(kube)
}

/// Sets `slot` to `value` seconds, when given.
fn seconds(what: &str, value: Option<f64>, slot: &mut Duration) -> Result<(), ConfigError> {
    if let Some(v) = value {
        *slot = Duration::try_from_secs_f64(v).map_err(|_| ConfigError::Invalid {
            what: what.into(),
            message: format!("{v} is not a number of seconds"),
        })?;
    }
    Ok(())
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

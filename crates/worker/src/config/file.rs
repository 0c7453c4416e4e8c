//! The sources of the worker's configuration: the TOML file's shape (every key optional,
//! durations in seconds, unknown keys refused) and the environment variables laid over it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// The file's shape: every key optional, durations in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) token: Option<String>,
    pub(super) hub_url: Option<String>,
    pub(super) hub_api_url: Option<String>,
    pub(super) hub_api_token: Option<String>,
    pub(super) image_prefix: Option<String>,
    pub(super) hydroshare_base: Option<String>,
    pub(super) per_repo_quota: Option<u32>,
    pub(super) per_repo_quota_higher: Option<u32>,
    pub(super) high_quota_specs: Option<Vec<String>>,
    pub(super) spec_config: Option<serde_json::Value>,
    pub(super) total_quota: Option<u32>,
    pub(super) launch_timeout_seconds: Option<f64>,
    pub(super) launch_retries: Option<u32>,
    pub(super) launch_retry_delay_seconds: Option<f64>,
    pub(super) hub_retries: Option<u32>,
    pub(super) hub_retry_delay_seconds: Option<f64>,
    pub(super) keepalive_seconds: Option<f64>,
    pub(super) max_events_per_log: Option<usize>,
    pub(super) max_log_bytes: Option<usize>,
    pub(super) max_pending_builds: Option<usize>,
    pub(super) max_pending_builds_per_client: Option<usize>,
    pub(super) finished_log_ttl_seconds: Option<f64>,
    pub(super) quota_refresh_seconds: Option<f64>,
    pub(super) health_cache_seconds: Option<f64>,
    pub(super) repo2docker: Option<String>,
    pub(super) build_engine: Option<String>,
    pub(super) repo2docker_config: Option<String>,
    pub(super) build_env: Option<BTreeMap<String, String>>,
    pub(super) allowed_build_hosts: Option<Vec<String>>,
    pub(super) cluster_networks: Option<Vec<String>>,
    pub(super) build_host_lookup_timeout_seconds: Option<f64>,
    pub(super) max_concurrent_builds: Option<usize>,
    pub(super) build_timeout_seconds: Option<f64>,
    pub(super) build_idle_timeout_seconds: Option<f64>,
    pub(super) registry_url: Option<String>,
    pub(super) registry_username: Option<String>,
    pub(super) registry_password: Option<String>,
    pub(super) build_log_path: Option<String>,
    pub(super) build_log_ttl_seconds: Option<f64>,
    pub(super) executor: Option<String>,
    pub(super) kubernetes: Option<KubeFile>,
}

/// The `[kubernetes]` section's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KubeFile {
    pub(super) api_url: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) builder_image: Option<String>,
    pub(super) builder_type: Option<String>,
    pub(super) builder_selector: Option<String>,
    pub(super) docker_socket: Option<String>,
    pub(super) push_secret: Option<String>,
    pub(super) node_selector: Option<BTreeMap<String, String>>,
    pub(super) builder_nodes: Option<Vec<String>>,
    pub(super) resources: Option<ResourcesFile>,
    pub(super) repo2docker_extra_args: Option<Vec<String>>,
    pub(super) appendix: Option<String>,
    pub(super) extra_env: Option<BTreeMap<String, String>>,
    pub(super) image_pull_secrets: Option<Vec<String>>,
    pub(super) tolerations: Option<Vec<TolerationFile>>,
    pub(super) build_timeout_seconds: Option<f64>,
    pub(super) idle_timeout_seconds: Option<f64>,
    pub(super) ttl_seconds_after_finished: Option<f64>,
}

/// `kubernetes.resources`: Kubernetes' shape, quantities as strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourcesFile {
    pub(super) requests: Option<BTreeMap<String, String>>,
    pub(super) limits: Option<BTreeMap<String, String>>,
}

/// One of `kubernetes.tolerations`: Kubernetes' field names, so the chart passes its
/// values through unchanged; a misspelt field is refused rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TolerationFile {
    pub(super) key: Option<String>,
    pub(super) operator: Option<String>,
    pub(super) value: Option<String>,
    pub(super) effect: Option<String>,
    pub(super) toleration_seconds: Option<i64>,
}

/// Reads `file`, when given; no file is a file without keys.
pub(super) fn read(file: Option<&Path>) -> Result<FileConfig, ConfigError> {
    Ok(match file {
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
    })
}

/// The settings of a worker file given as a parsed table.
pub(super) fn from_table(settings: toml::Table) -> Result<FileConfig, ConfigError> {
    toml::Value::Table(settings)
        .try_into::<FileConfig>()
        .map_err(|e| ConfigError::Parse {
            path: "the worker settings".into(),
            message: e.to_string(),
        })
}

/// Lays the variables `env` knows over `raw`.
pub(super) fn with_env(
    mut raw: FileConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<FileConfig, ConfigError> {
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
    text("BINDERY_HYDROSHARE_BASE", &mut raw.hydroshare_base);
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
    // Lists in one variable: comma-separated, as the edge's list variables.
    let list = |name: &str, slot: &mut Option<Vec<String>>| {
        if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
            *slot = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    };
    list("BINDERY_ALLOWED_BUILD_HOSTS", &mut raw.allowed_build_hosts);
    list("BINDERY_CLUSTER_NETWORKS", &mut raw.cluster_networks);
    let kube_file = raw.kubernetes.get_or_insert_default();
    text("BINDERY_KUBERNETES_API_URL", &mut kube_file.api_url);
    text("BINDERY_KUBERNETES_NAMESPACE", &mut kube_file.namespace);
    if let Some(v) = number::<usize>(&env, "BINDERY_MAX_CONCURRENT_BUILDS")? {
        raw.max_concurrent_builds = Some(v);
    }
    if let Some(v) = number::<usize>(&env, "BINDERY_MAX_PENDING_BUILDS")? {
        raw.max_pending_builds = Some(v);
    }
    if let Some(v) = number::<usize>(&env, "BINDERY_MAX_PENDING_BUILDS_PER_CLIENT")? {
        raw.max_pending_builds_per_client = Some(v);
    }
    Ok(raw)
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

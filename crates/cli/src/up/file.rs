//! `bindery.toml`: the one file that configures both parts of `bindery up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The configuration file read when `--config` is not given.
pub(super) const DEFAULT_CONFIG: &str = "bindery.toml";

/// The file's shape. Top-level keys are shared by the edge and the worker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpFile {
    pub(super) data_dir: Option<PathBuf>,
    pub(super) registry_url: Option<String>,
    pub(super) registry_username: Option<String>,
    pub(super) registry_password: Option<String>,
    pub(super) image_prefix: Option<String>,
    pub(super) hub_url: Option<String>,
    pub(super) hub_api_url: Option<String>,
    pub(super) hub_api_token: Option<String>,
    #[serde(default)]
    pub(super) edge: EdgeFile,
    #[serde(default)]
    pub(super) managed: ManagedFile,
    /// The worker's own settings (the keys of `bindery worker`'s `worker.toml`).
    #[serde(default)]
    pub(super) worker: toml::Table,
}

/// The `[edge]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EdgeFile {
    pub(super) listen: Option<String>,
    pub(super) manifest: Option<PathBuf>,
    pub(super) memory_kv: Option<bool>,
    pub(super) request_deadline_seconds: Option<u64>,
    pub(super) body_deadline_seconds: Option<u64>,
    pub(super) max_requests_per_client: Option<u32>,
    pub(super) reserved_instances: Option<u32>,
    pub(super) kv_sweep_interval_seconds: Option<u64>,
    pub(super) kv_sweep_grace_seconds: Option<u64>,
    /// More Spin variables (`github_token`, `public_url`, `extra_outbound_host`, ...).
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
}

/// The `[managed]` section: how `bindery up` runs the parts it manages itself.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManagedFile {
    /// The Python of the venv with JupyterHub (`BINDERY_MANAGED_PYTHON`).
    pub(super) python: Option<PathBuf>,
    pub(super) registry_listen: Option<String>,
    pub(super) hub_listen: Option<String>,
    /// Each server's memory limit (`"2G"`) and CPU limit (`1.5`).
    pub(super) mem_limit: Option<String>,
    pub(super) cpu_limit: Option<f64>,
    pub(super) cull_idle_seconds: Option<u64>,
    pub(super) cull_max_age_seconds: Option<u64>,
}

/// Reads `path` (or `bindery.toml` when it exists); returns the settings and where they
/// came from, for the banner.
pub(super) fn read_file(path: Option<&Path>) -> anyhow::Result<(UpFile, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_bindery_toml_parses_and_shows_the_hosts_default_bounds() {
        let text = include_str!("../../../../bindery.toml");
        let file = toml::from_str::<UpFile>(text).expect("bindery.toml parses");
        let edge = &file.edge;
        let limits = bindery_host::RequestLimits::default();
        let sweep = bindery_host::KvSweep::default();
        assert_eq!(
            edge.body_deadline_seconds,
            Some(limits.body_deadline.as_secs())
        );
        assert_eq!(
            edge.max_requests_per_client,
            Some(limits.max_requests_per_client)
        );
        assert_eq!(edge.reserved_instances, Some(limits.reserved_instances));
        assert_eq!(
            edge.kv_sweep_interval_seconds,
            Some(sweep.interval.as_secs())
        );
        assert_eq!(edge.kv_sweep_grace_seconds, Some(sweep.grace.as_secs()));
    }
}

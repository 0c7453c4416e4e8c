//! The edge's Spin variables under `bindery up`: those derived from the worker's settings
//! win over whatever else sets them, so the edge always reaches the in-process worker with
//! its token and agrees with it on the registry.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bindery_edge::config::{
    IMAGE_PREFIX, REGISTRY_PASSWORD, REGISTRY_URL, REGISTRY_USERNAME, USE_REGISTRY, WORKER_TOKEN,
    WORKER_URL,
};
use bindery_worker::WorkerConfig;

use super::settings::DEFAULT_REGISTRY_URL;

/// Spin variables `bindery up` derives from the shared settings; `[edge.variables]` may
/// not set them, or the edge and the worker could disagree.
pub(super) const DERIVED_VARIABLES: [&str; 7] = [
    WORKER_URL,
    WORKER_TOKEN,
    USE_REGISTRY,
    REGISTRY_URL,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    IMAGE_PREFIX,
];

/// The environment variable through which the host reads Spin variable `name`.
fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_uppercase())
}

/// The edge's environment: `[edge.variables]`, then the process's `SPIN_VARIABLE_*` over
/// them, then the values derived from the worker's settings over both.
/// Returns the environment and the `SPIN_VARIABLE_*` names that were overridden.
pub(super) fn edge_variables(
    worker: &WorkerConfig,
    worker_addr: SocketAddr,
    extra: &BTreeMap<String, String>,
    process_env: impl Iterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (env_name(k), v.clone()))
        .collect();
    env.extend(process_env.filter(|(k, _)| k.starts_with("SPIN_VARIABLE_")));
    let builds = &worker.builds;
    let derived: [(&str, String); DERIVED_VARIABLES.len()] = [
        (WORKER_URL, format!("http://{worker_addr}")),
        (WORKER_TOKEN, worker.token.expose().to_owned()),
        (IMAGE_PREFIX, worker.image_prefix.clone()),
        (
            REGISTRY_USERNAME,
            builds.registry_username.clone().unwrap_or_default(),
        ),
        (
            REGISTRY_PASSWORD,
            builds
                .registry_password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        ),
        // No registry: the edge asks the worker, whose engine holds the images.
        (USE_REGISTRY, builds.registry_url.is_some().to_string()),
        (
            REGISTRY_URL,
            builds
                .registry_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned())
                // Unused without a registry, but still an outbound entry: spin.toml's default.
                .unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_owned()),
        ),
    ];
    let mut overridden = Vec::new();
    for (name, value) in derived {
        if let Some(old) = env.insert(env_name(name), value.clone())
            && old != value
        {
            overridden.push(env_name(name));
        }
    }
    (env, overridden)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::Notes;
    use super::super::settings::worker_config;
    use super::super::testing::{parse, scratch};
    use super::*;

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
            ("SPIN_VARIABLE_USE_REGISTRY", Some("true")),
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

        // registry_url = "none": the edge asks the worker, under the engine's own names.
        let file = parse("registry_url = \"none\"\nhub_api_token = \"t\"\n");
        let config = worker_config(&file, &dir, &mut Notes::default()).unwrap();
        assert_eq!(config.builds.registry_url, None);
        assert_eq!(config.image_prefix, "localhost/binder-");
        let (env, _) = edge_variables(&config, addr, &BTreeMap::new(), std::iter::empty());
        assert_eq!(env["SPIN_VARIABLE_USE_REGISTRY"], "false");
        assert_eq!(env["SPIN_VARIABLE_IMAGE_PREFIX"], "localhost/binder-");
        assert_eq!(env["SPIN_VARIABLE_REGISTRY_URL"], DEFAULT_REGISTRY_URL);
    }
}

//! The worker's settings under `bindery up`: `[worker]`, the shared keys and `bindery up`'s
//! defaults, built into the worker's typed configuration; a copy is written to
//! `<data_dir>/worker/worker.toml` for the operator to read, never read back.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use bindery_worker::{ExecutorSettings, WorkerConfig};

use super::Notes;
use super::file::UpFile;

/// JupyterHub's own default address: a hub started with no options answers here.
pub(super) const DEFAULT_HUB_URL: &str = "http://127.0.0.1:8000/";
/// The registry a plain `docker-registry` (or `registry:2`) listens on.
pub(super) const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:5000";
/// BinderHub's image prefix for that registry.
pub(super) const DEFAULT_IMAGE_PREFIX: &str = "127.0.0.1:5000/binder-";
/// The value of `registry_url` that asks for no registry: images stay in the build engine,
/// and the edge asks the worker whether one exists (an empty value means the same).
pub(super) const NO_REGISTRY: &str = "none";
/// The image prefix without a registry: names local to the engine (podman's own prefix for
/// images built without a registry host).
pub(super) const LOCAL_IMAGE_PREFIX: &str = "localhost/binder-";

/// Whether the `registry_url` value `value` asks for no registry.
pub(super) fn is_no_registry(value: &str) -> bool {
    value.is_empty() || value.eq_ignore_ascii_case(NO_REGISTRY)
}
/// Sent to the hub when no API token is set; the hub refuses it, and the launch says so.
pub(super) const PLACEHOLDER_HUB_TOKEN: &str = "unset-hub-api-token";

/// The shared keys (the worker's names for them), copied into the worker's settings
/// unless `[worker]` sets its own.
const SHARED_KEYS: [&str; 7] = [
    "registry_url",
    "registry_username",
    "registry_password",
    "image_prefix",
    "hub_url",
    "hub_api_url",
    "hub_api_token",
];

/// The worker's settings: `[worker]`, the shared keys, `bindery up`'s defaults, then the
/// worker's own environment variables over all of them (as `bindery worker` reads them).
pub(super) fn worker_config(
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
    // The edge's HydroShare base is in the repository URLs it sends: the worker checks them
    // against its own, so it gets the edge's (`[edge.variables]`, or the edge's
    // SPIN_VARIABLE_HYDROSHARE_BASE over it) unless `[worker]` sets one.
    let edge_hydroshare = env("SPIN_VARIABLE_HYDROSHARE_BASE").or_else(|| {
        file.edge
            .variables
            .get("hydroshare_base")
            .filter(|v| !v.trim().is_empty())
            .cloned()
    });
    if let Some(base) = edge_hydroshare
        && !table.contains_key("hydroshare_base")
    {
        table.insert("hydroshare_base".into(), toml::Value::String(base));
    }
    let mut defaults = |key: &str, value: String| {
        table
            .entry(key)
            .or_insert_with(|| toml::Value::String(value));
    };
    defaults("listen", "127.0.0.1:0".to_owned());
    defaults("registry_url", DEFAULT_REGISTRY_URL.to_owned());
    defaults("hub_url", DEFAULT_HUB_URL.to_owned());
    defaults(
        "build_log_path",
        data_dir
            .join("worker/build-logs.redb")
            .display()
            .to_string(),
    );
    // "none" (or empty) means no registry: builds are not pushed, images stay in the
    // engine, and their names are the engine's own.
    let no_registry = env("BINDERY_REGISTRY_URL").map_or_else(
        || {
            table
                .get("registry_url")
                .and_then(toml::Value::as_str)
                .is_some_and(is_no_registry)
        },
        |url| is_no_registry(&url),
    );
    if no_registry {
        table.remove("registry_url");
    }
    let prefix = if no_registry {
        LOCAL_IMAGE_PREFIX
    } else {
        DEFAULT_IMAGE_PREFIX
    };
    table
        .entry("image_prefix")
        .or_insert_with(|| toml::Value::String(prefix.to_owned()));
    let set = |table: &toml::Table, key: &str| {
        table
            .get(key)
            .and_then(toml::Value::as_str)
            .is_some_and(|t| !t.is_empty())
    };
    if env("BINDERY_HUB_API_TOKEN").is_none() && !set(&table, "hub_api_token") {
        notes.warn(
            "hub_api_token is not set: launches will fail until it is (hub_api_token in \
             bindery.toml or BINDERY_HUB_API_TOKEN: the api_token of JupyterHub's binder service)",
        );
        table.insert(
            "hub_api_token".into(),
            toml::Value::String(PLACEHOLDER_HUB_TOKEN.into()),
        );
    }
    if env("BINDERY_WORKER_TOKEN").is_none() && !set(&table, "token") {
        table.insert("token".into(), toml::Value::String(random_token()?));
    }

    // The operator's copy, written first so that it shows what a refused setting was
    // refused in; readable by this user only (it may hold secrets).
    let worker_dir = data_dir.join("worker");
    std::fs::create_dir_all(&worker_dir)
        .with_context(|| format!("failed to create {}", worker_dir.display()))?;
    let path = worker_dir.join("worker.toml");
    let text = format!(
        "# Written by `bindery up` at every start from bindery.toml: edit that file instead.\n{}",
        toml::to_string(&table).context("failed to write the worker's settings")?
    );
    write_private(&path, &text)?;
    // The environment as the worker reads it, but for a "none" it cannot take as a URL.
    let worker_env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !(name == "BINDERY_REGISTRY_URL" && is_no_registry(v)))
    };
    let config = WorkerConfig::from_table(table, worker_env).with_context(|| {
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

/// 24 random bytes as hex: the worker's token, the managed hub's service and proxy tokens.
pub(super) fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("failed to make a token: {e}"))?;
    Ok(bindery_core::hex::lower(&bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::Notes;
    use super::super::file::UpFile;
    use super::super::testing::{parse, scratch};
    use super::*;

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
        assert_eq!(
            config.providers.hydroshare_base, "https://www.hydroshare.org",
            "the public HydroShare when the edge keeps it"
        );
    }

    #[test]
    fn the_worker_checks_repository_urls_against_the_edges_hydroshare_base() {
        let dir = scratch("hydroshare");
        let file = parse("[edge.variables]\nhydroshare_base = \"http://hs.test/\"\n");
        let config = worker_config(&file, &dir, &mut Notes::default()).unwrap();
        assert_eq!(config.providers.hydroshare_base, "http://hs.test");
        let own = parse(
            "[edge.variables]\nhydroshare_base = \"http://hs.test\"\n\
             [worker]\nhydroshare_base = \"http://mirror.test\"\n",
        );
        let config = worker_config(&own, &dir, &mut Notes::default()).unwrap();
        assert_eq!(config.providers.hydroshare_base, "http://mirror.test");
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
        assert_eq!(
            config.image_prefix, LOCAL_IMAGE_PREFIX,
            "the engine's own names"
        );
        for none in [
            "registry_url = \"none\"\n",
            "[worker]\nregistry_url = \"None\"\n",
        ] {
            let config = worker_config(&parse(none), &dir, &mut notes).unwrap();
            assert_eq!(config.builds.registry_url, None, "{none}");
            assert_eq!(config.image_prefix, LOCAL_IMAGE_PREFIX, "{none}");
        }
        let config = worker_config(&parse(""), &dir, &mut notes).unwrap();
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
}

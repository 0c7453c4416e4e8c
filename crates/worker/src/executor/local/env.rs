//! The environment of a repo2docker child: cleared, then only what a build needs.

use super::LocalSettings;

/// The variables of the worker's environment that say where the container engine is, passed
/// on when `[build_env]` does not set them: without them repo2docker cannot reach an engine
/// the operator pointed the worker at.
pub const ENGINE_VARIABLES: &[&str] = &[
    "DOCKER_HOST",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "CONTAINER_HOST",
    "XDG_RUNTIME_DIR",
];

/// The `PATH` of a child when neither `[build_env]` nor the worker has one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The whole environment of a repo2docker child (or an engine probe) whose `HOME` is
/// `home`, given the worker's environment `parent`: `PATH` and `LANG` (the worker's, or
/// `/usr/local/bin:/usr/bin:/bin` and `C.UTF-8`), `HOME`, the container engine's variables
/// ([`ENGINE_VARIABLES`]) the worker has, then `build_env` over those, and last
/// `GIT_TERMINAL_PROMPT=0` (a repository that asks for a password fails instead of waiting)
/// and `GIT_CONFIG_NOSYSTEM=1` (the machine's git settings, credential helpers included,
/// stay out). Nothing else of the worker's environment.
pub fn build_environment(
    build_env: &[(String, String)],
    home: &std::path::Path,
    parent: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: String| {
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value));
    };
    set(
        "PATH",
        parent("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    );
    set("LANG", parent("LANG").unwrap_or_else(|| "C.UTF-8".into()));
    set("HOME", home.display().to_string());
    for key in ENGINE_VARIABLES {
        if let Some(value) = parent(key) {
            set(key, value);
        }
    }
    for (key, value) in build_env {
        set(key, value.clone());
    }
    set("GIT_TERMINAL_PROMPT", "0".into());
    set("GIT_CONFIG_NOSYSTEM", "1".into());
    env
}

/// A fresh `HOME` for one child and the environment that goes with it; the directory is
/// removed when the value is dropped.
pub(super) fn clean_environment(
    settings: &LocalSettings,
) -> std::io::Result<(tempfile::TempDir, Vec<(String, String)>)> {
    let home = tempfile::Builder::new()
        .prefix("bindery-build-home-")
        .tempdir()?;
    let env = build_environment(&settings.env, home.path(), |key| std::env::var(key).ok());
    Ok((home, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_environment_holds_only_the_allowed_keys_and_build_env_wins_but_for_git() {
        let parent = |key: &str| -> Option<String> {
            [
                ("PATH", "/opt/worker/bin:/usr/bin"),
                ("LANG", "de_DE.UTF-8"),
                ("HOME", "/root"),
                ("SSH_AUTH_SOCK", "/tmp/ssh-agent.sock"),
                ("BINDERY_WORKER_TOKEN", "worker-secret"),
                ("BINDERY_HUB_API_TOKEN", "hub-secret"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/root/gcp.json"),
                ("KUBECONFIG", "/root/.kube/config"),
                ("GIT_TERMINAL_PROMPT", "1"),
                ("DOCKER_HOST", "unix:///run/user/0/docker.sock"),
                ("XDG_RUNTIME_DIR", "/run/user/0"),
            ]
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
        };
        let home = std::path::Path::new("/tmp/bindery-build-home-x");
        let build_env = [
            ("CONTAINERS_CONF", "/etc/bindery/containers.conf"),
            ("DOCKER_HOST", "unix:///run/podman/podman.sock"),
            ("GIT_CONFIG_NOSYSTEM", "0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let env: std::collections::BTreeMap<String, String> =
            build_environment(&build_env, home, parent)
                .into_iter()
                .collect();
        let want: std::collections::BTreeMap<String, String> = [
            ("PATH", "/opt/worker/bin:/usr/bin"),
            ("LANG", "de_DE.UTF-8"),
            ("HOME", "/tmp/bindery-build-home-x"),
            ("DOCKER_HOST", "unix:///run/podman/podman.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
            ("CONTAINERS_CONF", "/etc/bindery/containers.conf"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, want);
        // A worker with an empty environment still gives its builds a PATH and a locale.
        let bare: std::collections::BTreeMap<String, String> =
            build_environment(&[], home, |_| None).into_iter().collect();
        assert_eq!(
            bare.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "GIT_CONFIG_NOSYSTEM",
                "GIT_TERMINAL_PROMPT",
                "HOME",
                "LANG",
                "PATH"
            ]
        );
        assert_eq!(bare["PATH"], DEFAULT_PATH);
        assert_eq!(bare["LANG"], "C.UTF-8");
    }
}

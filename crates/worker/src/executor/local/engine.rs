//! What the local executor asks its container engine directly, through the engine's command
//! line with a build's environment (so it sees the engine builds see): whether it answers
//! (`<engine> version`, the health check) and whether it holds an image (`<engine> images`,
//! for a worker without a registry, whose images stay in the engine).

use std::process::Stdio;

use tokio::process::Command;

use super::LocalExecutor;
use super::env::clean_environment;
use crate::executor::ExecutorError;
use crate::health::HEALTH_TIMEOUT;

/// Image lookups that run at once; more wait for a slot (within [`HEALTH_TIMEOUT`]), so a
/// burst of launches of new links starts a bounded number of engine processes.
pub(super) const MAX_LOOKUPS: usize = 4;

impl LocalExecutor {
    /// The container command line builds run: `engine` when set; else `podman` when the
    /// builds' `DOCKER_HOST` mentions podman (repo2docker then drives the podman CLI, as
    /// `bindery up` with its managed podman does); else `docker`.
    pub fn engine(&self) -> &str {
        if let Some(engine) = &self.settings.engine {
            return engine;
        }
        let docker_host = self
            .settings
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "DOCKER_HOST")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("DOCKER_HOST").ok());
        if docker_host.is_some_and(|h| h.contains("podman")) {
            "podman"
        } else {
            "docker"
        }
    }

    /// Whether `<engine> version` succeeds within [`HEALTH_TIMEOUT`]: for docker that means
    /// the daemon answers too.
    pub async fn engine_answers(&self) -> Result<(), ExecutorError> {
        self.run_engine("version", &["version"]).await.map(drop)
    }

    /// Whether the engine holds `image` (a name the API checked: `<prefix><slug>:<tag>`):
    /// `<engine> images --quiet --no-trunc -- <image>` prints its id, or nothing.
    pub async fn engine_has_image(&self, image: &str) -> Result<bool, ExecutorError> {
        let timeout = || ExecutorError::EngineTimeout {
            engine: self.engine().to_owned(),
            command: "images",
        };
        let ask = async {
            // Never closed: the executor holds the semaphore.
            let _slot = self.lookups.acquire().await.map_err(|_| timeout())?;
            let args = ["images", "--quiet", "--no-trunc", "--", image];
            self.run_engine("images", &args).await
        };
        let ids = tokio::time::timeout(HEALTH_TIMEOUT, ask)
            .await
            .map_err(|_| timeout())??;
        Ok(!ids.trim().is_empty())
    }

    /// Runs `<engine> <args>` with the environment of a build ([`clean_environment`]) within
    /// [`HEALTH_TIMEOUT`]; its standard output when it succeeds.
    async fn run_engine(
        &self,
        command: &'static str,
        args: &[&str],
    ) -> Result<String, ExecutorError> {
        let engine = || self.engine().to_owned();
        // The probe sees what a build sees, so a healthy engine is one builds can reach.
        let (home, env) =
            clean_environment(&self.settings).map_err(|source| ExecutorError::EngineSpawn {
                engine: engine(),
                source,
            })?;
        let mut child = Command::new(self.engine());
        child
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(HEALTH_TIMEOUT, child.output()).await {
            Err(_) => {
                return Err(ExecutorError::EngineTimeout {
                    engine: engine(),
                    command,
                });
            }
            Ok(Err(source)) => {
                return Err(ExecutorError::EngineSpawn {
                    engine: engine(),
                    source,
                });
            }
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(ExecutorError::EngineFailed {
            engine: engine(),
            command,
            status: output.status,
            stderr: last.chars().take(300).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::executor::LocalSettings;

    fn executor(engine: Option<&str>, env: &[(&str, &str)]) -> LocalExecutor {
        LocalExecutor::new(LocalSettings {
            engine: engine.map(String::from),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..LocalSettings::default()
        })
    }

    #[test]
    fn the_engine_is_the_setting_else_podman_when_docker_host_names_it() {
        let podman_host = [("DOCKER_HOST", "unix:///data/engine/podman.sock")];
        assert_eq!(executor(None, &podman_host).engine(), "podman");
        assert_eq!(executor(Some("docker"), &podman_host).engine(), "docker");
        let docker_host = [("DOCKER_HOST", "unix:///run/docker.sock")];
        assert_eq!(executor(None, &docker_host).engine(), "docker");
    }

    /// The lookup reads the engine's answer: an id is present, nothing is missing, a
    /// failing engine is an error naming the command; the image comes after `--`.
    #[tokio::test]
    async fn an_image_lookup_reads_the_engines_answer() {
        let dir = tempfile::tempdir().unwrap();
        let engine = dir.path().join("engine");
        let calls = dir.path().join("calls");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncase \"$5\" in\n  *:present) echo sha256:abc ;;\n  \
             *:broken) echo 'Error: storage is gone' >&2; exit 125 ;;\nesac\n",
            calls.display()
        );
        std::fs::write(&engine, script).unwrap();
        let chmod = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&engine)
            .status();
        assert!(chmod.is_ok_and(|s| s.success()));
        let local = executor(engine.to_str(), &[]);
        assert!(matches!(
            local.engine_has_image("r/binder-x:present").await,
            Ok(true)
        ));
        assert!(matches!(
            local.engine_has_image("r/binder-x:missing").await,
            Ok(false)
        ));
        let err = local
            .engine_has_image("r/binder-x:broken")
            .await
            .expect_err("a failing engine");
        let text = err.to_string();
        assert!(
            text.ends_with(" images` failed (exit status: 125): Error: storage is gone"),
            "{text}"
        );
        let logged = std::fs::read_to_string(&calls).unwrap_or_default();
        assert_eq!(
            logged.lines().next(),
            Some("images --quiet --no-trunc -- r/binder-x:present")
        );
    }
}

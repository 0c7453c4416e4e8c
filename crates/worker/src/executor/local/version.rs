//! `repo2docker --version`, for `/versions` (BinderHub's `builder_info` of local builds).

use std::process::Stdio;

use tokio::process::Command;

use super::LocalExecutor;
use super::env::clean_environment;
use crate::health::HEALTH_TIMEOUT;

impl LocalExecutor {
    /// What `repo2docker --version` prints, asked once with the environment of a build;
    /// `None` while repo2docker cannot say (it is asked again next time).
    pub async fn repo2docker_version(&self) -> Option<String> {
        self.version
            .get_or_try_init(|| async {
                let (home, env) = clean_environment(&self.settings).map_err(|_| ())?;
                let mut command = Command::new(&self.settings.repo2docker);
                command
                    .arg("--version")
                    .env_clear()
                    .envs(env)
                    .current_dir(home.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                let output = match tokio::time::timeout(HEALTH_TIMEOUT, command.output()).await {
                    Ok(Ok(output)) if output.status.success() => output,
                    Ok(Ok(output)) => {
                        tracing::warn!(status = %output.status, "repo2docker --version failed");
                        return Err(());
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "failed to run repo2docker --version");
                        return Err(());
                    }
                    Err(_) => {
                        tracing::warn!("repo2docker --version did not answer in time");
                        return Err(());
                    }
                };
                // Old versions print it on stderr.
                let text = [&output.stdout, &output.stderr]
                    .into_iter()
                    .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
                    .find(|t| !t.is_empty())
                    .ok_or(())?;
                let line = text.lines().last().unwrap_or_default().trim();
                Ok(line.chars().take(100).collect())
            })
            .await
            .ok()
            .cloned()
    }
}

//! The local executor: repo2docker as a child process (`bindery up`).
//!
//! Both output streams are read line by line ([`super::lines`], each line held to a bounded size)
//! and turned into events by `from_repo2docker_line`: repo2docker
//! 2026.4 writes its `--json-logs` lines to **stderr** (verified), so a JSON line becomes
//! its event whichever stream it comes on, and any other line an `unknown` log line.
//!
//! The child runs in its own process group, so cancelling it, or stopping it for silence or
//! for running too long, kills everything it started (git, the container CLI, shims) with
//! one `kill -KILL -- -<pgid>`. The group is killed after every build, whatever the
//! outcome, and the child is always waited for: this machine's PID 1 reaps nothing, so a
//! child that is not waited for stays a zombie.
//!
//! The child gets a cleared environment ([`build_environment`]): a build runs code from the
//! repository, so nothing of the worker's own environment (its tokens, the operator's
//! `SSH_AUTH_SOCK` or cloud credentials) may reach it, and a fresh `HOME` that is removed
//! after the build keeps one build's files (git credentials, docker config) from the next.
//!
//! `engine` (a submodule) holds what the executor asks its engine directly: whether it
//! answers, and whether it holds an image (for a worker without a registry).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bindery_core::events::Event;
use bindery_core::launch::{Repo2DockerArgs, repo2docker_args};
use bindery_core::worker_api::{HealthCheck, REPO2DOCKER_VERSION};
use tokio::io::BufReader;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{BuildHandle, BuildOutcome, BuildSpec, Executor, ExecutorError};
use crate::error_chain;

mod engine;
mod env;
mod version;

use super::lines::{BoundedLines, KEPT_LINE_BYTES};
use env::clean_environment;
pub use env::{ENGINE_VARIABLES, build_environment};

/// How the local executor runs repo2docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// The repo2docker program (default `jupyter-repo2docker`, looked up in `PATH`).
    pub repo2docker: PathBuf,
    /// `--engine <docker|podman>`, when set.
    pub engine: Option<String>,
    /// Whether to pass `--push` (a registry is configured).
    pub push: bool,
    /// `--config <file>`, when set (for example to limit the content providers offline).
    pub config_file: Option<PathBuf>,
    /// The operator's `[build_env]`: laid over the cleared environment of the child
    /// (`DOCKER_HOST`, `CONTAINERS_CONF`, `PATH`, `DOCKER_CONFIG`, ...); see
    /// [`build_environment`].
    pub env: Vec<(String, String)>,
    /// The longest a build may run.
    pub build_timeout: Duration,
    /// The longest a build may print nothing.
    pub idle_timeout: Duration,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            repo2docker: PathBuf::from("jupyter-repo2docker"),
            engine: None,
            push: false,
            config_file: None,
            env: Vec::new(),
            build_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Runs each build as a `repo2docker` child process.
///
/// Every build task is kept in a [`JoinSet`], and every build's run loop watches one
/// shutdown switch: [`Executor::shutdown`] flips it, so each build kills its process group
/// and reaps its child, and then waits for those tasks. Without that, stopping the worker
/// would drop the tasks unpolled: the child would be SIGKILLed by `kill_on_drop` but never
/// waited for, and the rest of its group (git, the container engine) would run on.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    settings: LocalSettings,
    /// `repo2docker --version`, asked once (for `/versions`).
    version: Arc<tokio::sync::OnceCell<String>>,
    stopping: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    /// Image lookups running at once ([`engine::MAX_LOOKUPS`]).
    lookups: Arc<tokio::sync::Semaphore>,
}

impl LocalExecutor {
    /// An executor with `settings`.
    pub fn new(settings: LocalSettings) -> LocalExecutor {
        LocalExecutor {
            settings,
            version: Arc::default(),
            stopping: Arc::new(watch::channel(false).0),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
            lookups: Arc::new(tokio::sync::Semaphore::new(engine::MAX_LOOKUPS)),
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The full argument list for `spec`: BinderHub's arguments, the engine and config
    /// options, and the repository last.
    pub fn arguments(&self, spec: &BuildSpec) -> Result<Vec<String>, ExecutorError> {
        let mut extra = Vec::new();
        if let Some(engine) = &self.settings.engine {
            extra.push("--engine".to_owned());
            extra.push(engine.clone());
        }
        if let Some(config) = &self.settings.config_file {
            extra.push("--config".to_owned());
            extra.push(config.display().to_string());
        }
        repo2docker_args(&Repo2DockerArgs {
            git_ref: spec.git_ref.clone(),
            image: spec.image.clone(),
            push: self.settings.push,
            appendix: None,
            extra_args: extra,
            repo: spec.repo.clone(),
        })
        .map_err(ExecutorError::Input)
    }
}

impl Executor for LocalExecutor {
    fn builder_info(
        &self,
    ) -> futures::future::BoxFuture<'_, serde_json::Map<String, serde_json::Value>> {
        Box::pin(async move {
            let version = self.repo2docker_version().await;
            serde_json::Map::from_iter([(REPO2DOCKER_VERSION.to_owned(), version.into())])
        })
    }

    fn health(&self) -> futures::future::BoxFuture<'_, Vec<HealthCheck>> {
        Box::pin(async move {
            let answers = self.engine_answers().await;
            if let Err(error) = &answers {
                let error = error_chain(error);
                // The reason goes to the log only: `/health` is public.
                tracing::warn!(%error, "health: the container engine does not answer");
            }
            let check = HealthCheck::new("Container engine", answers.is_ok());
            vec![check.with("engine", self.engine())]
        })
    }

    fn image_present<'a>(
        &'a self,
        image: &'a str,
    ) -> Option<futures::future::BoxFuture<'a, Result<bool, ExecutorError>>> {
        Some(Box::pin(self.engine_has_image(image)))
    }

    fn start(&self, spec: &BuildSpec) -> BuildHandle {
        let (handle, sink) = BuildHandle::channel();
        let args = self.arguments(spec);
        let settings = self.settings.clone();
        let build = spec.build_name.clone();
        let stopping = self.stopping.subscribe();
        let mut tasks = self.tasks();
        // Forget the builds that ended.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let result = match args {
                Ok(args) => {
                    run(
                        &settings,
                        &args,
                        &sink.events,
                        sink.cancel.clone(),
                        stopping,
                    )
                    .await
                }
                Err(error) => BuildOutcome::Failed(format!(
                    "failed to start the build: {}",
                    error_chain(&error)
                )),
            };
            tracing::info!(%build, outcome = ?result, "local build ended");
            sink.finish(result);
        });
        handle
    }

    fn shutdown(&self, deadline: Duration) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stopping.send_replace(true);
            let mut tasks = std::mem::take(&mut *self.tasks());
            if tasks.is_empty() {
                return;
            }
            tracing::info!(builds = tasks.len(), "stopping the running builds");
            let left = crate::join_all_within(&mut tasks, deadline).await;
            if left > 0 {
                tracing::warn!(
                    builds = left,
                    "builds still stopping after the shutdown deadline"
                );
            }
        })
    }
}

/// Why the loop stopped watching the child.
enum Stop {
    Exited(std::io::Result<ExitStatus>),
    Killed(String),
}

async fn run(
    settings: &LocalSettings,
    args: &[String],
    events: &mpsc::UnboundedSender<Event>,
    mut cancel: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) -> BuildOutcome {
    let program = settings.repo2docker.display().to_string();
    if *stopping.borrow() {
        // A queued build that got its slot while the worker stops: start nothing.
        return BuildOutcome::Failed("the worker is shutting down".to_owned());
    }
    // Lives until the build ends; dropping it removes the build's HOME.
    let (home, env) = match clean_environment(settings) {
        Ok(clean) => clean,
        Err(err) => {
            return BuildOutcome::Failed(format!("failed to make a home for {program}: {err}"));
        }
    };
    let mut command = Command::new(&settings.repo2docker);
    command
        .args(args)
        .env_clear()
        .envs(env)
        // A relative path would otherwise resolve in the worker's directory.
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return BuildOutcome::Failed(format!("failed to start {program}: {err}")),
    };
    let pgid = child.id();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(pgid).await;
        let _ = child.wait().await;
        return BuildOutcome::Failed(format!("failed to read the output of {program}"));
    };
    let mut stdout = BoundedLines::new(BufReader::new(stdout), KEPT_LINE_BYTES);
    let mut stderr = BoundedLines::new(BufReader::new(stderr), KEPT_LINE_BYTES);
    let (mut out_open, mut err_open) = (true, true);
    let deadline = Instant::now() + settings.build_timeout;
    let mut last_output = Instant::now();
    let stop = loop {
        let idle_at = last_output + settings.idle_timeout;
        tokio::select! {
            line = stdout.next_line(), if out_open => match line {
                Ok(Some(line)) => {
                    last_output = Instant::now();
                    let _ = events.send(line.into_event());
                }
                _ => out_open = false,
            },
            line = stderr.next_line(), if err_open => match line {
                Ok(Some(line)) => {
                    last_output = Instant::now();
                    let _ = events.send(line.into_event());
                }
                _ => err_open = false,
            },
            status = child.wait() => break Stop::Exited(status),
            () = tokio::time::sleep_until(idle_at) => break Stop::Killed(format!(
                "the build printed nothing for {} seconds and was stopped",
                settings.idle_timeout.as_secs_f64()
            )),
            () = tokio::time::sleep_until(deadline) => break Stop::Killed(format!(
                "the build took longer than the build timeout of {} seconds and was stopped",
                settings.build_timeout.as_secs_f64()
            )),
            changed = cancel.changed() => {
                // A dropped handle means nobody waits for this build: stop it too.
                if changed.is_err() || *cancel.borrow() {
                    break Stop::Killed("the build was cancelled".to_owned());
                }
            }
            // The executor is gone only with the worker; its switch then never flips.
            Ok(_) = stopping.wait_for(|s| *s) => {
                break Stop::Killed("the worker is shutting down; the build was stopped".to_owned());
            }
        }
    };
    // Whatever happened, nothing of the build outlives it.
    kill_group(pgid).await;
    let status = match stop {
        Stop::Exited(status) => status,
        Stop::Killed(message) => {
            let _ = child.wait().await;
            return BuildOutcome::Failed(message);
        }
    };
    // The group is dead, so both pipes reach their end quickly; keep their last lines.
    let drain = async {
        while out_open {
            match stdout.next_line().await {
                Ok(Some(line)) => {
                    let _ = events.send(line.into_event());
                }
                _ => out_open = false,
            }
        }
        while err_open {
            match stderr.next_line().await {
                Ok(Some(line)) => {
                    let _ = events.send(line.into_event());
                }
                _ => err_open = false,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    match status {
        Ok(status) if status.success() => BuildOutcome::Succeeded,
        Ok(status) => BuildOutcome::Failed(format!("the build failed: repo2docker {status}")),
        Err(err) => BuildOutcome::Failed(format!("failed to wait for {program}: {err}")),
    }
}

/// `kill -KILL -- -<pgid>`: the whole process group (the crate forbids `unsafe`, so no libc).
async fn kill_group(pgid: Option<u32>) {
    let Some(pgid) = pgid else { return };
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

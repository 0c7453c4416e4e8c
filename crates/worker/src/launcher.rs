//! A launch, from admission to `ready` or `failed` (BinderHub's `launcher.py`).
//!
//! A launch is admitted against the quotas of [`crate::quota`] first, before any build, so
//! a launch the quota refuses builds nothing; the quotas are checked again just before
//! the spawn (servers started meanwhile, by this worker or another, count). Its slot is
//! given back when it fails, or, for a server that started, when [`Launcher::refresh_quota`]
//! (run periodically) finds the hub no longer has that server. A refusal is a `failed`
//! event with BinderHub's message and `status_code` 429 (errors travel on the event
//! stream, as BinderHub's do, so the edge relays them like any other failure). A launch
//! that needs a build is refused the same way, with 429, when its client already waits
//! for as many builds as it may, or with 503 when the worker's build queue is full
//! ([`crate::queue::QueueRefusal`]).
//!
//! A launch makes up to `launch_retries` attempts, as BinderHub does: each attempt creates
//! a user with a fresh random suffix, starts its server and follows the hub's progress
//! under `launch_timeout`; a failed attempt deletes its user, tells the client "Launch
//! attempt N failed, retrying...", waits (the delay doubling each time) and tries again.
//! A refusal by the hub (a `4xx` other than a name clash) is not retried: it would only be
//! refused again. The quota slot stays taken across attempts.
//!
//! Launch tasks are started by [`Launcher::start`] and kept in a [`JoinSet`]. When the
//! worker stops, [`Launcher::shutdown`] flips a switch every launch watches: a launch
//! waiting for its build or between attempts fails at once, and an attempt still spawning
//! stops and deletes its user, so no half-started server is left on the hub.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use bindery_core::events::{Event, Phase};
use bindery_core::policy::{SpecPolicy, quota_from_repo_config};
use bindery_core::worker_api::LaunchRequest;

use crate::builds::{Builds, relay};
use crate::config::WorkerConfig;
use crate::events::EventLog;
use crate::executor::BuildSpec;
use crate::hub::HubClient;
use crate::metrics::Metrics;
use crate::quota::Admission;
use bindery_core::policy::QuotaDecision;

mod attempt;

/// The status code of a quota refusal.
pub const QUOTA_STATUS: u16 = 429;

/// Starts servers on JupyterHub for validated launch requests.
#[derive(Debug)]
pub struct Launcher {
    hub: HubClient,
    hub_url: String,
    per_repo_quota: Option<u32>,
    per_repo_quota_higher: Option<u32>,
    spec_policy: Option<SpecPolicy>,
    total_quota: Option<u32>,
    launch_timeout: Duration,
    launch_retries: u32,
    launch_retry_delay: Duration,
    admission: Admission,
    metrics: Arc<Metrics>,
    builds: Arc<Builds>,
    stopping: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
}

/// What a launch or an attempt says when the worker stops under it.
const SHUTTING_DOWN: &str = "the worker is shutting down";

impl Launcher {
    /// A launcher for the hub and quotas in `config`.
    pub fn new(
        config: &WorkerConfig,
        hub: HubClient,
        metrics: Arc<Metrics>,
        builds: Arc<Builds>,
    ) -> Launcher {
        Launcher {
            hub,
            hub_url: config.hub_url.clone(),
            per_repo_quota: config.per_repo_quota,
            per_repo_quota_higher: config.per_repo_quota_higher,
            spec_policy: config.spec_policy.clone(),
            total_quota: config.total_quota,
            launch_timeout: config.launch_timeout,
            launch_retries: config.launch_retries.max(1),
            launch_retry_delay: config.launch_retry_delay,
            admission: Admission::default(),
            metrics,
            builds,
            stopping: watch::channel(false).0,
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    fn tasks(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs launch `id` in the background (see [`Launcher::launch`]), tracked so that
    /// [`Launcher::shutdown`] can stop it.
    pub fn start(self: &Arc<Self>, id: String, request: LaunchRequest, log: Arc<EventLog>) {
        let launcher = Arc::clone(self);
        let mut tasks = self.tasks();
        // Forget the launches that ended.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { launcher.launch(&id, &request, &log).await });
    }

    /// The worker is stopping: every launch still in flight fails, each attempt still
    /// spawning deletes its user; waits for them at most `deadline`. Servers that are
    /// already running stay.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stopping.send_replace(true);
        let mut tasks = std::mem::take(&mut *self.tasks());
        if tasks.is_empty() {
            return;
        }
        tracing::info!(launches = tasks.len(), "stopping the launches in flight");
        let left = crate::join_all_within(&mut tasks, deadline).await;
        if left > 0 {
            tracing::warn!(
                launches = left,
                "launches still stopping after the shutdown deadline"
            );
        }
    }

    /// Resolves when the worker starts stopping.
    async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The hub client.
    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// The quota counter.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The per-repo quota of `spec`, BinderHub's way: `per_repo_quota`, or
    /// `per_repo_quota_higher` for a high-quota spec, overridden by the `quota` of the last
    /// matching `spec_config` entry.
    pub fn repo_quota(&self, spec: &str) -> Option<u32> {
        let Some(policy) = &self.spec_policy else {
            return self.per_repo_quota;
        };
        let config = policy.repo_config(spec, self.per_repo_quota, self.per_repo_quota_higher);
        // The configuration checked every entry's `quota` at load.
        quota_from_repo_config(&config).unwrap_or(self.per_repo_quota)
    }

    /// Runs launch `id` of `request` to its end, writing every step to `log`.
    ///
    /// A `build_only` launch (BinderHub's API-only mode) builds and pushes the image, or
    /// finds it, and ends with `ready` naming it: it starts no server, so it takes no
    /// quota slot and is no launch in the metrics; the build queue's bounds (per client,
    /// pending builds) apply as to any build.
    pub async fn launch(&self, id: &str, request: &LaunchRequest, log: &EventLog) {
        let started = Instant::now();
        if request.build_only {
            if request.image_present {
                log.append(Event::build_only_done(&request.image, true));
            } else {
                self.build_first(id, request, log, started).await;
            }
            return;
        }
        self.metrics.launch_started();
        let repo_quota = self.repo_quota(&request.spec);
        let decision = self
            .admission
            .admit(id, &request.image, repo_quota, self.total_quota);
        if self.refused(id, request, log, &decision) {
            return;
        }
        if !request.image_present && !self.build_first(id, request, log, started).await {
            self.admission.release(id);
            return;
        }
        // Servers may have started since admission (on this worker or another).
        let decision = self
            .admission
            .recheck(id, &request.image, repo_quota, self.total_quota);
        if self.refused(id, request, log, &decision) {
            self.admission.release(id);
            return;
        }
        log.append(Event::new(Phase::Launching, "Launching server...\n"));
        let mut delay = self.launch_retry_delay;
        let mut attempt = 1;
        let (reason, attempts) = loop {
            let attempt_started = Instant::now();
            match self.attempt(id, request, log).await {
                Ok(()) => {
                    self.metrics
                        .launch_finished("success", Some(started.elapsed()));
                    return;
                }
                Err(failure) if failure.retry && attempt < self.launch_retries => {
                    self.metrics.launch_retried(attempt_started.elapsed());
                    log.append(Event::new(
                        Phase::Launching,
                        format!(
                            "Launch attempt {attempt} failed, retrying... ({})\n",
                            failure.reason
                        ),
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stopped() => break (SHUTTING_DOWN.to_owned(), attempt),
                    }
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(failure) => break (failure.reason, attempt),
            }
        };
        self.admission.release(id);
        let tried = if attempts > 1 {
            format!(" (gave up after {attempts} attempts)")
        } else {
            String::new()
        };
        log.append(Event::failed(
            Some(500),
            format!("Failed to launch image {}: {reason}{tried}", request.image),
        ));
        self.metrics
            .launch_finished("failure", Some(started.elapsed()));
    }

    /// Ends the launch with the quota's refusal, when `decision` is one.
    fn refused(
        &self,
        id: &str,
        request: &LaunchRequest,
        log: &EventLog,
        decision: &QuotaDecision,
    ) -> bool {
        let (Some(message), Some(status)) =
            (decision.message(&request.repo_url), decision.status())
        else {
            return false;
        };
        tracing::info!(launch = id, image = %request.image, status, "launch refused by quota");
        log.append(Event::failed(Some(QUOTA_STATUS), message));
        self.metrics.launch_finished(status, None);
        true
    }

    /// Builds the image (or attaches to its running build) and relays the build's events
    /// — the queue, the build lines and the final `built` (for a `build_only` launch, the
    /// `ready` in its place, which ends the launch); false when the launch ended
    /// here (refused by the queue, the build failed, the worker stops).
    async fn build_first(
        &self,
        id: &str,
        request: &LaunchRequest,
        log: &EventLog,
        started: Instant,
    ) -> bool {
        let spec = BuildSpec::new(
            &request.build_slug,
            &request.repo_url,
            &request.resolved_ref,
            &request.image,
        );
        let (build, share) = match self.builds.request_for(spec, &request.client_ip) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                tracing::info!(launch = id, client = %request.client_ip, %refusal, "launch refused by the build queue");
                log.append(Event::failed(Some(refusal.status()), refusal.to_string()));
                if !request.build_only {
                    self.metrics.launch_finished(refusal.label(), None);
                }
                return false;
            }
        };
        tracing::info!(launch = id, build = %build.id, build_only = request.build_only, "launch waits for its build");
        // `built`, or for a build-only launch the `ready` that stands in its place.
        let done = if request.build_only {
            Phase::Ready
        } else {
            Phase::Built
        };
        let built = tokio::select! {
            last = relay(&build.log, log, request.build_only) => last == Some(done),
            () = self.stopped() => {
                if !log.is_finished() {
                    log.append(Event::failed(
                        Some(503),
                        format!("Failed to launch image {}: {SHUTTING_DOWN}", request.image),
                    ));
                }
                false
            }
        };
        drop(share);
        if !built {
            if !log.is_finished() {
                log.append(Event::failed(
                    Some(500),
                    format!("Failed to build image {}", request.image),
                ));
            }
            if !request.build_only {
                self.metrics
                    .launch_finished("failure", Some(started.elapsed()));
            }
        }
        built
    }

    /// Brings the quota count in step with the hub: servers it runs that this worker did
    /// not start count, and the slots of servers it no longer runs (culled or stopped)
    /// are freed (see [`Admission::sync`]).
    pub async fn refresh_quota(&self) {
        self.admission.refresh(&self.hub).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher(config: &WorkerConfig) -> Launcher {
        let metrics = Arc::new(Metrics::default());
        let builds = Arc::new(Builds::new(
            crate::events::Logs::new(10, Duration::from_secs(1)),
            Arc::new(crate::executor::LocalExecutor::new(
                crate::executor::LocalSettings::default(),
            )),
            None,
            crate::logstore::LogStore::open(None, Duration::from_secs(1)).expect("store"),
            1,
            Arc::clone(&metrics),
        ));
        let hub = HubClient::new(config).expect("hub client");
        Launcher::new(config, hub, metrics, builds)
    }

    #[test]
    fn the_repo_quota_comes_from_spec_config_then_high_quota_specs_then_per_repo_quota() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            r#"token = "t"
hub_url = "http://h/"
hub_api_token = "t"
image_prefix = "p-"
per_repo_quota = 10
per_repo_quota_higher = 20
high_quota_specs = ["^popular/"]

[[spec_config]]
pattern = "^workshop/"
config = { quota = 300, other = "kept" }

[[spec_config]]
pattern = "^workshop/closed"
config = { quota = 1 }

[[spec_config]]
pattern = "^popular/special"
config = { quota = 50 }
"#,
        )
        .expect("write");
        let config = WorkerConfig::from_sources(Some(&path), |_| None).expect("config");
        let configured = launcher(&config);
        let cases = [
            ("someone/else/main", Some(10)),
            ("Workshop/intro/main", Some(300)),
            ("workshop/closed-day/main", Some(1)),
            ("popular/repo/main", Some(20)),
            ("popular/special/main", Some(50)),
            ("not/workshop/main", Some(10)),
        ];
        for (spec, quota) in cases {
            assert_eq!(configured.repo_quota(spec), quota, "{spec}");
        }
        let plain = launcher(&WorkerConfig {
            per_repo_quota: Some(7),
            ..config.clone()
        });
        assert_eq!(plain.repo_quota("workshop/intro/main"), Some(300));
        let no_policy = launcher(&WorkerConfig {
            spec_policy: None,
            ..config
        });
        assert_eq!(no_policy.repo_quota("workshop/intro/main"), Some(10));
    }

    #[test]
    fn a_spec_config_that_cannot_be_used_stops_the_worker_with_a_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let required = "token = \"t\"\nhub_url = \"http://h/\"\nhub_api_token = \"t\"\nimage_prefix = \"p-\"\n";
        for (bad, needle) in [
            (
                "[[spec_config]]\npattern = \"^a\"\nconfig = { quota = \"3\" }\n",
                "quota",
            ),
            (
                "[[spec_config]]\npattern = \"^a\"\nconfig = { quota = -1 }\n",
                "quota",
            ),
            (
                "[[spec_config]]\npattern = \"(\"\nconfig = {}\n",
                "spec_config",
            ),
            (
                "[[spec_config]]\npattern = \"^a\"\nconfig = \"x\"\n",
                "config",
            ),
            ("[[spec_config]]\nconfig = {}\n", "pattern"),
            ("high_quota_specs = [\"a)|(b\"]\n", "high_quota_specs"),
        ] {
            std::fs::write(&path, format!("{required}{bad}")).expect("write");
            let err = WorkerConfig::from_sources(Some(&path), |_| None).expect_err(bad);
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }
}

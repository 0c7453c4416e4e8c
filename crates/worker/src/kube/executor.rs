//! Runs builds as Kubernetes Jobs and follows them to the end.
//!
//! [`KubeExecutor::start`] creates the Job (a `409` means another creator got there first:
//! attach), waits for its pod with a watcher, follows the pod's log with `follow=true`
//! (reconnecting from the last line's timestamp when the stream breaks while the pod runs)
//! and turns each `--json-logs` line into an [`Event`], then waits for the Job's `Complete` or
//! `Failed` condition. [`KubeExecutor::adopt`] finds the unfinished build Jobs by label when
//! a worker starts and follows them the same way. Within one executor a Job has one
//! follower however many callers attach; each caller reads the whole log from the start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bindery_core::events::{Event, from_repo2docker_line};
use futures::future::BoxFuture;
use futures::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error_chain;
use crate::executor::{self as worker_executor, BuildHandle, BuildOutcome};

use super::job::{self, BuildSpec, JobSettings};

/// How builds are run and watched.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorSettings {
    /// The Job's shape; `job.namespace` is where Jobs are created and adopted.
    pub job: JobSettings,
    /// A build whose log stays silent this long is stopped and fails.
    pub idle_timeout: Duration,
    /// How long past the build timeout the executor waits for Kubernetes to end the Job
    /// before it gives up on its own.
    pub finish_grace: Duration,
}

impl Default for ExecutorSettings {
    fn default() -> ExecutorSettings {
        ExecutorSettings {
            job: JobSettings::default(),
            idle_timeout: Duration::from_secs(600),
            finish_grace: Duration::from_secs(60),
        }
    }
}

/// Why a build could not be started or adopted.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The build's ref, image or repository was refused before reaching the cluster.
    #[error("failed to make the build job")]
    Input(#[from] bindery_core::InputError),
    /// The Kubernetes API refused or failed the create.
    #[error("failed to create build job {name}")]
    Create {
        /// The Job's name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The build Jobs could not be listed.
    #[error("failed to list build jobs")]
    List(#[source] kube::Error),
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Job completed: the image is built (and pushed when configured).
    Built,
    /// The Job failed, timed out, went silent or vanished; the text says which, for users.
    Failed(String),
}

/// One item of a build's stream.
// Nearly every update is an event: boxing it would cost an allocation per log line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BuildUpdate {
    /// A log line as an event. A repo2docker line with phase `failed` does not end the
    /// stream: only [`BuildUpdate::Finished`] does.
    Event(Event),
    /// The build is over; nothing follows.
    Finished(Outcome),
}

#[derive(Debug, Default)]
struct RunState {
    events: Vec<Event>,
    outcome: Option<Outcome>,
}

/// What every caller attached to one Job's follower reads.
#[derive(Debug)]
struct Shared {
    state: Mutex<RunState>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(RunState::default()),
            changed: watch::channel(0).0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, event: Event) {
        self.state().events.push(event);
        self.changed.send_modify(|v| *v += 1);
    }

    fn finish(&self, outcome: Outcome) {
        self.state().outcome.get_or_insert(outcome);
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A caller's view of one build: its log events from the first line, then the outcome.
#[derive(Debug)]
pub struct BuildRun {
    /// The build (read back from the Job's annotations when adopted).
    pub build: BuildSpec,
    /// True when this call created the Job; false when it attached to an existing one.
    pub created: bool,
    shared: Arc<Shared>,
    changed: watch::Receiver<u64>,
    cursor: usize,
    done: bool,
}

impl BuildRun {
    fn new(build: BuildSpec, created: bool, shared: Arc<Shared>) -> BuildRun {
        let changed = shared.changed.subscribe();
        BuildRun {
            build,
            created,
            shared,
            changed,
            cursor: 0,
            done: false,
        }
    }

    /// The next event, then [`BuildUpdate::Finished`], then `None`.
    pub async fn next(&mut self) -> Option<BuildUpdate> {
        loop {
            self.changed.borrow_and_update();
            {
                let state = self.shared.state();
                if let Some(event) = state.events.get(self.cursor) {
                    self.cursor += 1;
                    return Some(BuildUpdate::Event(event.clone()));
                }
                if self.done {
                    return None;
                }
                if let Some(outcome) = &state.outcome {
                    self.done = true;
                    return Some(BuildUpdate::Finished(outcome.clone()));
                }
            }
            // The sender lives in `shared`, which this run holds: it cannot be dropped.
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Reads the whole build, handing each event to `on_event`, and returns the outcome.
    pub async fn finish(mut self, mut on_event: impl FnMut(Event)) -> Outcome {
        while let Some(update) = self.next().await {
            match update {
                BuildUpdate::Event(event) => on_event(event),
                BuildUpdate::Finished(outcome) => return outcome,
            }
        }
        Outcome::Failed("the build ended without an outcome".into())
    }

    /// The run as a stream of updates.
    pub fn into_stream(self) -> impl Stream<Item = BuildUpdate> + Send {
        futures::stream::unfold(self, |mut run| async move {
            let update = run.next().await?;
            Some((update, run))
        })
    }
}

/// Builds as Kubernetes Jobs. Clones share their followers; when the last clone is
/// dropped every follower stops and its callers read a `failed` outcome.
#[derive(Debug, Clone)]
pub struct KubeExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cluster: Cluster,
    following: Mutex<HashMap<String, Follower>>,
}

#[derive(Debug)]
struct Follower {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let following = self
            .following
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, follower) in following.drain() {
            follower.task.abort();
            follower.shared.finish(Outcome::Failed(
                "the worker stopped following the build".into(),
            ));
        }
    }
}

/// The API handles and settings a follower task needs.
#[derive(Debug, Clone)]
struct Cluster {
    jobs: Api<Job>,
    pods: Api<Pod>,
    settings: Arc<ExecutorSettings>,
}

/// A Job is over when it is gone or has a true `Complete` or `Failed` condition.
fn job_finished(job: Option<&Job>) -> bool {
    job.is_none_or(|job| job_outcome(job).is_some())
}

fn job_outcome(job: &Job) -> Option<Outcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(Outcome::Built),
            "Failed" => Some(Outcome::Failed(failure_message(
                c.reason.as_deref(),
                c.message.as_deref(),
                job,
            ))),
            _ => None,
        })
}

fn failure_message(reason: Option<&str>, message: Option<&str>, job: &Job) -> String {
    if reason == Some("DeadlineExceeded") {
        let limit = job
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .unwrap_or_default();
        return format!("the build timed out after {limit} s");
    }
    match (reason, message) {
        (Some(reason), Some(message)) => format!("the build failed ({reason}): {message}"),
        (Some(text), None) | (None, Some(text)) => format!("the build failed: {text}"),
        (None, None) => "the build failed".into(),
    }
}

/// Where a follower goes after waiting for the pod.
enum PodWait {
    /// The pod runs (or has already ended): follow its log.
    Started(String),
    /// The Job ended; its pod, if any, may still hold a log.
    JobEnded(Option<String>),
    /// Watching failed.
    Error(String),
    /// The pod cannot start: a container waits for a reason that does not go away by
    /// itself (see [`STUCK_REASONS`]); the text names it.
    Stuck(String),
}

/// The `state.waiting.reason`s of a pending build pod's containers that end the build
/// at once instead of letting it wait for the build timeout: an image that cannot be
/// pulled, a container that cannot be configured (a missing Secret or ConfigMap key).
/// Kubernetes reports a volume that cannot be mounted as a `FailedMount` event and leaves
/// the container in `ContainerCreating`; the reason is listed for runtimes that put it
/// on the container.
const STUCK_REASONS: [&str; 6] = [
    "FailedMount",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a pending pod cannot start, when one of its (init) containers waits for one of
/// the [`STUCK_REASONS`]: `"<reason>: <message>"`.
fn pod_stuck(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Pending") {
        return None;
    }
    let containers = status.init_container_statuses.iter().flatten();
    containers
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find_map(|waiting| {
            let reason = waiting.reason.as_deref()?;
            if !STUCK_REASONS.contains(&reason) {
                return None;
            }
            Some(match waiting.message.as_deref().filter(|m| !m.is_empty()) {
                Some(message) => format!("{reason}: {message}"),
                None => reason.to_owned(),
            })
        })
}

impl KubeExecutor {
    /// An executor using `client` in `settings.job.namespace`.
    pub fn new(client: kube::Client, settings: ExecutorSettings) -> KubeExecutor {
        let namespace = settings.job.namespace.clone();
        let cluster = Cluster {
            jobs: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client, &namespace),
            settings: Arc::new(settings),
        };
        KubeExecutor {
            inner: Arc::new(Inner {
                cluster,
                following: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Creates the build's Job, or attaches to the Job of the same name when it exists, and
    /// follows it. A Job of that name that failed earlier is replaced, so a build can be
    /// retried before its `ttlSecondsAfterFinished` runs out.
    pub async fn start(&self, build: &BuildSpec) -> Result<BuildRun, KubeError> {
        let cluster = &self.inner.cluster;
        let manifest = job::build_job(&cluster.settings.job, build)?;
        let mut created = self.create(build, &manifest).await?;
        if !created
            && let Ok(Some(existing)) = cluster.jobs.get_opt(&build.name).await
            && matches!(job_outcome(&existing), Some(Outcome::Failed(_)))
        {
            cluster.delete(&build.name).await;
            self.drop_finished_follower(&build.name);
            created = self.create(build, &manifest).await?;
        }
        Ok(self.attach(build.clone(), created))
    }

    /// Finds the unfinished build Jobs by label and follows each: what a worker does when
    /// it starts, so a restart loses no build.
    pub async fn adopt(&self) -> Result<Vec<BuildRun>, KubeError> {
        let selector = format!("{}={}", job::MANAGED_BY_LABEL, job::MANAGED_BY);
        let list = self
            .inner
            .cluster
            .jobs
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(KubeError::List)?;
        Ok(list
            .items
            .iter()
            .filter(|job| job_outcome(job).is_none())
            .filter_map(BuildSpec::from_job)
            .map(|build| self.attach(build, false))
            .collect())
    }

    /// Creates the Job; `Ok(false)` when one of that name exists.
    async fn create(&self, build: &BuildSpec, manifest: &Job) -> Result<bool, KubeError> {
        let jobs = &self.inner.cluster.jobs;
        match jobs.create(&PostParams::default(), manifest).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => {
                Ok(false)
            }
            Err(source) => Err(KubeError::Create {
                name: build.name.clone(),
                source,
            }),
        }
    }

    fn following(&self) -> std::sync::MutexGuard<'_, HashMap<String, Follower>> {
        self.inner.following()
    }

    fn drop_finished_follower(&self, name: &str) {
        let mut following = self.following();
        if following
            .get(name)
            .is_some_and(|f| f.shared.state().outcome.is_some())
        {
            following.remove(name);
        }
    }

    /// The follower of `build`'s Job in this executor, started when there is none.
    fn attach(&self, build: BuildSpec, created: bool) -> BuildRun {
        let mut following = self.following();
        if let Some(follower) = following.get(&build.name) {
            return BuildRun::new(build, created, follower.shared.clone());
        }
        let shared = Shared::new();
        let cluster = self.inner.cluster.clone();
        let owner = Arc::downgrade(&self.inner);
        let name = build.name.clone();
        let mine = shared.clone();
        // Spawning never runs the task inline, so holding the lock here is fine.
        let task = tokio::spawn(async move {
            let outcome = cluster.follow(&name, &mine).await;
            tracing::info!(job = %name, ?outcome, "build finished");
            mine.finish(outcome);
            if let Some(owner) = owner.upgrade() {
                let mut following = owner.following();
                if following
                    .get(&name)
                    .is_some_and(|f| Arc::ptr_eq(&f.shared, &mine))
                {
                    following.remove(&name);
                }
            }
        });
        following.insert(
            build.name.clone(),
            Follower {
                shared: shared.clone(),
                task: task.abort_handle(),
            },
        );
        BuildRun::new(build, created, shared)
    }
}

impl Inner {
    fn following(&self) -> std::sync::MutexGuard<'_, HashMap<String, Follower>> {
        self.following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Cluster {
    /// Deletes the build's Job (and so its pod) and fails the build with `message`.
    async fn fail_deleting(&self, name: &str, message: String) -> Outcome {
        self.delete(name).await;
        Outcome::Failed(message)
    }

    async fn delete(&self, name: &str) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        if let Err(error) = self.jobs.delete(name, &params).await {
            tracing::warn!(job = name, %error, "failed to delete build job");
        }
    }

    /// Follows one Job to its end under the build timeout (plus grace).
    async fn follow(&self, name: &str, shared: &Shared) -> Outcome {
        let limit = self.settings.job.build_timeout + self.settings.finish_grace;
        match tokio::time::timeout(limit, self.follow_inner(name, shared)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.fail_deleting(
                    name,
                    format!(
                        "the build timed out after {} s",
                        self.settings.job.build_timeout.as_secs()
                    ),
                )
                .await
            }
        }
    }

    async fn follow_inner(&self, name: &str, shared: &Shared) -> Outcome {
        let pod = match self.wait_for_pod(name).await {
            PodWait::Started(pod) => Some(pod),
            PodWait::JobEnded(pod) => pod,
            PodWait::Error(message) => return Outcome::Failed(message),
            PodWait::Stuck(why) => {
                let message = format!("the build pod could not start ({why})");
                return self.fail_deleting(name, message).await;
            }
        };
        // How long to wait for the Job's condition once the log is over: moments after
        // the container ended, but up to the build timeout when the log stream broke.
        let mut grace = Some(self.settings.finish_grace);
        if let Some(pod) = pod {
            let idle = self.settings.idle_timeout;
            match self.stream_log(&pod, shared).await {
                LogEnd::Ended => {}
                LogEnd::Idle => {
                    let message = format!(
                        "the build printed nothing for {} s and was stopped",
                        idle.as_secs_f64()
                    );
                    return self.fail_deleting(name, message).await;
                }
                LogEnd::Error(error) => {
                    tracing::warn!(job = name, %error, "build log stream failed");
                    grace = None;
                }
            }
        }
        let ended = await_condition(self.jobs.clone(), name, job_finished);
        let limit = grace.unwrap_or(self.settings.job.build_timeout + self.settings.finish_grace);
        match tokio::time::timeout(limit, ended).await {
            Ok(Ok(Some(job))) => job_outcome(&job)
                .unwrap_or_else(|| Outcome::Failed("the build job ended without a result".into())),
            Ok(Ok(None)) => Outcome::Failed("the build job was deleted before it finished".into()),
            Ok(Err(error)) => Outcome::Failed(format!("failed to watch the build job: {error}")),
            Err(_) => Outcome::Failed(format!(
                "the build pod ended but its job reported no result within {} s",
                limit.as_secs_f64()
            )),
        }
    }

    /// Waits until the Job's pod runs or has ended, or the Job ends without one running, or
    /// the pod turns out unable to start ([`pod_stuck`]).
    async fn wait_for_pod(&self, name: &str) -> PodWait {
        let selector = format!("job-name={name}");
        let pods = watcher(
            self.pods.clone(),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .applied_objects()
        .filter_map(|pod| async move {
            match pod {
                Ok(pod) if pod_started(&pod) => {
                    Some(PodWait::Started(pod.metadata.name.unwrap_or_default()))
                }
                Ok(pod) => pod_stuck(&pod).map(PodWait::Stuck),
                // The watcher relists after an error (a 410 Gone, a dropped connection):
                // the build timeout bounds the wait, so keep watching.
                Err(error) => {
                    tracing::warn!(job = name, %error, "build pod watch failed; retrying");
                    None
                }
            }
        });
        let mut pods = std::pin::pin!(pods);
        tokio::select! {
            started = pods.next() => match started {
                Some(wait) => wait,
                None => PodWait::Error("the build pod watch ended".into()),
            },
            ended = await_condition(self.jobs.clone(), name, job_finished) => match ended {
                Ok(_) => {
                    let pods = self.pods.list(&ListParams::default().labels(&selector)).await;
                    let pod = pods.ok().and_then(|list| {
                        list.items.into_iter().find(pod_started).and_then(|p| p.metadata.name)
                    });
                    PodWait::JobEnded(pod)
                }
                Err(error) => PodWait::Error(format!("failed to watch the build job: {error}")),
            },
        }
    }

    /// Follows the pod's build log from its first line until the container ends.
    ///
    /// A follow stream can end while the container still runs (an API server or kubelet
    /// restart, a proxy's timeout): then the log is asked for again from the last line's
    /// second (`sinceTime`, with `timestamps=true`), and the lines already relayed are
    /// recognised by their timestamps and dropped. Once the pod has ended, one last read
    /// picks up whatever the broken stream missed. The idle timeout runs across
    /// reconnections: it counts from the last new line, and is checked before each
    /// reconnection too. A pod whose phase stays `Unknown` is given up on (a log error)
    /// after [`MAX_UNKNOWN_RECONNECTS`] reconnections.
    async fn stream_log(&self, pod: &str, shared: &Shared) -> LogEnd {
        let idle = self.settings.idle_timeout;
        let mut cursor = LogCursor::default();
        let mut last_line = tokio::time::Instant::now();
        let mut caught_up = false;
        let mut unknown_reconnects = 0;
        loop {
            let params = LogParams {
                container: Some(job::CONTAINER.into()),
                follow: true,
                timestamps: true,
                since_time: cursor.since(),
                ..LogParams::default()
            };
            let reader = match self.pods.log_stream(pod, &params).await {
                Ok(reader) => reader,
                Err(error) => return LogEnd::Error(error.to_string()),
            };
            cursor.reconnected();
            let mut lines = std::pin::pin!(reader.lines());
            let broken = loop {
                let left = idle.saturating_sub(last_line.elapsed());
                match tokio::time::timeout(left, lines.next()).await {
                    Err(_) => return LogEnd::Idle,
                    Ok(None) => break None,
                    Ok(Some(Err(error))) => break Some(error.to_string()),
                    Ok(Some(Ok(line))) => {
                        if let Some(text) = cursor.accept(&line) {
                            last_line = tokio::time::Instant::now();
                            shared.push(from_repo2docker_line(text));
                        }
                    }
                }
            };
            match self.pods.get_opt(pod).await {
                Ok(Some(found)) if !pod_ended(&found) => {
                    // A stream that ends at once never meets the timeout above: the idle
                    // time is checked here too, or reconnecting would go on past it.
                    if last_line.elapsed() >= idle {
                        return LogEnd::Idle;
                    }
                    let unknown =
                        found.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Unknown");
                    unknown_reconnects = if unknown { unknown_reconnects + 1 } else { 0 };
                    if unknown_reconnects > MAX_UNKNOWN_RECONNECTS {
                        return LogEnd::Error(format!(
                            "the build pod's phase stayed Unknown over {MAX_UNKNOWN_RECONNECTS} \
                             log reconnections"
                        ));
                    }
                    tracing::info!(pod, error = ?broken, "build log stream ended while the pod runs; reconnecting");
                    tokio::time::sleep(LOG_RECONNECT_DELAY.min(idle)).await;
                }
                Ok(Some(_)) if !caught_up => caught_up = true,
                Ok(_) => {
                    return broken.map_or(LogEnd::Ended, LogEnd::Error);
                }
                Err(error) => return LogEnd::Error(error.to_string()),
            }
        }
    }
}

/// The pause before asking again for a log whose stream ended while the pod runs.
const LOG_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// How many times in a row the log is asked for again while the pod's phase is `Unknown`
/// (its node does not report) before the executor stops reading it and only waits for
/// the Job's condition.
const MAX_UNKNOWN_RECONNECTS: u32 = 20;

/// Where a log reader is, by the kubelet's timestamps, so that a reconnection (which
/// starts at a whole second) relays no line twice.
#[derive(Debug, Default)]
struct LogCursor {
    /// The timestamp of the last line relayed.
    last: Option<Timestamp>,
    /// How many lines relayed so far carry exactly `last`.
    at_last: usize,
    /// How many lines carrying `last` this connection has read.
    read_at_last: usize,
}

impl LogCursor {
    /// Where the next connection starts: the last line's whole second (the API server
    /// takes no fraction; kube-rs would round it to the nearest second, possibly up).
    fn since(&self) -> Option<Timestamp> {
        self.last
            .and_then(|last| Timestamp::from_second(last.as_second()).ok())
    }

    fn reconnected(&mut self) {
        self.read_at_last = 0;
    }

    /// The text of a `timestamps=true` line when it is new, `None` when it was relayed
    /// before. A line without a readable timestamp is passed on whole.
    fn accept<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
        let Ok(stamp) = stamp.parse::<Timestamp>() else {
            return Some(line);
        };
        match self.last {
            Some(last) if stamp < last => None,
            Some(last) if stamp == last => {
                self.read_at_last += 1;
                if self.read_at_last <= self.at_last {
                    None
                } else {
                    self.at_last += 1;
                    Some(text)
                }
            }
            _ => {
                self.last = Some(stamp);
                self.at_last = 1;
                self.read_at_last = 1;
                Some(text)
            }
        }
    }
}

enum LogEnd {
    Ended,
    Idle,
    Error(String),
}

fn pod_ended(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

fn pod_started(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Running" | "Succeeded" | "Failed"))
}

/// The worker's [`worker_executor::Executor`] over Jobs: the build name becomes the Job's
/// name, the run's updates the handle's events and outcome. Cancelling deletes the Job;
/// dropping the handle does not (a stopping worker leaves its Jobs for the next to adopt).
impl worker_executor::Executor for KubeExecutor {
    fn start(&self, spec: &worker_executor::BuildSpec) -> BuildHandle {
        let build = BuildSpec {
            name: spec.build_name.clone(),
            image: spec.image.clone(),
            repo_url: spec.repo.clone(),
            git_ref: spec.git_ref.clone(),
        };
        let executor = self.clone();
        self.handle(async move {
            KubeExecutor::start(&executor, &build)
                .await
                .map_err(|error| format!("failed to start the build: {}", error_chain(&error)))
        })
    }

    fn health(&self, total_quota: Option<u32>) -> BoxFuture<'_, Vec<serde_json::Value>> {
        Box::pin(async move {
            let (api, pods) = futures::future::join(self.api_answers(), self.pod_counts()).await;
            if let Err(error) = &api {
                tracing::warn!(%error, "health: the Kubernetes API does not answer");
            }
            vec![
                serde_json::json!({"service": "Kubernetes API", "ok": api.is_ok()}),
                pod_quota_check(pods, total_quota),
            ]
        })
    }

    fn adopt(
        &self,
    ) -> BoxFuture<'_, Result<Vec<(worker_executor::BuildSpec, BuildHandle)>, String>> {
        Box::pin(async move {
            let runs = KubeExecutor::adopt(self)
                .await
                .map_err(|error| error_chain(&error))?;
            Ok(runs
                .into_iter()
                .map(|run| {
                    let spec = worker_executor::BuildSpec {
                        image: run.build.image.clone(),
                        build_name: run.build.name.clone(),
                        repo: run.build.repo_url.clone(),
                        git_ref: run.build.git_ref.clone(),
                    };
                    (spec, self.handle(async move { Ok(run) }))
                })
                .collect())
        })
    }
}

/// The label selector of user servers (KubeSpawner's pods), as BinderHub counts them.
pub const USER_POD_SELECTOR: &str = "app=jupyterhub,component=singleuser-server";

/// Pod counts for BinderHub's informational `Pod quota` health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCounts {
    /// Build pods (`component=bindery-build`) not yet ended.
    pub build_pods: usize,
    /// User server pods not yet ended.
    pub user_pods: usize,
}

impl KubeExecutor {
    /// Whether the API server answers: one Job listed in the build namespace.
    pub async fn api_answers(&self) -> Result<(), String> {
        let params = ListParams::default().limit(1);
        let list = self.inner.cluster.jobs.list(&params);
        match tokio::time::timeout(worker_executor::HEALTH_TIMEOUT, list).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error_chain(&error)),
            Err(_) => Err("the Kubernetes API did not answer in time".into()),
        }
    }

    /// The build and user pods in the build namespace that have not ended (a finished
    /// build's pod lingers until its Job's TTL, and holds no resources).
    pub async fn pod_counts(&self) -> Result<PodCounts, String> {
        let pods = &self.inner.cluster.pods;
        let count = |selector: String| async move {
            let params = ListParams::default().labels(&selector);
            let list = pods.list(&params);
            match tokio::time::timeout(worker_executor::HEALTH_TIMEOUT, list).await {
                Ok(Ok(list)) => Ok(list
                    .items
                    .iter()
                    .filter(|pod| {
                        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                        !matches!(phase, Some("Succeeded" | "Failed"))
                    })
                    .count()),
                Ok(Err(error)) => Err(error_chain(&error)),
                Err(_) => Err("the Kubernetes API did not answer in time".to_owned()),
            }
        };
        let (build_pods, user_pods) = futures::future::try_join(
            count(format!("component={}", job::COMPONENT)),
            count(USER_POD_SELECTOR.to_owned()),
        )
        .await?;
        Ok(PodCounts {
            build_pods,
            user_pods,
        })
    }

    /// A handle whose task awaits `run` and relays it.
    fn handle(
        &self,
        run: impl std::future::Future<Output = Result<BuildRun, String>> + Send + 'static,
    ) -> BuildHandle {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcome_tx, outcome) = oneshot::channel();
        let (cancel, cancel_rx) = watch::channel(false);
        let cluster = self.inner.cluster.clone();
        tokio::spawn(async move {
            let result = match run.await {
                Ok(run) => relay(&cluster, run, &events, cancel_rx).await,
                Err(message) => BuildOutcome::Failed(message),
            };
            drop(events);
            let _ = outcome_tx.send(result);
        });
        BuildHandle {
            events: events_rx,
            outcome,
            cancel,
        }
    }
}

/// Sends the run's events to `events` and returns its outcome; deletes the Job when the
/// build is cancelled.
async fn relay(
    cluster: &Cluster,
    mut run: BuildRun,
    events: &mpsc::UnboundedSender<Event>,
    mut cancel: watch::Receiver<bool>,
) -> BuildOutcome {
    let mut watching = true;
    loop {
        tokio::select! {
            update = run.next() => match update {
                Some(BuildUpdate::Event(event)) => {
                    let _ = events.send(event);
                }
                Some(BuildUpdate::Finished(Outcome::Built)) => return BuildOutcome::Succeeded,
                Some(BuildUpdate::Finished(Outcome::Failed(message))) => {
                    return BuildOutcome::Failed(message);
                }
                None => return BuildOutcome::Failed("the build ended without an outcome".into()),
            },
            changed = cancel.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                } else if *cancel.borrow() {
                    cluster.delete(&run.build.name).await;
                    return BuildOutcome::Failed("the build was cancelled".into());
                }
            }
        }
    }
}

/// BinderHub's `Pod quota` check: informational (`_ignore_failure`), so it never makes
/// `/health` fail; `ok` says whether the pods fit the total quota (always, without one).
pub fn pod_quota_check(
    counts: Result<PodCounts, String>,
    total_quota: Option<u32>,
) -> serde_json::Value {
    match counts {
        Ok(counts) => {
            let total = counts.build_pods + counts.user_pods;
            serde_json::json!({
                "service": "Pod quota",
                "ok": total_quota.is_none_or(|quota| total <= quota as usize),
                "total_pods": total,
                "build_pods": counts.build_pods,
                "user_pods": counts.user_pods,
                "quota": total_quota,
                "_ignore_failure": true,
            })
        }
        Err(error) => {
            tracing::warn!(%error, "health: failed to count pods");
            serde_json::json!({"service": "Pod quota", "ok": false, "_ignore_failure": true})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnected_log_relays_each_line_once_by_its_timestamp() {
        let mut cursor = LogCursor::default();
        assert_eq!(cursor.since(), None);
        let first = [
            "2026-11-26T07:00:00.5Z a",
            "2026-11-26T07:00:00.75Z b",
            "2026-11-26T07:00:00.75Z c",
        ];
        let got: Vec<_> = first.iter().filter_map(|l| cursor.accept(l)).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(
            cursor.since().map(|t| t.to_string()).as_deref(),
            Some("2026-11-26T07:00:00Z"),
            "whole seconds, rounded down"
        );
        cursor.reconnected();
        let second = [
            "2026-11-26T07:00:00.5Z a",
            "2026-11-26T07:00:00.75Z b",
            "2026-11-26T07:00:00.75Z c",
            "2026-11-26T07:00:00.75Z d",
            "2026-11-26T07:00:00.9Z e",
            "not a timestamped line",
            "2026-11-26T07:00:01Z ",
        ];
        let got: Vec<_> = second.iter().filter_map(|l| cursor.accept(l)).collect();
        assert_eq!(got, ["d", "e", "not a timestamped line", ""]);
    }
}

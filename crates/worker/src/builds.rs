//! Builds: one per image, whoever asks, through the queue and an executor.
//!
//! A build is registered under its image; while it is queued or running, every request for
//! that image (a prebuild, or any number of launches) gets the same build id and follows
//! the same event log. A build runs in four steps:
//!
//! 1. re-check the registry (without one, the engine: [`crate::images`]): another replica
//!    may have pushed the image meanwhile; if it is there, the build ends at once with
//!    `built` ("Found built image...");
//! 2. wait for a slot in the [`BuildQueue`] (`waiting` events with `queue_position`);
//! 3. run the [`Executor`], relaying its events; a `failed` line of repo2docker is kept as
//!    an `unknown` line so that only the outcome ends the stream;
//! 4. end the log with `built` ("Built image, launching...", `imageName`) or `failed`, and
//!    store the full log text in the [`LogStore`].
//!
//! At start-up [`Builds::adopt`] registers the builds the executor still runs (Kubernetes
//! Jobs of a previous worker) under their images and follows them from step 3 on; each
//! holds a queue slot until it ends.
//!
//! **A build's event stream ends after `built`** (or `failed`): `built` is the terminal
//! event of a build stream, `ready` that of a launch stream.
//!
//! What a build can make the worker hold is bounded: a new build is refused once
//! [`PendingLimits::total`] builds are queued or running, a launch once its client waits
//! for [`PendingLimits::per_client`] builds ([`QueueRefusal`]); an output line is cut at
//! [`MAX_LINE_BYTES`]; the log keeps its head and tail ([`crate::events`]), and the
//! launches that follow a build share its events instead of copying them ([`relay`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bindery_core::events::{Event, Phase};
use bindery_core::worker_api::{BuildInfo, BuildState};

use crate::events::{EventLog, Logs};
use crate::executor::{BuildHandle, BuildOutcome, BuildSpec, Executor, ExecutorError};
use crate::ids;
use crate::images::{self, LookupError};
use crate::logstore::{LogStore, Record};
use crate::metrics::Metrics;
use crate::queue::{BuildQueue, ClientShare, ClientShares, PendingLimits, QueueRefusal, Slot};
use crate::registry::RegistryClient;

/// Builds by image, their event logs by id, the queue and the executor.
#[derive(Debug)]
pub struct Builds {
    by_image: Mutex<HashMap<String, BuildInfo>>,
    logs: Logs,
    queue: Arc<BuildQueue>,
    executor: Arc<dyn Executor>,
    registry: Option<RegistryClient>,
    store: LogStore,
    metrics: Arc<Metrics>,
    limits: PendingLimits,
    shares: ClientShares,
}

/// The longest build output line kept (16 KiB): a longer one is cut, saying so.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// A build as [`Builds::start_or_attach`] hands it out.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The build id.
    pub id: String,
    /// Its event log.
    pub log: Arc<EventLog>,
    /// True when this call registered the build (the caller must run it).
    pub created: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Builds {
    /// A registry of builds run by `executor`, at most `max_concurrent` at once.
    pub fn new(
        logs: Logs,
        executor: Arc<dyn Executor>,
        registry: Option<RegistryClient>,
        store: LogStore,
        max_concurrent: usize,
        metrics: Arc<Metrics>,
    ) -> Builds {
        Builds {
            by_image: Mutex::new(HashMap::new()),
            logs,
            queue: BuildQueue::new(max_concurrent),
            executor,
            registry,
            store,
            metrics,
            limits: PendingLimits::default(),
            shares: ClientShares::default(),
        }
    }

    /// The same registry with the queue bounded by `limits` (the default is
    /// [`PendingLimits::default`]).
    pub fn with_limits(self, limits: PendingLimits) -> Builds {
        Builds { limits, ..self }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, BuildInfo>> {
        self.by_image
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The unfinished build of `image`, or a new queued one.
    pub fn start_or_attach(&self, image: &str) -> Attached {
        let mut map = self.map();
        self.attach_or_register(&mut map, image)
    }

    /// The unfinished build of `image`, or a new queued one unless `limit` builds are
    /// already queued or running.
    fn try_start_or_attach(&self, image: &str, limit: usize) -> Result<Attached, QueueRefusal> {
        let mut map = self.map();
        let pending = map
            .values()
            .filter(|info| matches!(info.state, BuildState::Queued | BuildState::Running))
            .count();
        let attaching = map
            .get(image)
            .is_some_and(|info| matches!(info.state, BuildState::Queued | BuildState::Running));
        if !attaching && pending >= limit {
            return Err(QueueRefusal::WorkerFull { limit });
        }
        Ok(self.attach_or_register(&mut map, image))
    }

    fn attach_or_register(&self, map: &mut HashMap<String, BuildInfo>, image: &str) -> Attached {
        if let Some(info) = map.get(image)
            && matches!(info.state, BuildState::Queued | BuildState::Running)
            && let Some(log) = self.logs.get(&info.id)
        {
            return Attached {
                id: info.id.clone(),
                log,
                created: false,
            };
        }
        let id = ids::new_id();
        let log = self.logs.create(&id);
        map.insert(
            image.to_owned(),
            BuildInfo {
                id: id.clone(),
                image: image.to_owned(),
                state: BuildState::Queued,
                started: None,
                finished: None,
            },
        );
        Attached {
            id,
            log,
            created: true,
        }
    }

    /// The build of `spec.image`: the running one, or a new one started in the background;
    /// refused when the worker's queue is full and a new build would be needed.
    pub fn request(self: &Arc<Self>, spec: BuildSpec) -> Result<Attached, QueueRefusal> {
        let attached = self.try_start_or_attach(&spec.image, self.limits.total)?;
        if attached.created {
            tracing::info!(build = %attached.id, image = %spec.image, "build registered");
            let builds = Arc::clone(self);
            let run = attached.clone();
            tokio::spawn(async move { builds.run(spec, run).await });
        }
        Ok(attached)
    }

    /// [`Builds::request`] for a launch from `client`: also refused when that client
    /// already waits for as many builds as it may. The share is the client's until it is
    /// dropped (when the launch stops waiting for the build).
    pub fn request_for(
        self: &Arc<Self>,
        spec: BuildSpec,
        client: &str,
    ) -> Result<(Attached, ClientShare), QueueRefusal> {
        let share = self
            .shares
            .take(client, &spec.image, self.limits.per_client)?;
        Ok((self.request(spec)?, share))
    }

    async fn run(&self, spec: BuildSpec, attached: Attached) {
        let log = &attached.log;
        match images::image_present(self.registry(), self.executor(), &spec.image).await {
            Ok(true) => {
                tracing::info!(image = %spec.image, "image found; no build");
                log.append_final(Event::built(&spec.image, true));
                self.finish(&spec.image, &attached, BuildState::Succeeded)
                    .await;
                return;
            }
            Ok(false) | Err(LookupError::Nowhere) => {}
            Err(err) => {
                let error = crate::error_chain(&err);
                tracing::warn!(image = %spec.image, %error, "image re-check failed; building");
            }
        }
        let slot = self.queue.acquire(log).await;
        self.metrics.set_build_queue_length(self.queue.len());
        self.set_state(&spec.image, BuildState::Running);
        let handle = self.executor.start(&spec);
        self.follow(spec, attached, handle, Some(slot)).await;
    }

    /// Registers the builds the executor was running before this worker started under
    /// their images, as running, and follows them like builds started here. Each takes a
    /// queue slot at once (past the limit if need be: it already runs) and frees it when it
    /// ends, so the limit holds for adopted and new builds together. Returns how many were
    /// adopted.
    pub async fn adopt(self: &Arc<Self>) -> Result<usize, ExecutorError> {
        let mut adopted = 0;
        for (spec, handle) in self.executor.adopt().await? {
            let attached = self.start_or_attach(&spec.image);
            if !attached.created {
                continue;
            }
            tracing::info!(build = %attached.id, image = %spec.image, job = %spec.build_name, "build adopted");
            self.set_state(&spec.image, BuildState::Running);
            adopted += 1;
            let slot = self.queue.occupy();
            let builds = Arc::clone(self);
            tokio::spawn(async move { builds.follow(spec, attached, handle, Some(slot)).await });
        }
        Ok(adopted)
    }

    /// Relays a running build's events to its log and ends the log with its outcome.
    async fn follow(
        &self,
        spec: BuildSpec,
        attached: Attached,
        mut handle: BuildHandle,
        slot: Option<Slot>,
    ) {
        let log = &attached.log;
        self.metrics.build_started();
        let started = Instant::now();
        while let Some(mut event) = handle.events.recv().await {
            if event.phase.is_terminal() {
                event.phase = Phase::Unknown;
            }
            event.cut_message(MAX_LINE_BYTES);
            log.append(event);
        }
        let outcome = handle.outcome.await.unwrap_or_else(|_| {
            BuildOutcome::Failed("the build executor stopped without an outcome".into())
        });
        drop(slot);
        self.metrics.set_build_queue_length(self.queue.len());
        let (state, status, last) = match outcome {
            BuildOutcome::Succeeded => (
                BuildState::Succeeded,
                "success",
                Event::built(&spec.image, false),
            ),
            BuildOutcome::Failed(message) => (
                BuildState::Failed,
                "failure",
                Event::failed(
                    Some(500),
                    format!("Failed to build image {}: {message}", spec.image),
                ),
            ),
        };
        // The state is recorded before the last event goes out: a client that has seen
        // `built` and then asks for the build's state must not be told `running`.
        self.set_state(&spec.image, state);
        log.append_final(last);
        self.metrics.build_finished(status, started.elapsed());
        self.finish(&spec.image, &attached, state).await;
    }

    async fn finish(&self, image: &str, attached: &Attached, state: BuildState) {
        self.set_state(image, state);
        let info = self.map().get(image).cloned();
        if let Some(info) = info.filter(|i| i.id == attached.id) {
            let record = Record {
                info,
                log: attached.log.text(),
            };
            if let Err(err) = self.store.put(record).await {
                tracing::error!(build = %attached.id, error = %err, "failed to store the build log");
            }
        }
    }

    /// Records a state change of the build of `image`.
    pub fn set_state(&self, image: &str, state: BuildState) {
        if let Some(info) = self.map().get_mut(image) {
            match state {
                BuildState::Running => info.started = Some(now()),
                BuildState::Succeeded | BuildState::Failed => info.finished = Some(now()),
                BuildState::Queued => {}
            }
            info.state = state;
        }
    }

    /// The current or last build of `image` (from the store after a restart).
    pub fn info(&self, image: &str) -> Option<BuildInfo> {
        if let Some(info) = self.map().get(image).cloned() {
            return Some(info);
        }
        self.store.last_of(image).ok().flatten().map(|r| r.info)
    }

    /// The event log of build `id`, while it is kept in memory.
    pub fn log(&self, id: &str) -> Option<Arc<EventLog>> {
        self.logs.get(id)
    }

    /// The full log text of build `id`: live while it runs, from the store after it ends.
    pub fn log_text(&self, id: &str) -> Option<String> {
        if let Some(log) = self.logs.get(id) {
            return Some(log.text());
        }
        self.store.get(id).ok().flatten().map(|r| r.log)
    }

    /// The executor that runs the builds.
    pub fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// The registry builds are re-checked in, when one is configured.
    pub fn registry(&self) -> Option<&RegistryClient> {
        self.registry.as_ref()
    }

    /// The worker is stopping: the executor stops what must not outlive the process (see
    /// [`Executor::shutdown`]), waiting at most `deadline`.
    pub async fn shutdown(&self, deadline: std::time::Duration) {
        self.executor.shutdown(deadline).await;
    }

    /// How many builds wait for a slot.
    pub fn queue_length(&self) -> usize {
        self.queue.len()
    }

    /// Forgets finished logs past their keep time (in memory and in the store).
    pub fn sweep(&self, now_instant: Instant) {
        if self.logs.sweep(now_instant) > 0 {
            let mut map = self.map();
            map.retain(|_, info| self.logs.get(&info.id).is_some());
        }
        if let Err(err) = self.store.sweep(now()) {
            tracing::warn!(error = %err, "failed to sweep the build log store");
        }
    }
}

/// Appends every event of `from` to `to` until `from` ends, sharing each (no copy);
/// returns the last phase appended. For a `build_only` launch, the build's `built` is
/// appended as the `ready` that ends such a launch ([`Event::built_to_build_only_done`]).
pub async fn relay(from: &EventLog, to: &EventLog, build_only: bool) -> Option<Phase> {
    let mut wake = from.subscribe();
    let mut after = 0;
    let mut last = None;
    loop {
        wake.borrow_and_update();
        let page = from.read_after(after);
        for (seq, event) in &page.events {
            let done = event.built_to_build_only_done().filter(|_| build_only);
            last = Some(done.as_ref().map_or(event.phase, |d| d.phase));
            match done {
                Some(done) => to.append(done),
                None => to.append_shared(Arc::clone(event)),
            };
            after = *seq;
        }
        if page.finished || wake.changed().await.is_err() {
            return last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An executor whose builds print one line and fail.
    #[derive(Debug)]
    struct Failing;

    impl Executor for Failing {
        fn start(&self, _spec: &BuildSpec) -> BuildHandle {
            let (handle, sink) = BuildHandle::channel();
            let _ = sink.events.send(Event::new(Phase::Building, "step 1\n"));
            sink.finish(BuildOutcome::Failed("no luck".into()));
            handle
        }
    }

    /// An executor whose builds print one endless line and succeed.
    #[derive(Debug)]
    struct Endless;

    impl Executor for Endless {
        fn start(&self, _spec: &BuildSpec) -> BuildHandle {
            let (handle, sink) = BuildHandle::channel();
            let _ = sink
                .events
                .send(Event::new(Phase::Building, "y".repeat(1 << 20)));
            sink.finish(BuildOutcome::Succeeded);
            handle
        }
    }

    /// An executor whose builds never end.
    #[derive(Debug)]
    struct Forever;

    impl Executor for Forever {
        fn start(&self, _spec: &BuildSpec) -> BuildHandle {
            let (handle, sink) = BuildHandle::channel();
            // Kept open for the test's life: the build stays running.
            std::mem::forget(sink);
            handle
        }
    }

    fn builds_with(executor: Arc<dyn Executor>, limits: PendingLimits) -> Arc<Builds> {
        Arc::new(
            Builds::new(
                Logs::new(100, Duration::from_secs(60)),
                executor,
                None,
                LogStore::open(None, Duration::from_secs(60)).expect("store"),
                1,
                Arc::new(Metrics::default()),
            )
            .with_limits(limits),
        )
    }

    #[tokio::test]
    async fn a_build_line_is_cut_at_16_kib_and_followers_share_the_builds_events() {
        let builds = builds_with(Arc::new(Endless), PendingLimits::default());
        let build = builds.request(spec("reg/a:1")).expect("queued");
        let launch = EventLog::new(100);
        assert_eq!(relay(&build.log, &launch, false).await, Some(Phase::Built));
        let line = &build.log.read_after(0).events[0].1;
        assert!(
            line.message.len() < MAX_LINE_BYTES + 64,
            "{}",
            line.message.len()
        );
        assert!(line.message.ends_with(" [line cut: 1048576 bytes]\n"));
        for ((_, a), (_, b)) in build
            .log
            .read_after(0)
            .events
            .iter()
            .zip(launch.read_after(0).events.iter())
        {
            assert!(
                Arc::ptr_eq(a, b),
                "the launch holds the build's events, not copies"
            );
        }
    }

    #[tokio::test]
    async fn past_the_pending_limits_a_build_is_refused_at_once_and_attaching_is_free() {
        let limits = PendingLimits {
            total: 2,
            per_client: 1,
        };
        let builds = builds_with(Arc::new(Forever), limits);
        let cases: [(&str, &str, Result<(), QueueRefusal>); 5] = [
            ("192.0.2.1", "reg/a:1", Ok(())),
            ("192.0.2.1", "reg/a:1", Ok(())),
            (
                "192.0.2.1",
                "reg/b:1",
                Err(QueueRefusal::ClientFull { limit: 1 }),
            ),
            ("192.0.2.2", "reg/b:1", Ok(())),
            (
                "192.0.2.3",
                "reg/c:1",
                Err(QueueRefusal::WorkerFull { limit: 2 }),
            ),
        ];
        let mut held = Vec::new();
        for (client, image, expected) in cases {
            let got = builds.request_for(spec(image), client);
            assert_eq!(
                got.as_ref().map(drop).map_err(Clone::clone),
                expected,
                "{client} {image}"
            );
            held.extend(got.ok());
        }
        // Another client's launch of a queued image needs no new build.
        assert!(builds.request_for(spec("reg/b:1"), "192.0.2.3").is_ok());
        assert_eq!(
            builds.request(spec("reg/d:1")).map(drop),
            Err(QueueRefusal::WorkerFull { limit: 2 }),
            "a prebuild counts the same"
        );
    }

    fn builds() -> Arc<Builds> {
        Arc::new(Builds::new(
            Logs::new(100, Duration::from_secs(60)),
            Arc::new(Failing),
            None,
            LogStore::open(None, Duration::from_secs(60)).expect("store"),
            1,
            Arc::new(Metrics::default()),
        ))
    }

    fn spec(image: &str) -> BuildSpec {
        BuildSpec {
            image: image.into(),
            build_name: "b".into(),
            repo: "https://example.org/r".into(),
            git_ref: "0123456789abcdef0123456789abcdef01234567".into(),
        }
    }

    #[tokio::test]
    async fn the_same_image_gets_the_same_build_while_it_runs_and_a_new_one_after() {
        let builds = builds();
        let first = builds.start_or_attach("reg/a:1");
        let again = builds.start_or_attach("reg/a:1");
        let other = builds.start_or_attach("reg/b:1");
        assert!(first.created && !again.created && other.created);
        assert_eq!(first.id, again.id);
        assert_ne!(first.id, other.id);
        builds.run(spec("reg/a:1"), first.clone()).await;
        let info = builds.info("reg/a:1").expect("info");
        assert_eq!(info.state, BuildState::Failed);
        assert!(info.finished.is_some());
        let text = builds.log_text(&first.id).expect("log");
        assert!(
            text.contains("step 1") && text.contains("no luck"),
            "{text}"
        );
        let after = builds.start_or_attach("reg/a:1");
        assert!(after.created && after.id != first.id);
    }
}

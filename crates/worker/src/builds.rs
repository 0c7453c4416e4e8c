//! The build registry: one build per image, whoever asks.
//!
//! A build is registered under its image; while it is queued or running, every request for
//! that image gets the same build id (and so the same event log). This session's worker has
//! no executor yet: [`Builds::run_without_executor`] ends a build with a `failed` event
//! that says so, and an executor (Kubernetes Jobs, local repo2docker) takes its place later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bindery_core::events::Event;
use bindery_core::worker_api::{BuildInfo, BuildState};

use crate::events::{EventLog, Logs};
use crate::ids;
use crate::metrics::Metrics;

/// The message of a build that this worker cannot run.
pub fn no_executor_message(image: &str) -> String {
    format!("image {image} is not built and this worker has no build executor yet")
}

/// Builds by image, and their event logs by id.
#[derive(Debug)]
pub struct Builds {
    by_image: Mutex<HashMap<String, BuildInfo>>,
    logs: Logs,
}

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
    /// An empty registry whose logs are kept as `logs` says.
    pub fn new(logs: Logs) -> Builds {
        Builds {
            by_image: Mutex::new(HashMap::new()),
            logs,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, BuildInfo>> {
        self.by_image
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The unfinished build of `image`, or a new queued one.
    pub fn start_or_attach(&self, image: &str) -> Attached {
        let mut map = self.map();
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

    /// Ends a build that no executor can run, with a `failed` event saying so.
    pub fn run_without_executor(&self, image: &str, attached: &Attached, metrics: &Metrics) {
        metrics.build_started();
        self.set_state(image, BuildState::Running);
        attached
            .log
            .append(Event::failed(Some(500), no_executor_message(image)));
        self.set_state(image, BuildState::Failed);
        metrics.build_finished("failure");
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

    /// The current or last build of `image`.
    pub fn info(&self, image: &str) -> Option<BuildInfo> {
        self.map().get(image).cloned()
    }

    /// The event log of build `id`, while it is kept.
    pub fn log(&self, id: &str) -> Option<Arc<EventLog>> {
        self.logs.get(id)
    }

    /// Forgets finished logs past their keep time.
    pub fn sweep(&self, now: std::time::Instant) {
        if self.logs.sweep(now) > 0 {
            let mut map = self.map();
            map.retain(|_, info| self.logs.get(&info.id).is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_same_image_gets_the_same_build_while_it_runs_and_a_new_one_after() {
        let builds = Builds::new(Logs::new(100, Duration::from_secs(60)));
        let first = builds.start_or_attach("reg/a:1");
        let again = builds.start_or_attach("reg/a:1");
        let other = builds.start_or_attach("reg/b:1");
        assert!(first.created && !again.created && other.created);
        assert_eq!(first.id, again.id);
        assert_ne!(first.id, other.id);
        builds.run_without_executor("reg/a:1", &first, &Metrics::default());
        let info = builds.info("reg/a:1").expect("info");
        assert_eq!(info.state, BuildState::Failed);
        assert!(info.finished.is_some());
        assert!(
            builds
                .log(&first.id)
                .expect("log")
                .text()
                .contains("no build executor")
        );
        let after = builds.start_or_attach("reg/a:1");
        assert!(after.created && after.id != first.id);
    }
}

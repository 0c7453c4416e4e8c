//! Following one build Job to its end: wait for its pod (failing at once when the pod
//! cannot start), relay its log as events, and end on the Job's condition, under the build
//! timeout and the idle timeout; a cancelled build's Job is deleted.

use std::time::Duration;

use bindery_core::events::Event;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, LogParams, PropagationPolicy};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::Cluster;
use super::job;
use crate::executor::lines::{BoundedLines, KEPT_LINE_BYTES};
use crate::executor::{BuildOutcome, BuildSink};

/// The events of one build, as the follower relays them.
type Events = mpsc::UnboundedSender<Event>;

impl Cluster {
    /// Follows Job `name` into `sink` until it ends, the handle cancels it (the Job is
    /// deleted) or the executor is dropped (`alive` closes; the Job runs on).
    pub(super) async fn run(&self, name: &str, sink: BuildSink, mut alive: watch::Receiver<()>) {
        let mut cancel = sink.cancel.clone();
        let mut watching = true;
        let outcome = {
            let follow = self.follow(name, &sink.events);
            let mut follow = std::pin::pin!(follow);
            loop {
                tokio::select! {
                    outcome = &mut follow => break outcome,
                    changed = cancel.changed(), if watching => {
                        if changed.is_err() {
                            // The handle is gone: nobody can cancel any more.
                            watching = false;
                        } else if *cancel.borrow() {
                            self.delete(name).await;
                            break BuildOutcome::Failed("the build was cancelled".into());
                        }
                    }
                    // Nothing is ever sent: this ends only when the executor is dropped.
                    _ = alive.changed() => {
                        break BuildOutcome::Failed("the worker stopped following the build".into());
                    }
                }
            }
        };
        tracing::info!(job = %name, ?outcome, "build finished");
        sink.finish(outcome);
    }

    /// Deletes the build's Job (and so its pod) and fails the build with `message`.
    async fn fail_deleting(&self, name: &str, message: String) -> BuildOutcome {
        self.delete(name).await;
        BuildOutcome::Failed(message)
    }

    /// Deletes the Job and, in the background, its pod.
    pub(super) async fn delete(&self, name: &str) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        if let Err(error) = self.jobs.delete(name, &params).await {
            tracing::warn!(job = name, %error, "failed to delete build job");
        }
    }

    /// Follows one Job to its end under the build timeout (plus grace).
    async fn follow(&self, name: &str, events: &Events) -> BuildOutcome {
        let limit = self.settings.job.build_timeout + self.settings.finish_grace;
        match tokio::time::timeout(limit, self.follow_inner(name, events)).await {
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

    async fn follow_inner(&self, name: &str, events: &Events) -> BuildOutcome {
        let pod = match self.wait_for_pod(name).await {
            PodWait::Started(pod) => Some(pod),
            PodWait::JobEnded(pod) => pod,
            PodWait::Error(message) => return BuildOutcome::Failed(message),
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
            match self.stream_log(&pod, events).await {
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
        let ended = await_condition(self.jobs.clone(), name, job::finished);
        let limit = grace.unwrap_or(self.settings.job.build_timeout + self.settings.finish_grace);
        match tokio::time::timeout(limit, ended).await {
            Ok(Ok(Some(job))) => job::outcome_of(&job).unwrap_or_else(|| {
                BuildOutcome::Failed("the build job ended without a result".into())
            }),
            Ok(Ok(None)) => {
                BuildOutcome::Failed("the build job was deleted before it finished".into())
            }
            Ok(Err(error)) => {
                BuildOutcome::Failed(format!("failed to watch the build job: {error}"))
            }
            Err(_) => BuildOutcome::Failed(format!(
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
            ended = await_condition(self.jobs.clone(), name, job::finished) => match ended {
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
    async fn stream_log(&self, pod: &str, events: &Events) -> LogEnd {
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
            // Lines held to a bounded size as they arrive, like repo2docker's pipes.
            let reader = tokio::io::BufReader::new(Box::pin(reader).compat());
            let mut lines = BoundedLines::new(reader, KEPT_LINE_BYTES);
            let broken = loop {
                let left = idle.saturating_sub(last_line.elapsed());
                match tokio::time::timeout(left, lines.next_line()).await {
                    Err(_) => return LogEnd::Idle,
                    Ok(Ok(None)) => break None,
                    Ok(Err(error)) => break Some(error.to_string()),
                    Ok(Ok(Some(line))) => {
                        if let Some(text) = cursor.accept(&line.text) {
                            last_line = tokio::time::Instant::now();
                            let _ = events.send(line.event_of(text));
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

/// Whether a pod has ended (a finished build's pod lingers until its Job's TTL).
pub(super) fn pod_ended(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

fn pod_started(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Running" | "Succeeded" | "Failed"))
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

//! Build executors: what runs repo2docker for a build.
//!
//! An executor starts a build of one image and hands back a [`BuildHandle`]: a channel of
//! events (repo2docker's `--json-logs` lines already turned into [`Event`]s, other output as
//! `unknown` lines), a one-shot final [`BuildOutcome`], and a cancel switch. The queue, the
//! one-build-per-image rule, the registry re-check and the event log live in
//! [`crate::builds`]; an executor only runs one build. Implementations: [`local`] (a
//! repo2docker child process, for `bindery up`) and the Kubernetes Job executor
//! ([`crate::kube::KubeExecutor`], whose `Executor` implementation adapts its `BuildRun`).

pub mod local;

use bindery_core::events::Event;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

pub use local::LocalExecutor;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The image name to build (and push).
    pub image: String,
    /// The build name (`bindery_core::image::build_name`): a Job or process label.
    pub build_name: String,
    /// The repository URL (or path) handed to repo2docker.
    pub repo: String,
    /// The resolved ref.
    pub git_ref: String,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The image was built (and pushed when a registry is configured).
    Succeeded,
    /// The build failed; the message says why, in words for the user.
    Failed(String),
}

/// A started build.
#[derive(Debug)]
pub struct BuildHandle {
    /// The build's events, in order; closed when the build ends.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The final outcome, sent once after the last event.
    pub outcome: oneshot::Receiver<BuildOutcome>,
    /// Set to `true` to cancel the build (the outcome is then `Failed`).
    pub cancel: watch::Sender<bool>,
}

/// Runs builds. The executor owns whatever it starts and cleans it up on every outcome.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Starts building `spec`; must be called within a Tokio runtime.
    fn start(&self, spec: &BuildSpec) -> BuildHandle;

    /// The builds still running from before this worker started (the Kubernetes executor
    /// finds its Jobs by label), each followed from its first event. The default: none.
    fn adopt(&self) -> BoxFuture<'_, Result<Vec<(BuildSpec, BuildHandle)>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The executor's entries of `/health` (BinderHub's `{"service": ..., "ok": ...}`
    /// objects): whether what runs builds answers, and anything informational, such as
    /// the Kubernetes executor's pod quota against `total_quota`. The default: none.
    fn health(&self, total_quota: Option<u32>) -> BoxFuture<'_, Vec<serde_json::Value>> {
        let _ = total_quota;
        Box::pin(async { Vec::new() })
    }

    /// The worker is stopping: stop what must not outlive this process and wait for it,
    /// at most `deadline`. The local executor kills every running build's process group and
    /// reaps its child; the default does nothing (Kubernetes Jobs run on and are adopted by
    /// the next worker).
    fn shutdown(&self, deadline: std::time::Duration) -> BoxFuture<'_, ()> {
        let _ = deadline;
        Box::pin(async {})
    }
}

/// How long one health check may take before it counts as failed.
pub const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

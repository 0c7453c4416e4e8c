//! Build executors: what runs repo2docker for a build.
//!
//! An executor starts a build of one image and hands back a [`BuildHandle`]: a channel of
//! events (repo2docker's `--json-logs` lines already turned into [`Event`]s, other output as
//! `unknown` lines), a one-shot final [`BuildOutcome`], and a cancel switch. The queue, the
//! one-build-per-image rule, the registry re-check and the event log live in
//! [`crate::builds`]; an executor only runs one build and relays it once.
//!
//! Which executor runs is configured by [`ExecutorSettings`] (`executor = "local" |
//! "kubernetes"`), an enum carrying each executor's settings:
//!
//! - [`local`]: repo2docker as a child process (`bindery up`);
//! - [`kubernetes`]: one `batch/v1` Job per build, adopted by the next worker after a restart.

pub mod kubernetes;
mod lines;
pub mod local;

use std::sync::Arc;

use bindery_core::events::Event;
use bindery_core::worker_api::HealthCheck;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

pub use kubernetes::{KubernetesExecutor, KubernetesSettings};
pub use local::{LocalExecutor, LocalSettings};

/// Which executor runs builds, with its settings (`executor = "local" | "kubernetes"`,
/// `BINDERY_EXECUTOR`; the Kubernetes settings come from the `[kubernetes]` section).
// Made once at start-up: boxing the larger variant would save nothing worth its noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorSettings {
    /// repo2docker as a child process (`bindery up`); the default.
    Local(LocalSettings),
    /// A Kubernetes Job per build.
    Kubernetes(KubernetesSettings),
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings::Local(LocalSettings::default())
    }
}

impl ExecutorSettings {
    /// The value of `executor` that selects this executor.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutorSettings::Local(_) => "local",
            ExecutorSettings::Kubernetes(_) => "kubernetes",
        }
    }

    /// The local executor's settings, when it is the one configured.
    pub fn local(&self) -> Option<&LocalSettings> {
        match self {
            ExecutorSettings::Local(settings) => Some(settings),
            ExecutorSettings::Kubernetes(_) => None,
        }
    }

    /// Makes the configured executor; the Kubernetes one connects its client (see
    /// [`KubernetesExecutor::connect`]).
    pub async fn executor(&self) -> Result<Arc<dyn Executor>, ExecutorError> {
        Ok(match self {
            ExecutorSettings::Local(settings) => Arc::new(LocalExecutor::new(settings.clone())),
            ExecutorSettings::Kubernetes(settings) => {
                Arc::new(KubernetesExecutor::connect(settings.clone()).await?)
            }
        })
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The image name to build (and push).
    pub image: String,
    /// The build name (`bindery_core::image::build_name`): the Job's name or a process
    /// label, deterministic per image.
    pub build_name: String,
    /// The repository URL (or path) handed to repo2docker.
    pub repo: String,
    /// The resolved ref.
    pub git_ref: String,
}

impl BuildSpec {
    /// A build named the BinderHub way from the provider's build slug and the resolved ref.
    pub fn new(build_slug: &str, repo: &str, git_ref: &str, image: &str) -> BuildSpec {
        BuildSpec {
            image: image.into(),
            build_name: bindery_core::image::build_name(build_slug, git_ref),
            repo: repo.into(),
            git_ref: git_ref.into(),
        }
    }
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The image was built (and pushed when a registry is configured).
    Succeeded,
    /// The build failed; the message says why, in words for the user.
    Failed(String),
}

/// A started build, as every executor hands it out.
#[derive(Debug)]
pub struct BuildHandle {
    /// The build's events, in order; closed when the build ends.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The final outcome, sent once after the last event.
    pub outcome: oneshot::Receiver<BuildOutcome>,
    /// Set to `true` to cancel the build (the outcome is then `Failed`).
    pub cancel: watch::Sender<bool>,
}

impl BuildHandle {
    /// A handle and the executor's side of it, for the task that runs the build.
    pub fn channel() -> (BuildHandle, BuildSink) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcome_tx, outcome) = oneshot::channel();
        let (cancel, cancel_rx) = watch::channel(false);
        let handle = BuildHandle {
            events: events_rx,
            outcome,
            cancel,
        };
        let sink = BuildSink {
            events,
            cancel: cancel_rx,
            outcome: outcome_tx,
        };
        (handle, sink)
    }
}

/// The executor's side of a [`BuildHandle`]: where a running build sends its events and
/// its outcome, and where it reads the cancel switch.
#[derive(Debug)]
pub struct BuildSink {
    /// Where the build's events go; a send fails only when nobody reads any more, and
    /// the build goes on regardless.
    pub events: mpsc::UnboundedSender<Event>,
    /// The handle's cancel switch; it reports an error once the handle is dropped.
    pub cancel: watch::Receiver<bool>,
    outcome: oneshot::Sender<BuildOutcome>,
}

impl BuildSink {
    /// Ends the build: closes the event channel, then sends the outcome.
    pub fn finish(self, outcome: BuildOutcome) {
        drop(self.events);
        let _ = self.outcome.send(outcome);
    }
}

/// The pods running in the build namespace, for BinderHub's informational `Pod quota`
/// check ([`crate::health::pod_quota_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCounts {
    /// Build pods not yet ended.
    pub build_pods: usize,
    /// User server pods not yet ended.
    pub user_pods: usize,
}

/// Why an executor could not start, adopt or check something.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The build's ref, image or repository was refused before it reached repo2docker.
    #[error(transparent)]
    Input(#[from] bindery_core::InputError),
    /// `<engine> <command>` did not end within the health check's time.
    #[error("`{engine} {command}` did not answer in time")]
    EngineTimeout {
        /// The container engine.
        engine: String,
        /// What was asked (`version`, `images`).
        command: &'static str,
    },
    /// The container engine's program could not be run.
    #[error("failed to run {engine}")]
    EngineSpawn {
        /// The container engine.
        engine: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `<engine> <command>` failed.
    #[error("`{engine} {command}` failed ({status}): {stderr}")]
    EngineFailed {
        /// The container engine.
        engine: String,
        /// What was asked (`version`, `images`).
        command: &'static str,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The last line it wrote to stderr, shortened.
        stderr: String,
    },
    /// `kubernetes.api_url` is not a URL.
    #[error("kubernetes.api_url {url:?} is not a URL")]
    ApiUrl {
        /// The configured value.
        url: String,
        /// The cause.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// No Kubernetes client could be made from the configuration found.
    #[error(
        "no Kubernetes configuration found: not running in a cluster \
         (KUBERNETES_SERVICE_HOST), no usable KUBECONFIG or ~/.kube/config, and no \
         kubernetes.api_url (BINDERY_KUBERNETES_API_URL) set"
    )]
    NoClusterConfig(#[source] kube::Error),
    /// The client for `kubernetes.api_url` could not be made.
    #[error("failed to make a client for kubernetes.api_url {url:?}")]
    Client {
        /// The configured value.
        url: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The Kubernetes API refused or failed to create a build Job.
    #[error("failed to create build job {name}")]
    CreateJob {
        /// The Job's name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The build Jobs could not be listed.
    #[error("failed to list build jobs")]
    ListJobs(#[source] kube::Error),
    /// The pods could not be listed.
    #[error("failed to list pods")]
    ListPods(#[source] kube::Error),
    /// The Kubernetes API did not answer within the health check's time.
    #[error("the Kubernetes API did not answer in time")]
    ApiTimeout,
    /// `builder_type` is a DaemonSet but none of its pods runs: no node can build.
    #[error(
        "no {builder} image builder is running: no running pod matches {selector:?} in \
         namespace {namespace} (is the chart's image-builder DaemonSet up?)"
    )]
    NoBuilders {
        /// The builder type (`dind`, `pink`).
        builder: &'static str,
        /// The label selector of the builder pods.
        selector: String,
        /// The namespace they were listed in.
        namespace: String,
    },
}

/// Runs builds. The executor owns whatever it starts and cleans it up on every outcome.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Starts building `spec`; must be called within a Tokio runtime.
    fn start(&self, spec: &BuildSpec) -> BuildHandle;

    /// The builds still running from before this worker started (the Kubernetes executor
    /// finds its Jobs by label), each followed from its first event. The default: none.
    fn adopt(&self) -> BoxFuture<'_, Result<Vec<(BuildSpec, BuildHandle)>, ExecutorError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The executor's entries of `/health`: whether what runs builds answers. The
    /// default: none.
    fn health(&self) -> BoxFuture<'_, Vec<HealthCheck>> {
        Box::pin(async { Vec::new() })
    }

    /// What builds images, as `/versions` reports it (BinderHub's `builder_info`): the
    /// build image on Kubernetes, repo2docker's version locally. The default: nothing.
    fn builder_info(&self) -> BoxFuture<'_, serde_json::Map<String, serde_json::Value>> {
        Box::pin(async { serde_json::Map::new() })
    }

    /// Whether the engine builds go to holds `image` (already checked to be a name under
    /// the worker's prefix), for a worker without a registry: the local executor asks its
    /// container engine. The default: `None`, this executor cannot tell (a Kubernetes
    /// executor's builds are only found in a registry).
    fn image_present<'a>(
        &'a self,
        image: &'a str,
    ) -> Option<BoxFuture<'a, Result<bool, ExecutorError>>> {
        let _ = image;
        None
    }

    /// The pods that count against the total quota, when this executor runs builds as
    /// pods beside the user servers (BinderHub's `Pod quota` check). The default: `None`,
    /// no such check.
    fn pod_counts(&self) -> Option<BoxFuture<'_, Result<PodCounts, ExecutorError>>> {
        None
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

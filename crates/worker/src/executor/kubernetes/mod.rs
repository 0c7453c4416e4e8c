//! The Kubernetes executor: one `batch/v1` Job per build, followed to its end.
//!
//! Starting a build creates its Job (a `409` means another creator got there first: attach),
//! waits for its pod with a watcher, follows the pod's log with `follow=true` (reconnecting
//! from the last line's timestamp when the stream breaks while the pod runs), turns each
//! `--json-logs` line into an [`Event`](bindery_core::events::Event) on the build's
//! [`BuildHandle`], and ends on the Job's `Complete` or `Failed` condition. When a worker
//! starts it adopts the unfinished build Jobs by label and follows them the same way. Each
//! handle has its own follower, reading the log from its first line: the worker's build
//! registry ([`crate::builds`]) starts one build per image and fans its events out.
//!
//! - [`job`]: the Job manifest of a build (pure): BinderHub's arguments, labels, volumes,
//!   tolerations, environment;
//! - [`placement`]: the image builder (`host`, `dind`, `pink`), the nodes that run one
//!   (listed from the builder DaemonSet's pods) and sticky-build affinity over them;
//! - `adopt`: coming to follow a Job: create it or attach to the one of that name, and find
//!   the Jobs a previous worker left running;
//! - `follow`: following one Job: its pod, its log, its conditions, cancellation.

mod adopt;
mod follow;
pub mod job;
pub mod placement;

use std::sync::Arc;
use std::time::Duration;

use bindery_core::worker_api::{BUILD_IMAGE, HealthCheck};
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::watch;

use super::{BuildHandle, BuildOutcome, BuildSpec, Executor, ExecutorError, PodCounts};
use crate::error_chain;
use crate::health::HEALTH_TIMEOUT;

pub use job::{JobSettings, build_job, build_job_on, build_of};
pub use placement::{BuilderType, DEFAULT_BUILDER_SELECTOR, Placement, sticky_node};

/// The Kubernetes executor's settings (the `[kubernetes]` section).
///
/// ```toml
/// executor = "kubernetes"
///
/// [kubernetes]
/// api_url = "https://10.0.0.1:6443"        # optional; default: in-cluster or KUBECONFIG
/// namespace = "binder"                     # or BINDERY_KUBERNETES_NAMESPACE
/// builder_image = "quay.io/jupyterhub/repo2docker:2024.07.0"
/// builder_type = "dind"                   # host | dind | pink (BinderHub's imageBuilderType)
/// docker_socket = "/var/run/dind/docker.sock"  # on the node; default: the type's socket
/// builder_selector = "app=binder,component=image-builder"  # the builder DaemonSet's pods
/// push_secret = "binder-build-docker-config"  # a docker config.json Secret; means --push
/// builder_nodes = ["node-a", "node-b"]     # static sticky builds; overrides the discovery
/// repo2docker_extra_args = ["--Repo2Docker.default_buildpack=None"]
/// appendix = "RUN echo built by bindery"   # Dockerfile text repo2docker appends
/// image_pull_secrets = ["registry-pull"]   # for the builder image
/// tolerations = [{ key = "purpose", operator = "Equal", value = "build", effect = "NoSchedule" }]
/// resources = { requests = { cpu = "1", memory = "2Gi" }, limits = { memory = "2Gi" } }
/// build_timeout_seconds = 3600             # activeDeadlineSeconds
/// idle_timeout_seconds = 600               # a silent build fails
/// ttl_seconds_after_finished = 600         # ttlSecondsAfterFinished
///
/// [kubernetes.node_selector]
/// "hub.jupyter.org/node-purpose" = "user"
///
/// [kubernetes.extra_env]
/// GIT_LFS_SKIP_SMUDGE = "1"
/// ```
///
/// The top-level `build_timeout_seconds` and `build_idle_timeout_seconds` apply here too
/// unless the section sets its own. When `registry_url` is set, builds push (`--push`)
/// with the credentials of `push_secret`, which defaults to BinderHub's
/// `binder-build-docker-config`; `push_secret = ""` pushes without mounting credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// The API server's URL (plain, no credentials: for tests and proxies such as
    /// `kubectl proxy`); `None` = `kube::Client::try_default()` (in-cluster or KUBECONFIG).
    pub api_url: Option<String>,
    /// The Job's shape; `job.namespace` is where Jobs are created and adopted.
    pub job: JobSettings,
    /// The daemon that builds; with `dind` or `pink` builds run only where its pods do.
    pub builder_type: BuilderType,
    /// The label selector of the builder DaemonSet's pods, in `job.namespace`.
    pub builder_selector: String,
    /// A build whose log stays silent this long is stopped and fails.
    pub idle_timeout: Duration,
    /// How long past the build timeout the executor waits for Kubernetes to end the Job
    /// before it gives up on its own.
    pub finish_grace: Duration,
}

impl Default for KubernetesSettings {
    fn default() -> KubernetesSettings {
        KubernetesSettings {
            api_url: None,
            job: JobSettings::default(),
            builder_type: BuilderType::Host,
            builder_selector: DEFAULT_BUILDER_SELECTOR.into(),
            idle_timeout: Duration::from_secs(600),
            finish_grace: Duration::from_secs(60),
        }
    }
}

/// The label selector of user servers (KubeSpawner's pods), as BinderHub counts them.
pub const USER_POD_SELECTOR: &str = "app=jupyterhub,component=singleuser-server";

/// Builds as Kubernetes Jobs. Clones share one stop switch: when the last clone is
/// dropped every follower stops and its build ends `failed`; the Jobs run on, for the
/// next worker to adopt.
#[derive(Debug, Clone)]
pub struct KubernetesExecutor {
    cluster: Cluster,
    /// Never sent: followers watch for it to be dropped.
    alive: Arc<watch::Sender<()>>,
}

/// The API handles and settings a follower task needs.
#[derive(Debug, Clone)]
struct Cluster {
    jobs: Api<Job>,
    pods: Api<Pod>,
    settings: Arc<KubernetesSettings>,
}

/// A build Job this executor follows, as [`KubernetesExecutor::start_job`] and
/// [`KubernetesExecutor::adopt_jobs`] hand it out.
#[derive(Debug)]
pub struct JobBuild {
    /// The build (read back from the Job's annotations when adopted).
    pub build: BuildSpec,
    /// True when this call created the Job; false when it attached to an existing one.
    pub created: bool,
    /// The build's events and outcome, from the log's first line.
    pub handle: BuildHandle,
}

impl KubernetesExecutor {
    /// An executor using `client` in `settings.job.namespace` (`settings.api_url` is not
    /// read: the client is made already).
    pub fn new(client: kube::Client, settings: KubernetesSettings) -> KubernetesExecutor {
        let namespace = settings.job.namespace.clone();
        KubernetesExecutor {
            cluster: Cluster {
                jobs: Api::namespaced(client.clone(), &namespace),
                pods: Api::namespaced(client, &namespace),
                settings: Arc::new(settings),
            },
            alive: Arc::new(watch::channel(()).0),
        }
    }

    /// An executor with its own client: for `settings.api_url` when set (plain, no
    /// credentials), else from the in-cluster configuration or KUBECONFIG.
    pub async fn connect(
        settings: KubernetesSettings,
    ) -> Result<KubernetesExecutor, ExecutorError> {
        let client = match &settings.api_url {
            Some(url) => {
                let uri = url.parse().map_err(|source| ExecutorError::ApiUrl {
                    url: url.clone(),
                    source,
                })?;
                kube::Client::try_from(kube::Config::new(uri)).map_err(|source| {
                    ExecutorError::Client {
                        url: url.clone(),
                        source,
                    }
                })?
            }
            None => kube::Client::try_default()
                .await
                .map_err(ExecutorError::NoClusterConfig)?,
        };
        Ok(KubernetesExecutor::new(client, settings))
    }

    /// Creates the build's Job, or attaches to the Job of the same name when it exists,
    /// and follows it. A Job of that name that failed earlier is replaced, so a build can
    /// be retried before its `ttlSecondsAfterFinished` runs out.
    pub async fn start_job(&self, build: &BuildSpec) -> Result<JobBuild, ExecutorError> {
        let created = self.cluster.create_or_attach(build).await?;
        Ok(self.follow(build.clone(), created))
    }

    /// Finds the unfinished build Jobs by label and follows each: what a worker does when
    /// it starts, so a restart loses no build.
    pub async fn adopt_jobs(&self) -> Result<Vec<JobBuild>, ExecutorError> {
        let builds = self.cluster.unfinished_builds().await?;
        Ok(builds
            .into_iter()
            .map(|build| self.follow(build, false))
            .collect())
    }

    fn follow(&self, build: BuildSpec, created: bool) -> JobBuild {
        let (handle, sink) = BuildHandle::channel();
        let cluster = self.cluster.clone();
        let alive = self.alive.subscribe();
        let name = build.build_name.clone();
        tokio::spawn(async move { cluster.run(&name, sink, alive).await });
        JobBuild {
            build,
            created,
            handle,
        }
    }

    /// Whether the API server answers: one Job listed in the build namespace.
    pub async fn api_answers(&self) -> Result<(), ExecutorError> {
        let params = ListParams::default().limit(1);
        let list = self.cluster.jobs.list(&params);
        match tokio::time::timeout(HEALTH_TIMEOUT, list).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ExecutorError::ListJobs(error)),
            Err(_) => Err(ExecutorError::ApiTimeout),
        }
    }

    /// With a builder DaemonSet (and no static `builder_nodes`), whether a builder pod runs:
    /// `Image builders`, with their nodes; `None` when builds may run on any node.
    pub async fn builders_health(&self) -> Option<HealthCheck> {
        let settings = &self.cluster.settings;
        if !settings.builder_type.is_daemonset() || !settings.job.builder_nodes.is_empty() {
            return None;
        }
        let nodes = tokio::time::timeout(HEALTH_TIMEOUT, self.cluster.builder_nodes()).await;
        let mut check = HealthCheck::new("Image builders", false);
        match nodes {
            Ok(Ok(nodes)) => {
                let nodes = nodes.unwrap_or_default();
                check.ok = !nodes.is_empty();
                check
                    .details
                    .insert("nodes".into(), serde_json::json!(nodes));
            }
            Ok(Err(error)) => check.error = Some(error_chain(&error)),
            Err(_) => check.error = Some(error_chain(&ExecutorError::ApiTimeout)),
        }
        Some(check)
    }

    /// The build and user pods in the build namespace that have not ended (a finished
    /// build's pod lingers until its Job's TTL, and holds no resources).
    pub async fn pod_counts(&self) -> Result<PodCounts, ExecutorError> {
        let pods = &self.cluster.pods;
        let count = |selector: String| async move {
            let params = ListParams::default().labels(&selector);
            let list = pods.list(&params);
            match tokio::time::timeout(HEALTH_TIMEOUT, list).await {
                Ok(Ok(list)) => Ok(list
                    .items
                    .iter()
                    .filter(|pod| !follow::pod_ended(pod))
                    .count()),
                Ok(Err(error)) => Err(ExecutorError::ListPods(error)),
                Err(_) => Err(ExecutorError::ApiTimeout),
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
}

/// The worker's [`Executor`] over Jobs: the build name is the Job's name. Cancelling
/// deletes the Job; dropping the handle does not (a stopping worker leaves its Jobs for
/// the next to adopt).
impl Executor for KubernetesExecutor {
    fn start(&self, spec: &BuildSpec) -> BuildHandle {
        let (handle, sink) = BuildHandle::channel();
        let cluster = self.cluster.clone();
        let alive = self.alive.subscribe();
        let build = spec.clone();
        tokio::spawn(async move {
            match cluster.create_or_attach(&build).await {
                Ok(_) => cluster.run(&build.build_name, sink, alive).await,
                Err(error) => sink.finish(BuildOutcome::Failed(format!(
                    "failed to start the build: {}",
                    error_chain(&error)
                ))),
            }
        });
        handle
    }

    fn adopt(&self) -> BoxFuture<'_, Result<Vec<(BuildSpec, BuildHandle)>, ExecutorError>> {
        Box::pin(async move {
            let jobs = self.adopt_jobs().await?;
            Ok(jobs
                .into_iter()
                .map(|job| (job.build, job.handle))
                .collect())
        })
    }

    fn health(&self) -> BoxFuture<'_, Vec<HealthCheck>> {
        Box::pin(async move {
            let api = self.api_answers().await;
            if let Err(error) = &api {
                let error = error_chain(error);
                tracing::warn!(%error, "health: the Kubernetes API does not answer");
            }
            let mut checks = vec![HealthCheck::new("Kubernetes API", api.is_ok())];
            if let Some(builders) = self.builders_health().await {
                checks.push(builders);
            }
            checks
        })
    }

    fn builder_info(&self) -> BoxFuture<'_, serde_json::Map<String, serde_json::Value>> {
        let image = self.cluster.settings.job.builder_image.clone();
        Box::pin(
            async move { serde_json::Map::from_iter([(BUILD_IMAGE.to_owned(), image.into())]) },
        )
    }

    fn pod_counts(&self) -> Option<BoxFuture<'_, Result<PodCounts, ExecutorError>>> {
        Some(Box::pin(KubernetesExecutor::pod_counts(self)))
    }
}

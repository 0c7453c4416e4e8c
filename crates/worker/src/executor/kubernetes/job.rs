//! The `batch/v1` Job that runs one repo2docker build, built from settings alone, and
//! read back: the build it was made for, and how it ended (no I/O).
//!
//! The Job's name is the build name, deterministic per image, so a second creator (another
//! replica, a restarted worker) gets `409 Conflict` and attaches to the running build: this
//! is BinderHub's only build lock and Bindery's too.

use std::collections::BTreeMap;
use std::time::Duration;

use bindery_core::InputError;
use bindery_core::launch::{Repo2DockerArgs, repo2docker_args};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, LocalObjectReference, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretVolumeSource, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::placement::{Placement, affinity};
use crate::executor::{BuildOutcome, BuildSpec};

/// `app.kubernetes.io/managed-by` on every build Job: adoption lists Jobs by it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "bindery";
/// `component` on build Jobs and their pods (BinderHub says `binderhub-build`).
pub const COMPONENT: &str = "bindery-build";
/// Annotation: the repository URL given to repo2docker.
pub const REPO_ANNOTATION: &str = "bindery.dev/repo-url";
/// Annotation: the image the build produces.
pub const IMAGE_ANNOTATION: &str = "bindery.dev/image";
/// Annotation: the resolved ref that is built.
pub const REF_ANNOTATION: &str = "bindery.dev/ref";
/// The build container's name (its log is the build log).
pub const CONTAINER: &str = "builder";
/// BinderHub's default build image.
pub const DEFAULT_BUILDER_IMAGE: &str = "quay.io/jupyterhub/repo2docker:2024.07.0";
/// The node's docker socket, BinderHub's `docker_host` default.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// BinderHub's default push secret (a docker `config.json`).
pub const DEFAULT_PUSH_SECRET: &str = "binder-build-docker-config";

/// How every build Job is shaped: the operator's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    /// The namespace the Jobs run in.
    pub namespace: String,
    /// The repo2docker image the build container runs.
    pub builder_image: String,
    /// The docker (or dind, podman) socket on the node, mounted at `/var/run/docker.sock`.
    pub docker_socket: String,
    /// Whether repo2docker pushes the image (`--push`): a registry is configured.
    pub push: bool,
    /// The Secret holding a docker `config.json` with the push credentials, mounted (as
    /// BinderHub does) on `/root/.docker`; setting it also means `--push`. The volume is
    /// optional: when the Secret does not exist the pod still starts and the push fails
    /// with the registry's authentication error, instead of the pod waiting in
    /// `ContainerCreating` until the build timeout.
    pub push_secret: Option<String>,
    /// Dockerfile text repo2docker appends (`--appendix`).
    pub appendix: Option<String>,
    /// Extra repo2docker arguments, before the repository.
    pub extra_args: Vec<String>,
    /// Resource requests and limits of the build container.
    pub resources: Option<ResourceRequirements>,
    /// The pod's node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added to BinderHub's two `hub.jupyter.org/dedicated` ones.
    pub tolerations: Vec<Toleration>,
    /// Builder nodes for sticky builds: when not empty, the pod prefers the node that
    /// rendezvous hashing of the repository picks, reusing its layer cache. Set, it also
    /// overrides the discovery of builder pods (see [`super::placement`]).
    pub builder_nodes: Vec<String>,
    /// Extra environment variables of the build container.
    pub env: BTreeMap<String, String>,
    /// Secrets the kubelet pulls the builder image with.
    pub image_pull_secrets: Vec<String>,
    /// The build timeout (`activeDeadlineSeconds`).
    pub build_timeout: Duration,
    /// How long a finished Job is kept (`ttlSecondsAfterFinished`).
    pub ttl_after_finished: Duration,
}

impl Default for JobSettings {
    fn default() -> JobSettings {
        JobSettings {
            namespace: "default".into(),
            builder_image: DEFAULT_BUILDER_IMAGE.into(),
            docker_socket: DEFAULT_DOCKER_SOCKET.into(),
            push: false,
            push_secret: None,
            appendix: None,
            extra_args: Vec::new(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            builder_nodes: Vec::new(),
            env: BTreeMap::new(),
            image_pull_secrets: Vec::new(),
            build_timeout: Duration::from_secs(3600),
            ttl_after_finished: Duration::from_secs(600),
        }
    }
}

/// The build a Job was made for, read back from its name and annotations (adoption).
pub fn build_of(job: &Job) -> Option<BuildSpec> {
    let annotations = job.metadata.annotations.as_ref()?;
    Some(BuildSpec {
        build_name: job.metadata.name.clone()?,
        image: annotations.get(IMAGE_ANNOTATION)?.clone(),
        repo: annotations.get(REPO_ANNOTATION)?.clone(),
        git_ref: annotations.get(REF_ANNOTATION)?.clone(),
    })
}

/// A Job is over when it is gone or has a true `Complete` or `Failed` condition.
pub fn finished(job: Option<&Job>) -> bool {
    job.is_none_or(|job| outcome_of(job).is_some())
}

/// How a Job ended, when it has.
pub fn outcome_of(job: &Job) -> Option<BuildOutcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(BuildOutcome::Succeeded),
            "Failed" => Some(BuildOutcome::Failed(failure_message(
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

pub(super) fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The labels of a build's Job and pod.
pub fn labels(build_name: &str) -> BTreeMap<String, String> {
    label_map(&[
        (MANAGED_BY_LABEL, MANAGED_BY),
        ("component", COMPONENT),
        ("name", build_name),
    ])
}

fn dedicated_tolerations() -> Vec<Toleration> {
    ["hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated"]
        .into_iter()
        .map(|key| Toleration {
            key: Some(key.into()),
            operator: Some("Equal".into()),
            value: Some("user".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        })
        .collect()
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// The Job for `build` on any node (sticky over `settings.builder_nodes` when set); fails
/// when the ref, image or repository could reach repo2docker as an option.
pub fn build_job(settings: &JobSettings, build: &BuildSpec) -> Result<Job, InputError> {
    build_job_on(settings, build, Placement::Anywhere)
}

/// The Job for `build`, its pod placed by `placement`; fails as [`build_job`] does.
///
/// The pod gets no service account token (`automountServiceAccountToken: false`): a build
/// runs the repository's code and has no business with the Kubernetes API.
pub fn build_job_on(
    settings: &JobSettings,
    build: &BuildSpec,
    placement: Placement<'_>,
) -> Result<Job, InputError> {
    let mut args = vec!["jupyter-repo2docker".to_owned()];
    args.extend(repo2docker_args(&Repo2DockerArgs {
        git_ref: build.git_ref.clone(),
        image: build.image.clone(),
        push: settings.push || settings.push_secret.is_some(),
        appendix: settings.appendix.clone(),
        extra_args: settings.extra_args.clone(),
        repo: build.repo.clone(),
    })?);

    let mut volumes = vec![Volume {
        name: "docker-socket".into(),
        host_path: Some(HostPathVolumeSource {
            path: settings.docker_socket.clone(),
            type_: Some("Socket".into()),
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "docker-socket".into(),
        mount_path: "/var/run/docker.sock".into(),
        ..VolumeMount::default()
    }];
    if let Some(secret) = &settings.push_secret {
        volumes.push(Volume {
            name: "docker-push-secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                optional: Some(true),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        // The whole directory, not a `subPath` of it: a `subPath` missing from an empty
        // (optional) volume would be made a directory named `config.json`.
        mounts.push(VolumeMount {
            name: "docker-push-secret".into(),
            mount_path: "/root/.docker".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let mut tolerations = dedicated_tolerations();
    tolerations.extend(settings.tolerations.iter().cloned());
    let labels = labels(&build.build_name);
    let annotations = label_map(&[
        (REPO_ANNOTATION, &build.repo),
        (IMAGE_ANNOTATION, &build.image),
        (REF_ANNOTATION, &build.git_ref),
    ]);

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(build.build_name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(seconds(settings.build_timeout)),
            ttl_seconds_after_finished: Some(
                i32::try_from(settings.ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: CONTAINER.into(),
                        image: Some(settings.builder_image.clone()),
                        args: Some(args),
                        volume_mounts: Some(mounts),
                        resources: settings.resources.clone(),
                        env: (!settings.env.is_empty()).then(|| {
                            settings
                                .env
                                .iter()
                                .map(|(name, value)| EnvVar {
                                    name: name.clone(),
                                    value: Some(value.clone()),
                                    value_from: None,
                                })
                                .collect()
                        }),
                        ..Container::default()
                    }],
                    automount_service_account_token: Some(false),
                    image_pull_secrets: (!settings.image_pull_secrets.is_empty()).then(|| {
                        settings
                            .image_pull_secrets
                            .iter()
                            .map(|name| LocalObjectReference { name: name.clone() })
                            .collect()
                    }),
                    volumes: Some(volumes),
                    restart_policy: Some("Never".into()),
                    node_selector: (!settings.node_selector.is_empty())
                        .then(|| settings.node_selector.clone()),
                    tolerations: Some(tolerations),
                    affinity: Some(affinity(placement, &settings.builder_nodes, &build.repo)),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> BuildSpec {
        BuildSpec::new(
            "binder-examples-requirements",
            "https://github.com/binder-examples/requirements",
            "1479e02b1a4b8bba5e52e3cb31c6d1b7d8d0b4e5",
            "registry.example/binder-examples-requirements:1479e02",
        )
    }

    fn args(job: &Job) -> Vec<String> {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers[0].args.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_job_runs_repo2docker_with_binderhubs_arguments_and_the_repo_last() {
        let settings = JobSettings {
            push_secret: Some(DEFAULT_PUSH_SECRET.into()),
            appendix: Some("RUN echo hi".into()),
            ..JobSettings::default()
        };
        let job = build_job(&settings, &build()).expect("job");
        let args = args(&job);
        assert_eq!(args[0], "jupyter-repo2docker");
        assert!(args.contains(&"--push".to_owned()));
        assert!(args.contains(&"--json-logs".to_owned()));
        let appendix = args
            .iter()
            .position(|a| a == "--appendix")
            .expect("appendix");
        assert_eq!(args[appendix + 1], "RUN echo hi");
        assert_eq!(
            args.last().map(String::as_str),
            Some("https://github.com/binder-examples/requirements")
        );
        let no_push = build_job(&JobSettings::default(), &build()).expect("job");
        assert!(!args_contain(&no_push, "--push"));
        assert!(!args_contain(&no_push, "--appendix"));
    }

    fn secret_mount(job: &Job) -> Option<(String, VolumeMount)> {
        let pod = job.spec.as_ref()?.template.spec.as_ref()?;
        let volume = pod.volumes.as_ref()?.iter().find(|v| v.secret.is_some())?;
        let mount = pod.containers[0]
            .volume_mounts
            .as_ref()?
            .iter()
            .find(|m| m.name == volume.name)?;
        let secret = volume.secret.as_ref()?;
        assert_eq!(
            secret.optional,
            Some(true),
            "a missing push Secret must not keep the pod from starting"
        );
        Some((secret.secret_name.clone()?, mount.clone()))
    }

    #[test]
    fn pushing_mounts_the_push_secret_as_the_docker_config() {
        let with_secret = JobSettings {
            push: true,
            push_secret: Some(DEFAULT_PUSH_SECRET.into()),
            ..JobSettings::default()
        };
        let job = build_job(&with_secret, &build()).expect("job");
        assert!(args_contain(&job, "--push"));
        let (secret, mount) = secret_mount(&job).expect("secret volume");
        assert_eq!(secret, DEFAULT_PUSH_SECRET);
        assert_eq!(mount.mount_path, "/root/.docker");
        assert_eq!(mount.sub_path, None);
        assert_eq!(mount.read_only, Some(true));
        // A registry that takes pushes without credentials: --push, nothing mounted.
        let anonymous = JobSettings {
            push: true,
            ..JobSettings::default()
        };
        let job = build_job(&anonymous, &build()).expect("job");
        assert!(args_contain(&job, "--push"));
        assert!(secret_mount(&job).is_none());
    }

    fn args_contain(job: &Job, arg: &str) -> bool {
        args(job).iter().any(|a| a == arg)
    }

    #[test]
    fn the_job_is_named_labelled_and_bounded_for_one_attempt() {
        let job = build_job(&JobSettings::default(), &build()).expect("job");
        let name = job.metadata.name.clone().expect("name");
        assert!(name.len() <= 63 && name.starts_with("build-"), "{name}");
        let labels = job.metadata.labels.clone().expect("labels");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["component"], COMPONENT);
        assert_eq!(labels["name"], name);
        let spec = job.spec.clone().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        assert_eq!(spec.ttl_seconds_after_finished, Some(600));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let tolerations = pod.tolerations.expect("tolerations");
        assert_eq!(tolerations.len(), 2);
        assert_eq!(build_of(&job), Some(build()));
    }

    #[test]
    fn sticky_builds_prefer_the_rendezvous_node_and_otherwise_spread() {
        let nodes: Vec<String> = ["node-a", "node-b", "node-c"].map(String::from).into();
        let settings = JobSettings {
            builder_nodes: nodes.clone(),
            ..JobSettings::default()
        };
        let job = build_job(&settings, &build()).expect("job");
        let affinity = job
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.affinity)
            .expect("affinity");
        let preferred = affinity
            .node_affinity
            .and_then(|n| n.preferred_during_scheduling_ignored_during_execution)
            .expect("preferred");
        assert_eq!(preferred[0].weight, 100);
        let expected = super::super::placement::sticky_node(&build().repo, &nodes).expect("node");
        assert_eq!(expected, "node-a");
        assert_eq!(
            preferred[0]
                .preference
                .match_expressions
                .as_ref()
                .expect("expr")[0]
                .values,
            Some(vec![expected.to_owned()])
        );
        let spread = build_job(&JobSettings::default(), &build()).expect("job");
        let spread = spread
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.affinity);
        assert!(spread.is_some_and(|a| a.pod_anti_affinity.is_some() && a.node_affinity.is_none()));
    }

    #[test]
    fn the_build_pod_settings_reach_the_pod_and_it_gets_no_service_account_token() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let settings = JobSettings {
            extra_args: vec!["--Repo2Docker.default_buildpack=None".into()],
            appendix: Some("RUN true".into()),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".into(), Quantity("2Gi".into()))])),
                ..ResourceRequirements::default()
            }),
            env: BTreeMap::from([("GIT_LFS_SKIP_SMUDGE".into(), "1".into())]),
            image_pull_secrets: vec!["registry-pull".into()],
            tolerations: vec![Toleration {
                key: Some("purpose".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }],
            node_selector: BTreeMap::from([("purpose".into(), "build".into())]),
            ..JobSettings::default()
        };
        let job = build_job(&settings, &build()).expect("job");
        let args = args(&job);
        let extra = args
            .iter()
            .position(|a| a == "--Repo2Docker.default_buildpack=None")
            .expect("extra arg");
        assert_eq!(
            extra,
            args.len() - 2,
            "extra args come just before the repository"
        );
        assert!(args_contain(&job, "--appendix"));
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
        let container = &pod.containers[0];
        assert_eq!(container.resources, settings.resources);
        let env = container.env.clone().expect("env");
        assert_eq!(
            (env[0].name.as_str(), env[0].value.as_deref()),
            ("GIT_LFS_SKIP_SMUDGE", Some("1"))
        );
        let pulls = pod.image_pull_secrets.expect("pull secrets");
        assert_eq!(pulls[0].name, "registry-pull");
        let tolerations = pod.tolerations.expect("tolerations");
        assert_eq!(tolerations.len(), 3, "BinderHub's two plus the operator's");
        assert_eq!(tolerations[2].key.as_deref(), Some("purpose"));
        assert_eq!(pod.node_selector, Some(settings.node_selector.clone()));
        let bare = build_job(&JobSettings::default(), &build()).expect("job");
        let bare = bare.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(bare.automount_service_account_token, Some(false));
        assert!(bare.image_pull_secrets.is_none() && bare.containers[0].env.is_none());
    }

    #[test]
    fn a_ref_that_looks_like_an_option_never_becomes_a_job() {
        let mut bad = build();
        bad.git_ref = "--upload-pack=evil".into();
        assert!(build_job(&JobSettings::default(), &bad).is_err());
    }
}

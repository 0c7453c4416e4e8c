//! Build pods on any cluster, against the fake API server: each `builder_type` mounts its
//! daemon's socket; with a builder DaemonSet (`dind`, `pink`) the executor lists its pods,
//! requires a node that runs one and prefers the node rendezvous hashing picks (BinderHub's
//! sticky builds); no builder running fails a new build at once, with no Job made (a running
//! build is still attached to); a static `builder_nodes` list overrides the discovery; the
//! build pod settings reach the Job; and no build pod gets a service account token.

#![allow(clippy::unwrap_used)]

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::collections::BTreeMap;
use std::time::Duration;

use bindery_worker::executor::kubernetes::{
    BuilderType, DEFAULT_BUILDER_SELECTOR, JobSettings, KubernetesExecutor, KubernetesSettings,
    Placement, build_job_on, sticky_node,
};
use bindery_worker::executor::{BuildOutcome, BuildSpec, Executor, ExecutorError};
use fake_kube::FakeKube;
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};

const NS: &str = "binder";
const BUILDER_LABELS: &[(&str, &str)] = &[("app", "binder"), ("component", "image-builder")];

fn settings(builder_type: BuilderType) -> KubernetesSettings {
    KubernetesSettings {
        job: JobSettings {
            namespace: NS.into(),
            docker_socket: builder_type.default_socket().into(),
            ..JobSettings::default()
        },
        builder_type,
        idle_timeout: Duration::from_secs(20),
        finish_grace: Duration::from_secs(5),
        ..KubernetesSettings::default()
    }
}

fn build(repo: &str) -> BuildSpec {
    let slug = repo.rsplit('/').next().unwrap();
    BuildSpec::new(
        slug,
        repo,
        "1479e02b1a4b8bba5e52e3cb31c6d1b7d8d0b4e5",
        &format!("registry.example/{slug}:1479e02"),
    )
}

/// Starts `build` and returns its Job as the fake stored it.
async fn job_of(fake: &FakeKube, settings: KubernetesSettings, build: &BuildSpec) -> Value {
    let executor = KubernetesExecutor::new(fake.client(NS), settings);
    executor.start_job(build).await.expect("the job starts");
    fake.job(NS, &build.build_name).expect("the job is stored")
}

fn pod_spec(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]
}

/// The node names of the first term of a node affinity part.
fn node_names(term: &Value) -> Vec<String> {
    serde_json::from_value(term["matchFields"][0]["values"].clone()).unwrap_or_default()
}

#[tokio::test]
async fn each_builder_type_mounts_its_daemons_socket_as_the_docker_socket() {
    // (builder type, the socket on the node)
    let table = [
        (BuilderType::Host, "/var/run/docker.sock"),
        (BuilderType::Dind, "/var/run/dind/docker.sock"),
        (BuilderType::Pink, "/var/run/pink/podman.sock"),
    ];
    for (builder_type, socket) in table {
        let fake = FakeKube::start().await;
        fake.add_pod(NS, "builder-1", BUILDER_LABELS, "node-a", "Running");
        let job = job_of(
            &fake,
            settings(builder_type),
            &build("https://github.com/org/repo"),
        )
        .await;
        let pod = pod_spec(&job);
        let volume = &pod["volumes"][0];
        assert_eq!(
            volume["hostPath"]["path"],
            json!(socket),
            "{builder_type:?}"
        );
        assert_eq!(volume["hostPath"]["type"], json!("Socket"));
        let mount = &pod["containers"][0]["volumeMounts"][0];
        assert_eq!(
            (&mount["name"], &mount["mountPath"]),
            (&volume["name"], &json!("/var/run/docker.sock")),
            "{builder_type:?}"
        );
        assert_eq!(pod["automountServiceAccountToken"], json!(false));
    }
}

#[tokio::test]
async fn builds_run_only_on_nodes_with_a_running_builder_and_prefer_the_rendezvous_node() {
    let fake = FakeKube::start().await;
    fake.add_pod(NS, "dind-a", BUILDER_LABELS, "node-a", "Running");
    fake.add_pod(NS, "dind-b", BUILDER_LABELS, "node-b", "Running");
    fake.add_pod(NS, "dind-c", BUILDER_LABELS, "node-c", "Pending");
    fake.add_pod(
        NS,
        "other-d",
        &[("app", "binder"), ("component", "hub")],
        "node-d",
        "Running",
    );
    let builders: Vec<String> = vec!["node-a".into(), "node-b".into()];
    let mut chosen = BTreeMap::new();
    for i in 0..12 {
        let build = build(&format!("https://github.com/org/repo-{i}"));
        let job = job_of(&fake, settings(BuilderType::Dind), &build).await;
        let affinity = &pod_spec(&job)["affinity"]["nodeAffinity"];
        let required = &affinity["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(node_names(&required["nodeSelectorTerms"][0]), builders);
        let preferred = &affinity["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(preferred["weight"], json!(100));
        let node = node_names(&preferred["preference"])
            .pop()
            .expect("a preferred node");
        assert_eq!(Some(node.as_str()), sticky_node(&build.repo, &builders));
        *chosen.entry(node).or_insert(0) += 1;
    }
    assert!(
        chosen.keys().all(|n| builders.contains(n)) && chosen.len() == 2,
        "the repositories spread over the builder nodes only: {chosen:?}"
    );
}

#[tokio::test]
async fn with_no_builder_running_the_build_fails_at_once_and_makes_no_job() {
    let fake = FakeKube::start().await;
    // A builder that is not running yet and a pod of something else do not count.
    fake.add_pod(NS, "dind-a", BUILDER_LABELS, "node-a", "Pending");
    fake.add_pod(NS, "web", &[("app", "web")], "node-b", "Running");
    let executor = KubernetesExecutor::new(fake.client(NS), settings(BuilderType::Pink));
    let spec = build("https://github.com/org/repo");
    let err = executor.start_job(&spec).await.expect_err("no builder");
    assert!(matches!(err, ExecutorError::NoBuilders { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no pink image builder is running")
            && text.contains(DEFAULT_BUILDER_SELECTOR),
        "{text}"
    );
    let mut handle = Executor::start(&executor, &spec);
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        while handle.events.recv().await.is_some() {}
        handle.outcome.await.expect("an outcome")
    })
    .await
    .expect("the build ends");
    match outcome {
        BuildOutcome::Failed(message) => {
            assert!(
                message.contains("no pink image builder is running"),
                "{message}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(fake.job_creates(), 0);

    // A build whose Job runs already is attached to, builders or not.
    fake.add_pod(NS, "dind-b", BUILDER_LABELS, "node-b", "Running");
    let running = build("https://github.com/org/running");
    let first = executor.start_job(&running).await.expect("created");
    assert!(first.created);
    // The only builder pod ends (no Job owns it, so no Job ends with it).
    fake.set_phase(NS, "dind-b", "dind-b", "Failed");
    let again = executor
        .start_job(&running)
        .await
        .expect("attached without builders");
    assert!(!again.created);
    assert_eq!(fake.job_creates(), 1);
}

#[tokio::test]
async fn health_reports_whether_an_image_builder_runs() {
    let fake = FakeKube::start().await;
    let checks = |executor: KubernetesExecutor| async move {
        let checks = Executor::health(&executor).await;
        checks.into_iter().find(|c| c.service == "Image builders")
    };
    let host = KubernetesExecutor::new(fake.client(NS), settings(BuilderType::Host));
    assert!(checks(host).await.is_none(), "any node builds with host");
    let dind = || KubernetesExecutor::new(fake.client(NS), settings(BuilderType::Dind));
    let none = checks(dind()).await.expect("a builders check");
    assert!(
        !none.ok
            && none
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no dind image builder"))
    );
    fake.add_pod(NS, "dind-a", BUILDER_LABELS, "node-a", "Running");
    let one = checks(dind()).await.expect("a builders check");
    assert!(one.ok, "{one:?}");
    assert_eq!(one.details["nodes"], json!(["node-a"]));
}

#[tokio::test]
async fn a_static_builder_nodes_list_overrides_the_discovery() {
    let fake = FakeKube::start().await;
    fake.add_pod(NS, "dind-a", BUILDER_LABELS, "node-a", "Running");
    let mut settings = settings(BuilderType::Dind);
    settings.job.builder_nodes = vec!["static-x".into(), "static-y".into()];
    let spec = build("https://github.com/org/repo");
    let job = job_of(&fake, settings.clone(), &spec).await;
    let affinity = &pod_spec(&job)["affinity"]["nodeAffinity"];
    assert!(affinity["requiredDuringSchedulingIgnoredDuringExecution"].is_null());
    let preferred = &affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"];
    let expected = sticky_node(&spec.repo, &settings.job.builder_nodes).unwrap();
    assert_eq!(
        preferred["matchExpressions"][0]["values"],
        json!([expected])
    );
}

/// Every build pod setting, as an operator might give them.
fn full_settings() -> KubernetesSettings {
    let mut settings = settings(BuilderType::Host);
    let job_settings = &mut settings.job;
    job_settings.extra_args = vec!["--Repo2Docker.default_buildpack=None".into()];
    job_settings.appendix = Some("RUN echo appended".into());
    job_settings.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("2Gi".into()))])),
        ..ResourceRequirements::default()
    });
    job_settings.env = BTreeMap::from([("GIT_LFS_SKIP_SMUDGE".into(), "1".into())]);
    job_settings.image_pull_secrets = vec!["registry-pull".into()];
    job_settings.tolerations = vec![Toleration {
        key: Some("purpose".into()),
        operator: Some("Equal".into()),
        value: Some("build".into()),
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    }];
    job_settings.node_selector = BTreeMap::from([("purpose".into(), "build".into())]);
    settings
}

#[test]
fn a_job_on_builder_nodes_with_every_setting_passes_kubernetes_validate_strict() {
    let python = std::env::var_os("BINDERY_PYTHON").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/pyenv/bin/python")
        },
        std::path::PathBuf::from,
    );
    let validate = python.with_file_name("kubernetes-validate");
    let nodes: Vec<String> = vec!["node-a".into(), "node-b".into()];
    let settings = full_settings();
    let job = build_job_on(
        &settings.job,
        &build("https://github.com/org/repo"),
        Placement::Builders(&nodes),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.json");
    let run = |value: &Value| {
        std::fs::write(&path, value.to_string()).unwrap();
        std::process::Command::new(&validate)
            .arg("--strict")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask test`)", validate.display()))
    };
    let value = serde_json::to_value(&job).unwrap();
    let output = run(&value);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    // The check can fail: a misspelt affinity field is refused under --strict.
    let mut broken = value;
    let affinity = &mut broken["spec"]["template"]["spec"]["affinity"]["nodeAffinity"];
    affinity["requiredDuringScheduling"] =
        affinity["requiredDuringSchedulingIgnoredDuringExecution"].take();
    assert!(!run(&broken).status.success());
}

#[tokio::test]
async fn the_build_pod_settings_reach_the_job() {
    let fake = FakeKube::start().await;
    let job = job_of(
        &fake,
        full_settings(),
        &build("https://github.com/org/repo"),
    )
    .await;
    let pod = pod_spec(&job);
    let container = &pod["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    let n = args.len();
    assert_eq!(args[n - 2], "--Repo2Docker.default_buildpack=None");
    let appendix = args
        .iter()
        .position(|a| a == "--appendix")
        .expect("--appendix");
    assert_eq!(args[appendix + 1], "RUN echo appended");
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}})
    );
    assert_eq!(
        container["env"],
        json!([{"name": "GIT_LFS_SKIP_SMUDGE", "value": "1"}])
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "registry-pull"}]));
    assert_eq!(pod["nodeSelector"], json!({"purpose": "build"}));
    let tolerations = pod["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 3, "BinderHub's two and the operator's");
    assert_eq!(
        tolerations[2],
        json!({"key": "purpose", "operator": "Equal", "value": "build", "effect": "NoSchedule"})
    );
    assert_eq!(pod["automountServiceAccountToken"], json!(false));
}

//! The Kubernetes executor against a fake API server that speaks the real wire protocol:
//! the Job manifest passes `kubernetes-validate --strict`, builds stream their logs as
//! events and end on the Job's conditions, timeouts fail with a message, a restarted worker
//! adopts its running Jobs, and 1,000 concurrent starts create one Job.

#![allow(clippy::unwrap_used)]

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bindery_core::events::{Event, Phase};
use bindery_worker::executor::kubernetes::{
    JobBuild, JobSettings, KubernetesExecutor, KubernetesSettings, build_job,
};
use bindery_worker::executor::{BuildOutcome, BuildSpec};
use fake_kube::FakeKube;

const NS: &str = "binder";

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        job: JobSettings {
            namespace: NS.into(),
            push_secret: Some("binder-build-docker-config".into()),
            builder_nodes: vec!["node-a".into(), "node-b".into()],
            ..JobSettings::default()
        },
        idle_timeout: Duration::from_secs(20),
        finish_grace: Duration::from_secs(5),
        ..KubernetesSettings::default()
    }
}

fn build() -> BuildSpec {
    BuildSpec::new(
        "binder-examples-requirements",
        "https://github.com/binder-examples/requirements",
        "1479e02b1a4b8bba5e52e3cb31c6d1b7d8d0b4e5",
        "registry.example/binder-examples-requirements:1479e02",
    )
}

/// Reads a run to its end (bounded, so a hang fails the test; generous, since a thousand
/// followers share two cores with the rest of the suite).
async fn finish(run: JobBuild) -> (Vec<Event>, BuildOutcome) {
    let mut handle = run.handle;
    let read = async move {
        let mut events = Vec::new();
        while let Some(event) = handle.events.recv().await {
            events.push(event);
        }
        (events, handle.outcome.await.expect("an outcome"))
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the build ends")
}

/// Waits until `run` yields an event (the log is being followed).
async fn next_event(run: &mut JobBuild) -> Event {
    match tokio::time::timeout(Duration::from_secs(10), run.handle.events.recv()).await {
        Ok(Some(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn line(phase: &str, message: &str) -> String {
    serde_json::json!({"phase": phase, "message": message}).to_string()
}

fn kubernetes_validate() -> PathBuf {
    let python = std::env::var_os("BINDERY_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python"),
        PathBuf::from,
    );
    python.with_file_name("kubernetes-validate")
}

#[test]
fn the_job_manifest_passes_kubernetes_validate_strict() {
    let settings = settings();
    let mut job_settings = settings.job.clone();
    job_settings.appendix = Some("RUN echo appended".into());
    job_settings
        .node_selector
        .insert("hub.jupyter.org/node-purpose".into(), "user".into());
    let job = build_job(&job_settings, &build()).unwrap();
    let spread = build_job(&JobSettings::default(), &build()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sticky_path = dir.path().join("job.json");
    let spread_path = dir.path().join("spread.json");
    std::fs::write(&sticky_path, serde_json::to_string_pretty(&job).unwrap()).unwrap();
    std::fs::write(&spread_path, serde_json::to_string_pretty(&spread).unwrap()).unwrap();

    let validate = kubernetes_validate();
    let output = std::process::Command::new(&validate)
        .arg("--strict")
        .arg(&sticky_path)
        .arg(&spread_path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `cargo xtask test` to install it)",
                validate.display()
            )
        });
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert_eq!(
        text.matches("passed for resource job/").count(),
        2,
        "{text}"
    );

    // The check can fail: a misspelt field is refused under --strict.
    let mut broken = serde_json::to_value(&job).unwrap();
    broken["spec"]["backofLimit"] = serde_json::json!(0);
    std::fs::write(&sticky_path, broken.to_string()).unwrap();
    let refused = std::process::Command::new(&validate)
        .arg("--strict")
        .arg(&sticky_path)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[tokio::test]
async fn a_build_that_succeeds_streams_its_log_as_events_and_ends_built() {
    let fake = FakeKube::start().await;
    let executor = KubernetesExecutor::new(fake.client(NS), settings());
    let mut run = executor.start_job(&build()).await.unwrap();
    assert!(run.created);
    let job = fake.job(NS, &build().build_name).expect("the job exists");
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "bindery"
    );

    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Pending");
    fake.log(NS, &pod, &line("fetching", "Cloning the repository\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    let first = next_event(&mut run).await;
    assert_eq!(
        (first.phase, first.message.as_str()),
        (Phase::Fetching, "Cloning the repository\n")
    );
    fake.log(NS, &pod, &line("building", "Step 1/3\n"));
    fake.log(NS, &pod, "plain text from docker");
    fake.log(NS, &pod, &line("pushing", "Pushing image\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Succeeded");

    let (events, outcome) = finish(run).await;
    assert_eq!(outcome, BuildOutcome::Succeeded);
    let phases: Vec<Phase> = events.iter().map(|e| e.phase).collect();
    assert_eq!(phases, [Phase::Building, Phase::Unknown, Phase::Pushing]);
    assert_eq!(events[1].message, "plain text from docker\n");
    assert_eq!(fake.job_creates(), 1);
}

#[tokio::test]
async fn a_log_stream_that_ends_while_the_pod_runs_is_resumed_without_repeating_lines() {
    let fake = FakeKube::start().await;
    let executor = KubernetesExecutor::new(fake.client(NS), settings());
    let mut run = executor.start_job(&build()).await.unwrap();
    let job = build().build_name;
    let pod = fake.pod_of(NS, &job).await;
    fake.set_phase(NS, &job, &pod, "Running");
    for step in ["one", "two", "three"] {
        fake.log(NS, &pod, &line("building", &format!("step {step}\n")));
    }
    for _ in 0..3 {
        next_event(&mut run).await;
    }
    // The connection breaks while the build goes on; lines come in the same second.
    fake.end_log_streams(NS, &pod);
    fake.log(NS, &pod, &line("building", "step four\n"));
    let fourth = next_event(&mut run).await;
    assert_eq!(fourth.message, "step four\n");
    // And once more, right before the container ends.
    fake.end_log_streams(NS, &pod);
    fake.log(NS, &pod, &line("pushing", "step five\n"));
    fake.set_phase(NS, &job, &pod, "Succeeded");
    let (rest, outcome) = finish(run).await;
    assert_eq!(outcome, BuildOutcome::Succeeded);
    let rest: Vec<&str> = rest.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(rest, ["step five\n"], "every line once, none lost");

    let requests = fake.log_requests();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|q| q.get("timestamps").map(String::as_str) == Some("true")),
        "{requests:?}"
    );
    assert!(!requests[0].contains_key("sinceTime"));
    assert!(
        requests[1..].iter().all(|q| q.contains_key("sinceTime")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_failed_build_ends_failed_with_the_reason() {
    let fake = FakeKube::start().await;
    let executor = KubernetesExecutor::new(fake.client(NS), settings());
    let run = executor.start_job(&build()).await.unwrap();
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "Step 1/3\n"));
    fake.log(NS, &pod, &line("failure", "No environment files found\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Failed");

    let (events, outcome) = finish(run).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].phase, Phase::Failed);
    let BuildOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.contains("BackoffLimitExceeded"), "{reason}");
}

#[tokio::test]
async fn a_pod_that_cannot_start_fails_the_build_naming_the_reason_and_its_job_is_deleted() {
    for (reason, message) in [
        ("ErrImagePull", "pull access denied for repo2docker"),
        ("ImagePullBackOff", "Back-off pulling image"),
        (
            "CreateContainerConfigError",
            "secret \"binder-build-docker-config\" not found",
        ),
        ("FailedMount", "MountVolume.SetUp failed"),
    ] {
        let fake = FakeKube::start().await;
        let executor = KubernetesExecutor::new(fake.client(NS), settings());
        let run = executor.start_job(&build()).await.unwrap();
        let pod = fake.pod_of(NS, &build().build_name).await;
        fake.set_waiting(NS, &pod, reason, message);

        let (events, outcome) = finish(run).await;
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(
            outcome,
            BuildOutcome::Failed(format!(
                "the build pod could not start ({reason}: {message})"
            ))
        );
        assert!(
            fake.job(NS, &build().build_name).is_none(),
            "the stuck job is deleted"
        );
    }
}

#[tokio::test]
async fn a_build_past_its_timeout_fails_saying_so() {
    let fake = FakeKube::start().await;
    let mut settings = settings();
    settings.job.build_timeout = Duration::from_secs(1);
    let executor = KubernetesExecutor::new(fake.client(NS), settings);
    let started = Instant::now();
    let run = executor.start_job(&build()).await.unwrap();
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "a very slow step\n"));

    let (events, outcome) = finish(run).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        outcome,
        BuildOutcome::Failed("the build timed out after 1 s".into())
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_build_that_prints_nothing_for_the_idle_timeout_is_stopped() {
    let fake = FakeKube::start().await;
    let mut settings = settings();
    settings.idle_timeout = Duration::from_millis(500);
    let executor = KubernetesExecutor::new(fake.client(NS), settings);
    let run = executor.start_job(&build()).await.unwrap();
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "then silence\n"));

    let (events, outcome) = finish(run).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        outcome,
        BuildOutcome::Failed("the build printed nothing for 0.5 s and was stopped".into())
    );
    assert!(
        fake.job(NS, &build().build_name).is_none(),
        "the silent job is deleted"
    );
}

#[tokio::test]
async fn a_log_stream_that_keeps_ending_at_once_while_the_pod_runs_still_hits_the_idle_timeout() {
    for phase in ["Running", "Unknown"] {
        let fake = FakeKube::start().await;
        let mut settings = settings();
        settings.idle_timeout = Duration::from_millis(500);
        let executor = KubernetesExecutor::new(fake.client(NS), settings);
        let mut run = executor.start_job(&build()).await.unwrap();
        let pod = fake.pod_of(NS, &build().build_name).await;
        fake.set_phase(NS, &build().build_name, &pod, "Running");
        fake.log(NS, &pod, &line("building", "then silence\n"));
        // The log is being followed; from now on every follow stream ends at once.
        next_event(&mut run).await;
        fake.close_log(NS, &pod);
        fake.set_phase(NS, &build().build_name, &pod, phase);

        let (events, outcome) = finish(run).await;
        assert!(events.is_empty(), "{phase}: {events:?}");
        assert_eq!(
            outcome,
            BuildOutcome::Failed("the build printed nothing for 0.5 s and was stopped".into()),
            "{phase}"
        );
        assert!(fake.job(NS, &build().build_name).is_none(), "{phase}");
    }
}

#[tokio::test]
async fn a_restarted_worker_adopts_the_running_job_and_resumes_its_log() {
    let fake = FakeKube::start().await;
    let first = KubernetesExecutor::new(fake.client(NS), settings());
    let mut run = first.start_job(&build()).await.unwrap();
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "before the restart\n"));
    assert_eq!(next_event(&mut run).await.message, "before the restart\n");

    // The worker dies mid-build: its follower stops.
    drop(first);
    let (_, outcome) = finish(run).await;
    assert!(matches!(outcome, BuildOutcome::Failed(_)));

    let second = KubernetesExecutor::new(fake.client(NS), settings());
    let mut adopted = second.adopt_jobs().await.unwrap();
    assert_eq!(adopted.len(), 1);
    let run = adopted.pop().unwrap();
    assert_eq!(run.build, build());
    assert!(!run.created);
    fake.log(NS, &pod, &line("pushing", "after the restart\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Succeeded");
    let (events, outcome) = finish(run).await;
    assert_eq!(outcome, BuildOutcome::Succeeded);
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["before the restart\n", "after the restart\n"]);
    assert_eq!(fake.job_creates(), 1);

    // Finished Jobs are not adopted.
    assert!(second.adopt_jobs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_starts_of_one_image_create_one_job_and_all_see_the_outcome() {
    let fake = FakeKube::start().await;
    let executor = KubernetesExecutor::new(fake.client(NS), settings());
    let starts: Vec<_> = (0..1000)
        .map(|_| {
            let executor = executor.clone();
            tokio::spawn(async move { executor.start_job(&build()).await.unwrap() })
        })
        .collect();
    let mut runs = Vec::new();
    for start in starts {
        runs.push(start.await.unwrap());
    }
    assert_eq!(fake.job_creates(), 1);
    assert_eq!(fake.job_conflicts(), 999);
    assert_eq!(runs.iter().filter(|r| r.created).count(), 1);

    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "one build for everyone\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Succeeded");
    let readers: Vec<_> = runs
        .into_iter()
        .map(|run| tokio::spawn(finish(run)))
        .collect();
    for reader in readers {
        let (events, outcome) = reader.await.unwrap();
        assert_eq!(outcome, BuildOutcome::Succeeded);
        assert_eq!(events.len(), 1);
    }
}

#[tokio::test]
async fn a_second_worker_attaches_to_the_job_another_created() {
    let fake = FakeKube::start().await;
    let one = KubernetesExecutor::new(fake.client(NS), settings());
    let two = KubernetesExecutor::new(fake.client(NS), settings());
    let a = one.start_job(&build()).await.unwrap();
    let b = two.start_job(&build()).await.unwrap();
    assert!(a.created && !b.created);
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "shared\n"));
    fake.set_phase(NS, &build().build_name, &pod, "Succeeded");
    let ((ea, oa), (eb, ob)) = tokio::join!(finish(a), finish(b));
    assert_eq!((oa, ob), (BuildOutcome::Succeeded, BuildOutcome::Succeeded));
    assert_eq!(ea, eb);
    assert_eq!(fake.job_creates(), 1);
}

#[tokio::test]
async fn a_build_whose_job_failed_earlier_is_retried_with_a_new_job() {
    let fake = FakeKube::start().await;
    let executor = KubernetesExecutor::new(fake.client(NS), settings());
    let run = executor.start_job(&build()).await.unwrap();
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Failed");
    assert!(matches!(finish(run).await.1, BuildOutcome::Failed(_)));

    let retry = executor.start_job(&build()).await.unwrap();
    assert!(retry.created);
    assert_eq!(fake.job_creates(), 2);
    let pod = fake.pod_of(NS, &build().build_name).await;
    fake.set_phase(NS, &build().build_name, &pod, "Succeeded");
    assert_eq!(finish(retry).await.1, BuildOutcome::Succeeded);
}

#[tokio::test]
async fn the_fake_api_filters_by_label_replays_watches_from_a_version_and_ends_them_on_time() {
    use futures::StreamExt;
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::namespaced(fake.client(NS), NS);
    let mut other = build();
    other.build_name = "build-other-abc-e2".into();
    let first = build_job(&settings().job, &build()).unwrap();
    let mut second = build_job(&settings().job, &other).unwrap();
    second
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("component".into(), "something-else".into());
    let created = jobs.create(&PostParams::default(), &first).await.unwrap();
    let before_second = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    jobs.create(&PostParams::default(), &second).await.unwrap();

    let list = jobs
        .list(&ListParams::default().labels("component=bindery-build,name=build-other-abc-e2"))
        .await
        .unwrap();
    assert!(list.items.is_empty());
    let list = jobs
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=bindery"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let version: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(version > before_second.parse().unwrap());
    assert!(jobs.get_opt("missing").await.unwrap().is_none());

    // A watch from before the second create replays it, then ends at its timeout.
    let started = Instant::now();
    let params = WatchParams::default()
        .labels("component=something-else")
        .timeout(1);
    let events: Vec<_> = jobs
        .watch(&params, &before_second)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], Ok(WatchEvent::Added(job)) if job.metadata.name.as_deref() == Some("build-other-abc-e2"))
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(5));
}

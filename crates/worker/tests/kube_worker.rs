//! The worker with the Kubernetes executor, through its HTTP API, against the fake API
//! server: a prebuild runs as one Job whose repo2docker log lines become the build's
//! events; a worker started while a build Job runs adopts it, and the adopted build holds
//! a queue slot; a configured registry means `--push` with the push secret mounted;
//! `/health` checks the API server and reports the pod quota; 1,000 concurrent launches
//! of one missing image create exactly one Job.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_kube.rs"]
mod fake_kube;
mod support;

use std::time::Duration;

use bindery_core::events::Phase;
use bindery_core::worker_api::{Accepted, BuildRequest};
use bindery_worker::WorkerConfig;
use bindery_worker::executor::kubernetes::{JobSettings, KubernetesExecutor, KubernetesSettings};
use bindery_worker::executor::{BuildSpec, ExecutorSettings};
use fake_kube::FakeKube;
use http::{Method, StatusCode};
use serde_json::Value;
use support::{Stream, authed, follow, launch_request, worker};

const NS: &str = "binder";

fn executor_settings() -> KubernetesSettings {
    KubernetesSettings {
        job: JobSettings {
            namespace: NS.into(),
            ..JobSettings::default()
        },
        idle_timeout: Duration::from_secs(20),
        finish_grace: Duration::from_secs(5),
        ..KubernetesSettings::default()
    }
}

/// A worker configuration building with Jobs on `fake` (no hub is needed for builds).
fn config(fake: &FakeKube) -> WorkerConfig {
    config_with_hub(fake, "http://127.0.0.1:9/")
}

/// A worker configuration building with Jobs on `fake` and launching on `hub_url`.
fn config_with_hub(fake: &FakeKube, hub_url: &str) -> WorkerConfig {
    let mut config = support::config(hub_url);
    config.builds.executor = ExecutorSettings::Kubernetes(KubernetesSettings {
        api_url: Some(fake.url()),
        ..executor_settings()
    });
    config
}

fn build_request(repo: &str) -> BuildRequest {
    let launch = launch_request("org", repo);
    BuildRequest {
        provider: launch.provider,
        spec: launch.spec,
        repo_url: launch.repo_url,
        resolved_ref: launch.resolved_ref,
        image: launch.image,
        build_slug: launch.build_slug,
    }
}

/// The Job the worker makes for `request`.
fn job_of(request: &BuildRequest) -> BuildSpec {
    BuildSpec::new(
        &request.build_slug,
        &request.repo_url,
        &request.resolved_ref,
        &request.image,
    )
}

fn line(phase: &str, message: &str) -> String {
    serde_json::json!({"phase": phase, "message": message}).to_string()
}

async fn build_info(base: &str, image: &str) -> Value {
    let image = percent_encoding::utf8_percent_encode(image, percent_encoding::NON_ALPHANUMERIC);
    let (status, body) = authed(
        Method::GET,
        &format!("{base}/api/v1/builds?image={image}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Waits until the build of `image` is in `state`: the log's final event is appended just
/// before the registry records the outcome.
async fn wait_for_state(base: &str, image: &str, state: &str) {
    for _ in 0..200 {
        if build_info(base, image).await["state"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the build of {image} never became {state}");
}

fn messages(stream: &Stream) -> Vec<(Phase, String)> {
    stream
        .events
        .iter()
        .map(|(_, e)| (e.phase, e.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prebuild_runs_as_one_job_whose_log_lines_become_events_ending_in_built() {
    let fake = FakeKube::start().await;
    let worker = worker(config(&fake)).await;
    let request = build_request("kube-prebuild");
    let job = job_of(&request);
    let (status, body) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(serde_json::to_string(&request).unwrap()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let accepted: Accepted = serde_json::from_slice(&body).unwrap();
    let events_url = format!("{}{}", worker.base, accepted.events_url);
    let reader = tokio::spawn(async move { follow(&events_url, None, None).await });

    let pod = fake.pod_of(NS, &job.build_name).await;
    assert!(fake.job(NS, &job.build_name).is_some());
    fake.set_phase(NS, &job.build_name, &pod, "Running");
    fake.log(NS, &pod, &line("fetching", "Fetching the repository\n"));
    fake.log(NS, &pod, &line("building", "Step 1/1 : RUN echo built\n"));
    fake.set_phase(NS, &job.build_name, &pod, "Succeeded");

    let stream = reader.await.unwrap();
    assert!(stream.ended);
    let seen = messages(&stream);
    let fetching = (Phase::Fetching, "Fetching the repository\n".to_owned());
    let building = (Phase::Building, "Step 1/1 : RUN echo built\n".to_owned());
    assert!(
        seen.contains(&fetching) && seen.contains(&building),
        "{seen:?}"
    );
    let last = &stream.events.last().unwrap().1;
    assert_eq!(last.phase, Phase::Built, "{seen:?}");
    assert_eq!(last.image_name.as_deref(), Some(request.image.as_str()));
    assert_eq!(fake.job_creates(), 1);
    wait_for_state(&worker.base, &request.image, "succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_a_build_job_runs_adopts_it_and_reports_it_to_the_end() {
    let fake = FakeKube::start().await;
    let request = build_request("kube-adopt");
    let job = job_of(&request);
    // The Job a previous worker created before it was killed.
    {
        let previous = KubernetesExecutor::new(fake.client(NS), executor_settings());
        assert!(previous.start_job(&job).await.unwrap().created);
    }
    let pod = fake.pod_of(NS, &job.build_name).await;
    fake.set_phase(NS, &job.build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "before the restart\n"));

    let worker = worker(config(&fake)).await;
    let info = build_info(&worker.base, &request.image).await;
    assert_eq!(info["state"], "running", "{info}");
    let id = info["id"].as_str().unwrap().to_owned();
    let events_url = format!("{}/api/v1/builds/{id}/events", worker.base);
    let first = follow(&events_url, None, Some(1)).await;
    assert_eq!(
        messages(&first),
        [(Phase::Building, "before the restart\n".to_owned())]
    );
    let last_id = first.events[0].0;

    fake.log(NS, &pod, &line("pushing", "after the restart\n"));
    fake.set_phase(NS, &job.build_name, &pod, "Succeeded");
    let rest = follow(&events_url, Some(last_id), None).await;
    assert!(rest.ended);
    let seen = messages(&rest);
    assert_eq!(
        seen.first(),
        Some(&(Phase::Pushing, "after the restart\n".to_owned())),
        "{seen:?}"
    );
    assert_eq!(
        rest.events.last().unwrap().1.phase,
        Phase::Built,
        "{seen:?}"
    );
    assert_eq!(
        fake.job_creates(),
        1,
        "the build was adopted, not restarted"
    );
    wait_for_state(&worker.base, &request.image, "succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_build_through_the_executor_trait_deletes_its_job() {
    use bindery_worker::executor::{BuildOutcome, Executor};

    let fake = FakeKube::start().await;
    let request = build_request("kube-cancel");
    let job = job_of(&request);
    let kube = KubernetesExecutor::new(fake.client(NS), executor_settings());
    let handle = Executor::start(&kube, &job);
    let pod = fake.pod_of(NS, &job.build_name).await;
    fake.set_phase(NS, &job.build_name, &pod, "Running");
    handle.cancel.send(true).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), handle.outcome)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        BuildOutcome::Failed("the build was cancelled".into())
    );
    assert!(
        fake.job(NS, &job.build_name).is_none(),
        "the job is deleted"
    );
}

async fn health_of(base: &str) -> (StatusCode, Value) {
    let (status, body) = support::call(Method::GET, &format!("{base}/health"), &[], None).await;
    (status, serde_json::from_slice(&body).unwrap())
}

fn check<'a>(body: &'a Value, service: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == service)
        .unwrap_or_else(|| panic!("no {service} check in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_the_kubernetes_api_and_reports_the_pod_quota_without_failing_on_it() {
    use k8s_openapi::api::core::v1::Pod;

    let hub = support::hub();
    let fake = FakeKube::start().await;
    let pods: kube::Api<Pod> = kube::Api::namespaced(fake.client(NS), NS);
    for i in 0..3 {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("jupyter-user-{i}"),
                "labels": {"app": "jupyterhub", "component": "singleuser-server"},
            },
            "spec": {"containers": [{"name": "notebook", "image": "x"}]},
        }))
        .unwrap();
        pods.create(&Default::default(), &pod).await.unwrap();
    }
    // A running build: its Job's pod counts as a build pod.
    let previous = KubernetesExecutor::new(fake.client(NS), executor_settings());
    previous
        .start_job(&job_of(&build_request("kube-health")))
        .await
        .unwrap();

    let mut config = config_with_hub(&fake, &hub.url);
    config.total_quota = Some(3);
    let full = worker(config.clone()).await;
    let (status, body) = health_of(&full.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "the pod quota is informational: {body}");
    assert_eq!(check(&body, "JupyterHub API")["ok"], true);
    assert_eq!(check(&body, "Kubernetes API")["ok"], true, "{body}");
    let quota = check(&body, "Pod quota");
    assert_eq!(
        *quota,
        serde_json::json!({
            "service": "Pod quota", "ok": false, "total_pods": 4, "build_pods": 1,
            "user_pods": 3, "quota": 3, "_ignore_failure": true,
        })
    );

    // `/versions` names the build Jobs' image, as BinderHub's `build_image`.
    let (status, versions) =
        support::call(Method::GET, &format!("{}/versions", full.base), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Value = serde_json::from_slice(&versions).unwrap();
    let image = match &config.builds.executor {
        ExecutorSettings::Kubernetes(k) => k.job.builder_image.clone(),
        other => panic!("not the kubernetes executor: {other:?}"),
    };
    assert!(image.contains("repo2docker"), "{image}");
    assert_eq!(
        versions,
        serde_json::json!({"builder_info": {"build_image": image}})
    );

    let mut unlimited = config.clone();
    unlimited.total_quota = None;
    let unlimited = worker(unlimited).await;
    let (_, body) = health_of(&unlimited.base).await;
    assert_eq!(check(&body, "Pod quota")["ok"], true, "{body}");
    assert_eq!(check(&body, "Pod quota")["quota"], Value::Null);

    let mut dead = config;
    dead.builds.executor = ExecutorSettings::Kubernetes(KubernetesSettings {
        api_url: Some("http://127.0.0.1:9".into()),
        ..executor_settings()
    });
    let dead = worker(dead).await;
    let (status, body) = health_of(&dead.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(check(&body, "Kubernetes API")["ok"], false);
    assert_eq!(check(&body, "Pod quota")["ok"], false);
    assert_eq!(check(&body, "JupyterHub API")["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_build_holds_a_queue_slot_until_it_ends() {
    let fake = FakeKube::start().await;
    let adopted = build_request("kube-adopted-slot");
    let adopted_job = job_of(&adopted);
    {
        let previous = KubernetesExecutor::new(fake.client(NS), executor_settings());
        assert!(previous.start_job(&adopted_job).await.unwrap().created);
    }
    let adopted_pod = fake.pod_of(NS, &adopted_job.build_name).await;
    fake.set_phase(NS, &adopted_job.build_name, &adopted_pod, "Running");

    let mut config = config(&fake);
    config.builds.max_concurrent = 1;
    let worker = worker(config).await;
    assert_eq!(
        build_info(&worker.base, &adopted.image).await["state"],
        "running"
    );

    let queued = build_request("kube-queued-behind-adopted");
    let queued_job = job_of(&queued);
    let (status, body) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(serde_json::to_string(&queued).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: Accepted = serde_json::from_slice(&body).unwrap();
    let events_url = format!("{}{}", worker.base, accepted.events_url);
    let first = follow(&events_url, None, Some(1)).await;
    let waiting = &first.events[0].1;
    assert_eq!(waiting.phase, Phase::Waiting, "{waiting:?}");
    assert_eq!(waiting.queue_position, Some(1));
    assert!(
        fake.job(NS, &queued_job.build_name).is_none(),
        "no Job while the adopted build holds the only slot"
    );
    assert_eq!(
        build_info(&worker.base, &queued.image).await["state"],
        "queued"
    );

    // The adopted build ends: its slot goes to the queued build, whose Job starts.
    fake.set_phase(NS, &adopted_job.build_name, &adopted_pod, "Succeeded");
    let queued_pod = fake.pod_of(NS, &queued_job.build_name).await;
    fake.set_phase(NS, &queued_job.build_name, &queued_pod, "Running");
    fake.log(NS, &queued_pod, &line("building", "now it runs\n"));
    fake.set_phase(NS, &queued_job.build_name, &queued_pod, "Succeeded");
    let rest = follow(&events_url, Some(first.events[0].0), None).await;
    assert!(rest.ended);
    assert!(
        messages(&rest).contains(&(Phase::Building, "now it runs\n".to_owned())),
        "{:?}",
        messages(&rest)
    );
    assert_eq!(rest.events.last().unwrap().1.phase, Phase::Built);
    assert_eq!(fake.job_creates(), 2);
    wait_for_state(&worker.base, &adopted.image, "succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_registry_configured_the_build_job_pushes_with_the_push_secret_mounted() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.toml");
    // The registry is not there: the re-check fails and the worker builds anyway.
    std::fs::write(
        &file,
        format!(
            "token = \"{}\"\nhub_url = \"http://127.0.0.1:9/\"\nhub_api_token = \"t\"\n\
             image_prefix = \"{}\"\nexecutor = \"kubernetes\"\nregistry_url = \"http://127.0.0.1:9\"\n\
             allowed_build_hosts = [\"github.com\"]\n\
             [kubernetes]\napi_url = \"{}\"\nnamespace = \"{NS}\"\n",
            support::TOKEN,
            support::PREFIX,
            fake.url()
        ),
    )
    .unwrap();
    let config = WorkerConfig::from_sources(Some(&file), |_| None).unwrap();
    let worker = worker(config).await;
    let request = build_request("kube-push");
    let (status, _) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(serde_json::to_string(&request).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let name = job_of(&request).build_name;
    let pod = fake.pod_of(NS, &name).await;
    let job = fake.job(NS, &name).unwrap();
    let spec = &job["spec"]["template"]["spec"];
    let args: Vec<&str> = spec["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--push"), "{args:?}");
    assert_eq!(args.last(), Some(&request.repo_url.as_str()));
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "binder-build-docker-config")
        .unwrap_or_else(|| panic!("no push secret volume: {spec}"));
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("the push secret is not mounted: {spec}"));
    assert_eq!(mount["mountPath"], "/root/.docker");
    assert!(mount.get("subPath").is_none(), "{mount}");
    // A missing Secret must not keep the pod in ContainerCreating.
    assert_eq!(volume["secret"]["optional"], true, "{volume}");
    fake.set_phase(NS, &name, &pod, "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_launches_of_one_missing_image_through_the_api_create_exactly_one_job()
 {
    use futures::StreamExt;

    const LAUNCHES: usize = 1000;
    let fake = FakeKube::start().await;
    // The hub is not there: after the build, every launch fails to reach it.
    let worker = worker(config(&fake)).await;
    let mut request = launch_request("org", "kube-thousand");
    request.image_present = false;
    let job = job_of(&build_request("kube-thousand"));

    let posts = (0..LAUNCHES).map(|_| support::post_launch(&worker, &request));
    let urls = futures::future::join_all(posts).await;
    let distinct: std::collections::HashSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), LAUNCHES, "one launch id each");

    let pod = fake.pod_of(NS, &job.build_name).await;
    fake.set_phase(NS, &job.build_name, &pod, "Running");
    fake.log(NS, &pod, &line("building", "the only build\n"));
    // Every launch follows the one build: its first event is the build's line.
    let firsts: Vec<Stream> = futures::stream::iter(urls.iter())
        .map(|url| follow(url, None, Some(1)))
        .buffered(100)
        .collect()
        .await;
    for first in &firsts {
        assert_eq!(
            messages(first),
            [(Phase::Building, "the only build\n".to_owned())]
        );
    }
    fake.set_phase(NS, &job.build_name, &pod, "Succeeded");

    let rests: Vec<Stream> = futures::stream::iter(urls.iter().zip(&firsts))
        .map(|(url, first)| follow(url, Some(first.events[0].0), None))
        .buffered(100)
        .collect()
        .await;
    for rest in &rests {
        assert!(rest.ended);
        let seen = messages(rest);
        let built = rest
            .events
            .iter()
            .position(|(_, e)| e.phase == Phase::Built);
        assert!(built.is_some(), "{seen:?}");
        let last = &rest.events.last().unwrap().1;
        assert_eq!(last.phase, Phase::Failed, "{seen:?}");
        assert!(
            last.message.contains("failed to reach JupyterHub"),
            "{}",
            last.message
        );
    }
    assert_eq!(fake.job_creates(), 1, "exactly one Job");
    assert_eq!(fake.job_conflicts(), 0, "the worker asked for it once");
    let info = build_info(&worker.base, &request.image).await;
    assert_eq!(info["state"], "succeeded", "{info}");
}

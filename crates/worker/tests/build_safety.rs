//! Builds reach only what they should and run with a cleared environment (issue 13,
//! points 4 and 5): a loopback git server that must see no connection unless the operator
//! allows it, a launch whose repository is not its spec's, and a repo2docker stand-in that
//! dumps the environment it was given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/git_http.rs"]
mod git_http;
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bindery_core::events::Phase;
use bindery_core::provider::{ProviderId, ProviderSettings, Spec};
use bindery_core::resolve::{Resolved, encode_all};
use bindery_core::worker_api::{Accepted, BuildRequest, LaunchRequest};
use bindery_worker::WorkerConfig;
use bindery_worker::build_hosts::BuildHosts;
use bindery_worker::executor::local::ENGINE_VARIABLES;
use bindery_worker::executor::{
    BuildSpec, Executor, ExecutorSettings, LocalExecutor, LocalSettings,
};
use git_http::{GitHttp, bare_repository};
use http::{Method, StatusCode};
use support::{PREFIX, authed, follow, launch_request, worker};

/// A fresh scratch directory under `target/`.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/worker-build-safety")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn executable(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    Command::new("chmod").arg("+x").arg(path).status().unwrap();
}

/// A repo2docker stand-in that fetches the repository (its last argument) with
/// `git ls-remote`, as the real one clones it, counting its runs in `$R2D_RUNS`.
const FETCHING_R2D: &str = r#"#!/bin/sh
echo run >> "$R2D_RUNS"
for last; do :; done
git ls-remote "$last" > /dev/null 2>&1
printf '%s\n' '{"phase": "fetching", "message": "fetched\n"}'
exit 0
"#;

/// The launch the edge would send for the `git` link to `repo_url` at `sha`.
fn git_launch(repo_url: &str, sha: &str) -> LaunchRequest {
    let spec = Spec::parse(
        ProviderId::Git,
        &format!("{}/main", encode_all(repo_url)),
        &ProviderSettings::default(),
    )
    .unwrap();
    let resolved = Resolved {
        resolved_ref: sha.into(),
        resolved_spec: spec.resolved_spec(sha),
        ref_url: spec.ref_url(sha),
        build_slug: spec.build_slug(Some(sha)).unwrap(),
        etag: None,
        fell_back_to_head: false,
    };
    let image = bindery_core::image_name(PREFIX, &resolved.build_slug, sha);
    LaunchRequest::new(
        &spec,
        &resolved,
        image,
        false,
        "https://binder.example.org/".into(),
        None,
    )
}

fn as_build(launch: &LaunchRequest) -> BuildRequest {
    BuildRequest {
        provider: launch.provider.clone(),
        spec: launch.spec.clone(),
        repo_url: launch.repo_url.clone(),
        resolved_ref: launch.resolved_ref.clone(),
        image: launch.image.clone(),
        build_slug: launch.build_slug.clone(),
    }
}

fn fetching_config(dir: &std::path::Path, allowed: &[&str]) -> WorkerConfig {
    let program = dir.join("repo2docker");
    executable(&program, FETCHING_R2D);
    let mut config = support::config("http://127.0.0.1:9/");
    config.builds.executor = ExecutorSettings::Local(LocalSettings {
        repo2docker: program,
        env: vec![("R2D_RUNS".into(), dir.join("runs").display().to_string())],
        ..LocalSettings::default()
    });
    let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    config.builds.hosts = BuildHosts::new(&allowed, &[], Duration::from_secs(5)).unwrap();
    config
}

fn runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_git_server_sees_no_connection_unless_allowed_build_hosts_names_it() {
    let dir = scratch("loopback");
    let sha = bare_repository(&dir, &[("README.md", "hello\n")]);
    let server = GitHttp::start(dir.clone()).await;
    let repo_url = format!("{}/repo.git", server.url);
    let launch = git_launch(&repo_url, &sha);

    // Refused by default: the launch and the prebuild, before anything runs.
    let refused = worker(fetching_config(&dir, &[])).await;
    for (path, body) in [
        ("launches", serde_json::to_string(&launch).unwrap()),
        ("builds", serde_json::to_string(&as_build(&launch)).unwrap()),
    ] {
        let (status, answer) = authed(
            Method::POST,
            &format!("{}/api/v1/{path}", refused.base),
            Some(body),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert!(answer.contains("allowed_build_hosts"), "{answer}");
        assert!(answer.contains("http://"), "{answer}");
    }
    // https to loopback is refused for its address, whatever the scheme.
    let https = git_launch(&repo_url.replace("http://", "https://"), &sha);
    let (status, answer) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", refused.base),
        Some(serde_json::to_string(&as_build(&https)).unwrap()),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer.contains("a loopback address"), "{answer}");
    drop(refused);
    assert_eq!(
        server.connections(),
        0,
        "a refused build reached the server"
    );
    assert_eq!(runs(&dir), 0, "repo2docker ran for a refused build");

    // Allowed: the build runs and fetches from the server.
    let allowed = worker(fetching_config(&dir, &["127.0.0.1"])).await;
    let (status, answer) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", allowed.base),
        Some(serde_json::to_string(&as_build(&launch)).unwrap()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let accepted: Accepted = serde_json::from_slice(&answer).unwrap();
    let stream = follow(
        &format!("{}{}", allowed.base, accepted.events_url),
        None,
        None,
    )
    .await;
    let (_, last) = stream.events.last().unwrap();
    assert_eq!(last.phase, Phase::Built, "{:#?}", stream.events);
    assert_eq!(runs(&dir), 1);
    assert!(
        server.connections() > 0,
        "the allowed build fetched nothing"
    );
}

#[tokio::test]
async fn a_launch_whose_repository_is_not_its_specs_is_refused() {
    let worker = worker(support::config("http://127.0.0.1:9/")).await;
    let mut launch = launch_request("org", "popular");
    launch.repo_url = "https://github.com/evil/payload".into();
    let (status, answer) = authed(
        Method::POST,
        &format!("{}/api/v1/launches", worker.base),
        Some(serde_json::to_string(&launch).unwrap()),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer.contains("is not the repository of this spec"),
        "{answer}"
    );
    let mut build = as_build(&launch_request("org", "popular"));
    build.repo_url = "https://github.com/evil/payload".into();
    let (status, _) = authed(
        Method::POST,
        &format!("{}/api/v1/builds", worker.base),
        Some(serde_json::to_string(&build).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Writes the environment it was started with (not the shell's additions) and its
/// working directory next to `$DUMP_ENV_TO`.
const DUMPING_R2D: &str = r#"#!/bin/sh
tr '\0' '\n' < /proc/$$/environ > "$DUMP_ENV_TO"
pwd > "$DUMP_ENV_TO.pwd"
ls -A "$HOME" > "$DUMP_ENV_TO.home"
"#;

#[tokio::test]
async fn repo2docker_starts_with_only_the_allowed_variables_and_a_fresh_home_removed_after() {
    let dir = scratch("env");
    let program = dir.join("repo2docker");
    executable(&program, DUMPING_R2D);
    let dump = dir.join("env");
    let executor = LocalExecutor::new(LocalSettings {
        repo2docker: program,
        env: vec![
            ("DUMP_ENV_TO".into(), dump.display().to_string()),
            (
                "CONTAINERS_CONF".into(),
                "/etc/bindery/containers.conf".into(),
            ),
        ],
        ..LocalSettings::default()
    });
    let mut handle = executor.start(&BuildSpec {
        image: "reg/binder-x:1".into(),
        build_name: "env-build".into(),
        repo: "https://github.com/org/repo".into(),
        git_ref: "0123456789abcdef0123456789abcdef01234567".into(),
    });
    while handle.events.recv().await.is_some() {}
    handle.outcome.await.unwrap();

    let text = std::fs::read_to_string(&dump).unwrap();
    let env: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let keys: BTreeSet<&str> = env.iter().map(|(k, _)| *k).collect();
    let mut want: BTreeSet<&str> = [
        "PATH",
        "LANG",
        "HOME",
        "GIT_TERMINAL_PROMPT",
        "GIT_CONFIG_NOSYSTEM",
        "DUMP_ENV_TO",
        "CONTAINERS_CONF",
    ]
    .into();
    want.extend(
        ENGINE_VARIABLES
            .iter()
            .filter(|k| std::env::var_os(k).is_some()),
    );
    assert_eq!(keys, want, "{text}");
    // The test process holds more than that (cargo's variables at least), none of it passed.
    assert!(std::env::vars().any(|(k, _)| !want.contains(k.as_str())));
    let value = |key: &str| env.iter().find(|(k, _)| *k == key).unwrap().1;
    assert_eq!(value("GIT_TERMINAL_PROMPT"), "0");
    assert_eq!(value("GIT_CONFIG_NOSYSTEM"), "1");
    let home = value("HOME");
    assert_ne!(Some(home.to_owned()), std::env::var("HOME").ok());
    assert!(home.contains("bindery-build-home-"), "{home}");
    let pwd = std::fs::read_to_string(dir.join("env.pwd")).unwrap();
    assert_eq!(pwd.trim(), home, "the build runs in its home");
    assert_eq!(
        std::fs::read_to_string(dir.join("env.home")).unwrap(),
        "",
        "the home starts empty"
    );
    assert!(
        !std::path::Path::new(home).exists(),
        "the build's home is removed after it"
    );
}

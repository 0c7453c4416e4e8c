//! `bindery up`, black-box: the real binary with the real components of `spin.toml` and the
//! in-process worker, on a machine where the hub, the registry, the container engine and
//! repo2docker are all missing (an empty `PATH`, closed ports).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;

use bindery_system_tests::sse::get;
use bindery_system_tests::up::{Up, run_to_end};
use bindery_system_tests::{free_port, scratch};

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    free_port()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_starts_with_every_part_missing_says_what_to_do_serves_and_stops_cleanly_on_sigterm() {
    let dir = scratch("up-missing");
    let empty_path = dir.join("empty-bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let (edge_port, worker_port) = (free_port(), free_port());
    // GitHub's API, as the edge is told to reach it: a closed port (this machine has no
    // internet, and the answer must not depend on it).
    let github_port = closed_port();
    let config = format!(
        "data_dir = \"{data}\"\n\
         registry_url = \"http://127.0.0.1:{registry}\"\n\
         image_prefix = \"127.0.0.1:{registry}/binder-\"\n\
         hub_url = \"http://127.0.0.1:{hub}/\"\n\
         [edge]\nlisten = \"127.0.0.1:{edge_port}\"\n\
         [edge.variables]\ngithub_api = \"http://127.0.0.1:{github_port}\"\n\
         extra_outbound_host = \"http://127.0.0.1:{github_port}\"\n\
         [worker]\nlisten = \"127.0.0.1:{worker_port}\"\n",
        data = dir.join("data").display(),
        registry = closed_port(),
        hub = closed_port(),
    );
    // A worker.toml an earlier run (or an operator) left readable by everyone: the secrets
    // must not be written into it as it is.
    let settings = dir.join("data/worker/worker.toml");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "# old\n").unwrap();
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A variable that is not UTF-8 (a Spin variable's name, even) is left out, not a panic.
    let not_utf8 = OsString::from_vec(b"caf\xe9".to_vec());
    let env = [
        ("PATH", empty_path.clone().into_os_string()),
        ("SPIN_VARIABLE_NOT_UTF8", not_utf8.clone()),
        ("BINDERY_TEST_NOT_UTF8", not_utf8),
    ];
    let mut up = Up::start(&dir, &config, &env).await;
    let out = up.output();
    assert_eq!(up.url, format!("http://127.0.0.1:{edge_port}/"), "{out}");
    for expected in [
        "warning: hub_api_token is not set: launches will fail until it is",
        "warning: no JupyterHub answers at http://127.0.0.1:",
        "launches will fail until hub_url (BINDERY_HUB_URL) points at a running hub",
        "warning: no registry answers at http://127.0.0.1:",
        "builds will fail to push and every launch will build again",
        "warning: no container engine found: install docker or podman",
        "warning: repo2docker not found",
        &format!("worker:   http://127.0.0.1:{worker_port} (loopback)"),
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    let home = get(&up.url, &[]).await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("<html"), "{}", home.text());
    let health = get(&format!("{}health", up.url), &[]).await;
    assert!(
        health.status == 200 || health.status == 503,
        "{}",
        health.status
    );
    let checks = health.json()["checks"].clone();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["service"] == "Bindery worker"),
        "the edge's health asks the in-process worker: {checks}"
    );
    // The worker answers on its loopback port, and its generated token is private.
    let worker = get(&format!("http://127.0.0.1:{worker_port}/health"), &[]).await;
    assert!(worker.status == 200 || worker.status == 503);
    assert!(worker.json()["checks"].is_array(), "{}", worker.text());
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("token = "), "{text}");
    let mode = std::fs::metadata(&settings).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "worker.toml holds the token: {mode:o}");
    let strays: Vec<_> = std::fs::read_dir(settings.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        strays.is_empty(),
        "the temporary file was renamed: {strays:?}"
    );
    // A provider that does not answer: the resolve fails with a 502 naming the spec and the
    // origin it could not reach, and the process keeps running.
    let resolve = get(&format!("{}api/v1/resolve/gh/org/repo/HEAD", up.url), &[]).await;
    assert_eq!(resolve.status, 502, "{}", resolve.text());
    assert_eq!(
        resolve.json()["message"],
        format!(
            "Error resolving ref for gh:org/repo/HEAD: failed to reach \
             http://127.0.0.1:{github_port}: ErrorCode::ConnectionRefused"
        ),
        "{}",
        resolve.text()
    );
    assert!(up.running());

    let status = up.stop().expect("bindery up stops within 60 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", up.output());
    let out = up.output();
    assert!(
        out.contains("bindery up: stopping, draining the edge and the worker"),
        "{out}"
    );
    assert!(out.contains("bindery up: stopped"), "{out}");
    // Nothing listens any more: both parts closed their ports.
    assert!(std::net::TcpStream::connect(("127.0.0.1", edge_port)).is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", worker_port)).is_err());
}

#[test]
fn up_refuses_a_bad_configuration_with_one_line_naming_the_problem() {
    let dir = scratch("up-bad");
    let cases = [
        ("unknown = 1\n", "unknown"),
        ("[edge]\nlisten = \"not an address\"\n", "not an address"),
        ("[edge.variables]\nworker_token = \"x\"\n", "worker_token"),
        ("[worker]\ntokn = \"typo\"\n", "tokn"),
        ("hub_url = \"ftp://hub\"\n", "hub_url"),
        ("[worker]\nbuild_engine = \"rkt\"\n", "build_engine"),
    ];
    for (text, named) in cases {
        let file = dir.join("bad.toml");
        let full = format!("data_dir = \"{}\"\n{text}", dir.join("data").display());
        std::fs::write(&file, &full).unwrap();
        let out = run_to_end(&["--config", file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{full}\n{stderr}");
        assert!(stderr.contains(named), "{full}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = run_to_end(&["--config", "/nonexistent/bindery.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/bindery.toml"));
}

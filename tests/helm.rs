//! The Helm chart in `infra/helm/bindery`, checked with the real Helm v4 engine
//! (`helm-python-sdk`, no helm binary), `kubernetes-validate --strict` and jsonschema, by
//! `tests/py/helm_check.py` in the venv that `cargo xtask test` names in `BINDERY_PYTHON`.
//!
//! The chart is rendered with each `infra/helm/bindery/ci/*-values.yaml`; the renders are
//! compared with the committed `ci/snapshots/<name>.yaml`. After an intended change,
//! refresh them with `BINDERY_UPDATE_SNAPSHOTS=1 cargo test -p bindery-system-tests --test
//! helm` and commit the result.
//!
//! The same checker covers the rest of `infra/`: the Python of `infra/jupyterhub` compiles
//! and its spawner, loaded on the real KubeSpawner, honours BinderHub's `user_options`; the
//! Spin runtime configurations in `infra/spin` use only fields Spin reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bindery_system_tests::proc::Proc;
use bindery_system_tests::{edge, scratch, workspace};

/// Runs one command of the checker and fails the test with its output unless it passes.
fn check(command: &str) {
    check_with(&[command]);
}

fn check_with(args: &[&str]) {
    let Some(python) = std::env::var_os("BINDERY_PYTHON") else {
        panic!(
            "BINDERY_PYTHON is not set: run `cargo xtask test`, or set it to the venv python \
             with helm-python-sdk, kubernetes-validate and jsonschema \
             (BINDERY_PYTHON=target/pyenv/bin/python after `cargo xtask setup`)"
        );
    };
    let command = args.join(" ");
    let script: PathBuf = workspace().join("tests/py/helm_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", PathBuf::from(&python).display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "helm_check.py {command} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    print!("{stdout}");
}

#[test]
fn the_chart_passes_strict_lint_with_every_ci_values_file() {
    check("lint");
}

#[test]
fn every_rendered_manifest_passes_strict_kubernetes_validation_and_matches_the_worker_and_spin_toml()
 {
    check("validate");
}

#[test]
fn wrong_types_unknown_keys_and_missing_secrets_fail_the_render() {
    check("bad-values");
}

#[test]
fn the_renders_equal_the_committed_snapshots() {
    check("snapshots");
}

#[test]
fn each_check_fails_on_a_broken_manifest() {
    check("selftest");
}

#[test]
fn the_python_of_the_jupyterhub_settings_compiles() {
    check("py-compile");
}

#[test]
fn the_hub_spawner_takes_image_and_token_from_binderhubs_user_options() {
    check("hub-spawner");
}

#[test]
fn the_spin_runtime_configs_use_only_fields_spin_reads_and_stores_spin_toml_names() {
    check("spin-config");
}

/// Starts the real `bindery worker` with `config` and the Secrets' variables, and returns
/// its log once it has got past loading the configuration or has exited.
fn worker_log(config: &Path, dir: &Path) -> (String, bool) {
    let log = config.with_extension("log");
    let mut cmd = Command::new(edge::binary("debug"));
    cmd.args(["worker", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        // What the Deployment's env gives it from the Secrets.
        .env("BINDERY_WORKER_TOKEN", "worker-token")
        .env("BINDERY_HUB_API_TOKEN", "hub-token")
        .env("BINDERY_REGISTRY_USERNAME", "builder")
        .env("BINDERY_REGISTRY_PASSWORD", "registry-password")
        // No cluster here: a closed port, and the log store in the scratch directory
        // rather than the pod's volume.
        .env("BINDERY_KUBERNETES_API_URL", "http://127.0.0.1:9")
        .env("BINDERY_BUILD_LOG_PATH", dir.join("build-logs.redb"));
    let mut worker = Proc::spawn("bindery worker", &mut cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let running = worker.running();
        if text.contains("starting the worker") || !running || Instant::now() > deadline {
            return (text, running);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_real_worker_loads_every_rendered_worker_toml_and_refuses_a_broken_one() {
    let dir = scratch("helm-worker-toml");
    check_with(&["worker-toml", dir.to_str().expect("utf-8 path")]);
    let mut rendered: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scratch dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    rendered.sort();
    assert!(rendered.len() >= 3, "too few renders: {rendered:?}");
    for config in &rendered {
        let (log, _) = worker_log(config, &dir);
        assert!(
            log.contains("starting the worker")
                && !log.contains("failed to load the worker configuration"),
            "bindery worker did not accept {}:\n{}\n{log}",
            config.display(),
            std::fs::read_to_string(config).unwrap_or_default()
        );
    }
    // The same check refuses a key the worker does not know.
    let broken = dir.join("broken.toml");
    let text = std::fs::read_to_string(&rendered[0]).expect("render");
    std::fs::write(&broken, format!("launch_timeout = 5\n{text}")).expect("write");
    let (log, running) = worker_log(&broken, &dir);
    assert!(
        !running && log.contains("failed to load the worker configuration"),
        "bindery worker accepted an unknown key:\n{log}"
    );
}

#[test]
fn the_rendered_federation_variable_is_a_configuration_the_edge_takes() {
    // The snapshot of everything-values.yaml, whose `spinApp.federation` is mybinder's
    // `federationRedirect` shape: the edge parses what the chart renders.
    let snapshot = std::fs::read_to_string(
        workspace().join("infra/helm/bindery/ci/snapshots/everything.yaml"),
    )
    .expect("snapshot");
    let mut lines = snapshot.lines();
    lines
        .find(|l| l.trim() == "- name: federation")
        .expect("the federation variable is rendered");
    let quoted = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("value: "))
        .expect("its value");
    let text: String = serde_json::from_str(quoted).expect("a double-quoted string");
    let cfg = bindery_core::federation::FederationConfig::parse(&text)
        .expect("the edge takes it")
        .expect("a federation");
    let names: Vec<&str> = cfg.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(
        cfg.prime().map(|m| m.url.as_str()),
        Some("https://one.example.org")
    );
    assert_eq!(
        cfg.load_balancer,
        bindery_core::federation::LoadBalancer::Random
    );
}

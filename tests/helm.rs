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

use std::path::PathBuf;
use std::process::Command;

use bindery_system_tests::workspace;

/// Runs one command of the checker and fails the test with its output unless it passes.
fn check(command: &str) {
    let Some(python) = std::env::var_os("BINDERY_PYTHON") else {
        panic!(
            "BINDERY_PYTHON is not set: run `cargo xtask test`, or set it to the venv python \
             with helm-python-sdk, kubernetes-validate and jsonschema \
             (BINDERY_PYTHON=target/pyenv/bin/python after `cargo xtask setup`)"
        );
    };
    let script: PathBuf = workspace().join("tests/py/helm_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(command)
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

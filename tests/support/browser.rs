//! Headless Chromium (Debian's), driven by a playwright-core script of `tests/js/` under
//! Node, run under `tests/py/reaper.py`, which collects the browser's orphaned helpers
//! (PID 1 reaps nothing here). A script prints one JSON object: what it saw.

use std::ffi::OsStr;
use std::process::Command;

use serde_json::Value;

use crate::workspace;

/// Runs `tests/js/<script>` with `args` and returns the JSON it printed; panics, with its
/// output, when it fails.
pub fn run(script: &str, args: &[&OsStr]) -> Value {
    let node_path = crate::node::node_modules();
    assert!(
        node_path.join("playwright-core").exists(),
        "{} has no playwright-core: run `cargo xtask setup`",
        node_path.display()
    );
    let python = std::env::var("BINDERY_PYTHON")
        .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`");
    let out = Command::new(python)
        .arg(workspace().join("tests/py/reaper.py"))
        .arg("node")
        .arg(workspace().join("tests/js").join(script))
        .args(args)
        .env("BINDERY_NODE_PATH", &node_path)
        .output()
        .expect("node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script {script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

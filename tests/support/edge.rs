//! The real `bindery edge` binary, running the real components of the repository's
//! `spin.toml`, configured through `SPIN_VARIABLE_*` as an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::Proc;
use crate::sse::get;

/// A running edge host.
#[derive(Debug)]
pub struct Edge {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    proc: Proc,
    /// Its data directory (KV database, precompiled components).
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

/// The `bindery` binary the tests run (`profile`: `debug` or `release`).
pub fn binary(profile: &str) -> PathBuf {
    let path = crate::workspace()
        .join("target")
        .join(profile)
        .join("bindery");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

impl Edge {
    /// Starts `bindery edge` on a free port with `vars` as Spin variables, keeping its state
    /// in `data_dir` (reuse the directory to restart with the same KV store).
    pub async fn start(data_dir: &Path, vars: &[(&str, String)]) -> Edge {
        Edge::start_binary(data_dir, vars, "debug").await
    }

    /// [`Edge::start`] with the binary of a cargo profile (`debug`, `release`).
    pub async fn start_binary(data_dir: &Path, vars: &[(&str, String)], profile: &str) -> Edge {
        let wasm = crate::workspace().join("target/wasm32-wasip2/wasm/bindery_launch.wasm");
        assert!(
            wasm.exists(),
            "{} is missing: run `cargo xtask build` (or `cargo xtask test`)",
            wasm.display()
        );
        let manifest = crate::workspace().join("spin.toml");
        Edge::start_manifest(data_dir, &manifest, vars, profile).await
    }

    /// [`Edge::start_binary`] with another manifest than the repository's `spin.toml`.
    /// Whatever it routes must answer `GET /versions` with `200`.
    pub async fn start_manifest(
        data_dir: &Path,
        manifest: &Path,
        vars: &[(&str, String)],
        profile: &str,
    ) -> Edge {
        std::fs::create_dir_all(data_dir).unwrap();
        // Every edge of a test run shares one precompiled-component cache; the first start
        // fills it while the others wait, so components are compiled once per run.
        static WARM: std::sync::OnceLock<tokio::sync::Mutex<bool>> = std::sync::OnceLock::new();
        let mut warmed = WARM
            .get_or_init(|| tokio::sync::Mutex::new(false))
            .lock()
            .await;
        let port = crate::free_port();
        let log = data_dir.join(format!("edge-{port}.log"));
        let mut cmd = Command::new(binary(profile));
        cmd.current_dir(crate::workspace())
            .args(["edge", "--manifest"])
            .arg(manifest)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .arg("--cache-dir")
            .arg(
                crate::workspace()
                    .join("target/system-tests")
                    .join(format!("precompiled-{profile}")),
            )
            .env("RUST_LOG", "info");
        for (name, value) in vars {
            cmd.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let mut proc = Proc::spawn("bindery edge", &mut cmd, &log);
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..2400 {
            if !proc.running() {
                panic!(
                    "bindery edge exited at start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                let edge = Edge {
                    url,
                    proc,
                    data_dir: data_dir.to_path_buf(),
                    log,
                };
                // The first answer proves the components loaded.
                assert_eq!(
                    get(&format!("{}/versions", edge.url), &[]).await.status,
                    200
                );
                *warmed = true;
                return edge;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "bindery edge did not listen within 120 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The edge process's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops the host with SIGTERM (graceful shutdown) and waits for it.
    pub fn stop(mut self) -> bool {
        self.proc.terminate(15)
    }

    /// The host's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

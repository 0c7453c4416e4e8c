//! A real JupyterHub (from the venv of `cargo xtask setup`) with the system test's spawner
//! (`tests/py/jupyterhub_system.py`): it checks that the image in BinderHub's user_options
//! is in its registry, then runs jupyter-server locally with the launch token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::Proc;
use crate::sse::get;

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    /// The public (proxy) URL, ending in `/`.
    pub url: String,
    /// The binder service's API token.
    pub api_token: String,
    /// The hub's directory (its log, database, homes and `spawns`).
    pub dir: PathBuf,
    proc: Proc,
}

impl Hub {
    /// Starts a hub in `dir` and waits until its API answers (up to 90 s).
    pub async fn start(dir: &Path, api_token: &str) -> Hub {
        let python = PathBuf::from(
            std::env::var("BINDERY_PYTHON")
                .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`"),
        );
        let bin = python.parent().unwrap().to_path_buf();
        let jupyterhub = bin.join("jupyterhub");
        assert!(
            jupyterhub.exists(),
            "{} is missing: run `cargo xtask setup`",
            jupyterhub.display()
        );
        std::fs::create_dir_all(dir.join("homes")).unwrap();
        let (port, api_port, proxy_port) =
            (crate::free_port(), crate::free_port(), crate::free_port());
        let proc = Proc::spawn(
            "jupyterhub",
            Command::new(&jupyterhub)
                .arg("-f")
                .arg(crate::workspace().join("tests/py/jupyterhub_system.py"))
                .current_dir(dir)
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .env("BINDERY_TEST_HUB_DIR", dir)
                .env("BINDERY_TEST_HUB_PORT", port.to_string())
                .env("BINDERY_TEST_HUB_API_PORT", api_port.to_string())
                .env("BINDERY_TEST_PROXY_API_PORT", proxy_port.to_string())
                .env("BINDERY_TEST_HUB_API_TOKEN", api_token),
            &dir.join("hub.log"),
        );
        let hub = Hub {
            url: format!("http://127.0.0.1:{port}/"),
            api_token: api_token.to_owned(),
            dir: dir.to_path_buf(),
            proc,
        };
        for _ in 0..360 {
            let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && get(&format!("{}hub/api/", hub.url), &[]).await.status == 200;
            if up {
                return hub;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "JupyterHub did not start in 90 s:\n{}",
            std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
        );
    }

    /// The spawner's record: `spawn <user> <image>` or `missing <user> <image>` lines.
    pub fn spawns(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("spawns"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stops the hub with SIGTERM, which stops its proxy and every server it spawned.
    pub fn stop(&mut self) -> bool {
        self.proc.terminate(30)
    }
}

impl Drop for Hub {
    /// SIGTERM first, also when a test fails: killed outright, the hub would leave its
    /// single-user servers running (and PID 1 here reaps nothing).
    fn drop(&mut self) {
        if self.proc.running() {
            self.proc.terminate(30);
        }
    }
}

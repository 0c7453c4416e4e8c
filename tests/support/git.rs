//! A git server over smart HTTP: `git http-backend` behind `tests/py/git_http_server.py`,
//! which logs every request so a test can count what reached it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::Proc;

/// A running git server holding bare repositories under its root.
#[derive(Debug)]
pub struct GitServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    root: PathBuf,
    log: PathBuf,
    _proc: Proc,
}

/// Runs `git` in `dir` with a fixed identity; panics with its output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=system-test@example.org",
            "-c",
            "user.name=system test",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git (apt-get install git)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl GitServer {
    /// Starts a server for the bare repositories under `<dir>/root`.
    pub async fn start(dir: &Path) -> GitServer {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let port = crate::free_port();
        let log = dir.join("requests.log");
        std::fs::write(&log, "").unwrap();
        let python = std::env::var("BINDERY_PYTHON")
            .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`");
        let proc = Proc::spawn(
            "git http server",
            Command::new(python)
                .arg(crate::workspace().join("tests/py/git_http_server.py"))
                .arg(port.to_string())
                .arg(&root)
                .arg(&log),
            &dir.join("server.log"),
        );
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return GitServer {
                    url: format!("http://127.0.0.1:{port}"),
                    root,
                    log,
                    _proc: proc,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the git server did not start; see {}",
            dir.join("server.log").display()
        );
    }

    /// Creates `<name>.git` holding `files` in one commit on `main`; returns its clone URL
    /// and the commit.
    pub fn repository(&self, name: &str, files: &[(&str, &str)]) -> (String, String) {
        let work = self.root.join(format!("{name}-work"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        for (path, text) in files {
            std::fs::write(work.join(path), text).unwrap();
            git(&work, &["add", path]);
        }
        git(&work, &["commit", "-qm", "the system test's repository"]);
        let sha = git(&work, &["rev-parse", "HEAD"]);
        let bare = format!("{name}.git");
        git(
            &self.root,
            &["clone", "-q", "--bare", &format!("{name}-work"), &bare],
        );
        (format!("{}/{bare}", self.url), sha)
    }

    /// The requests served so far, one `METHOD PATH STATUS` line each.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

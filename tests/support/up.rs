//! The real `bindery up` binary: the edge and the worker in one process, configured by a
//! `bindery.toml` the test writes, as an operator would.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::proc::Proc;

/// A running `bindery up`.
#[derive(Debug)]
pub struct Up {
    /// The URL its banner says to open (`http://127.0.0.1:<port>/`).
    pub url: String,
    /// Its stdout and stderr, together.
    pub log: PathBuf,
    proc: Proc,
}

impl Up {
    /// Writes `config` to `<dir>/bindery.toml` and starts `bindery up --config` on it with
    /// `env` added to the environment; returns once the banner is printed.
    pub async fn start(dir: &Path, config: &str, env: &[(&str, OsString)]) -> Up {
        let wasm = crate::workspace().join("target/wasm32-wasip2/wasm/bindery_launch.wasm");
        assert!(
            wasm.exists(),
            "{} is missing: run `cargo xtask build` (or `cargo xtask test`)",
            wasm.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("bindery.toml");
        std::fs::write(&file, config).unwrap();
        let log = dir.join("bindery-up.log");
        let mut cmd = Command::new(crate::edge::binary("debug"));
        cmd.current_dir(crate::workspace())
            .arg("up")
            .arg("--config")
            .arg(&file)
            .env("RUST_LOG", "info");
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut proc = Proc::spawn("bindery up", &mut cmd, &log);
        for _ in 0..2400 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("bindery up: open ").nth(1)
                && text.contains("Ctrl-C stops both parts")
            {
                let url = rest.split_whitespace().next().unwrap().to_owned();
                return Up { url, log, proc };
            }
            if !proc.running() {
                panic!("bindery up exited at start:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "bindery up printed no banner within 120 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    /// The pids of the managed part `name` (`bindery up`'s issue 15): the banner's, then
    /// one per restart, in order.
    pub fn managed_pids(&self, name: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        for line in self.output().lines() {
            let banner = line
                .trim_start()
                .strip_prefix("managed:  ")
                .filter(|rest| rest.starts_with(&format!("{name} ")))
                .and_then(|rest| rest.rsplit("(pid ").next());
            let restart = line.split(&format!("{name} restarted (pid ")).nth(1);
            if let Some(pid) = banner
                .or(restart)
                .and_then(|p| p.split(')').next())
                .and_then(|p| p.parse().ok())
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends SIGTERM and waits up to 60 s; the exit status when it stopped.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.proc.terminate_status(60)
    }

    /// Sends SIGINT, what Ctrl-C in its terminal sends, and waits up to 60 s; the exit
    /// status when it stopped.
    pub fn interrupt(&mut self) -> Option<ExitStatus> {
        self.proc.signal_status("INT", 60)
    }

    /// Polls the edge's `/health` until every check is ok (`Ok` with the answer), or
    /// `within` has passed (`Err` with the last answer).
    pub async fn health_green(&self, within: Duration) -> Result<serde_json::Value, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let health = crate::sse::get(&format!("{}health", self.url), &[]).await;
            if health.status == 200 && health.json()["ok"] == true {
                return Ok(health.json());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{} {}", health.status, health.text()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

/// Live processes (but this one) whose command line mentions `dir`: what a stopped
/// `bindery up` whose data dir is `dir` must not leave behind.
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if pid != std::process::id() && cmdline.contains(&needle) && alive(pid) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

impl Drop for Up {
    /// SIGTERM first, also when a test fails: after its HTTP drain the worker kills each
    /// running build's process group, reaps its child and deletes the hub users of the
    /// launches in flight, then exits; the process is killed if it is still running 60 s on.
    fn drop(&mut self) {
        if self.proc.running() {
            self.proc.terminate(60);
        }
    }
}

/// How long `bindery up` may take to refuse a configuration. One it wrongly accepts would
/// serve until stopped; the test then fails instead of hanging the suite.
const REFUSE_WITHIN: Duration = Duration::from_secs(60);

/// Runs `bindery up` with `args` to completion (for configurations it must refuse); panics
/// when it is still running after [`REFUSE_WITHIN`], after killing it.
pub fn run_to_end(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(crate::edge::binary("debug"));
    cmd.current_dir(crate::workspace())
        .arg("up")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut proc = Proc::adopt(
        "bindery up",
        cmd.spawn().expect("failed to start bindery up"),
    );
    // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let (out, err) = proc.take_pipes();
    let stdout = drain(out.map(|p| Box::new(p) as _));
    let stderr = drain(err.map(|p| Box::new(p) as _));
    let status = proc.wait_within(REFUSE_WITHIN);
    // Killed and reaped before the pipes are read to their end.
    drop(proc);
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    let Some(status) = status else {
        panic!(
            "bindery up {args:?} was still running after {} s (killed): it accepted a \
             configuration it should refuse\nstdout: {}\nstderr: {}",
            REFUSE_WITHIN.as_secs(),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

//! Supervision of one managed part: a child process in its own process group, its output
//! prefixed with the part's name in bindery's log, health-checked, restarted with backoff
//! when it dies or stops answering, and stopped (SIGTERM, then SIGKILL to the whole group)
//! and reaped on shutdown: this machine's PID 1 reaps nothing, so every child is waited for.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The first wait before a restart; it doubles up to [`MAX_BACKOFF`] while the part keeps
/// dying, and starts over once it has run for [`STABLE_AFTER`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often a running part is health-checked, and how many failed checks in a row make
/// the supervisor restart it.
const CHECK_EVERY: Duration = Duration::from_secs(10);
const FAILED_CHECKS: u32 = 3;
/// How long one health check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How the supervisor knows a part answers.
#[derive(Debug, Clone)]
pub(crate) enum Health {
    /// Any HTTP answer to `GET url` below 500 (a 401 or 403 still says it is serving).
    Http(String),
    /// A Unix socket that accepts connections (podman's API service).
    Socket(PathBuf),
    /// Running is answering (the idle culler, which only calls the hub).
    Alive,
    /// A TCP address that accepts connections (the proxy, whose API logs every request).
    Tcp(std::net::SocketAddr),
}

/// What to run for a part, and how to tell that it is up.
#[derive(Debug, Clone)]
pub(crate) struct PartSpec {
    /// The name in the banner and the log prefix (`registry`, `hub`, ...).
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// Added to (or replacing in) bindery's own environment.
    pub(crate) env: Vec<(String, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) health: Health,
    /// How long the first start may take to answer.
    pub(crate) start_timeout: Duration,
    /// How long the part gets after SIGTERM before its group is killed.
    pub(crate) stop_grace: Duration,
}

/// Why a managed part did not come up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartError {
    /// The program could not be started at all (not installed, not executable).
    #[error("failed to start {name} ({program})")]
    Spawn {
        name: &'static str,
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// It started but did not answer in time (its output is in the log above).
    #[error("{name} did not answer within {seconds} s (its output is in the log above)")]
    NoAnswer { name: &'static str, seconds: u64 },
}

/// A supervised part: restarted while it runs, stopped by [`Running::stop`].
#[derive(Debug)]
pub(crate) struct Running {
    /// The part's name.
    pub(crate) name: &'static str,
    pid: Arc<AtomicU32>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// The current child's pid (0 between a death and its restart).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Stops the part: SIGTERM to the child, SIGKILL to its group after the grace, and the
    /// child reaped; returns once that is done.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Starts `spec` and waits until it answers; from then on it is supervised.
pub(crate) async fn start(spec: PartSpec) -> Result<Running, PartError> {
    let child = spawn(&spec)?;
    let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
    let (stop, stopping) = watch::channel(false);
    let (ready_tx, mut ready) = watch::channel(false);
    let name = spec.name;
    let seconds = spec.start_timeout.as_secs();
    let deadline = Instant::now() + spec.start_timeout;
    let task = tokio::spawn(supervise(spec, child, pid.clone(), stopping, ready_tx));
    let running = Running {
        name,
        pid,
        stop,
        task,
    };
    match tokio::time::timeout_at(deadline, ready.wait_for(|r| *r)).await {
        Ok(Ok(_)) => Ok(running),
        _ => {
            running.stop().await;
            Err(PartError::NoAnswer { name, seconds })
        }
    }
}

fn spawn(spec: &PartSpec) -> Result<Child, PartError> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: one signal reaches everything it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|source| PartError::Spawn {
        name: spec.name,
        program: spec.program.display().to_string(),
        source,
    })?;
    forward(spec.name, child.stdout.take());
    forward(spec.name, child.stderr.take());
    Ok(child)
}

/// Copies each line the part prints into bindery's log, prefixed with its name.
fn forward(name: &'static str, pipe: Option<impl AsyncRead + Unpin + Send + 'static>) {
    let Some(pipe) = pipe else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!("[{name}] {line}");
        }
    });
}

/// The supervision loop: watch the child, check its health, restart it with backoff, stop
/// it when asked.
async fn supervise(
    spec: PartSpec,
    mut child: Child,
    pid: Arc<AtomicU32>,
    mut stopping: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
) {
    let name = spec.name;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let why = watch_child(&spec, &mut child, &mut stopping, &ready).await;
        let group = pid.swap(0, Ordering::Relaxed);
        match why {
            Exit::Stop => {
                terminate(&mut child, group, spec.stop_grace).await;
                return;
            }
            Exit::Died(status) => {
                tracing::warn!("{name} exited ({status}); restarting in {backoff:?}");
                // What it started may still run (and hold its port).
                kill_group(group).await;
            }
            Exit::Unhealthy => {
                tracing::warn!(
                    "{name} stopped answering ({FAILED_CHECKS} health checks failed); restarting"
                );
                terminate(&mut child, group, spec.stop_grace).await;
            }
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        loop {
            match spawn(&spec) {
                Ok(new) => {
                    child = new;
                    pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                    tracing::info!("{name} restarted (pid {})", pid.load(Ordering::Relaxed));
                    break;
                }
                Err(e) => {
                    tracing::warn!("{e}; trying again in {backoff:?}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Why [`watch_child`] returned.
enum Exit {
    Stop,
    Died(String),
    Unhealthy,
}

/// Waits until the child exits, stops answering, or the part is asked to stop; marks the
/// part ready the first time it answers.
async fn watch_child(
    spec: &PartSpec,
    child: &mut Child,
    stopping: &mut watch::Receiver<bool>,
    ready: &watch::Sender<bool>,
) -> Exit {
    let mut failed = 0;
    let mut answered = false;
    loop {
        // Fast checks until the first answer, then every CHECK_EVERY.
        let wait = if answered {
            CHECK_EVERY
        } else {
            Duration::from_millis(200)
        };
        tokio::select! {
            status = child.wait() => {
                return Exit::Died(match status {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("failed to wait for it: {e}"),
                });
            }
            _ = stopping.wait_for(|s| *s) => return Exit::Stop,
            () = tokio::time::sleep(wait) => {}
        }
        if answers(&spec.health).await {
            failed = 0;
            if !answered {
                answered = true;
                ready.send_replace(true);
            }
        } else if answered {
            failed += 1;
            if failed >= FAILED_CHECKS {
                return Exit::Unhealthy;
            }
        }
    }
}

/// Whether the part answers its health check.
pub(crate) async fn answers(health: &Health) -> bool {
    let check = async {
        match health {
            Health::Http(url) => {
                let Ok(client) = reqwest::Client::builder().no_proxy().build() else {
                    return false;
                };
                client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() < 500)
            }
            Health::Socket(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
            Health::Alive => true,
            Health::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or(false)
}

/// SIGTERM to the child, up to `grace` for it to exit, then SIGKILL to its whole group;
/// the child is always reaped.
async fn terminate(child: &mut Child, group: u32, grace: Duration) {
    if group != 0 {
        signal("-TERM", &group.to_string()).await;
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!("a managed part ignored SIGTERM for {grace:?}: killing it");
        }
    }
    kill_group(group).await;
    let _ = child.kill().await;
    let _ = child.wait().await;
}

/// `kill -KILL -- -<pgid>`: everything in the group (the workspace forbids `unsafe`, so
/// no libc).
async fn kill_group(group: u32) {
    if group != 0 {
        signal("-KILL", &format!("-{group}")).await;
    }
}

async fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A part that listens on a Unix socket with Python, so it answers its health check.
    fn socket_part(dir: &std::path::Path) -> PartSpec {
        let socket = dir.join("part.sock");
        PartSpec {
            name: "test-part",
            program: PathBuf::from("python3"),
            args: vec![
                "-c".into(),
                "import socket,sys,time\n\
                 s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n\
                 while True: c,_=s.accept(); c.close()"
                    .into(),
                socket.clone().into(),
            ],
            env: vec![],
            cwd: None,
            health: Health::Socket(socket),
            start_timeout: Duration::from_secs(20),
            stop_grace: Duration::from_secs(5),
        }
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_killed_part_is_restarted_and_stopping_reaps_it() {
        let dir = super::super::super::testing::scratch("supervise");
        let spec = socket_part(&dir);
        let _ = std::fs::remove_file(dir.join("part.sock"));
        let running = start(spec.clone()).await.unwrap();
        let first = running.pid();
        assert!(first != 0 && alive(first));
        // Killed from outside: the supervisor starts a new one, which answers again.
        let _ = std::fs::remove_file(dir.join("part.sock"));
        signal("-KILL", &first.to_string()).await;
        let mut second = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            second = running.pid();
            if second != 0 && second != first && answers(&spec.health).await {
                break;
            }
        }
        assert!(
            second != 0 && second != first,
            "restarted: {first} -> {second}"
        );
        assert!(!alive(first), "the dead child was reaped");
        running.stop().await;
        assert!(!alive(second), "stopped and reaped");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_the_part() {
        let mut spec = socket_part(std::path::Path::new("/nonexistent"));
        spec.program = PathBuf::from("/nonexistent/bindery-no-such-program");
        let err = start(spec).await.expect_err("no such program");
        assert!(
            err.to_string().starts_with("failed to start test-part"),
            "{err}"
        );
    }
}

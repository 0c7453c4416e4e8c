//! Child processes that are always killed and reaped: PID 1 here does not reap orphans.

use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child; killed and waited for on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        Proc::adopt(name, child)
    }

    /// Takes over a child started elsewhere (with its own pipes), so it is killed and
    /// reaped on drop like the others.
    pub fn adopt(name: &str, child: Child) -> Proc {
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// Takes the child's stdout and stderr pipes, when it was started with them.
    pub fn take_pipes(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Waits up to `limit` for the child to exit; its exit status when it did.
    pub fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `secs` for the child to exit; true when it did.
    pub fn terminate(&mut self, secs: u64) -> bool {
        self.terminate_status(secs).is_some()
    }

    /// Sends SIGTERM and waits up to `secs` for the child to exit; its exit status when it
    /// did.
    pub fn terminate_status(&mut self, secs: u64) -> Option<ExitStatus> {
        self.signal_status("TERM", secs)
    }

    /// Sends `signal` (`TERM`, `INT`, ...) and waits up to `secs` for the child to exit;
    /// its exit status when it did.
    pub fn signal_status(&mut self, signal: &str, secs: u64) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        self.wait_within(Duration::from_secs(secs))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = &self.name;
    }
}

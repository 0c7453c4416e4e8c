//! Support for Bindery's system tests: real parts wherever they run on this machine.
//!
//! - [`base_image`]: the Jupyter base image of the managed tests' repositories, made once.
//! - [`browser`]: headless Chromium driven by a playwright-core script of `tests/js/`.
//! - [`edge`]: the real `bindery edge` binary running the real components from `spin.toml`.
//! - [`registry`]: the real `docker-registry` (distribution) with no auth, basic auth or
//!   bearer-token auth, and an image pusher speaking the registry API.
//! - [`peer`]: HTTP servers on port 0 answering from a script: recorded provider APIs
//!   (GitHub, GitLab, DOI resolvers, ...) and the worker until the worker lands. Every
//!   request is logged, so tests count upstream calls.
//! - [`git`]: a git server over smart HTTP (`git http-backend`) that counts requests.
//! - [`hub`]: a real JupyterHub whose spawner checks the image in the registry.
//! - [`podman`]: podman configured for repo2docker builds offline, images removed after.
//! - [`node`]: Node.js scripts driving real npm packages (BinderHub's own API client).
//! - [`sse`]: reading an event stream with `bindery-core`'s decoder.
//! - [`proc`]: child processes that are always killed and reaped.
//! - [`up`]: the real `bindery up` binary (edge and worker in one process) on a written config.
//!
//! Tests run under `cargo xtask test`, which builds the components and the binary first and
//! installs `docker-registry`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

pub mod base_image;
pub mod browser;
pub mod edge;
pub mod git;
pub mod hub;
pub mod node;
pub mod peer;
pub mod podman;
pub mod proc;
pub mod registry;
pub mod sse;
pub mod up;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh scratch directory under `target/system-tests/`, named `<name>-<pid>-<n>`.
///
/// The first call of a run also removes the scratch directories of earlier runs whose
/// process has exited (see [`remove_stale_scratch`]).
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    static CLEANED: std::sync::Once = std::sync::Once::new();
    CLEANED.call_once(|| {
        remove_stale_scratch(&workspace().join("target/system-tests"));
    });
    let dir = workspace().join("target/system-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the `<name>-<pid>-<n>` directories under `root` whose process is no longer
/// running, so that repeated test and benchmark runs do not fill the disk (each leaves tens
/// of megabytes: registry blobs, KV databases, logs). Directories of runs still going, and
/// anything not named that way, are kept. Returns how many were removed.
pub fn remove_stale_scratch(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let mut parts = name.rsplitn(3, '-');
        let (Some(n), Some(pid), Some(prefix)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if prefix.is_empty() || !digits(n) || !digits(pid) {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scratch_directories_of_exited_runs_are_removed() {
        let root = scratch("stale-scratch-check");
        let own = format!("bench-{}-3", std::process::id());
        // No process has a pid above the kernel's limit (at most 2^22).
        let dead = "bench-4294967294-0";
        let init = "misc-1-0";
        for dir in [
            own.as_str(),
            dead,
            init,
            "precompiled-release",
            "notes-12-x",
        ] {
            std::fs::create_dir_all(root.join(dir).join("data")).unwrap();
        }
        std::fs::write(root.join("log-99999999-1"), "a file, not a directory").unwrap();
        assert_eq!(remove_stale_scratch(&root), 1);
        assert!(!root.join(dead).exists());
        for kept in [
            own.as_str(),
            init,
            "precompiled-release",
            "notes-12-x",
            "log-99999999-1",
        ] {
            assert!(root.join(kept).exists(), "{kept} was removed");
        }
        assert_eq!(remove_stale_scratch(&root.join("missing")), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

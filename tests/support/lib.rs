//! Support for Bindery's system tests: real parts wherever they run on this machine.
//!
//! - [`edge`]: the real `bindery edge` binary running the real components from `spin.toml`.
//! - [`registry`]: the real `docker-registry` (distribution) with no auth, basic auth or
//!   bearer-token auth, and an image pusher speaking the registry API.
//! - [`peer`]: HTTP servers on port 0 answering from a script: recorded provider APIs
//!   (GitHub, GitLab, DOI resolvers, ...) and the worker until the worker lands. Every
//!   request is logged, so tests count upstream calls.
//! - [`git`]: a git server over smart HTTP (`git http-backend`) that counts requests.
//! - [`hub`]: a real JupyterHub whose spawner checks the image in the registry.
//! - [`podman`]: podman configured for repo2docker builds offline, images removed after.
//! - [`sse`]: reading an event stream with `bindery-core`'s decoder.
//! - [`proc`]: child processes that are always killed and reaped.
//! - [`up`]: the real `bindery up` binary (edge and worker in one process) on a written config.
//!
//! Tests run under `cargo xtask test`, which builds the components and the binary first and
//! installs `docker-registry`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

pub mod edge;
pub mod git;
pub mod hub;
pub mod peer;
pub mod podman;
pub mod proc;
pub mod registry;
pub mod sse;
pub mod up;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh scratch directory under `target/system-tests/`.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = workspace().join("target/system-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

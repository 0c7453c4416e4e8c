//! Podman set up as repo2docker needs it on this machine (TEST-ENVIRONMENT.md §3–4): a
//! `containers.conf` with runc and lowered ulimits, a `registries.conf` that allows the
//! test registry over plain HTTP, and a shim for the `docker buildx` commands repo2docker
//! 2026.4 runs, which podman 4.3 lacks. Base images are imported from busybox-static, since
//! nothing can be pulled offline. Images are removed when the [`Podman`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Where a build's `RUN` steps see the [`Podman::build_gate`] directory (read-only).
pub const GATE_IN_BUILD: &str = "/bindery-test-gate";

/// Maps `buildx version` and `buildx build [--push]` to plain podman commands, with no
/// network for the build; with `BINDERY_TEST_BUILD_GATE` set (`<host dir>:<path in the
/// build>`, see [`Podman::build_gate`]), that directory is mounted read-only for the `RUN`
/// steps (not part of the image).
const SHIM: &str = r#"#!/bin/bash
if [ "$1" = buildx ] && [ "$2" = version ]; then echo "bindery-test-buildx-shim"; exit 0; fi
if [ "$1" = buildx ] && [ "$2" = build ]; then
  shift 2; args=(); tags=(); push=0; prev=
  for a in "$@"; do
    if [ "$a" = --push ]; then push=1; else args+=("$a"); fi
    [ "$prev" = --tag ] && tags+=("$a"); prev=$a
  done
  if [ -n "$BINDERY_TEST_BUILD_GATE" ]; then
    args=(--volume "$BINDERY_TEST_BUILD_GATE:ro" "${args[@]}")
  fi
  /usr/bin/podman build --network none "${args[@]}" || exit $?
  if [ $push = 1 ]; then for t in "${tags[@]}"; do /usr/bin/podman push "$t" || exit $?; done; fi
  exit 0
fi
exec /usr/bin/podman "$@"
"#;

/// Podman's configuration for one test, and the images to remove at the end.
#[derive(Debug)]
pub struct Podman {
    /// The environment for podman and for repo2docker's child processes.
    pub env: Vec<(String, String)>,
    /// The directory holding the shim (`docker` and `podman`), first on `env`'s `PATH`.
    pub shim: PathBuf,
    images: Mutex<Vec<String>>,
}

impl Podman {
    /// Writes the configuration under `dir` for a registry at `registry` (`host:port`);
    /// `tools` goes on `PATH` after the shim (e.g. the venv holding repo2docker).
    pub fn new(dir: &Path, registry: &str, tools: &Path) -> Podman {
        std::fs::create_dir_all(dir).unwrap();
        let containers = dir.join("containers.conf");
        std::fs::write(
            &containers,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        let registries = dir.join("registries.conf");
        std::fs::write(
            &registries,
            format!(
                "unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
            ),
        )
        .unwrap();
        let shim = dir.join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        for name in ["podman", "docker"] {
            std::fs::write(shim.join(name), SHIM).unwrap();
        }
        let chmod = Command::new("chmod")
            .arg("-R")
            .arg("+x")
            .arg(&shim)
            .status();
        assert!(chmod.unwrap().success());
        let env = vec![
            (
                "CONTAINERS_CONF".to_owned(),
                containers.display().to_string(),
            ),
            (
                "CONTAINERS_REGISTRIES_CONF".to_owned(),
                registries.display().to_string(),
            ),
            // repo2docker drives the `podman` CLI when DOCKER_HOST mentions podman.
            (
                "DOCKER_HOST".to_owned(),
                "unix:///nonexistent/podman.sock".to_owned(),
            ),
            (
                "PATH".to_owned(),
                format!(
                    "{}:{}:{}",
                    shim.display(),
                    tools.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
        ];
        Podman {
            env,
            shim,
            images: Mutex::new(Vec::new()),
        }
    }

    /// Creates the directory `dir` that builds see at [`GATE_IN_BUILD`] and adds it to
    /// `env`: a `RUN` step can wait there for a file the test creates (the builds have no
    /// network to wait on a server). Call before handing `env` to the worker.
    pub fn build_gate(&mut self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        self.env.push((
            "BINDERY_TEST_BUILD_GATE".to_owned(),
            format!("{}:{GATE_IN_BUILD}", dir.display()),
        ));
    }

    /// Imports a busybox-static root file system as `name` (removed on drop).
    pub fn import_busybox(&self, dir: &Path, name: &str) {
        let root = dir.join("busybox-rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (apt-get install busybox-static)");
        let sh = root.join("bin/sh");
        if !sh.exists() {
            std::os::unix::fs::symlink("busybox", sh).unwrap();
        }
        let tar = dir.join("busybox.tar");
        let packed = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(packed.success());
        self.remove_later(name);
        let imported = self
            .command()
            .arg("import")
            .arg(&tar)
            .arg(name)
            .output()
            .expect("podman (apt-get install podman buildah runc)");
        assert!(
            imported.status.success(),
            "podman import failed: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
    }

    /// Removes `image` from podman's store when this is dropped.
    pub fn remove_later(&self, image: &str) {
        self.images
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(image.to_owned());
    }

    /// Whether podman's store holds `image`.
    pub fn has_image(&self, image: &str) -> bool {
        self.command()
            .args(["image", "exists", image])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `podman` with this configuration.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/podman");
        cmd.envs(self.env.iter().cloned());
        cmd
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let images = std::mem::take(
            &mut *self
                .images
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // Built images first: they sit on the base image's layers.
        for image in images.iter().rev() {
            let _ = self
                .command()
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

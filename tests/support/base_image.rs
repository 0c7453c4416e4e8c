//! The base image of the managed system tests' repositories: nothing can be pulled here, so
//! it is made locally once (a Debian root file system from `debootstrap`, with jupyterhub
//! and jupyter-server from wheels the venv's pip downloads, a `jovyan` user) and kept in
//! podman's storage for later runs.

use std::path::Path;
use std::process::Command;

/// The base image the repository's Dockerfile starts from.
pub const BASE: &str = "localhost/bindery-managed-test-jupyter:1";

/// podman with the configuration this machine needs (runc, lowered ulimits): the same file
/// `bindery up` writes for its managed engine.
pub fn podman(dir: &Path) -> Command {
    let conf = dir.join("containers.conf");
    if !conf.exists() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
    }
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf);
    cmd
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes [`BASE`] unless podman has it: debootstrap, a venv with jupyterhub and
/// jupyter-server (as `jupyterhub-singleuser`), a `jovyan` user, then `podman import`.
pub fn ensure_base(dir: &Path, python: &Path) {
    if podman(dir)
        .args(["image", "exists", BASE])
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let rootfs = dir.join("rootfs");
    // Left by a run that failed half-way.
    let _ = std::fs::remove_dir_all(&rootfs);
    run(
        Command::new("debootstrap").args([
            "--variant=minbase",
            "--include=python3,python3-venv",
            "bookworm",
            rootfs.to_str().unwrap(),
            "http://deb.debian.org/debian",
        ]),
        "debootstrap",
    );
    let wheels = rootfs.join("tmp/wheels");
    run(
        Command::new(python)
            .args(["-m", "pip", "download", "-q", "--only-binary=:all:"])
            // Debian 12's Python, for the packages' requires-python.
            .args(["--python-version", "3.11.2", "-d"])
            .arg(&wheels)
            .args(["jupyterhub==6.1.1", "jupyter_server==2.21.1"]),
        "pip download",
    );
    run(
        // A clean environment: this machine's PIP_* settings name files the chroot lacks.
        Command::new("chroot")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(&rootfs)
            .args([
                "/bin/sh",
                "-c",
                "python3 -m venv /srv/venv && /srv/venv/bin/pip install -q --no-index \
             --find-links /tmp/wheels jupyterhub==6.1.1 jupyter_server==2.21.1 && \
             rm -rf /tmp/wheels && useradd -m -u 1000 jovyan",
            ]),
        "the venv in the root file system",
    );
    let tar = dir.join("base.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        "tar",
    );
    run(
        podman(dir).args([
            "import",
            "--change",
            "USER jovyan",
            "--change",
            "WORKDIR /home/jovyan",
            "--change",
            "ENV PATH=/srv/venv/bin:/usr/local/bin:/usr/bin:/bin",
            tar.to_str().unwrap(),
            BASE,
        ]),
        "podman import",
    );
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&tar);
}

//! The managed container engine: docker when its daemon answers and it has buildx (which
//! repo2docker builds with), otherwise podman with its Docker-compatible API service,
//! started and stopped by `bindery up`. repo2docker drives the engine through its CLI (the
//! podman CLI when `DOCKER_HOST` mentions podman); the hub's DockerSpawner talks to its API.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::supervise::{Health, PartSpec};
use crate::up::checks::find_program;

/// podman 4.3 (Debian 12) has no `buildx`, which repo2docker 2026.4 runs: this maps
/// `buildx version` and `buildx build [--push]` onto plain `podman build` and `podman push`.
const BUILDX_SHIM: &str = r#"
# Written by `bindery up`: repo2docker runs `podman buildx`, which podman 4 lacks.
if [ "$1" = buildx ] && [ "$2" = version ]; then echo "bindery-buildx-shim"; exit 0; fi
if [ "$1" = buildx ] && [ "$2" = build ]; then
  shift 2
  push=0; tags=""; prev=""
  for a in "$@"; do
    shift
    if [ "$a" = --push ]; then push=1; else set -- "$@" "$a"; fi
    [ "$prev" = --tag ] && tags="$tags $a"
    prev=$a
  done
  "$REAL" build "$@" || exit $?
  if [ $push = 1 ]; then for t in $tags; do "$REAL" push "$t" || exit $?; done; fi
  exit 0
fi
exec "$REAL" "$@"
"#;

/// Lowered ulimits (raising them fails in unprivileged containers and some sandboxes) and
/// runc (crun refuses hybrid cgroup layouts); both work wherever podman does.
const CONTAINERS_CONF: &str = "# Written by `bindery up`.\n[containers]\n\
    default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n";

/// The engine `bindery up` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    /// A docker daemon answers: used as it is, nothing started.
    Docker,
    /// podman, whose API service `bindery up` runs on `socket`.
    Podman {
        /// The API service's socket (`DOCKER_HOST=unix://<socket>`).
        socket: PathBuf,
        /// Where its configuration and the buildx shim are.
        dir: PathBuf,
    },
    /// Neither: builds and launches cannot work on this machine.
    Missing,
}

impl Engine {
    /// What the banner says.
    pub(crate) fn describe(&self) -> String {
        match self {
            Engine::Docker => "docker (its daemon answers; used as it is)".to_owned(),
            Engine::Podman { socket, .. } => {
                format!("podman, API service on unix://{}", socket.display())
            }
            Engine::Missing => "none".to_owned(),
        }
    }

    /// `DOCKER_HOST` for the worker's builds and the hub's spawner, when it must be set.
    pub(crate) fn docker_host(&self) -> Option<String> {
        match self {
            Engine::Podman { socket, .. } => Some(format!("unix://{}", socket.display())),
            _ => None,
        }
    }
}

/// The one line said when there is no engine at all.
pub(crate) const NO_ENGINE: &str = "no container engine found: install docker or podman \
    (Debian: `apt-get install podman runc`; `cargo xtask run` installs them); no docker daemon \
    answers, so builds and launches cannot work until one is installed";

/// Said when a docker daemon answers but docker cannot build as repo2docker does.
pub(crate) const DOCKER_NO_BUILDX: &str = "a docker daemon answers, but docker has no buildx \
    plugin, which repo2docker runs to build";

/// Finds the engine: docker when `docker version` succeeds (the daemon answers) and docker
/// has buildx (repo2docker 2026 builds with `docker buildx build`; Debian 12's docker.io
/// has none), else podman when installed, else none; with a line to say when docker was
/// passed over.
pub(crate) async fn choose(data_dir: &Path, path: &str) -> (Engine, Option<String>) {
    let mut note = None;
    if let Some(docker) = find_program("docker", path)
        && succeeds(&docker, &["version"]).await
    {
        if succeeds(&docker, &["buildx", "version"]).await {
            return (Engine::Docker, None);
        }
        note = Some(DOCKER_NO_BUILDX);
    }
    if find_program("podman", path).is_some() {
        let dir = data_dir.join("engine");
        let note = note.map(|n| {
            format!("{n}: builds and servers use podman instead (install docker's buildx plugin to use docker)")
        });
        let podman = Engine::Podman {
            socket: dir.join("podman.sock"),
            dir,
        };
        return (podman, note);
    }
    let note = match note {
        Some(n) => format!(
            "{n}: install that plugin (docker-buildx-plugin from Docker's packages) or podman \
             (Debian: `apt-get install podman runc`); builds and launches cannot work until then"
        ),
        None => NO_ENGINE.to_owned(),
    };
    (Engine::Missing, Some(note))
}

/// Whether `program args` exits 0 within 5 s.
async fn succeeds(program: &Path, args: &[&str]) -> bool {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), cmd.status()).await,
        Ok(Ok(status)) if status.success()
    )
}

/// The environment podman (the service and repo2docker's CLI) runs with: our
/// `containers.conf`, and a `registries.conf` that lets it push to and pull from the
/// plain-HTTP registry at `registry` (`host:port`), unless the operator set their own.
/// Also writes the buildx shim as `<dir>/shim/podman` over `real` (the podman found on
/// the path), for the worker's builds to find first on their `PATH`.
pub(crate) fn podman_env(
    dir: &Path,
    registry: Option<&str>,
    real: &Path,
) -> std::io::Result<Vec<(String, OsString)>> {
    std::fs::create_dir_all(dir.join("shim"))?;
    let mut env = Vec::new();
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, CONTAINERS_CONF)?;
        env.push(("CONTAINERS_CONF".to_owned(), conf.into_os_string()));
    }
    if let Some(registry) = registry
        && std::env::var_os("CONTAINERS_REGISTRIES_CONF").is_none()
    {
        let conf = dir.join("registries.conf");
        // Unqualified names keep Debian's docker.io search; the managed registry is
        // loopback-only, hence plain HTTP.
        std::fs::write(
            &conf,
            format!(
                "# Written by `bindery up`.\nunqualified-search-registries = [\"docker.io\"]\n\
                 [[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
            ),
        )?;
        env.push((
            "CONTAINERS_REGISTRIES_CONF".to_owned(),
            conf.into_os_string(),
        ));
    }
    let script = format!("#!/bin/sh\nREAL='{}'{BUILDX_SHIM}", real.display());
    write_executable(&dir.join("shim/podman"), &script)?;
    Ok(env)
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// podman's API service on `socket`, never timing out (`--time 0`), as a managed part.
pub(crate) fn podman_service(socket: &Path, env: Vec<(String, OsString)>) -> PartSpec {
    let _ = std::fs::remove_file(socket);
    PartSpec {
        name: "engine",
        program: PathBuf::from("podman"),
        args: vec![
            // Its info lines are one per API connection, health checks included.
            "--log-level=error".into(),
            "system".into(),
            "service".into(),
            "--time".into(),
            "0".into(),
            format!("unix://{}", socket.display()).into(),
        ],
        env,
        cwd: None,
        health: Health::Socket(socket.to_path_buf()),
        start_timeout: Duration::from_secs(30),
        stop_grace: Duration::from_secs(10),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn without_docker_or_podman_on_the_path_there_is_no_engine() {
        let dir = super::super::super::testing::scratch("engine");
        let (engine, note) = choose(&dir, "/nonexistent").await;
        assert_eq!(engine, Engine::Missing);
        assert_eq!(note.as_deref(), Some(NO_ENGINE));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_executable(&bin.join("podman"), "#!/bin/sh\n").unwrap();
        let (found, note) = choose(&dir, bin.to_str().unwrap()).await;
        assert_eq!(note, None);
        assert_eq!(
            found.docker_host(),
            Some(format!(
                "unix://{}",
                dir.join("engine/podman.sock").display()
            ))
        );
    }

    /// Debian 12's docker.io answers but has no buildx: podman is used when installed,
    /// else one line says what to install.
    #[tokio::test]
    async fn a_docker_without_buildx_is_passed_over_saying_why() {
        let dir = super::super::super::testing::scratch("engine-buildx");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let docker = |buildx: bool| {
            let answer = if buildx { 0 } else { 1 };
            format!("#!/bin/sh\n[ \"$1\" = buildx ] && exit {answer}\nexit 0\n")
        };
        let path = bin.to_str().unwrap();
        write_executable(&bin.join("docker"), &docker(true)).unwrap();
        assert_eq!(choose(&dir, path).await, (Engine::Docker, None));
        write_executable(&bin.join("docker"), &docker(false)).unwrap();
        let (engine, note) = choose(&dir, path).await;
        assert_eq!(engine, Engine::Missing);
        let note = note.unwrap();
        assert!(note.starts_with(DOCKER_NO_BUILDX), "{note}");
        assert!(
            note.contains("docker-buildx-plugin") && note.contains("podman"),
            "{note}"
        );
        write_executable(&bin.join("podman"), "#!/bin/sh\n").unwrap();
        let (engine, note) = choose(&dir, path).await;
        assert!(matches!(engine, Engine::Podman { .. }), "{engine:?}");
        assert!(note.unwrap().contains("use podman instead"));
    }

    #[test]
    fn the_shim_maps_buildx_build_push_onto_podman_build_and_push() {
        let dir = super::super::super::testing::scratch("shim");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.join("calls");
        write_executable(
            &bin.join("podman"),
            &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        )
        .unwrap();
        podman_env(
            &dir.join("engine"),
            Some("127.0.0.1:5000"),
            &bin.join("podman"),
        )
        .unwrap();
        let status = std::process::Command::new(dir.join("engine/shim/podman"))
            .args([
                "buildx",
                "build",
                "--progress",
                "plain",
                "--push",
                "--tag",
                "r/i:t",
                ".",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "build --progress plain --tag r/i:t .\npush r/i:t\n"
        );
    }
}

//! `cargo xtask`: the one entry point that prepares a machine and runs Bindery's checks.
//!
//! `cargo xtask test` is the README's test command and what CI runs. It installs what a
//! fresh Debian machine lacks (the wasm target, a Python venv under `target/` for the
//! differential tests, cargo-fuzz), then runs every check in order: rustfmt, clippy with
//! warnings denied, the core built for `wasm32-wasip2`, the whole test suite, and a short
//! run of each fuzz target.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Python packages the tests use, pinned; installed into `target/pyenv`.
const PY_REQUIREMENTS: &str = concat!(
    "escapism==1.1.0\njsonschema==4.26.0\npyjwt==2.15.1\ncryptography==50.0.2\n",
    // bindery-worker's tests: a real JupyterHub with the PyPI proxy (no node needed).
    "jupyterhub==6.1.1\njupyter_server==2.21.1\nconfigurable-http-proxy==0.4.0\n",
    // bindery-worker's Kubernetes executor test: the build Job manifest, checked offline.
    "kubernetes-validate==1.37.0\n",
    // bindery-worker's local executor test: a real build through podman.
    "jupyter-repo2docker==2026.4.0\n",
    // bindery-system-tests' chart test: the Helm v4 engine as a library (no helm binary),
    // and the YAML reader for the rendered manifests.
    "helm-python-sdk==0.2.2\npyyaml==6.0.4\n",
    // The same test loads infra/jupyterhub's spawner on the real KubeSpawner.
    "jupyterhub-kubespawner==7.1.0\n",
    // `bindery up`'s managed hub (`cargo xtask run`, tests/managed.rs): servers as
    // containers, and idle culling.
    "dockerspawner==14.0.0\njupyterhub-idle-culler==2.0.0\n",
);
/// Debian packages `bindery up`'s managed parts run (`cargo xtask run`): the registry,
/// podman with runc (the runtime its configuration names), and git for repo2docker.
const RUN_APT_PACKAGES: [&str; 4] = ["docker-registry", "podman", "runc", "git"];
/// Debian packages the system tests run: the real registry, htpasswd, openssl; podman with
/// its runtime and a static busybox, for real repo2docker builds; git (its http-backend
/// serves the system test's repository) and Chromium, the system test's browser.
/// debootstrap makes the root file system of tests/managed_launch.rs's Jupyter base image.
const APT_PACKAGES: [&str; 11] = [
    "docker-registry",
    "apache2-utils",
    "openssl",
    "podman",
    "buildah",
    "runc",
    "busybox-static",
    "uidmap",
    "git",
    "chromium",
    "debootstrap",
];
/// npm packages the system tests use, pinned; installed into `target/js`, where the scripts
/// of `tests/js` find them: playwright-core drives the browser (`launch.cjs`), and
/// BinderHub's own API client, with its two dependencies pinned as well, drives `/build`
/// (`binderhub_client.mjs`).
const NPM_PACKAGES: [&str; 4] = [
    "playwright-core@1.65.1",
    "@jupyterhub/binderhub-client@0.5.0",
    "@microsoft/fetch-event-source@2.0.1",
    "event-iterator@2.0.0",
];
/// The oldest Node.js major version the pinned playwright-core runs on (its package.json's
/// `engines.node`, `>=20`); checked again against the installed package.json. Debian 12's
/// `nodejs` is 18.
const NODE_MAJOR_NEEDED: u32 = 20;
/// Fuzz targets and how long CI runs each, in seconds.
const FUZZ_TARGETS: [&str; 2] = ["spec_parse", "sse_decode"];
const FUZZ_SECONDS_CI: u32 = 20;
/// Workspace members that build only for wasm32-wasip2: host builds, clippy and tests skip
/// them. (The edge components build natively too: their Spin code is wasm-only, their
/// logic is tested natively.)
const WASM_ONLY: [&str; 3] = [
    "bindery-host-probe",
    "bindery-host-forbidden",
    "bindery-host-floor",
];
/// The edge components of `spin.toml`, built with the `wasm` profile.
const EDGE_COMPONENTS: [&str; 3] = ["bindery-launch", "bindery-badge", "bindery-webhook"];
/// Components bindery-host's tests and the benchmark run, built with the `wasm` profile.
const HOST_TEST_COMPONENTS: [&str; 3] = [
    "bindery-host-probe",
    "bindery-host-forbidden",
    "bindery-host-floor",
];

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root()?;
    env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("fuzz") => {
            let seconds = args
                .get(1)
                .map(|s| s.parse())
                .transpose()
                .context("fuzz seconds must be a number")?;
            fuzz(&root, seconds.unwrap_or(FUZZ_SECONDS_CI))
        }
        Some("build") => build_wasm(),
        Some("bench") => bench(&root),
        Some("run") => run_up(&root, &args[1..]),
        Some("setup") => setup(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 test [--no-fuzz]   prepare the machine and run every check (what CI runs)\n  \
                 fuzz [SECONDS]     run each fuzz target for SECONDS (default {FUZZ_SECONDS_CI})\n  \
                 build              build the wasm parts for wasm32-wasip2\n  \
                 bench              edge throughput against a native server (release builds)\n  \
                 run [ARGS]         install the managed parts, build, and run `bindery up` on 127.0.0.1:3000\n  \
                 setup              install what the tests need, and nothing else"
            );
            bail!("unknown or missing command")
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = env::var("CARGO_MANIFEST_DIR").context("run this through `cargo xtask`")?;
    Path::new(&manifest)
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn test(root: &Path, flags: &[String]) -> Result<()> {
    let fuzz_too = !flags.iter().any(|f| f == "--no-fuzz");
    setup(root)?;
    step("rustfmt", &mut cargo(&["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo(&["clippy", "--workspace", "--all-targets"])
            .args(excluding_wasm_only())
            .args(["--", "-D", "warnings"]),
    )?;
    build_wasm()?;
    let components = EDGE_COMPONENTS
        .iter()
        .chain(&WASM_ONLY)
        .flat_map(|p| ["-p", p]);
    step(
        "clippy for wasm32-wasip2",
        cargo(&["clippy", "--target", "wasm32-wasip2", "-p", "bindery-edge"])
            .args(components)
            .args(["--", "-D", "warnings"]),
    )?;
    let python = python_bin(root);
    step(
        "tests",
        cargo(&["test", "--workspace", "--no-fail-fast"])
            .args(excluding_wasm_only())
            .env("BINDERY_PYTHON", &python)
            .env("BINDERY_NODE_PATH", root.join("target/js/node_modules"))
            .env("BINDERY_WASM_DIR", root.join("target/wasm32-wasip2/wasm")),
    )?;
    if fuzz_too {
        fuzz(root, FUZZ_SECONDS_CI)?;
    }
    eprintln!("xtask: every check passed");
    Ok(())
}

/// The README's run command: installs what `bindery up`'s managed parts need (Debian's
/// registry, podman and git; the venv with JupyterHub, its proxy, DockerSpawner, the idle
/// culler and repo2docker), builds the edge components and a release `bindery`, then runs
/// `bindery up --config bindery.toml` in the foreground. Every step is skipped when done
/// already, so a second run starts in seconds. Extra arguments go to `bindery up` (e.g.
/// `--listen 0.0.0.0:3000`).
fn run_up(root: &Path, extra: &[String]) -> Result<()> {
    step(
        "wasm target",
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
    )?;
    eprintln!("xtask: Debian packages for the managed parts");
    apt_install(&RUN_APT_PACKAGES)?;
    eprintln!("xtask: Python venv target/pyenv (JupyterHub, DockerSpawner, repo2docker)");
    python_venv(root)?;
    build_wasm()?;
    step(
        "release bindery",
        &mut cargo(&["build", "--release", "-p", "bindery"]),
    )?;
    let mut cmd = Command::new("target/release/bindery");
    cmd.arg("up");
    if !extra.iter().any(|a| a == "--config") {
        cmd.args(["--config", "bindery.toml"]);
    }
    cmd.args(extra);
    let venv_r2d = root.join("target/pyenv/bin/jupyter-repo2docker");
    if env::var_os("BINDERY_REPO2DOCKER").is_none() && venv_r2d.exists() {
        cmd.env("BINDERY_REPO2DOCKER", venv_r2d);
    }
    if env::var_os("BINDERY_MANAGED_PYTHON").is_none() {
        cmd.env("BINDERY_MANAGED_PYTHON", python_bin(root));
    }
    step("bindery up", &mut cmd)
}

/// Benchmarks: the release host against a native server, in one run (see tests/bench).
fn bench(root: &Path) -> Result<()> {
    setup(root)?;
    build_wasm()?;
    step(
        "release bindery",
        &mut cargo(&["build", "--release", "-p", "bindery"]),
    )?;
    step(
        "edge benchmark",
        cargo(&[
            "bench",
            "-p",
            "bindery-system-tests",
            "--bench",
            "edge",
            "--bench",
            "worker",
        ])
        .env("BINDERY_PYTHON", python_bin(root)),
    )
}

/// Installs what the checks need on a fresh Debian machine; quick when all is present.
fn setup(root: &Path) -> Result<()> {
    step(
        "wasm target",
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
    )?;
    apt_install(&APT_PACKAGES)?;
    python_venv(root)?;
    npm_packages(root)
}

/// Installs [`NPM_PACKAGES`] into `target/js` (Debian's npm when there is none), with a
/// Node.js new enough for them.
fn npm_packages(root: &Path) -> Result<()> {
    let prefix = root.join("target/js");
    let stamp = prefix.join("bindery-packages.txt");
    let wanted = NPM_PACKAGES.join("\n");
    let npm_ok = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !npm_ok {
        apt_install(&["nodejs", "npm"])?;
    }
    check_node(NODE_MAJOR_NEEDED)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    std::fs::create_dir_all(&prefix)?;
    step(
        "npm packages",
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--prefix",
            ])
            .arg(&prefix)
            .args(NPM_PACKAGES),
    )?;
    // A new pin may need a newer Node.js than NODE_MAJOR_NEEDED says.
    let package = prefix.join("node_modules/playwright-core/package.json");
    let text = std::fs::read_to_string(&package)
        .with_context(|| format!("failed to read {}", package.display()))?;
    match engines_node_major(&text) {
        Some(needed) if needed > NODE_MAJOR_NEEDED => bail!(
            "{} needs Node.js {needed} or later (engines.node) but NODE_MAJOR_NEEDED in \
             xtask/src/main.rs says {NODE_MAJOR_NEEDED}: update it",
            package.display()
        ),
        Some(_) => {}
        None => bail!(
            "{} has no engines.node of the form \">=N\": check which Node.js it needs \
             and update NODE_MAJOR_NEEDED in xtask/src/main.rs",
            package.display()
        ),
    }
    std::fs::write(stamp, wanted)?;
    Ok(())
}

/// Fails unless `node --version` is at least `needed` (the major version).
fn check_node(needed: u32) -> Result<()> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .context("failed to run `node --version` (Debian: apt-get install nodejs)")?;
    node_new_enough(String::from_utf8_lossy(&out.stdout).trim(), needed)
}

/// Fails unless `version` (`node --version`'s `vMAJOR.MINOR.PATCH`) is at least `needed`.
fn node_new_enough(version: &str, needed: u32) -> Result<()> {
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .with_context(|| format!("`node --version` printed {version:?}"))?;
    if major < needed {
        bail!(
            "Node.js {version} is too old: {} needs Node.js {needed} or later (Debian 12's \
             nodejs package is 18). Install Node.js {needed} or later and run again.",
            // playwright-core's `engines.node` sets the bound (see NODE_MAJOR_NEEDED).
            NPM_PACKAGES[0]
        );
    }
    Ok(())
}

/// The major version of a package.json's `"engines": {"node": ">=N..."}`.
fn engines_node_major(package_json: &str) -> Option<u32> {
    let engines = &package_json[package_json.find("\"engines\"")?..];
    let engines = &engines[..engines.find('}')?];
    let node = &engines[engines.find("\"node\"")? + "\"node\"".len()..];
    let value = node
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let value = value[..value.find('"')?].trim();
    let digits = value.strip_prefix(">=")?.trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn build_wasm() -> Result<()> {
    step(
        "core for wasm32-wasip2",
        &mut cargo(&["build", "-p", "bindery-core", "--target", "wasm32-wasip2"]),
    )?;
    let packages = EDGE_COMPONENTS
        .iter()
        .chain(&HOST_TEST_COMPONENTS)
        .flat_map(|p| ["-p", p]);
    step(
        "edge components for wasm32-wasip2",
        cargo(&["build", "--target", "wasm32-wasip2", "--profile", "wasm"]).args(packages),
    )
}

/// `--exclude` arguments for every wasm-only member.
fn excluding_wasm_only() -> impl Iterator<Item = &'static str> {
    WASM_ONLY.iter().flat_map(|p| ["--exclude", p])
}

fn python_bin(root: &Path) -> PathBuf {
    root.join("target/pyenv/bin/python")
}

fn python_venv(root: &Path) -> Result<()> {
    let venv = root.join("target/pyenv");
    let stamp = venv.join("bindery-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(PY_REQUIREMENTS) {
        return Ok(());
    }
    let venv_ok = |venv: &Path| {
        Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !venv_ok(&venv) {
        // Debian splits venv support out of python3.
        apt_install(&["python3", "python3-venv", "python3-pip"])?;
        if !venv_ok(&venv) {
            bail!("failed to create a Python venv in {}", venv.display());
        }
    }
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, PY_REQUIREMENTS)?;
    step(
        "python packages",
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(stamp, PY_REQUIREMENTS)?;
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    step(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}

fn fuzz(root: &Path, seconds: u32) -> Result<()> {
    // The fuzz crate sits below this workspace's rust-toolchain.toml; the environment
    // overrides it, and cargo's own variables for this process must not leak into nightly's.
    let nightly = |cmd: &mut Command| {
        cmd.env("RUSTUP_TOOLCHAIN", "nightly")
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTDOC");
    };
    let mut probe = Command::new("rustc");
    nightly(&mut probe);
    if !probe
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        step(
            "nightly toolchain",
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
        )?;
    }
    let mut fuzz_probe = Command::new("cargo");
    nightly(&mut fuzz_probe);
    if !fuzz_probe
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        step(
            "cargo-fuzz",
            Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    for target in FUZZ_TARGETS {
        let mut cmd = Command::new("cargo");
        nightly(&mut cmd);
        cmd.current_dir(root.join("fuzz")).args([
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
        ]);
        step(&format!("fuzz {target} for {seconds}s"), &mut cmd)?;
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // xtask's builds are whole checks and release builds, which gain little from
    // incremental compilation; on a clean clone its files cost gigabytes of disk (CI once
    // ran out). A plain `cargo build` while editing keeps it.
    cmd.env("CARGO_INCREMENTAL", "0").args(args);
    cmd
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {name}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_node_major_reads_the_lower_bound() {
        let pinned = r#"{"name": "playwright-core", "engines": {
            "node": ">=20"
          }, "author": {"name": "Microsoft"}}"#;
        assert_eq!(engines_node_major(pinned), Some(20));
        assert_eq!(
            engines_node_major(r#"{"engines":{"npm":">=9","node":">= 22.3.0"}}"#),
            Some(22)
        );
        assert_eq!(engines_node_major(r#"{"engines":{"node":"^18"}}"#), None);
        assert_eq!(engines_node_major(r#"{"engines":{"npm":">=9"}}"#), None);
        assert_eq!(engines_node_major(r#"{"node":">=20"}"#), None);
    }

    #[test]
    fn a_node_older_than_needed_is_refused_naming_the_version_needed() {
        node_new_enough("v20.20.2", 20).unwrap();
        node_new_enough("v22.1.0", 20).unwrap();
        let old = node_new_enough("v18.19.0", 20).unwrap_err().to_string();
        assert!(
            old.starts_with(
                "Node.js v18.19.0 is too old: playwright-core@1.65.1 needs Node.js 20 or later"
            ),
            "{old}"
        );
        assert!(node_new_enough("garbage", 20).is_err());
    }
}

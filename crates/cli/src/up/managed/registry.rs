//! The managed registry: Debian's `docker-registry` (distribution 2.8) on a loopback
//! address, with its storage under `<data_dir>/registry`, no authentication (nothing but
//! this machine reaches it) and deletes enabled (so pruning works).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::supervise::{Health, PartSpec};

/// The registry's program (Debian's package `docker-registry`).
pub(crate) const PROGRAM: &str = "docker-registry";

/// Writes the registry's configuration under `dir` and returns the part that serves it on
/// `listen`.
pub(crate) fn part(dir: &Path, listen: SocketAddr, program: PathBuf) -> std::io::Result<PartSpec> {
    let storage = dir.join("data");
    std::fs::create_dir_all(&storage)?;
    let config = dir.join("config.yml");
    std::fs::write(&config, config_yaml(&storage, listen))?;
    Ok(PartSpec {
        name: "registry",
        program,
        args: vec!["serve".into(), config.into_os_string()],
        env: vec![],
        cwd: Some(dir.to_path_buf()),
        health: Health::Http(format!("http://{listen}/v2/")),
        start_timeout: Duration::from_secs(30),
        stop_grace: Duration::from_secs(10),
    })
}

/// The registry's `config.yml`: storage, loopback address, no auth. `http.secret` is only
/// used to sign upload state between replicas; one replica on loopback needs no secret, so
/// a fixed one just keeps the warning about a missing one out of the log.
fn config_yaml(storage: &Path, listen: SocketAddr) -> String {
    format!(
        "# Written by `bindery up` at every start.\n\
         version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: \"{}\"\n  delete:\n    enabled: true\n\
         http:\n  addr: \"{listen}\"\n  secret: bindery-managed-loopback-registry\n",
        storage.display()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_registry_listens_where_told_and_keeps_its_images_in_the_data_dir() {
        let dir = super::super::super::testing::scratch("registry");
        let spec = part(&dir, "127.0.0.1:5123".parse().unwrap(), PROGRAM.into()).unwrap();
        let yaml = std::fs::read_to_string(dir.join("config.yml")).unwrap();
        assert!(yaml.contains("addr: \"127.0.0.1:5123\""), "{yaml}");
        assert!(
            yaml.contains(&format!(
                "rootdirectory: \"{}\"",
                dir.join("data").display()
            )),
            "{yaml}"
        );
        assert!(!yaml.contains("auth"), "{yaml}");
        assert!(matches!(&spec.health, Health::Http(url) if url == "http://127.0.0.1:5123/v2/"));
    }
}

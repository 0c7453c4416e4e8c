//! The real Debian `docker-registry` (distribution 2.8), run as a plain process with its
//! own config, and an image pusher that speaks the registry API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::proc::Proc;
use crate::sse::send;

/// How the registry authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No authentication.
    None,
    /// htpasswd basic auth with one user.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// `127.0.0.1:<port>`.
    pub host: String,
    auth: Auth,
    _proc: Proc,
    /// Its scratch directory.
    pub dir: PathBuf,
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

impl Registry {
    /// Starts a registry in `dir`.
    pub async fn start(dir: &Path, auth: Auth) -> Registry {
        let port = crate::free_port();
        let host = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic { username, password } => {
                let out = Command::new("htpasswd").args(["-Bbn", username, password]).output().expect("htpasswd (apache2-utils)");
                std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n", dir.join("htpasswd").display())
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth_yaml}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let proc = Proc::spawn(
            "docker-registry",
            Command::new("docker-registry").arg("serve").arg(dir.join("config.yml")),
            &dir.join("registry.log"),
        );
        let registry = Registry { url: format!("http://{host}"), host, auth, _proc: proc, dir: dir.to_path_buf() };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&registry.host).await.is_ok() {
                return registry;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("docker-registry did not start; see {}", dir.join("registry.log").display());
    }

    fn auth_header(&self) -> Vec<(&'static str, String)> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Basic { username, password } => {
                use base64::Engine;
                let pair = format!("{username}:{password}");
                vec![("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))]
            }
        }
    }

    async fn put_blob(&self, repository: &str, blob: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256(blob));
        let auth = self.auth_header();
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = send("POST", &format!("{}/v2/{repository}/blobs/uploads/", self.url), &headers, Vec::new()).await;
        assert_eq!(started.status, 202, "start upload: {}", started.text());
        let location = started.header("location").unwrap().to_string();
        let location = if location.starts_with("http") { location } else { format!("{}{location}", self.url) };
        let sep = if location.contains('?') { '&' } else { '?' };
        let mut put_headers = headers.clone();
        put_headers.push(("content-type", "application/octet-stream"));
        let done = send("PUT", &format!("{location}{sep}digest={digest}"), &put_headers, blob.to_vec()).await;
        assert_eq!(done.status, 201, "finish upload: {}", done.text());
        digest
    }

    /// Pushes a small image `repository:tag`, with an OCI manifest when `oci` (what podman
    /// pushes) or a Docker v2 manifest otherwise. Returns the manifest digest.
    pub async fn push(&self, repository: &str, tag: &str, oci: bool) -> String {
        let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = format!("layer of {repository}:{tag}").into_bytes();
        let config_digest = self.put_blob(repository, config).await;
        let layer_digest = self.put_blob(repository, &layer).await;
        let (media, config_media, layer_media) = if oci {
            ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media,
            "config": {"mediaType": config_media, "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": layer_media, "size": layer.len(), "digest": layer_digest}],
        })
        .to_string();
        let auth = self.auth_header();
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(("content-type", media));
        let put = send("PUT", &format!("{}/v2/{repository}/manifests/{tag}", self.url), &headers, manifest.clone().into_bytes()).await;
        assert_eq!(put.status, 201, "push manifest: {}", put.text());
        format!("sha256:{}", sha256(manifest.as_bytes()))
    }

    /// Deletes `repository:tag` (as a registry pruning old images would).
    pub async fn delete(&self, repository: &str, digest: &str) {
        let auth = self.auth_header();
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let del = send("DELETE", &format!("{}/v2/{repository}/manifests/{digest}", self.url), &headers, Vec::new()).await;
        assert_eq!(del.status, 202, "delete manifest: {}", del.text());
    }
}

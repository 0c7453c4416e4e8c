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
    /// Docker token auth: a token server (`tests/py/token_server.py`, real JWTs) issues
    /// bearer tokens; anonymous requests may pull, the user may also push.
    Token {
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
    _token_server: Option<Proc>,
    token_realm: Option<String>,
    /// Its scratch directory.
    pub dir: PathBuf,
}

/// Waits until something listens on `addr`.
async fn wait_for(addr: &str, log: &Path) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {addr}; see {}", log.display());
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Registry {
    /// Starts a registry in `dir`.
    pub async fn start(dir: &Path, auth: Auth) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let port = crate::free_port();
        let host = format!("127.0.0.1:{port}");
        let mut token_server = None;
        let mut token_realm = None;
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic { username, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", username, password])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    dir.join("htpasswd").display()
                )
            }
            Auth::Token { username, password } => {
                let (key, cert) = (dir.join("token.key"), dir.join("token.crt"));
                let made = Command::new("openssl")
                    .args([
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=bindery-test-issuer",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert)
                    .output()
                    .expect("openssl");
                assert!(
                    made.status.success(),
                    "openssl: {}",
                    String::from_utf8_lossy(&made.stderr)
                );
                let token_port = crate::free_port();
                let python = std::env::var("BINDERY_PYTHON")
                    .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`");
                let script = crate::workspace().join("tests/py/token_server.py");
                token_server = Some(Proc::spawn(
                    "token server",
                    Command::new(python)
                        .arg(script)
                        .arg(token_port.to_string())
                        .arg(&key)
                        .arg(&cert)
                        .arg(username)
                        .arg(password),
                    &dir.join("token-server.log"),
                ));
                wait_for(
                    &format!("127.0.0.1:{token_port}"),
                    &dir.join("token-server.log"),
                )
                .await;
                token_realm = Some(format!("http://127.0.0.1:{token_port}/token"));
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: bindery-test-registry\n    issuer: bindery-test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth_yaml}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let proc = Proc::spawn(
            "docker-registry",
            Command::new("docker-registry")
                .arg("serve")
                .arg(dir.join("config.yml")),
            &dir.join("registry.log"),
        );
        wait_for(&host, &dir.join("registry.log")).await;
        Registry {
            url: format!("http://{host}"),
            host,
            auth,
            _proc: proc,
            _token_server: token_server,
            token_realm,
            dir: dir.to_path_buf(),
        }
    }

    async fn auth_header(&self, repository: &str) -> Vec<(&'static str, String)> {
        use base64::Engine;
        let basic = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        match &self.auth {
            Auth::None => vec![],
            Auth::Basic { username, password } => {
                vec![("authorization", basic(username, password))]
            }
            Auth::Token { username, password } => {
                let realm = self.token_realm.as_deref().unwrap();
                let url = format!(
                    "{realm}?service=bindery-test-registry&scope=repository:{repository}:pull,push"
                );
                let got = send(
                    "GET",
                    &url,
                    &[("authorization", &basic(username, password))],
                    Vec::new(),
                )
                .await;
                assert_eq!(got.status, 200, "token: {}", got.text());
                let token = got.json()["token"].as_str().unwrap().to_string();
                vec![("authorization", format!("Bearer {token}"))]
            }
        }
    }

    async fn put_blob(&self, repository: &str, blob: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256(blob));
        let auth = self.auth_header(repository).await;
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = send(
            "POST",
            &format!("{}/v2/{repository}/blobs/uploads/", self.url),
            &headers,
            Vec::new(),
        )
        .await;
        assert_eq!(started.status, 202, "start upload: {}", started.text());
        let location = started.header("location").unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.url)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let mut put_headers = headers.clone();
        put_headers.push(("content-type", "application/octet-stream"));
        let done = send(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &put_headers,
            blob.to_vec(),
        )
        .await;
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
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
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
        let auth = self.auth_header(repository).await;
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(("content-type", media));
        let put = send(
            "PUT",
            &format!("{}/v2/{repository}/manifests/{tag}", self.url),
            &headers,
            manifest.clone().into_bytes(),
        )
        .await;
        assert_eq!(put.status, 201, "push manifest: {}", put.text());
        format!("sha256:{}", sha256(manifest.as_bytes()))
    }

    /// Deletes `repository:tag` (as a registry pruning old images would).
    pub async fn delete(&self, repository: &str, digest: &str) {
        let auth = self.auth_header(repository).await;
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let del = send(
            "DELETE",
            &format!("{}/v2/{repository}/manifests/{digest}", self.url),
            &headers,
            Vec::new(),
        )
        .await;
        assert_eq!(del.status, 202, "delete manifest: {}", del.text());
    }
}

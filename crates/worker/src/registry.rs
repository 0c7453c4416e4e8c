//! The registry re-check before a build: another replica (or an earlier build whose
//! answer the edge had not cached yet) may have pushed the image already.
//!
//! The requests are `bindery_core::registry`'s data; this module only sends them: a `HEAD`
//! of the manifest with the worker's credentials (none or basic), and on a `401 Bearer`
//! challenge one token fetch and one retry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bindery_core::image::split_image;
use bindery_core::registry::{
    ManifestAnswer, RegistryAuth, RegistryError, interpret_manifest_response, manifest_request,
    parse_token_response, token_request,
};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Secret;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the registry could not say whether an image exists.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A request could not be built, or an answer could not be used.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry could not be reached.
    #[error("failed to reach the registry: {0}")]
    Unreachable(String),
    /// The registry refused the credentials.
    #[error("the registry refused the credentials (http 401)")]
    Unauthorized,
    /// The registry answered with an unexpected status.
    #[error("the registry answered http {0}")]
    Status(u16),
    /// TLS roots could not be loaded.
    #[error("failed to set up TLS for the registry client: {0}")]
    Tls(String),
}

/// Sends manifest checks to one registry.
pub struct RegistryClient {
    client: HttpsClient,
    url: String,
    username: Option<String>,
    password: Option<Secret>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for the registry at `url` (`http(s)://host[:port]`), with optional basic
    /// credentials.
    pub fn new(
        url: &str,
        username: Option<String>,
        password: Option<Secret>,
    ) -> Result<RegistryClient, CheckError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| CheckError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(RegistryClient {
            client: Client::builder(TokioExecutor::new()).build(https),
            url: url.trim_end_matches('/').to_owned(),
            username,
            password,
        })
    }

    fn basic(&self) -> RegistryAuth {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => RegistryAuth::Basic {
                username: username.clone(),
                password: password.expose().to_owned(),
            },
            _ => RegistryAuth::Anonymous,
        }
    }

    async fn send(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<(u16, http::HeaderMap, Bytes), CheckError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| CheckError::Unreachable("timed out".into()))?
            .map_err(|e| CheckError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, 64 * 1024)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        Ok((status, parts.headers, bytes))
    }

    /// Whether `image` (`host/repository:tag`) is in the registry.
    pub async fn image_present(&self, image: &str) -> Result<bool, CheckError> {
        let name = split_image(image);
        let request = manifest_request(&self.url, &name.repository, &name.tag, &self.basic())?;
        let (status, headers, _) = self.send(request).await?;
        let challenge = match interpret_manifest_response(status, &headers) {
            ManifestAnswer::Present { .. } => return Ok(true),
            ManifestAnswer::Missing => return Ok(false),
            ManifestAnswer::Unauthorized => return Err(CheckError::Unauthorized),
            ManifestAnswer::RegistryError { status } => return Err(CheckError::Status(status)),
            ManifestAnswer::Challenge(challenge) => challenge,
        };
        let credentials = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.expose())),
            _ => None,
        };
        let (status, _, body) = self.send(token_request(&challenge, credentials)?).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = parse_token_response(status, &body, now)?;
        let request = manifest_request(
            &self.url,
            &name.repository,
            &name.tag,
            &RegistryAuth::Bearer(token.token),
        )?;
        let (status, headers, _) = self.send(request).await?;
        match interpret_manifest_response(status, &headers) {
            ManifestAnswer::Present { .. } => Ok(true),
            ManifestAnswer::Missing => Ok(false),
            ManifestAnswer::Unauthorized | ManifestAnswer::Challenge(_) => {
                Err(CheckError::Unauthorized)
            }
            ManifestAnswer::RegistryError { status } => Err(CheckError::Status(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    /// A registry that wants a bearer token: 401 with a challenge, a token service at
    /// `/token`, 200 for `present:1` and 404 for anything else once the token is sent.
    async fn token_registry() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (realm, log) = (format!("{base}/token"), Arc::clone(&seen));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (realm, log) = (realm.clone(), Arc::clone(&log));
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let realm = realm.clone();
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let target = req.uri().to_string();
                    if let Ok(mut log) = log.lock() {
                        log.push(format!("{} {target} [{auth}]", req.method()));
                    }
                    async move {
                        let response = http::Response::builder();
                        let response = if target.starts_with("/token") {
                            response.status(200).body(Full::new(Bytes::from(
                                r#"{"token": "tok-123", "expires_in": 300}"#,
                            )))
                        } else if auth != "Bearer tok-123" {
                            response
                                .status(401)
                                .header(
                                    "www-authenticate",
                                    format!(
                                        r#"Bearer realm="{realm}",service="reg",scope="repository:binder-x:pull""#
                                    ),
                                )
                                .body(Full::new(Bytes::new()))
                        } else if target.ends_with("/manifests/present") {
                            response.status(200).body(Full::new(Bytes::new()))
                        } else {
                            response.status(404).body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (base, seen)
    }

    #[tokio::test]
    async fn a_bearer_challenge_is_answered_with_a_token_and_one_retry() {
        let (base, seen) = token_registry().await;
        let client = RegistryClient::new(&base, Some("user".into()), Some(Secret::new("pw")))
            .expect("client");
        assert!(
            client
                .image_present("reg/binder-x:present")
                .await
                .expect("check")
        );
        assert!(
            !client
                .image_present("reg/binder-x:absent")
                .await
                .expect("check")
        );
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 6, "{seen:#?}");
        assert!(
            seen[0].starts_with("HEAD /v2/binder-x/manifests/present [Basic "),
            "{seen:#?}"
        );
        assert!(
            seen[1].starts_with("GET /token?scope=repository%3Abinder-x%3Apull&service=reg"),
            "{seen:#?}"
        );
        assert_eq!(
            seen[2],
            "HEAD /v2/binder-x/manifests/present [Bearer tok-123]"
        );
    }
}

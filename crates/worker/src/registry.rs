//! The registry re-check before a build: another replica (or an earlier build whose
//! answer the edge had not cached yet) may have pushed the image already.
//!
//! The check is [`bindery_core::registry::ManifestCheck`], the state machine the edge
//! drives too (so both send the same credentials the same way); this module only sends
//! its requests with reqwest. The worker keeps no token cache: it checks once per build.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bindery_core::image::split_image;
use bindery_core::registry::{Credentials, ImagePresence, ManifestCheck, ManifestCheckError, Step};
use bytes::Bytes;

use crate::config::Secret;
use crate::error_chain;
use crate::outbound::{self, read_limited};

/// The longest one registry request may take, its answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest registry answer read (a token answer; manifest checks are `HEAD`s).
const MAX_BODY: usize = 64 * 1024;

/// Why the registry could not say whether an image exists.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The registry's answers gave no presence: refused credentials, an unexpected status,
    /// a challenge or token answer that cannot be used, or a request that cannot be built.
    #[error(transparent)]
    Check(#[from] ManifestCheckError),
    /// The registry could not be reached, or its answer not read.
    #[error("failed to reach the registry: {0}")]
    Unreachable(String),
    /// The registry did not answer in time.
    #[error("the registry did not answer in {}s", CALL_TIMEOUT.as_secs())]
    Timeout,
    /// The HTTP client could not be made (TLS roots).
    #[error("failed to set up the registry client")]
    Client(#[source] reqwest::Error),
}

/// Sends manifest checks to one registry.
pub struct RegistryClient {
    client: reqwest::Client,
    url: String,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for the registry at `url` (`http(s)://host[:port]`), with optional basic
    /// credentials (a username without a password is sent with an empty one: see
    /// [`Credentials`]).
    pub fn new(
        url: &str,
        username: Option<String>,
        password: Option<Secret>,
    ) -> Result<RegistryClient, CheckError> {
        Ok(RegistryClient {
            client: outbound::client().map_err(CheckError::Client)?,
            url: url.trim_end_matches('/').to_owned(),
            credentials: Credentials::from_config(
                username.as_deref(),
                password.as_ref().map(Secret::expose),
            ),
        })
    }

    /// Sends one request of the check and returns the answer's status, headers and body.
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<(u16, http::HeaderMap, Bytes), CheckError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| CheckError::Unreachable(error_chain(&e)))?;
        let call = async {
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|e| CheckError::Unreachable(error_chain(&e)))?;
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            let body = read_limited(response, MAX_BODY)
                .await
                .map_err(|e| CheckError::Unreachable(error_chain(&e)))?;
            Ok((status, headers, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| CheckError::Timeout)?
    }

    /// Whether `image` (`host/repository:tag`) is in the registry.
    pub async fn image_present(&self, image: &str) -> Result<bool, CheckError> {
        let name = split_image(image);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (mut check, mut step) = ManifestCheck::new(
            &self.url,
            &name.repository,
            &name.tag,
            self.credentials.clone(),
            None,
            now,
        );
        loop {
            step = match step {
                // Token changes are for a cache; the worker has none.
                Step::Send { request, .. } => {
                    let (status, headers, body) = self.send(request).await?;
                    check.feed(status, &headers, &body)
                }
                Step::Done(presence) => {
                    return Ok(matches!(presence, ImagePresence::Present { .. }));
                }
                Step::Failed { error, .. } => return Err(error.into()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http_body_util::Full;
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

    #[tokio::test]
    async fn a_username_without_password_is_sent_with_an_empty_password_as_the_edge_does() {
        let (base, seen) = token_registry().await;
        let client = RegistryClient::new(&base, Some("user".into()), None).expect("client");
        assert!(
            !client
                .image_present("reg/binder-x:absent")
                .await
                .expect("check")
        );
        let seen = seen.lock().expect("log").clone();
        // base64("user:")
        assert_eq!(
            seen[0], "HEAD /v2/binder-x/manifests/absent [Basic dXNlcjo=]",
            "{seen:#?}"
        );
        assert!(seen[1].ends_with("[Basic dXNlcjo=]"), "{seen:#?}");
    }
}

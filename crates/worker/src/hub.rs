//! The JupyterHub REST client: BinderHub's calls, with its retry rule.
//!
//! Every call sends `Authorization: token <hub token>` and is tried up to
//! [`WorkerConfig::hub_retries`](crate::WorkerConfig) times when the hub answers ≥ 500 or
//! cannot be reached, the delay doubling from `hub_retry_delay`; as in BinderHub, a `409` on
//! a retry (not on the first try) means the earlier try went through.

use std::time::Duration;

use bindery_core::events::{self, HubProgress};
use bindery_core::sse::{SseDecoder, SseMessage};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::config::WorkerConfig;
use crate::error_chain;
use crate::outbound::{self, read_limited};

/// The characters of a user name kept as they are in a URL path (as BinderHub's `quote(name, safe="@~")`).
const NAME_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@');
/// The largest non-streamed hub answer read.
const MAX_BODY: usize = 1024 * 1024;
/// The longest one non-streamed call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed hub call.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The HTTP client could not be made (TLS roots).
    #[error("failed to set up the hub client")]
    Client(#[source] reqwest::Error),
    /// The hub API token cannot be sent in an http header.
    #[error("the hub api token holds characters not allowed in an http header")]
    InvalidToken,
    /// The hub could not be reached (or the connection broke).
    #[error("failed to reach JupyterHub: {0}")]
    Unreachable(String),
    /// The hub did not answer in time.
    #[error("JupyterHub did not answer in time")]
    Timeout,
    /// The hub refused the call.
    #[error("JupyterHub answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The hub's `message`, or the body.
        message: String,
    },
    /// The spawn failed, as the progress stream reports.
    #[error("{0}")]
    SpawnFailed(String),
    /// The progress stream ended without `ready` or `failed`.
    #[error("the hub's progress stream ended before the server was ready")]
    ProgressEnded,
    /// The hub's answer does not have the shape its API documents.
    #[error("JupyterHub answered something unexpected: {0}")]
    BadAnswer(String),
}

impl HubError {
    /// The hub's reason in words for a user: the hub's own message where it gave one.
    pub fn reason(&self) -> String {
        match self {
            HubError::Status { message, .. } | HubError::SpawnFailed(message) => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether a launch that failed with this error is worth another attempt under a new
    /// user name: a spawn that failed or never finished, a hub that failed or could not be
    /// reached, a name clash. A refusal (`4xx`: bad token, missing scope, bad
    /// `user_options`) would only be refused again.
    pub fn worth_another_launch(&self) -> bool {
        match self {
            HubError::Status { status, .. } => *status >= 500 || matches!(status, 409 | 429),
            HubError::Client(_) | HubError::InvalidToken | HubError::BadAnswer(_) => false,
            HubError::Unreachable(_)
            | HubError::Timeout
            | HubError::SpawnFailed(_)
            | HubError::ProgressEnded => true,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            HubError::Unreachable(_) | HubError::Timeout => true,
            HubError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A JupyterHub API client bound to one hub and one token.
#[derive(Clone)]
pub struct HubClient {
    client: reqwest::Client,
    api: String,
    /// `token <hub token>`, marked sensitive.
    authorization: HeaderValue,
    retries: u32,
    retry_delay: Duration,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("api", &self.api)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// A ready server on the hub, as quota admission counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubServer {
    /// The hub user.
    pub user: String,
    /// The image the server runs.
    pub image: String,
}

impl HubServer {
    /// The servers of one user model (`{"name": …, "servers": {"": {"ready": …,
    /// "user_options": {"image": …}}}}`) that are ready and name an image.
    fn of_user(user: &Value) -> Vec<HubServer> {
        let Some(name) = user.get("name").and_then(Value::as_str) else {
            return Vec::new();
        };
        user.get("servers")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|servers| servers.values())
            .filter(|server| server.get("ready").and_then(Value::as_bool) == Some(true))
            .filter_map(|server| {
                let image = server.pointer("/user_options/image")?.as_str()?;
                Some(HubServer {
                    user: name.to_owned(),
                    image: image.to_owned(),
                })
            })
            .collect()
    }
}

/// The hub user name as a URL path segment.
pub fn escape_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_SAFE).to_string()
}

impl HubClient {
    /// A client for the hub API in `config`.
    pub fn new(config: &WorkerConfig) -> Result<HubClient, HubError> {
        let mut authorization =
            HeaderValue::try_from(format!("token {}", config.hub_api_token.expose()))
                .map_err(|_| HubError::InvalidToken)?;
        authorization.set_sensitive(true);
        Ok(HubClient {
            client: outbound::client().map_err(HubError::Client)?,
            api: config.hub_api_url.clone(),
            authorization,
            retries: config.hub_retries.max(1),
            retry_delay: config.hub_retry_delay,
        })
    }

    fn request(&self, method: Method, path: &str, body: Option<&Value>) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.api))
            .header(AUTHORIZATION, self.authorization.clone());
        match body {
            Some(json) => builder.json(json),
            None => builder,
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), HubError> {
        let request = self.request(method, path, body);
        let call = async {
            let response = request
                .send()
                .await
                .map_err(|e| HubError::Unreachable(error_chain(&e)))?;
            let status = response.status();
            let bytes = read_limited(response, MAX_BODY)
                .await
                .map_err(|e| HubError::Unreachable(error_chain(&e)))?;
            Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| HubError::Timeout)??;
        if status.is_success() {
            Ok((status, bytes))
        } else {
            Err(HubError::Status {
                status: status.as_u16(),
                message: hub_message(&bytes),
            })
        }
    }

    /// One API call with BinderHub's retries.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Bytes, HubError> {
        let mut delay = self.retry_delay;
        let mut attempt = 1;
        loop {
            match self.send_once(method.clone(), path, body).await {
                Ok((_, bytes)) => return Ok(bytes),
                Err(HubError::Status { status: 409, .. }) if attempt > 1 => return Ok(Bytes::new()),
                Err(err) if err.retryable() && attempt < self.retries => {
                    tracing::warn!(%method, path, attempt, error = %err, "hub call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `POST users/<name>`: creates the temporary user.
    pub async fn create_user(&self, name: &str) -> Result<(), HubError> {
        self.call(Method::POST, &format!("users/{}", escape_name(name)), None)
            .await
            .map(drop)
    }

    /// `POST users/<name>/server` with `user_options`: requests the default server.
    pub async fn start_server(&self, name: &str, user_options: &Value) -> Result<(), HubError> {
        let path = format!("users/{}/server", escape_name(name));
        self.call(Method::POST, &path, Some(user_options))
            .await
            .map(drop)
    }

    /// Follows `GET users/<name>/server/progress`, handing each hub event to `on_event`,
    /// until the hub reports the server ready (`Ok`) or failed (`Err`).
    pub async fn follow_progress(
        &self,
        name: &str,
        mut on_event: impl FnMut(&HubProgress),
    ) -> Result<HubProgress, HubError> {
        let path = format!("users/{}/server/progress", escape_name(name));
        let mut response = self
            .request(Method::GET, &path, None)
            .send()
            .await
            .map_err(|e| HubError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = read_limited(response, MAX_BODY).await.unwrap_or_default();
            return Err(HubError::Status {
                status: status.as_u16(),
                message: hub_message(&bytes),
            });
        }
        let mut decoder = SseDecoder::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HubError::Unreachable(error_chain(&e)))?
        {
            for message in decoder.feed(&chunk) {
                let SseMessage::Event { data, .. } = message else {
                    continue;
                };
                let Ok(progress) = events::from_hub_progress(&data) else {
                    tracing::debug!(data, "ignoring an unreadable hub progress event");
                    continue;
                };
                on_event(&progress);
                if progress.ready {
                    return Ok(progress);
                }
                if progress.failed {
                    return Err(HubError::SpawnFailed(progress.message));
                }
            }
        }
        Err(HubError::ProgressEnded)
    }

    /// `GET users/<name>`: the user model, or `None` when the user does not exist.
    pub async fn user(&self, name: &str) -> Result<Option<Value>, HubError> {
        match self
            .call(Method::GET, &format!("users/{}", escape_name(name)), None)
            .await
        {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(HubError::Status { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET users?state=ready`, page by page: every ready server on the hub with its user
    /// and the image its launch asked for (`user_options.image`; servers without one were
    /// not started by a binder and are left out). What quota admission counts at start and
    /// keeps in step with.
    pub async fn ready_servers(&self) -> Result<Vec<HubServer>, HubError> {
        const PAGE: usize = 100;
        // A hub that keeps answering full pages is bounded too: 100,000 users at most.
        const MAX_PAGES: usize = 1000;
        let mut servers = Vec::new();
        for page in 0..MAX_PAGES {
            let path = format!("users?state=ready&offset={}&limit={PAGE}", page * PAGE);
            let bytes = self.call(Method::GET, &path, None).await?;
            let users: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| {
                HubError::BadAnswer(format!("the user list is not a JSON list: {e}"))
            })?;
            for user in &users {
                servers.extend(HubServer::of_user(user));
            }
            if users.len() < PAGE {
                break;
            }
        }
        Ok(servers)
    }

    /// Stops the user's server and deletes the user; a user already gone is fine.
    pub async fn delete_user(&self, name: &str) -> Result<(), HubError> {
        let user = escape_name(name);
        match self
            .call(Method::DELETE, &format!("users/{user}/server"), None)
            .await
        {
            Ok(_)
            | Err(HubError::Status {
                status: 400 | 404, ..
            }) => {}
            Err(err) => return Err(err),
        }
        // A server still stopping makes the hub refuse the delete with 400 for a moment.
        let mut last = None;
        for _ in 0..20 {
            match self
                .call(Method::DELETE, &format!("users/{user}"), None)
                .await
            {
                Ok(_) | Err(HubError::Status { status: 404, .. }) => return Ok(()),
                Err(err @ HubError::Status { status: 400, .. }) => {
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(HubError::ProgressEnded))
    }

    /// Whether the hub API answers (`GET <api>/`, which needs no token), within `timeout`.
    pub async fn healthy(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.client.get(self.api.as_str()).send()).await,
            Ok(Ok(response)) if response.status().is_success()
        )
    }
}

/// The hub's `{"message": ...}`, or the body text, shortened.
fn hub_message(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_the_path_as_binderhub_quotes_them() {
        assert_eq!(escape_name("org-repo-abc12345"), "org-repo-abc12345");
        assert_eq!(escape_name("a b/c@d~e_f.g"), "a%20b%2Fc@d~e_f.g");
    }

    #[test]
    fn the_hub_message_is_preferred_over_the_raw_body() {
        assert_eq!(
            hub_message(br#"{"status":409,"message":"User a already exists"}"#),
            "User a already exists"
        );
        assert_eq!(hub_message(b"  plain  "), "plain");
    }

    #[test]
    fn only_ready_servers_that_name_an_image_count() {
        let user = |json: &str| HubServer::of_user(&serde_json::from_str(json).expect("json"));
        let cases: [(&str, Vec<(&str, &str)>); 5] = [
            (
                r#"{"name": "u1", "servers": {"": {"ready": true, "user_options": {"image": "reg/a:1"}}}}"#,
                vec![("u1", "reg/a:1")],
            ),
            (
                r#"{"name": "u2", "servers": {"": {"ready": false, "pending": "spawn", "user_options": {"image": "reg/a:1"}}}}"#,
                vec![],
            ),
            (
                r#"{"name": "admin", "servers": {"": {"ready": true, "user_options": {}}}}"#,
                vec![],
            ),
            (r#"{"name": "u3", "servers": {}}"#, vec![]),
            (r#"{"servers": {"": {"ready": true}}}"#, vec![]),
        ];
        for (json, expected) in cases {
            let expected: Vec<HubServer> = expected
                .into_iter()
                .map(|(u, i)| HubServer {
                    user: u.into(),
                    image: i.into(),
                })
                .collect();
            assert_eq!(user(json), expected, "{json}");
        }
    }
}

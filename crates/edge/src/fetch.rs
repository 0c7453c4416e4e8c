//! Outbound HTTP: the [`Fetch`] trait the rest of the crate is written against, and its
//! Spin implementation over `spin_sdk::http::send`.
//!
//! Requests and answers are plain `http` types with `Vec<u8>` bodies, the types
//! `bindery_core` builds and parses. Answers are read up to [`MAX_RESPONSE_BYTES`]; a
//! larger one is an error rather than an out-of-memory trap. The Spin runtime refuses a
//! host that `spin.toml` does not list for the component; that comes back as
//! [`FetchError::Denied`] naming the origin, so an operator sees which entry is missing.
//! Error texts name the origin (`scheme://host:port`) only, never a path or query, which
//! may carry a token.
//!
//! Every request carries time limits ([`Limits`], wasi-http's `request-options`): without
//! them a provider, registry or worker that accepts a connection and never answers would
//! hold a launch, a health check or a webhook delivery for the runtime's default of ten
//! minutes.

use std::future::Future;
use std::time::Duration;

use thiserror::Error;

/// The largest answer body read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Time limits of one outbound request: wasi-http's `request-options`. `None` keeps the
/// runtime's default (ten minutes in Spin and `bindery edge`). A request over a limit
/// fails with [`FetchError::Unreachable`] naming the origin and the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To open the connection.
    pub connect: Option<Duration>,
    /// From the request sent to the answer's status and headers.
    pub first_byte: Option<Duration>,
    /// Between two chunks of the answer's body.
    pub between_bytes: Option<Duration>,
}

impl Limits {
    /// Provider APIs and the registry: the answer within half a minute, or the launch
    /// fails with a message naming the host instead of waiting.
    pub const UPSTREAM: Self = Self {
        connect: Some(Duration::from_secs(10)),
        first_byte: Some(Duration::from_secs(30)),
        between_bytes: Some(Duration::from_secs(30)),
    };
    /// The worker API and its event stream. The stream's gaps are the worker's keepalive
    /// interval, which its operator sets, so they have no limit here.
    pub const WORKER: Self = Self {
        connect: Some(Duration::from_secs(10)),
        first_byte: Some(Duration::from_secs(30)),
        between_bytes: None,
    };
    /// `/health`'s checks of the worker and the registry: within the two seconds a
    /// federation's redirector waits for a member's `/health` by default (the worker
    /// answers from its own cache, so only a part that hangs comes near it).
    pub const HEALTH: Self = Self {
        connect: Some(Duration::from_secs(1)),
        first_byte: Some(Duration::from_millis(1500)),
        between_bytes: Some(Duration::from_millis(1500)),
    };
    /// A webhook's prebuild request: a few seconds; GitHub gives a webhook delivery ten
    /// seconds.
    pub const QUICK: Self = Self {
        connect: Some(Duration::from_secs(3)),
        first_byte: Some(Duration::from_secs(5)),
        between_bytes: Some(Duration::from_secs(5)),
    };
}

/// Why an outbound request produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    /// The request could not be sent as built.
    #[error("failed to send a request to {origin}: {reason}")]
    Request {
        /// The request's origin.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The runtime's outbound allow-list refused the host.
    #[error(
        "outbound request to {origin} denied: add it to the component's allowed_outbound_hosts in spin.toml"
    )]
    Denied {
        /// The refused origin.
        origin: String,
    },
    /// Connection, DNS, TLS or protocol failure.
    #[error("failed to reach {origin}: {reason}")]
    Unreachable {
        /// The origin.
        origin: String,
        /// The runtime's error code.
        reason: String,
    },
    /// The answer body is larger than the limit.
    #[error("{origin} answered with more than {limit} bytes")]
    TooLarge {
        /// The origin.
        origin: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The answer body broke off.
    #[error("failed to read the answer of {origin}: {reason}")]
    Body {
        /// The origin.
        origin: String,
        /// The stream error.
        reason: String,
    },
}

/// Sends one request and reads the whole answer.
///
/// The edge functions ([`crate::resolve::resolve_spec`], [`crate::registry::check_image`],
/// [`crate::worker`]) take `&impl Fetch`: components pass `SpinFetch`, native tests a
/// scripted peer (`bindery_edge::testing::ScriptedFetch`, with the `testing` feature).
pub trait Fetch {
    /// Sends `request` (an absolute URI) and returns the answer with its whole body.
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, FetchError>>;

    /// The same client within other time limits (a scripted peer has none to change).
    fn within_limits(&self, limits: Limits) -> Self
    where
        Self: Sized + Clone,
    {
        let _ = limits;
        self.clone()
    }
}

impl<F: Fetch + ?Sized> Fetch for &F {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, FetchError>> {
        (**self).send(request)
    }
}

/// An answer whose body is read chunk by chunk, as it arrives: the worker's event stream,
/// which lasts as long as the launch.
pub trait StreamingBody {
    /// The answer's status code.
    fn status(&self) -> u16;
    /// The next chunk of the body as it arrives; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Result<Vec<u8>, FetchError>>>;
}

/// Sends one request and returns as soon as the status and headers arrive, with the body
/// to read as it comes ([`StreamingBody`]). No size limit: the caller decides when to
/// stop. Components pass `SpinFetch`, native tests `testing::ScriptedFetch`.
pub trait StreamingFetch {
    /// The answer.
    type Response: StreamingBody;
    /// Sends `request` (an absolute URI).
    fn send_streaming(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<Self::Response, FetchError>>;
}

impl<F: StreamingFetch + ?Sized> StreamingFetch for &F {
    type Response = F::Response;
    fn send_streaming(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<Self::Response, FetchError>> {
        (**self).send_streaming(request)
    }
}

/// `scheme://authority` of a URI, for messages (no userinfo, path or query).
pub fn origin(uri: &http::Uri) -> String {
    let authority = uri.authority().map_or("", |a| {
        let a = a.as_str();
        a.rsplit_once('@').map_or(a, |(_, host)| host)
    });
    match uri.scheme_str() {
        Some(scheme) => format!("{scheme}://{authority}"),
        None => authority.to_owned(),
    }
}

/// Builds an `http` header map from wasi-http's list, skipping entries `http` refuses.
pub fn header_map(entries: Vec<(String, Vec<u8>)>) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(target_arch = "wasm32")]
pub use spin::{SpinFetch, StreamingResponse, send, send_streaming};

#[cfg(target_arch = "wasm32")]
mod spin {
    use std::pin::Pin;
    use std::task::Poll;

    use futures::{SinkExt, Stream, StreamExt};
    use spin_sdk::http::conversions::TryIntoOutgoingRequest;
    use spin_sdk::http::{ErrorCode, IncomingResponse};
    use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
    use spin_sdk::wit::wasi::http0_2_0::types::{FutureIncomingResponse, RequestOptions};

    use super::{FetchError, Limits, MAX_RESPONSE_BYTES, StreamingBody, header_map, origin};

    /// [`super::Fetch`] over wasi-http, within `limits`, reading at most `max_body` bytes.
    #[derive(Debug, Clone, Copy)]
    pub struct SpinFetch {
        /// The largest answer body read.
        pub max_body: usize,
        /// The time limits of each request.
        pub limits: Limits,
    }

    impl Default for SpinFetch {
        /// Answers up to [`MAX_RESPONSE_BYTES`], within [`Limits::UPSTREAM`].
        fn default() -> Self {
            Self {
                max_body: MAX_RESPONSE_BYTES,
                limits: Limits::UPSTREAM,
            }
        }
    }

    impl SpinFetch {
        /// The default, within other limits.
        pub fn within(limits: Limits) -> Self {
            Self {
                limits,
                ..Self::default()
            }
        }
    }

    impl super::Fetch for SpinFetch {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, FetchError> {
            let mut response = send_streaming(request, self.limits).await?;
            let mut body = Vec::new();
            while let Some(chunk) = response.next_chunk().await {
                let chunk = chunk?;
                if body.len() + chunk.len() > self.max_body {
                    return Err(FetchError::TooLarge {
                        origin: response.origin.clone(),
                        limit: self.max_body,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            let mut answer = http::Response::new(body);
            *answer.status_mut() = http::StatusCode::from_u16(response.status)
                .unwrap_or(http::StatusCode::BAD_GATEWAY);
            *answer.headers_mut() = std::mem::take(&mut response.headers);
            Ok(answer)
        }

        fn within_limits(&self, limits: Limits) -> Self {
            Self {
                limits,
                max_body: self.max_body,
            }
        }
    }

    impl super::StreamingFetch for SpinFetch {
        type Response = StreamingResponse;
        async fn send_streaming(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<StreamingResponse, FetchError> {
            send_streaming(request, self.limits).await
        }
    }

    /// Sends `request` with [`SpinFetch::default`]: answers up to [`MAX_RESPONSE_BYTES`].
    pub async fn send(
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        super::Fetch::send(&SpinFetch::default(), request).await
    }

    /// An answer whose body is read chunk by chunk, as it arrives (for relaying the
    /// worker's event stream). No size limit: the caller decides when to stop.
    pub struct StreamingResponse {
        /// The status code.
        pub status: u16,
        /// The headers.
        pub headers: http::HeaderMap,
        /// The origin the answer came from, for messages.
        pub origin: String,
        // Declared before `response`: the body stream is a child resource of the response
        // and must be dropped first. Keeping the response alive also keeps wasi-http from
        // cancelling the request while the body is read.
        body: Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>>>>,
        _response: IncomingResponse,
    }

    impl std::fmt::Debug for StreamingResponse {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("StreamingResponse")
                .field("status", &self.status)
                .field("origin", &self.origin)
                .finish_non_exhaustive()
        }
    }

    impl StreamingResponse {
        /// The next chunk of the body as it arrives; `None` at the end.
        pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
            let chunk = self.body.next().await?;
            Some(chunk.map_err(|reason| FetchError::Body {
                origin: self.origin.clone(),
                reason,
            }))
        }
    }

    impl StreamingBody for StreamingResponse {
        fn status(&self) -> u16 {
            self.status
        }

        async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
            StreamingResponse::next_chunk(self).await
        }
    }

    /// Sends `request` within `limits` and returns as soon as the status and headers
    /// arrive.
    pub async fn send_streaming(
        request: http::Request<Vec<u8>>,
        limits: Limits,
    ) -> Result<StreamingResponse, FetchError> {
        let origin = origin(request.uri());
        let failed = |code: ErrorCode| match code {
            ErrorCode::HttpRequestDenied => FetchError::Denied {
                origin: origin.clone(),
            },
            code => FetchError::Unreachable {
                origin: origin.clone(),
                reason: format!("{code:?}"),
            },
        };
        let (outgoing, body) =
            request
                .try_into_outgoing_request()
                .map_err(|e| FetchError::Request {
                    origin: origin.clone(),
                    reason: e.to_string(),
                })?;
        // The body resource is taken before the request is handed over, and written after.
        let sink = body.as_ref().map(|_| outgoing.take_body());
        let pending = outgoing_handler::handle(outgoing, Some(options(limits))).map_err(&failed)?;
        if let (Some(mut sink), Some(body)) = (sink, body) {
            sink.send(body).await.map_err(|e| FetchError::Body {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        }
        let response = arrival(&pending).await.map_err(&failed)?;
        let status = response.status();
        let headers = header_map(response.headers().entries());
        let body = response
            .take_body_stream()
            .map(|chunk| chunk.map_err(|e| e.to_debug_string()));
        Ok(StreamingResponse {
            status,
            headers,
            origin,
            body: Box::pin(body),
            _response: response,
        })
    }

    /// wasi-http request options for `limits`. A limit the runtime does not take is left
    /// at its default rather than failing the request.
    fn options(limits: Limits) -> RequestOptions {
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(limits.connect.map(nanos));
        let _ = options.set_first_byte_timeout(limits.first_byte.map(nanos));
        let _ = options.set_between_bytes_timeout(limits.between_bytes.map(nanos));
        options
    }

    /// Waits in spin-sdk's executor for the answer to a request handed to the runtime.
    async fn arrival(pending: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
        // Dropped before `pending` (declared after it by the caller): the registered
        // pollable is a child of the pending answer.
        let mut registration: Option<spin_executor::CancelOnDropToken> = None;
        futures::future::poll_fn(|context| match pending.get() {
            Some(Ok(answer)) => Poll::Ready(answer),
            Some(Err(())) => Poll::Ready(Err(ErrorCode::InternalError(Some(
                "the answer was already taken".into(),
            )))),
            None => {
                let token = spin_executor::push_waker_and_get_token(
                    pending.subscribe(),
                    context.waker().clone(),
                );
                // The registration of an earlier poll, if any, is cancelled here.
                drop(registration.replace(token.into()));
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_hide_userinfo_paths_and_queries() {
        let uri: http::Uri = "https://user:pw@registry.example.org:5000/v2/x?token=abc"
            .parse()
            .unwrap();
        assert_eq!(origin(&uri), "https://registry.example.org:5000");
        let uri: http::Uri = "http://127.0.0.1:8585/api".parse().unwrap();
        assert_eq!(origin(&uri), "http://127.0.0.1:8585");
    }

    #[test]
    fn header_maps_keep_repeats_and_skip_invalid_entries() {
        let map = header_map(vec![
            ("WWW-Authenticate".into(), b"Basic".to_vec()),
            ("www-authenticate".into(), b"Bearer realm=x".to_vec()),
            ("bad name".into(), b"x".to_vec()),
            ("x-ok".into(), b"bad\nvalue".to_vec()),
        ]);
        assert_eq!(map.get_all("www-authenticate").iter().count(), 2);
        assert_eq!(map.len(), 2);
    }
}

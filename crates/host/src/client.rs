//! The one pooled HTTP(S) client behind every component's outbound calls.
//!
//! Connections are kept and reused across requests and components (a fresh TCP and TLS
//! handshake per call would cap a component at a few thousand calls a second). The guest's
//! `request-options` timeouts apply where it sets them, the defaults below where it does not.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Timeouts applied to a call when the guest's request options leave them unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundTimeouts {
    /// Connecting, including TLS.
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// Between two frames of the response body.
    pub between_bytes: Duration,
}

impl Default for OutboundTimeouts {
    fn default() -> Self {
        // A relayed event stream may be quiet for minutes between events.
        Self {
            connect: Duration::from_secs(30),
            first_byte: Duration::from_secs(600),
            between_bytes: Duration::from_secs(600),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, WasiBody>;

/// The one pooled HTTP(S) client every component's calls go through.
#[derive(Clone)]
pub struct OutboundClient {
    client: HttpsClient,
    timeouts: OutboundTimeouts,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl OutboundClient {
    /// A client trusting the webpki roots, speaking HTTP/1.1 with a shared pool.
    pub fn new(timeouts: OutboundTimeouts) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Self { client, timeouts })
    }

    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let options = options.unwrap_or_default();
        // A pooled client cannot time the connect of one request apart from its wait for the
        // response head, so both bounds apply to the two together.
        let head_deadline = options.connect_timeout.unwrap_or(self.timeouts.connect)
            + options
                .first_byte_timeout
                .unwrap_or(self.timeouts.first_byte);
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(self.timeouts.between_bytes);
        let response = match tokio::time::timeout(head_deadline, self.client.request(request)).await
        {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(Err(err)) => return Err(client_error(&err)),
            Ok(Ok(response)) => response,
        };
        Ok(response.map(|body| IdleTimeoutBody::new(body, between_bytes).boxed_unsync()))
    }
}

/// Maps the client's error to the closest `wasi:http` error code.
fn client_error(err: &hyper_util::client::legacy::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let connect = err.is_connect();
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_) => HttpError::TlsCertificateError,
                _ => HttpError::TlsProtocolError,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return HttpError::ConnectionTimeout,
                _ => {}
            }
        }
        if connect && cause.to_string().contains("dns error") {
            return HttpError::DnsError {
                rcode: Some("address not resolved".to_owned()),
                info_code: None,
            };
        }
        source = cause.source();
    }
    if connect {
        HttpError::ConnectionRefused
    } else {
        HttpError::HttpProtocolError
    }
}

/// A response body that fails when no frame arrives for `idle`.
struct IdleTimeoutBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeoutBody {
    fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(HttpError::Hyper(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

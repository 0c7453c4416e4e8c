//! Scripted HTTP peers: a real HTTP/1.1 server on port 0 whose answers come from a
//! closure, with every request logged. Recorded provider APIs and the scripted worker are
//! built on it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// One request as the peer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: whole, or streamed chunk by chunk through a channel.
#[derive(Debug)]
pub enum Answer {
    /// Status, headers, body.
    Whole(u16, Vec<(String, String)>, Vec<u8>),
    /// Status, headers, and a channel whose chunks are sent as they come.
    Stream(u16, Vec<(String, String)>, mpsc::UnboundedReceiver<Vec<u8>>),
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Answer {
        Answer::Whole(
            status,
            vec![("content-type".into(), "application/json".into())],
            value.to_string().into_bytes(),
        )
    }

    /// A plain answer with headers.
    pub fn with(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        Answer::Whole(
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.into(),
        )
    }
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A running peer; stops when dropped.
pub struct Peer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("addr", &self.addr).finish()
    }
}

impl Peer {
    /// Starts a peer answering with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = &mut stop_rx => return,
                };
                let (handler, log) = (handler.clone(), log2.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (handler, log) = (handler.clone(), log.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let at = std::time::Instant::now();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                at,
                            };
                            let answer = handler(&seen);
                            log.lock().unwrap().push(seen);
                            Ok::<_, Infallible>(to_response(answer))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Peer {
            addr,
            log,
            _stop: stop_tx,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests had a URI starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri.starts_with(prefix))
            .count()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A response body fed chunk by chunk from a channel; it ends when the sender is dropped.
struct ChannelBody(mpsc::UnboundedReceiver<Vec<u8>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(Bytes::from(c)))))
    }
}

fn to_response(answer: Answer) -> hyper::Response<Body> {
    let (status, headers, body): (u16, Vec<(String, String)>, Body) = match answer {
        Answer::Whole(status, headers, body) => {
            (status, headers, Full::new(Bytes::from(body)).boxed())
        }
        Answer::Stream(status, headers, rx) => (status, headers, ChannelBody(rx).boxed()),
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        response.headers_mut().append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}

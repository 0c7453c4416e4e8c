//! A small HTTP client for the tests, and an event-stream reader built on `bindery-core`'s
//! decoder.

use std::time::Duration;

use bindery_core::events::Event;
use bindery_core::sse::{SseDecoder, SseMessage};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer read whole.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Got {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole answer (30 s at most).
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Got {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let fut = async {
        let resp = client()
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        Got {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {url} timed out"))
}

/// `GET url`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    send("GET", url, headers, Vec::new()).await
}

/// One event of a stream, with its id.
#[derive(Debug, Clone)]
pub struct Received {
    /// The SSE id, if any.
    pub id: Option<String>,
    /// The event.
    pub event: Event,
}

/// Opens an event stream and reads events until one of `phase`s is terminal, the stream
/// ends, `stop_after` events arrived, or 60 s passed. Returns the status, the events and
/// the number of comments seen.
pub async fn events(
    url: &str,
    headers: &[(&str, &str)],
    stop_after: Option<usize>,
) -> (u16, Vec<Received>, usize) {
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let fut = async {
        let resp = client()
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut decoder = SseDecoder::new();
        let (mut out, mut comments) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for message in decoder.feed(data) {
                match message {
                    SseMessage::Event { id, data, .. } => {
                        let event = Event::from_json(&data)
                            .unwrap_or_else(|e| panic!("bad event {data}: {e}"));
                        let terminal = event.phase.is_terminal();
                        out.push(Received { id, event });
                        if terminal || stop_after.is_some_and(|n| out.len() >= n) {
                            return (status, out, comments);
                        }
                    }
                    SseMessage::Comment(_) => comments += 1,
                    SseMessage::Overflow => panic!("event over the decoder's limit"),
                }
            }
        }
        (status, out, comments)
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("GET {url} timed out"))
}

/// What [`events_and_tail`] read: the events up to the first terminal one, the raw bytes
/// the stream sent after it, and whether the stream ended by itself.
#[derive(Debug)]
pub struct Tail {
    /// The events, the terminal one last.
    pub events: Vec<Received>,
    /// Everything after the terminal event, as sent.
    pub after: Vec<u8>,
    /// Whether the server ended the stream within the deadline.
    pub ended: bool,
}

/// Opens an event stream, reads its events up to the first terminal one, then goes on
/// reading without closing, as a client that never closes would, until the server ends
/// the stream or `deadline` passes.
pub async fn events_and_tail(url: &str, headers: &[(&str, &str)], deadline: Duration) -> Tail {
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .unwrap_or_else(|_| panic!("GET {url} timed out"))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut body = resp.into_body();
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    // Bytes of the chunk that held the terminal event, after it.
    let mut after = Vec::new();
    let reading = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if events
                .last()
                .is_some_and(|r: &Received| r.event.phase.is_terminal())
            {
                after.extend_from_slice(data);
                continue;
            }
            // Feed byte by byte once a terminal event may be in this chunk, so that
            // what follows it is kept as sent.
            for (i, byte) in data.iter().enumerate() {
                for message in decoder.feed(std::slice::from_ref(byte)) {
                    if let SseMessage::Event { id, data, .. } = message {
                        let event = Event::from_json(&data)
                            .unwrap_or_else(|e| panic!("bad event {data}: {e}"));
                        events.push(Received { id, event });
                    }
                }
                if events.last().is_some_and(|r| r.event.phase.is_terminal()) {
                    after.extend_from_slice(&data[i + 1..]);
                    break;
                }
            }
        }
        true
    };
    let ended = tokio::time::timeout(deadline, reading)
        .await
        .unwrap_or(false);
    Tail {
        events,
        after,
        ended,
    }
}

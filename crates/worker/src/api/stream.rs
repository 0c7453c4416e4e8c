//! The event streams of launches and builds (`GET /api/v1/{launches,builds}/<id>/events`):
//! `text/event-stream`, every event numbered, `Last-Event-ID` replaying what a client
//! missed, `:keepalive` comments on a quiet stream, and the end of the response after the
//! log's final event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bindery_core::events::Event;
use bindery_core::sse::{self, SseEvent};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::watch;

use super::{Body, error};
use crate::events::EventLog;
use crate::server::AppState;

/// Where a follower is in a log.
struct Follow {
    log: Arc<EventLog>,
    wake: watch::Receiver<()>,
    after: u64,
    keepalive: Duration,
    done: bool,
}

/// The next chunk of the stream: the events not yet sent, or a keepalive, or the end.
async fn next_chunk(mut f: Follow) -> Option<(Result<Frame<Bytes>, Infallible>, Follow)> {
    if f.done {
        return None;
    }
    loop {
        // Marking the wake-up seen before reading means no append can slip in between.
        f.wake.borrow_and_update();
        let page = f.log.read_after(f.after);
        if let Some(&(last, _)) = page.events.last() {
            let mut chunk = String::new();
            for (seq, event) in &page.events {
                chunk.push_str(&encode_event(*seq, event));
            }
            f.after = last;
            f.done = page.finished;
            return Some((Ok(Frame::data(Bytes::from(chunk))), f));
        }
        if page.finished {
            return None;
        }
        tokio::select! {
            changed = f.wake.changed() => if changed.is_err() { return None },
            () = tokio::time::sleep(f.keepalive) => {
                return Some((Ok(Frame::data(Bytes::from_static(sse::KEEPALIVE.as_bytes()))), f));
            }
        }
    }
}

pub(super) fn events(
    state: &Arc<AppState>,
    req: &Request<Incoming>,
    log: Option<Arc<EventLog>>,
    kind: &str,
) -> Response<Body> {
    let Some(log) = log else {
        return error(StatusCode::NOT_FOUND, &format!("no such {kind}"));
    };
    let after = match req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim))
    {
        None | Some(Ok("")) => 0,
        Some(Ok(text)) => match text.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must be an event number",
                );
            }
        },
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID must be an event number",
            );
        }
    };
    let follow = Follow {
        wake: log.subscribe(),
        log,
        after,
        keepalive: state.config.keepalive_interval,
        done: false,
    };
    let body = StreamBody::new(futures::stream::unfold(follow, next_chunk));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// One numbered event as it goes on the stream.
fn encode_event(seq: u64, event: &Event) -> String {
    sse::encode(&SseEvent::new(event.to_json()).with_id(seq.to_string()))
}

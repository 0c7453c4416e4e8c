//! A test component for `bindery-host`: it answers with what the host showed it, so the
//! host's integration tests can check routing headers, variables, key-value storage,
//! outbound HTTP, streaming and failure handling against a real spin-sdk 5.2 component.
//!
//! Routes are read from `spin-path-info`, so the component can be mounted anywhere:
//! `/headers`, `/var/<name>`, `/kv/<key>` (GET reads, PUT writes the default store),
//! `/fetch?url=<url>`, `/stream`, `/slow`, `/silent` (sets no response) and `/trap`.

use std::time::Duration;

use serde_json::{Map, Value, json};
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, Request, Response,
    ResponseOutparam, SendError,
};
use spin_sdk::{http_component, key_value, variables};

/// Chunks `/stream` writes, and the pause after each.
const STREAM_CHUNKS: usize = 4;
const STREAM_PAUSE: Duration = Duration::from_millis(300);
/// How long `/slow` takes before it answers.
const SLOW_PAUSE: Duration = Duration::from_millis(1500);

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let headers: Vec<(String, Vec<u8>)> = req.headers().entries();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let path_info = header("spin-path-info").unwrap_or_default();
    let method = req.method();
    let path_with_query = req.path_with_query().unwrap_or_default();
    let query = path_with_query
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();

    if path_info == "/stream" {
        stream(out);
        return;
    }
    if path_info == "/silent" {
        // Returning without setting the outparam is the failure the host must report.
        drop(out);
        return;
    }
    if path_info == "/trap" {
        panic!("the probe was asked to trap");
    }
    if path_info == "/spin" {
        // Runs until the host stops it: the request deadline must end it.
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    let (status, body) = if path_info == "/headers" {
        let spin: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    Value::String(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        (
            200,
            json!({ "method": method.to_string(), "path": path_with_query, "headers": spin }),
        )
    } else if let Some(name) = path_info.strip_prefix("/var/") {
        match variables::get(name) {
            Ok(value) => (200, json!({ "value": value })),
            Err(err) => (404, json!({ "error": format!("{err:?}") })),
        }
    } else if let Some(key) = path_info.strip_prefix("/kv/") {
        let body = req.into_body().await.unwrap_or_default();
        (200, kv(&method, key, body))
    } else if path_info == "/fetch" {
        let url = query.strip_prefix("url=").unwrap_or_default();
        (200, fetch(url).await)
    } else if path_info == "/slow" {
        std::thread::sleep(SLOW_PAUSE);
        (200, json!({ "slept_ms": SLOW_PAUSE.as_millis() as u64 }))
    } else {
        (
            404,
            json!({ "error": format!("no probe route for {path_info:?}") }),
        )
    };
    respond(
        out,
        status,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
}

fn kv(method: &Method, key: &str, body: Vec<u8>) -> Value {
    let store = match key_value::Store::open_default() {
        Ok(store) => store,
        Err(err) => return json!({ "error": format!("{err:?}") }),
    };
    match method {
        Method::Put => match store.set(key, &body) {
            Ok(()) => json!({ "stored": key }),
            Err(err) => json!({ "error": format!("{err:?}") }),
        },
        Method::Delete => match store.delete(key) {
            Ok(()) => json!({ "deleted": key }),
            Err(err) => json!({ "error": format!("{err:?}") }),
        },
        _ => match store.get(key) {
            Ok(Some(value)) => {
                json!({ "value": String::from_utf8_lossy(&value), "keys": store.get_keys().unwrap_or_default() })
            }
            Ok(None) => json!({ "value": null }),
            Err(err) => json!({ "error": format!("{err:?}") }),
        },
    }
}

async fn fetch(url: &str) -> Value {
    let request = Request::get(url).build();
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(resp) => {
            json!({ "status": *resp.status(), "body": String::from_utf8_lossy(resp.body()) })
        }
        Err(SendError::Http(code)) => json!({ "error": format!("{code:?}") }),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

/// Writes the body in pieces with pauses between them, flushing each, as an SSE relay does.
fn stream(out: ResponseOutparam) {
    let response = OutgoingResponse::new(header_fields("text/event-stream"));
    let _ = response.set_status_code(200);
    let Ok(body) = response.body() else { return };
    out.set(response);
    let Ok(stream) = body.write() else { return };
    for n in 0..STREAM_CHUNKS {
        if stream
            .blocking_write_and_flush(format!("data: chunk {n}\n\n").as_bytes())
            .is_err()
        {
            return;
        }
        std::thread::sleep(STREAM_PAUSE);
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

async fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: Vec<u8>) {
    let response = OutgoingResponse::new(header_fields(content_type));
    let _ = response.set_status_code(status);
    if let Err(err) = out.set_with_body(response, body).await {
        eprintln!("probe: failed to write the response: {err}");
    }
}

fn header_fields(content_type: &str) -> Fields {
    Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
        .unwrap_or_else(|_| Fields::new())
}

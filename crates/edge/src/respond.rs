//! Small helpers for answers, conditional requests and the clock.
//!
//! Handlers build `http::Response<Vec<u8>>`, which native tests inspect directly and
//! `send` (wasm only) writes to Spin.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

/// The header telling tests and operators whether an answer came from the cache:
/// `hit`, `miss` or `revalidated`.
pub const CACHE_HEADER: &str = "x-bindery-cache";

/// The `cache-control` of immutable assets (launch badges).
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The current unix time in seconds (0 if the clock is before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An answer with `status`, `content-type` and `body`, and `x-content-type-options:
/// nosniff`: every body says what it is (JSON holding a repository's name, a badge, a
/// page), and no browser may read it as something else.
pub fn with_body(
    status: u16,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Response<Vec<u8>> {
    let mut response = Response::new(body.into());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(NOSNIFF.0, HeaderValue::from_static(NOSNIFF.1));
    response
}

/// `x-content-type-options: nosniff`, on every answer with a body.
pub const NOSNIFF: (http::HeaderName, &str) = (
    http::HeaderName::from_static("x-content-type-options"),
    "nosniff",
);

/// A `text/plain` answer; a newline is added when the text has none.
pub fn text(status: u16, message: &str) -> Response<Vec<u8>> {
    let mut body = message.to_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    with_body(status, "text/plain; charset=utf-8", body)
}

/// A JSON answer.
pub fn json(status: u16, value: &impl Serialize) -> Response<Vec<u8>> {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", body),
        Err(e) => text(500, &format!("failed to serialise the answer: {e}")),
    }
}

/// A JSON error answer, `{"message": ...}`.
pub fn json_error(status: u16, message: &str) -> Response<Vec<u8>> {
    json(status, &serde_json::json!({ "message": message }))
}

/// An SVG answer with a strong `etag` and `cache_control`; `304 Not Modified` without a
/// body when `if_none_match` matches the tag.
pub fn svg(
    svg: String,
    etag: &str,
    cache_control: &'static str,
    if_none_match: Option<&str>,
) -> Response<Vec<u8>> {
    let mut response = if if_none_match.is_some_and(|h| etag_matches(h, etag)) {
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        with_body(200, "image/svg+xml", svg)
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    response
}

/// `404 Not Found`.
pub fn not_found() -> Response<Vec<u8>> {
    text(404, "not found")
}

/// `405 Method Not Allowed` with the `allow` header.
pub fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut response = text(405, &format!("method not allowed: use {allow}"));
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Drops the body of an answer to a `HEAD` request, keeping status and headers.
pub fn for_head(mut response: Response<Vec<u8>>) -> Response<Vec<u8>> {
    response.body_mut().clear();
    response
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2):
/// `*`, or any listed tag equal to it once `W/` prefixes are ignored.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let wanted = bare(etag);
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| bare(t) == wanted)
}

/// The value of header `name` as text, if present and visible ASCII.
pub fn header<'a, B>(request: &'a http::Request<B>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Sends a whole answer through `out`: status and headers, with `content-length` set to
/// the body's length when there is a body, then the body.
///
/// The response is set before the body is written, so a body larger than the host's
/// buffer streams out instead of waiting for a reader that is not there yet. Each chunk
/// goes in one `blocking-write-and-flush`: a badge or a resolve answer is a single call,
/// where a `Sink` over the stream costs a check, a write and a flush apiece.
///
/// A `content-length` the handler set is replaced: the host fails an answer whose body
/// does not match it, after its status has gone out. An empty body goes without one,
/// so a `HEAD` answer (see [`for_head`]) has none: the host refuses a declared length
/// that no body bytes follow. When the host refuses the headers, the status or the body,
/// a plain `500` goes out instead, and if even that is refused, nothing.
#[cfg(target_arch = "wasm32")]
pub fn send(out: spin_sdk::http::ResponseOutparam, response: Response<Vec<u8>>) {
    if let Err((out, problem)) = send_once(out, response) {
        eprintln!("bindery-edge: {problem}; answering 500 instead");
        if let Err((_, problem)) = send_once(out, text(500, &problem)) {
            eprintln!("bindery-edge: {problem}; no answer sent");
        }
    }
}

/// [`send`] without the fallback: gives `out` back, with what went wrong, when the host
/// refused the answer before it was set.
#[cfg(target_arch = "wasm32")]
fn send_once(
    out: spin_sdk::http::ResponseOutparam,
    response: Response<Vec<u8>>,
) -> Result<(), (spin_sdk::http::ResponseOutparam, String)> {
    use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse};

    /// The most `blocking-write-and-flush` takes at once (WASI 0.2).
    const MAX_WRITE: usize = 4096;

    let (parts, body) = response.into_parts();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(parts.headers.len() + 1);
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_LENGTH {
            entries.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
    if !body.is_empty() {
        entries.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    let fields = match Fields::from_list(&entries) {
        Ok(fields) => fields,
        Err(e) => return Err((out, format!("the host refused the answer's headers: {e:?}"))),
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(parts.status.as_u16()).is_err() {
        return Err((out, format!("the host refused status {}", parts.status)));
    }
    let Ok(outgoing_body) = outgoing.body() else {
        return Err((out, "the host gave no body for the answer".to_owned()));
    };
    out.set(outgoing);
    if !body.is_empty() {
        let Ok(stream) = outgoing_body.write() else {
            eprintln!("bindery-edge: the answer's body stream was already taken");
            return Ok(());
        };
        for chunk in body.chunks(MAX_WRITE) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                // The client went away; nothing is left to tell it.
                eprintln!("bindery-edge: failed to write an answer: {e:?}");
                return Ok(());
            }
        }
    }
    if let Err(e) = OutgoingBody::finish(outgoing_body, None) {
        eprintln!("bindery-edge: failed to finish an answer: {e:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_weakly_in_lists_and_star() {
        let tag = "\"abc\"";
        assert!(etag_matches("\"abc\"", tag));
        assert!(etag_matches("W/\"abc\"", tag));
        assert!(etag_matches("\"x\", \"abc\"", tag));
        assert!(etag_matches("*", tag));
        assert!(!etag_matches("\"abd\"", tag));
        assert!(!etag_matches("abc", tag));
        assert!(!etag_matches("", tag));
    }

    #[test]
    fn svg_answers_revalidate() {
        let full = svg("<svg/>".into(), "\"t\"", IMMUTABLE, None);
        assert_eq!(full.status(), 200);
        assert_eq!(full.headers()["content-type"], "image/svg+xml");
        assert_eq!(full.headers()["etag"], "\"t\"");
        assert_eq!(full.body(), b"<svg/>");
        let not_modified = svg("<svg/>".into(), "\"t\"", IMMUTABLE, Some("\"t\""));
        assert_eq!(not_modified.status(), 304);
        assert!(not_modified.body().is_empty());
        assert_eq!(not_modified.headers()["cache-control"], IMMUTABLE);
        assert_eq!(not_modified.headers()["etag"], "\"t\"");
    }

    #[test]
    fn small_answers() {
        assert_eq!(text(400, "bad").body(), b"bad\n");
        let r = method_not_allowed("GET, HEAD");
        assert_eq!(
            (r.status().as_u16(), &r.headers()["allow"]),
            (405, &HeaderValue::from_static("GET, HEAD"))
        );
        let r = json_error(401, "no");
        assert_eq!(r.body(), br#"{"message":"no"}"#);
        assert!(for_head(text(200, "x")).body().is_empty());
        assert!(now() > 1_600_000_000);
        for r in [
            text(404, "x"),
            json_error(400, "x"),
            svg("<svg/>".into(), "\"t\"", IMMUTABLE, None),
        ] {
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        }
    }
}

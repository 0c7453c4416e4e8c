//! Reading the incoming request into an `http::Request<Vec<u8>>`.
//!
//! spin-sdk can convert the request itself, but it buffers any body whole and panics on
//! a URI `http` refuses. `read_request` (wasm only) reads every header and at most
//! `max_body` bytes of body, for the webhook; `read_head` reads the URI and the headers a
//! component names and no body, for the components that answer only `GET` and `HEAD`.
//! Both turn every problem into a [`RequestError`] the component answers with a 4xx.

use thiserror::Error;

/// Why the request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The body is larger than the limit.
    #[error("request body is too large: at most {limit} bytes are accepted")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body broke off.
    #[error("failed to read the request body: {0}")]
    Body(String),
    /// The method or URI is not something `http` accepts.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl RequestError {
    /// The status to answer with: 413 for a body over the limit, 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Body(_) | Self::Invalid(_) => 400,
        }
    }
}

/// Whether a request certainly has no body worth reading: a `GET` or `HEAD` without a
/// non-zero `Content-Length`. Reading an empty body still costs a stream and a poll per
/// request. A chunked `GET` body (the host strips `Transfer-Encoding`) has no meaning for
/// any route and is not read.
pub fn bodiless(method: &http::Method, headers: &http::HeaderMap) -> bool {
    let empty = headers
        .get(http::header::CONTENT_LENGTH)
        .is_none_or(|len| len.as_bytes() == b"0");
    (method == http::Method::GET || method == http::Method::HEAD) && empty
}

/// Reads `request`, refusing a body over `max_body` bytes as soon as it is exceeded.
///
/// The URI is absolute when the runtime gives scheme and authority (Spin does), and keeps
/// the path exactly as sent (still percent-encoded), which spec parsing needs.
#[cfg(target_arch = "wasm32")]
pub async fn read_request(
    request: spin_sdk::http::IncomingRequest,
    max_body: usize,
) -> Result<http::Request<Vec<u8>>, RequestError> {
    use futures::StreamExt;

    let method = method(&request)?;
    let uri = request_uri(&request, true)?;
    let headers = crate::fetch::header_map(request.headers().entries());
    let mut body = Vec::new();
    if bodiless(&method, &headers) {
        return Ok(assemble(method, uri, headers, body));
    }
    let mut stream = request.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RequestError::Body(e.to_debug_string()))?;
        if body.len() + chunk.len() > max_body {
            return Err(RequestError::TooLarge { limit: max_body });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(assemble(method, uri, headers, body))
}

/// An `http::Request` of these parts.
#[cfg(target_arch = "wasm32")]
fn assemble(
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Vec<u8>,
) -> http::Request<Vec<u8>> {
    let mut out = http::Request::new(body);
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    out
}

/// The request's URI: absolute when `absolute` and the runtime gives scheme and authority
/// (Spin does), else the path with its query. The path is kept exactly as sent.
#[cfg(target_arch = "wasm32")]
fn request_uri(
    request: &spin_sdk::http::IncomingRequest,
    absolute: bool,
) -> Result<http::Uri, RequestError> {
    use spin_sdk::http::Scheme;

    let path = request.path_with_query().unwrap_or_else(|| "/".into());
    let uri = match absolute
        .then(|| request.scheme().zip(request.authority()))
        .flatten()
    {
        Some((scheme, authority)) => {
            let scheme = match scheme {
                Scheme::Http => "http".to_owned(),
                Scheme::Https => "https".to_owned(),
                Scheme::Other(other) => other,
            };
            format!("{scheme}://{authority}{path}")
        }
        None => path,
    };
    uri.parse()
        .map_err(|_| RequestError::Invalid("the request URI does not parse".into()))
}

/// The request's method as `http` knows it.
#[cfg(target_arch = "wasm32")]
fn method(request: &spin_sdk::http::IncomingRequest) -> Result<http::Method, RequestError> {
    use spin_sdk::http::Method;

    Ok(match request.method() {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Patch => http::Method::PATCH,
        Method::Options => http::Method::OPTIONS,
        Method::Connect => http::Method::CONNECT,
        Method::Trace => http::Method::TRACE,
        Method::Other(other) => http::Method::from_bytes(other.as_bytes())
            .map_err(|_| RequestError::Invalid("unknown method".into()))?,
    })
}

/// Reads only what a handler of bodiless requests needs: the method, the URI (absolute
/// when `absolute`, as [`read_request`] gives it, else the path with its query; still
/// percent-encoded) and the headers named in `names`. The body is never read, and the
/// request has an empty one.
///
/// Every header and URI part crosses from the host into the guest's memory, so a
/// handler that needs one header asks for that one: a badge is answered in a few
/// microseconds, and copying the client's and Spin's dozen headers would double it.
#[cfg(target_arch = "wasm32")]
pub fn read_head(
    request: &spin_sdk::http::IncomingRequest,
    absolute: bool,
    names: &[http::HeaderName],
) -> Result<http::Request<Vec<u8>>, RequestError> {
    let method = method(request)?;
    let uri = request_uri(request, absolute)?;
    let mut headers = http::HeaderMap::new();
    if !names.is_empty() {
        let fields = request.headers();
        for name in names {
            for value in fields.get(name.as_str()) {
                if let Ok(value) = http::HeaderValue::from_bytes(&value) {
                    headers.append(name.clone(), value);
                }
            }
        }
    }
    Ok(assemble(method, uri, headers, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gets_and_heads_without_a_length_skip_the_body() {
        let with = |pairs: &[(&str, &str)]| {
            let mut headers = http::HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value).unwrap(),
                );
            }
            headers
        };
        let none = with(&[]);
        assert!(bodiless(&http::Method::GET, &none));
        assert!(bodiless(&http::Method::HEAD, &none));
        assert!(bodiless(
            &http::Method::GET,
            &with(&[("content-length", "0")])
        ));
        assert!(!bodiless(
            &http::Method::GET,
            &with(&[("content-length", "12")])
        ));
        assert!(!bodiless(&http::Method::POST, &none));
        assert!(!bodiless(
            &http::Method::PUT,
            &with(&[("content-length", "0")])
        ));
    }
}

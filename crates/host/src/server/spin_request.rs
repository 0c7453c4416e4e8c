//! The request as Spin hands it to a component: no hop-by-hop headers, no `spin-*`
//! headers from the client, and Spin's routing headers with the values [`crate::routes`]
//! computes.

use std::net::SocketAddr;

use http::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::body::Incoming;

use crate::routes::RouteMatch;

/// Hop-by-hop headers, which describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// The routing headers Spin gives a component.
const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const SPIN_PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const SPIN_MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const SPIN_RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const SPIN_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const SPIN_BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");

/// Why a request cannot be handed to a component (answered with `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadRequest {
    /// Neither the URI nor a `Host` header names the authority.
    #[error("the request has no Host header")]
    NoHost,
    /// The `Host` header is not an authority.
    #[error("the request's Host header is malformed")]
    MalformedHost,
}

/// Prepares a request as Spin hands it to a component: no hop-by-hop headers, no `spin-*`
/// headers from the client, and the `spin-*` routing headers. The URI stays as hyper read
/// it: the component's authority comes from it or, for the usual origin-form request,
/// from `Host`, which is checked here.
pub(super) fn spin_request(
    req: Request<Incoming>,
    route: &RouteMatch<'_>,
    client_addr: SocketAddr,
) -> Result<Request<Incoming>, BadRequest> {
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or(BadRequest::NoHost)?;
    if http::uri::Authority::try_from(authority.as_str()).is_err() {
        return Err(BadRequest::MalformedHost);
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let full_url = format!("http://{authority}{path_and_query}");

    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    headers.reserve(8 + route.params.len());
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    set(SPIN_FULL_URL, &full_url);
    set(SPIN_PATH_INFO, &route.path_info);
    set(SPIN_MATCHED_ROUTE, route.matched_route);
    set(SPIN_RAW_COMPONENT_ROUTE, route.raw_route);
    set(SPIN_COMPONENT_ROUTE, route.component_route());
    set(SPIN_BASE_PATH, "/");
    set(SPIN_CLIENT_ADDR, &client_addr.to_string());
    for (name, value) in &route.params {
        if let Ok(name) = HeaderName::try_from(format!("spin-path-match-{name}")) {
            set(name, value);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// Removes the headers that describe one connection, including those `Connection` names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names instead of a lookup per name.
    if !headers
        .keys()
        .any(|name| name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name))
    {
        return;
    }
    // Names listed in `Connection` are hop-by-hop too; most requests have none.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    // Framing is the server's business: hyper sets it for the body it sends.
    headers.remove(header::TRANSFER_ENCODING);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, X-Trace"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-trace", "1"),
            ("content-type", "text/plain"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }
}

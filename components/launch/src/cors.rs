//! `cors_allow_origin` on the launch component's answers (the rule is
//! `bindery_core::cors`): every route BinderHub sends it on, `/build`'s event stream
//! included, so that thebe and Jupyter Book can start a launch from their own pages.
//!
//! The resolve API always answers `*` (it is Bindery's public API and carries nothing
//! private); `/versions` answers `*` unless `cors_allow_origin` is set, as BinderHub.

use bindery_core::cors::CorsOrigins;
use bindery_edge::config::CORS_ALLOW_ORIGIN;
use bindery_edge::respond;
use http::{HeaderValue, Request, Response};

use crate::env::Env;

/// `access-control-allow-origin`.
pub const ALLOW_ORIGIN: &str = "access-control-allow-origin";

/// The CORS headers for `request` under `origins`: `Access-Control-Allow-Origin` when
/// its origin may read the answer, `Vary: Origin` when that depends on the origin.
pub fn headers<B>(origins: &CorsOrigins, request: &Request<B>) -> Vec<(&'static str, String)> {
    let (allowed, varies) = origins.allow(respond::header(request, "origin"));
    let mut headers = Vec::new();
    if let Some(value) = allowed {
        headers.push((ALLOW_ORIGIN, value));
    }
    if varies {
        headers.push(("vary", "Origin".to_owned()));
    }
    headers
}

/// The configured `cors_allow_origin` (one variable read); `None` when unset or not
/// valid (a route that reads the whole configuration names the bad variable).
pub fn configured<F>(env: &Env<'_, F>) -> Option<CorsOrigins> {
    env.variables
        .load(&[CORS_ALLOW_ORIGIN])
        .ok()
        .and_then(|cfg| cfg.cors_allow_origin)
}

/// Sets the CORS headers of `origins` on `response`, replacing any it had.
pub fn apply<B>(response: &mut Response<Vec<u8>>, origins: &CorsOrigins, request: &Request<B>) {
    let map = response.headers_mut();
    map.remove(ALLOW_ORIGIN);
    for (name, value) in headers(origins, request) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.append(name, value);
        }
    }
}

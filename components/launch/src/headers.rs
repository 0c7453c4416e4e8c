//! The security headers of the HTML pages (home, loading, error pages): a
//! `Content-Security-Policy` that lets run only the page's own inline script (by hash,
//! computed when the component is built), `Referrer-Policy: no-referrer` (the loading page
//! sends the browser to the server with its token in the URL) and, like every answer,
//! `X-Content-Type-Options: nosniff` (set by `bindery_edge::respond`).
//!
//! Only page answers pass through here: the badge and the resolve API, the hot paths, pay
//! nothing for it.

use bindery_core::csp::{FrameAncestors, origin_source};
use bindery_edge::ConfigError;
use bindery_edge::config::{BADGE_BASE_URL, FRAME_ANCESTORS, PUBLIC_URL};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::client::{base_url, stream_base};
use crate::env::Env;
use crate::pages;

/// The hash sources of the pages' inline script and style (`build.rs`).
mod hashes {
    include!(concat!(env!("OUT_DIR"), "/page_hashes.rs"));
}

pub use hashes::{HOME_SCRIPT, LOADING_SCRIPT, STYLE};

/// `content-security-policy`.
pub const CSP: HeaderName = HeaderName::from_static("content-security-policy");
/// `referrer-policy`.
pub const REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");

/// Which page an answer is: each runs its own script, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The home page: `home.js`, which fetches nothing.
    Home,
    /// The loading page: `loading.js`, which opens the event stream of `/build` and then
    /// navigates to the server (a navigation, which `connect-src` does not govern).
    Loading,
    /// An error page: no script at all.
    Error,
}

impl Page {
    /// The page a route's answer is: its own page when it succeeded, an error page else.
    pub fn of(home: bool, status: StatusCode) -> Self {
        match (home, status.is_success()) {
            (true, true) => Page::Home,
            (false, true) => Page::Loading,
            (_, false) => Page::Error,
        }
    }
}

/// The policy of `page`. `connect` is the origin the loading page's event stream goes to
/// when it is named in full (the configured `public_url`'s); `'self'` covers the rest.
pub fn policy(page: Page, frame_ancestors: &FrameAncestors, connect: Option<&str>) -> String {
    let (script, connect) = match page {
        Page::Home => (HOME_SCRIPT, "'none'".to_owned()),
        Page::Loading => (
            LOADING_SCRIPT,
            connect.map_or_else(|| "'self'".to_owned(), |o| format!("'self' {o}")),
        ),
        Page::Error => ("'none'", "'none'".to_owned()),
    };
    // `default-src 'none'`: no images, fonts, frames or workers; the home page's form is
    // sent by its script (a navigation), never submitted, hence `form-action 'none'`.
    format!(
        "default-src 'none'; script-src {script}; style-src {STYLE}; connect-src {connect}; \
         form-action 'none'; base-uri 'none'; object-src 'none'; frame-ancestors {frame_ancestors}"
    )
}

/// Adds the page headers to `response` when it is an HTML page. A `frame_ancestors` that
/// does not parse turns the page into an error page naming the variable.
pub fn protect<F>(
    response: Response<Vec<u8>>,
    home: bool,
    request: &Request<Vec<u8>>,
    env: &Env<'_, F>,
) -> Response<Vec<u8>> {
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if !is_html {
        return response;
    }
    let page = Page::of(home, response.status());
    // The loading page's event stream goes to `public_url` when one is set (or to the
    // federation the page came through); a broken `public_url` or `badge_base_url` makes
    // the page fall back to the request's own origin, and so does this.
    let cfg = match env
        .variables
        .load(&[FRAME_ANCESTORS, PUBLIC_URL, BADGE_BASE_URL])
    {
        Err(ConfigError::Invalid { name, .. }) if name != FRAME_ANCESTORS => {
            env.variables.load(&[FRAME_ANCESTORS])
        }
        loaded => loaded,
    };
    let (mut response, page, frame_ancestors, base) = match cfg {
        Ok(cfg) => (
            response,
            page,
            cfg.frame_ancestors.clone(),
            stream_base(request, Some(&cfg)),
        ),
        Err(e) => {
            let base = base_url(request, None);
            let error = pages::error(500, &e.to_string(), &base);
            let response = bindery_edge::respond::with_body(500, "text/html; charset=utf-8", error);
            (response, Page::Error, FrameAncestors::default(), base)
        }
    };
    let policy = policy(page, &frame_ancestors, origin_source(&base));
    let headers = response.headers_mut();
    // The policy is built from validated parts; should it ever not be a header value, the
    // page goes out without being framed by anyone rather than without a policy.
    let value = HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    headers.insert(CSP, value);
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

//! The launch component's routes: [`parse`] reads the raw (still percent-encoded) request
//! path, [`handle`] answers, one module per route.
//!
//! Specs must be read before any decoding, as BinderHub re-reads the raw path so that
//! `%2F` inside a GitLab namespace stays a part of the spec.

pub mod build;
pub mod federation;
pub mod health;
pub mod relay;
pub mod resolve;
pub mod ui;

use bindery_edge::Fetch;
use bindery_edge::respond;
use http::{HeaderValue, Method, Request, Response};

use crate::cors;
use crate::env::Env;
use crate::headers;

/// A request of the launch component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the home page.
    Home,
    /// `GET /v2/<provider>/<spec>`: the loading page.
    Loading {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /build/<provider>/<spec>`: the event stream.
    Build {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /api/v1/resolve/<provider>/<spec>`.
    Resolve {
        /// Provider prefix.
        provider: String,
        /// Raw spec, trailing slashes removed.
        spec: String,
    },
    /// `GET /repo/<user>/<repo>[/<path>]`: a Binder 1 link.
    Legacy {
        /// The path after `/repo/`.
        rest: String,
    },
    /// `GET /health`.
    Health,
    /// `GET /versions`.
    Versions,
    /// `GET /api/repoproviders`: BinderHub's provider descriptions.
    RepoProviders,
    /// `GET /about`.
    About,
    /// `GET /metrics`.
    Metrics,
    /// Anything else.
    NotFound,
}

/// The methods every route takes.
pub const ALLOWED: &str = "GET, HEAD, OPTIONS";

/// What the component sends.
#[derive(Debug)]
pub enum Answer {
    /// A whole answer.
    Whole(Response<Vec<u8>>),
    /// The event stream of `GET /build/<provider>/<spec>`: the entry sends
    /// [`build::STREAM_HEADERS`] and runs [`build::run`], which writes as it goes.
    Stream {
        /// Provider prefix.
        provider: String,
        /// Raw spec.
        spec: String,
    },
    /// A whole answer, after which the entry checks the federation's members that are
    /// due ([`federation::refresh`]).
    ThenRefresh(Response<Vec<u8>>),
}

/// Answers `request` (its URI, and the headers the component reads).
pub async fn handle<F: Fetch + Clone>(request: &Request<Vec<u8>>, env: &Env<'_, F>) -> Answer {
    if let Some(answer) = federation::handle(request, env).await {
        return answer;
    }
    let head = request.method() == Method::HEAD;
    let route = parse(request.uri().path());
    // The resolve API always answers `*`; every other answer carries `cors_allow_origin`
    // (the event stream in its own headers, `build::open`).
    let with_cors = !matches!(route, Route::Resolve { .. });
    let mut response = match (request.method(), route) {
        // BinderHub answers a CORS preflight with an empty 200 on every route.
        (&Method::OPTIONS, _) => preflight(),
        (m, _) if m != Method::GET && m != Method::HEAD => {
            return Answer::Whole(respond::method_not_allowed(ALLOWED));
        }
        // A `HEAD` learns what a `GET` would answer; it must not start a launch.
        (_, Route::Build { .. }) if head => {
            let mut response = Response::new(Vec::new());
            for (name, value) in build::STREAM_HEADERS {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            response
        }
        (_, Route::Build { provider, spec }) => return Answer::Stream { provider, spec },
        (_, route) => answer(request, route, head, env).await,
    };
    if let Some(origins) = with_cors.then(|| cors::configured(env)).flatten() {
        cors::apply(&mut response, &origins, request);
    }
    Answer::Whole(response)
}

async fn answer<F: Fetch>(
    request: &Request<Vec<u8>>,
    route: Route,
    head: bool,
    env: &Env<'_, F>,
) -> Response<Vec<u8>> {
    let response = match route {
        // Banned networks get nothing but `/health` and `/versions`, which federations
        // poll; `/build` and the resolve API check on their own, with their own answers.
        // The pages (and their error pages) carry the page headers; nothing else does.
        Route::Home => headers::protect(ui::home(request, env), true, request, env),
        Route::Loading { provider, spec } => {
            let page = ui::loading(request, &provider, &spec, env);
            headers::protect(page, false, request, env)
        }
        Route::Legacy { rest } => {
            headers::protect(ui::legacy(request, &rest, env), false, request, env)
        }
        Route::Resolve { provider, spec } => resolve::resolve(request, &provider, &spec, env).await,
        Route::About => headers::protect(ui::about(request, env), false, request, env),
        Route::RepoProviders => {
            let mut answer = respond::json(200, &bindery_core::provider::repo_providers());
            answer.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            answer
        }
        Route::Health => health::health(env).await,
        Route::Versions => health::versions(env).await,
        Route::Metrics => health::metrics(),
        Route::Build { .. } | Route::NotFound => respond::not_found(),
    };
    let mut response = if head {
        respond::for_head(response)
    } else {
        response
    };
    response.headers_mut().insert(
        "access-control-allow-headers",
        HeaderValue::from_static("cache-control"),
    );
    response
}

pub(crate) fn preflight() -> Response<Vec<u8>> {
    let mut preflight = Response::new(Vec::new());
    let headers = preflight.headers_mut();
    headers.insert(http::header::ALLOW, HeaderValue::from_static(ALLOWED));
    for (name, value) in [
        ("access-control-allow-headers", "cache-control"),
        ("access-control-allow-methods", ALLOWED),
        // As the answers of the resolve API and /versions; `cors_allow_origin`, when
        // set, replaces it on every route but the resolve API.
        ("access-control-allow-origin", "*"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    preflight
}

fn provider_and_spec(rest: &str) -> Option<(String, String)> {
    let (provider, spec) = rest.split_once('/')?;
    let spec = spec.trim_end_matches('/');
    (!provider.is_empty() && !spec.is_empty()).then(|| (provider.to_string(), spec.to_string()))
}

/// Parses a raw path (no query string).
pub fn parse(path: &str) -> Route {
    let split = |prefix: &str| path.strip_prefix(prefix).and_then(provider_and_spec);
    if path == "/" || path.is_empty() {
        Route::Home
    } else if path == "/health" || path == "/health/" {
        Route::Health
    } else if path == "/versions" || path == "/versions/" {
        Route::Versions
    } else if path == "/api/repoproviders" || path == "/api/repoproviders/" {
        Route::RepoProviders
    } else if path == "/about" || path == "/about/" {
        Route::About
    } else if path == "/metrics" || path == "/metrics/" {
        Route::Metrics
    } else if let Some((provider, spec)) = split("/v2/") {
        Route::Loading { provider, spec }
    } else if let Some((provider, spec)) = split("/build/") {
        Route::Build { provider, spec }
    } else if let Some((provider, spec)) = split("/api/v1/resolve/") {
        Route::Resolve { provider, spec }
    } else if let Some(rest) = path.strip_prefix("/repo/") {
        Route::Legacy {
            rest: rest.to_string(),
        }
    } else {
        Route::NotFound
    }
}

/// The value of query parameter `name`, percent-decoded (`+` as space), if present.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths_map_to_routes_keeping_encoded_specs() {
        let cases = [
            ("/", Route::Home),
            ("/health", Route::Health),
            ("/versions", Route::Versions),
            ("/api/repoproviders", Route::RepoProviders),
            ("/about", Route::About),
            ("/metrics", Route::Metrics),
            (
                "/v2/gl/group%2Fproject/main/",
                Route::Loading {
                    provider: "gl".into(),
                    spec: "group%2Fproject/main".into(),
                },
            ),
            (
                "/build/gh/a/b/HEAD",
                Route::Build {
                    provider: "gh".into(),
                    spec: "a/b/HEAD".into(),
                },
            ),
            (
                "/api/v1/resolve/zenodo/10.5281/zenodo.1",
                Route::Resolve {
                    provider: "zenodo".into(),
                    spec: "10.5281/zenodo.1".into(),
                },
            ),
            (
                "/repo/a/b/x.ipynb",
                Route::Legacy {
                    rest: "a/b/x.ipynb".into(),
                },
            ),
            ("/v2/gh", Route::NotFound),
            ("/build/gh/", Route::NotFound),
            ("/elsewhere", Route::NotFound),
        ];
        for (path, route) in cases {
            assert_eq!(parse(path), route, "{path}");
        }
    }

    #[test]
    fn query_parameters_decode() {
        assert_eq!(
            query_param("urlpath=%2Flab%2Ftree%2Fa+b&x=1", "urlpath").as_deref(),
            Some("/lab/tree/a b")
        );
        assert_eq!(query_param("x=1", "urlpath"), None);
        assert_eq!(query_param("labpath", "labpath").as_deref(), Some(""));
    }
}

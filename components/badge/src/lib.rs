//! The badge component: Bindery's badges as SVG, answered from the edge.
//!
//! - `GET /badge.svg`, `GET /badge_logo.svg`: the "launch | binder" badges (and
//!   `/assets/images/badge.svg`, the old mybinder.org path of `/badge.svg` that READMEs
//!   still link). They never change for a given build of Bindery, so they are served
//!   `immutable` for a year with a strong ETag (`304` on a matching `If-None-Match`).
//! - `GET /favicon.ico`, `/favicon_building.ico`, `/favicon_success.ico`,
//!   `/favicon_fail.ico`: BinderHub's favicons (`bindery_core::favicon`), immutable too.
//! - `GET /status/<provider>/<spec>.svg`: a live "binder | ready / building / not built /
//!   failed" badge, `public, max-age=30`, with an ETag.
//!
//! The badge component has no outbound hosts at all (`allowed_outbound_hosts = []` in
//! `spin.toml`): badges are fetched by every README view, and must never spend the
//! provider's rate limit or wait on the worker. So the live badge reads only the key-value
//! store the launch and webhook components write:
//!
//! 1. the resolved ref of the link: a full commit in the link itself, else the ref cache
//!    entry, fresh or expired (the latest commit the edge knows; a webhook or the next
//!    launch refreshes it). No cached ref: "not built", since nothing is known;
//! 2. the image for that ref: "ready" when the cache says the image is present;
//! 3. otherwise the last build status the launch and webhook components recorded
//!    (`LastStatus`, kept an hour): "building", "failed", or "ready" for "built". The
//!    worker's `GET /api/v1/builds?image=` would confirm "building", but the badge may not
//!    call it; the status entry expires instead, so a build lost with its worker does not
//!    show "building" for longer than an hour;
//! 4. nothing known: "not built".
//!
//! Answers carry `x-bindery-status` (the state) and `x-bindery-cache` (`hit` when a
//! resolved ref was known, `miss` otherwise) for tests and operators.

use bindery_core::badge::{self, BuildStatus};
use bindery_core::cache::{LastStatus, Lookup};
use bindery_core::favicon::Favicon;
use bindery_core::{Spec, image_name};
use bindery_edge::cache::Cache;
use bindery_edge::config::EdgeConfig;
use bindery_edge::resolve::from_cache;
use bindery_edge::respond::{self, CACHE_HEADER, IMMUTABLE};
use http::{HeaderValue, Method, Request, Response};

/// The `cache-control` of live badges.
pub const LIVE: &str = "public, max-age=30";

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/badge.svg`.
    Badge,
    /// `/badge_logo.svg`.
    BadgeLogo,
    /// One of BinderHub's favicons.
    Favicon(Favicon),
    /// `/status/<provider>/<spec>.svg`: the raw `<provider>/<spec>`.
    Status(String),
    /// Anything else.
    NotFound,
}

/// Maps a path (still percent-encoded) to a route.
pub fn route(path: &str) -> Route {
    if let Some(icon) = Favicon::from_path(path) {
        return Route::Favicon(icon);
    }
    match path {
        "/badge.svg" | "/assets/images/badge.svg" => Route::Badge,
        "/badge_logo.svg" => Route::BadgeLogo,
        _ => match path
            .strip_prefix("/status/")
            .and_then(|rest| rest.strip_suffix(".svg"))
        {
            Some(spec) if spec.contains('/') => Route::Status(spec.to_owned()),
            _ => Route::NotFound,
        },
    }
}

/// Answers a request. `config` is loaded lazily: the launch badges never need it.
pub fn handle<B>(
    request: &Request<B>,
    config: impl FnOnce() -> Result<EdgeConfig, bindery_edge::ConfigError>,
    cache: &Cache<'_>,
    now: u64,
) -> Response<Vec<u8>> {
    let route = route(request.uri().path());
    if route == Route::NotFound {
        return respond::not_found();
    }
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        return respond::method_not_allowed("GET, HEAD");
    }
    let if_none_match = respond::header(request, "if-none-match");
    let response = match route {
        Route::Badge => launch(prerendered::BADGE, prerendered::BADGE_ETAG, if_none_match),
        Route::BadgeLogo => launch(
            prerendered::BADGE_LOGO,
            prerendered::BADGE_LOGO_ETAG,
            if_none_match,
        ),
        Route::Favicon(icon) => favicon(icon, if_none_match),
        Route::Status(spec) => match config() {
            Ok(cfg) => status(&spec, &cfg, cache, now, if_none_match),
            Err(e) => respond::text(500, &e.to_string()),
        },
        Route::NotFound => respond::not_found(),
    };
    if head {
        respond::for_head(response)
    } else {
        response
    }
}

/// The launch badges and their ETags, rendered by `build.rs` with `bindery_core::badge`.
mod prerendered {
    include!(concat!(env!("OUT_DIR"), "/launch_badges.rs"));
}

fn launch(svg: &str, etag: &str, if_none_match: Option<&str>) -> Response<Vec<u8>> {
    respond::svg(svg.to_owned(), etag, IMMUTABLE, if_none_match)
}

fn favicon(icon: Favicon, if_none_match: Option<&str>) -> Response<Vec<u8>> {
    let ico = icon.ico();
    let etag = badge::etag_of_bytes(&ico);
    let mut response = if if_none_match.is_some_and(|h| respond::etag_matches(h, &etag)) {
        let mut r = Response::new(Vec::new());
        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
        r
    } else {
        respond::with_body(200, "image/x-icon", ico)
    };
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static(IMMUTABLE));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert("etag", value);
    }
    response
}

/// What the live badge shows for `spec`, and whether a resolved ref was known.
pub fn live_status(spec: &Spec, prefix: &str, cache: &Cache<'_>, now: u64) -> (BuildStatus, bool) {
    let resolved_ref = if spec.is_pinned() {
        spec.unresolved_ref().map(str::to_owned)
    } else {
        cache
            .cached_ref(spec, now)
            .and_then(Lookup::any)
            .and_then(|entry| from_cache(spec, &entry))
            .map(|r| r.resolved_ref)
    };
    let Some(resolved_ref) = resolved_ref else {
        return (BuildStatus::NotBuilt, false);
    };
    let Some(slug) = spec.build_slug(Some(&resolved_ref)) else {
        return (BuildStatus::NotBuilt, false);
    };
    let image = image_name(prefix, &slug, &resolved_ref);
    if let Some(Lookup::Fresh(p)) = cache.image_presence(&image, now)
        && p.present
    {
        return (BuildStatus::Ready, true);
    }
    let shown = match cache.status(&image, now).map(|s| s.status) {
        Some(LastStatus::Building) => BuildStatus::Building,
        Some(LastStatus::Failed) => BuildStatus::Failed,
        Some(LastStatus::Built) => BuildStatus::Ready,
        None => BuildStatus::NotBuilt,
    };
    (shown, true)
}

fn status(
    raw: &str,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    now: u64,
    if_none_match: Option<&str>,
) -> Response<Vec<u8>> {
    let spec = match Spec::parse_path(raw, &cfg.providers) {
        Ok(spec) => spec,
        Err(e) => {
            // Still an image, so a README shows what is wrong instead of a broken icon.
            let svg = badge::badge("binder", "invalid link", "lightgrey");
            let mut response = respond::with_body(400, "image/svg+xml", svg);
            if let Ok(value) = HeaderValue::from_str(&e.to_string().replace(['\r', '\n'], " ")) {
                response.headers_mut().insert("x-bindery-error", value);
            }
            return response;
        }
    };
    let prefix = match cfg.image_prefix() {
        Ok(prefix) => prefix,
        Err(e) => return respond::text(500, &e.to_string()),
    };
    let (state, known) = live_status(&spec, prefix, cache, now);
    let svg = badge::status_badge(state);
    let etag = badge::etag(&svg);
    let mut response = respond::svg(svg, &etag, LIVE, if_none_match);
    let headers = response.headers_mut();
    headers.insert("x-bindery-status", HeaderValue::from_static(state.label()));
    headers.insert(
        CACHE_HEADER,
        HeaderValue::from_static(if known { "hit" } else { "miss" }),
    );
    response
}

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod tests {
    use bindery_core::cache::{CacheTtl, CachedRef, RefSource};
    use bindery_edge::cache::{MemoryKv, spec_ref_key};
    use bindery_edge::config::IMAGE_PREFIX;

    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";
    const PREFIX: &str = "127.0.0.1:5000/binder-";

    fn cfg() -> Result<EdgeConfig, bindery_edge::ConfigError> {
        EdgeConfig::from_source(|name| Ok((name == IMAGE_PREFIX).then(|| PREFIX.to_owned())))
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> Request<Vec<u8>> {
        let mut builder = Request::get(format!("http://127.0.0.1:3000{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Vec::new()).unwrap()
    }

    fn remember_ref(cache: &Cache<'_>, path: &str, expires_at: u64) -> Spec {
        let spec = Spec::parse_path(path, &Default::default()).unwrap();
        cache.put(
            &spec_ref_key(&spec),
            &CachedRef {
                resolved_ref: SHA.into(),
                resolved_spec: spec.resolved_spec(SHA),
                ref_url: spec.ref_url(SHA),
                build_slug: spec.build_slug(Some(SHA)).unwrap(),
                etag: None,
                source: RefSource::Api,
                stored_at: NOW - 100,
                expires_at,
            },
        );
        spec
    }

    fn image(spec: &Spec) -> String {
        image_name(PREFIX, &spec.build_slug(Some(SHA)).unwrap(), SHA)
    }

    #[test]
    fn routes() {
        assert_eq!(route("/badge.svg"), Route::Badge);
        assert_eq!(route("/badge_logo.svg"), Route::BadgeLogo);
        assert_eq!(
            route("/status/gh/o/r/main.svg"),
            Route::Status("gh/o/r/main".into())
        );
        assert_eq!(
            route("/status/gl/g%2Fp/main.svg"),
            Route::Status("gl/g%2Fp/main".into())
        );
        assert_eq!(route("/assets/images/badge.svg"), Route::Badge);
        assert_eq!(route("/favicon_fail.ico"), Route::Favicon(Favicon::Fail));
        for path in [
            "/",
            "/badge.png",
            "/favicon_other.ico",
            "/status/gh.svg",
            "/status/gh/o/r/main",
            "/badge.svg/x",
        ] {
            assert_eq!(route(path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn the_prerendered_launch_badges_are_the_cores_rendering() {
        for (svg, etag, rendered) in [
            (
                prerendered::BADGE,
                prerendered::BADGE_ETAG,
                badge::launch_badge(),
            ),
            (
                prerendered::BADGE_LOGO,
                prerendered::BADGE_LOGO_ETAG,
                badge::launch_badge_logo(),
            ),
        ] {
            assert_eq!(svg, rendered);
            assert_eq!(etag, badge::etag(&rendered));
        }
        assert_ne!(prerendered::BADGE, prerendered::BADGE_LOGO);
    }

    #[test]
    fn the_old_badge_path_and_the_favicons_are_served_immutable() {
        let cache = Cache::disabled();
        let old = handle(&get("/assets/images/badge.svg", &[]), cfg, &cache, NOW);
        let new = handle(&get("/badge.svg", &[]), cfg, &cache, NOW);
        assert_eq!(old.status(), 200);
        assert_eq!(old.body(), new.body());
        assert_eq!(old.headers()["etag"], new.headers()["etag"]);
        for icon in [
            Favicon::Default,
            Favicon::Building,
            Favicon::Success,
            Favicon::Fail,
        ] {
            let path = match icon {
                Favicon::Default => "/favicon.ico",
                Favicon::Building => "/favicon_building.ico",
                Favicon::Success => "/favicon_success.ico",
                Favicon::Fail => "/favicon_fail.ico",
            };
            let got = handle(&get(path, &[]), cfg, &cache, NOW);
            assert_eq!(got.status(), 200, "{path}");
            assert_eq!(got.headers()["content-type"], "image/x-icon");
            assert_eq!(got.headers()["cache-control"], IMMUTABLE);
            assert_eq!(got.body(), &icon.ico());
            let etag = got.headers()["etag"].to_str().unwrap().to_owned();
            let again = handle(&get(path, &[("if-none-match", &etag)]), cfg, &cache, NOW);
            assert_eq!(again.status(), 304);
            assert!(again.body().is_empty());
        }
    }

    #[test]
    fn launch_badges_are_immutable_and_revalidate() {
        let cache = Cache::disabled();
        let first = handle(&get("/badge_logo.svg", &[]), cfg, &cache, NOW);
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()["content-type"], "image/svg+xml");
        assert_eq!(first.headers()["cache-control"], IMMUTABLE);
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert!(String::from_utf8_lossy(first.body()).starts_with("<svg"));
        let again = handle(
            &get("/badge_logo.svg", &[("if-none-match", &etag)]),
            cfg,
            &cache,
            NOW,
        );
        assert_eq!(again.status(), 304);
        assert!(again.body().is_empty());
        let plain = handle(
            &get("/badge.svg", &[("if-none-match", &etag)]),
            cfg,
            &cache,
            NOW,
        );
        assert_eq!(plain.status(), 200, "a different badge, a different tag");
        // The launch badges never read the configuration.
        let broken = || -> Result<EdgeConfig, _> {
            Err(bindery_edge::ConfigError::Missing {
                name: "x",
                hint: "y",
            })
        };
        assert_eq!(
            handle(&get("/badge.svg", &[]), broken, &cache, NOW).status(),
            200
        );
    }

    #[test]
    fn methods_and_unknown_paths() {
        let cache = Cache::disabled();
        let post = Request::post("http://h/badge.svg")
            .body(Vec::<u8>::new())
            .unwrap();
        let r = handle(&post, cfg, &cache, NOW);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, HEAD");
        assert_eq!(handle(&get("/nope", &[]), cfg, &cache, NOW).status(), 404);
        let head = Request::head("http://h/badge.svg")
            .body(Vec::<u8>::new())
            .unwrap();
        let r = handle(&head, cfg, &cache, NOW);
        assert_eq!(r.status(), 200);
        assert!(r.body().is_empty());
        assert!(r.headers().contains_key("etag"));
    }

    #[test]
    fn live_badge_states() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let ttl = CacheTtl::default();
        let state = |path: &str| {
            let r = handle(&get(path, &[]), cfg, &cache, NOW);
            assert_eq!(r.headers()["cache-control"], LIVE);
            (
                r.headers()["x-bindery-status"].to_str().unwrap().to_owned(),
                r.headers()["x-bindery-cache"].to_str().unwrap().to_owned(),
            )
        };
        assert_eq!(
            state("/status/gh/o/r/main.svg"),
            ("not built".into(), "miss".into())
        );

        // An expired ref entry still names the latest known commit.
        let spec = remember_ref(&cache, "gh/o/r/main", NOW - 1);
        assert_eq!(
            state("/status/gh/o/r/main.svg"),
            ("not built".into(), "hit".into())
        );
        cache.put_status(&image(&spec), LastStatus::Building, NOW, &ttl);
        assert_eq!(state("/status/gh/o/r/main.svg").0, "building");
        cache.put_status(&image(&spec), LastStatus::Failed, NOW, &ttl);
        assert_eq!(state("/status/gh/o/r/main.svg").0, "failed");
        cache.put_present(&image(&spec), None, NOW, &ttl);
        assert_eq!(
            state("/status/gh/o/r/main.svg").0,
            "ready",
            "present beats failed"
        );

        // A pinned link needs no ref entry.
        assert_eq!(state(&format!("/status/gh/o/r/{SHA}.svg")).0, "ready");
        // The status entry expires: "building" does not last forever.
        let other = remember_ref(&cache, "gh/o/other/main", NOW + 100);
        cache.put_status(&image(&other), LastStatus::Building, NOW - 3600, &ttl);
        assert_eq!(state("/status/gh/o/other/main.svg").0, "not built");
    }

    #[test]
    fn live_badges_revalidate_and_bad_links_still_get_an_image() {
        let cache = Cache::disabled();
        let first = handle(&get("/status/gh/o/r/main.svg", &[]), cfg, &cache, NOW);
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = handle(
            &get("/status/gh/o/r/main.svg", &[("if-none-match", &etag)]),
            cfg,
            &cache,
            NOW,
        );
        assert_eq!(again.status(), 304);
        let bad = handle(&get("/status/gh/only-one.svg", &[]), cfg, &cache, NOW);
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.headers()["content-type"], "image/svg+xml");
        assert!(
            bad.headers()["x-bindery-error"]
                .to_str()
                .unwrap()
                .contains("user/repo/ref")
        );
        let unknown = handle(&get("/status/nope/x/y.svg", &[]), cfg, &cache, NOW);
        assert_eq!(unknown.status(), 400);
    }

    #[test]
    fn a_missing_image_prefix_is_a_500_naming_it() {
        let cache = Cache::disabled();
        let none = || EdgeConfig::from_source(|_| Ok(None));
        let r = handle(&get("/status/gh/o/r/main.svg", &[]), none, &cache, NOW);
        assert_eq!(r.status(), 500);
        assert!(String::from_utf8_lossy(r.body()).contains("image_prefix"));
    }
}

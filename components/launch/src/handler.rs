//! The handlers that talk to Spin. Each reads the request, asks `bindery-edge` (which asks
//! `bindery-core`) and answers; the event stream answers as it goes.

use bindery_core::cache::LastStatus;
use bindery_core::events::{Event, Phase};
use bindery_core::launch::{self, MISSING_ACCEPT};
use bindery_core::provider::{ProviderId, Spec};
use bindery_core::resolve::Outcome;
use bindery_core::sse::{self, SseDecoder, SseEvent, SseMessage};
use bindery_core::worker_api::{LAUNCHES_PATH, LaunchRequest};
use bindery_core::{image, policy};
use bindery_edge::cache::Cache;
use bindery_edge::config::EdgeConfig;
use bindery_edge::fetch::{Limits, SpinFetch, send_streaming};
use bindery_edge::respond::{self, CACHE_HEADER};
use bindery_edge::{
    FromCache, check_image, check_registry, forget_image, mark_built, presence_from_cache,
    resolve_from_cache, resolve_spec, resolve_upstream, worker,
};
use futures::SinkExt;
use http::{Request, Response};
use serde_json::json;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

use crate::routes::{self, Route, query_param};
use crate::{ids, pages};

/// The request headers any route reads: the event stream's `Accept` and `Last-Event-ID`,
/// and the client address Spin passes for the ban rules.
const HEADERS: [http::HeaderName; 4] = [
    http::header::ACCEPT,
    http::HeaderName::from_static("last-event-id"),
    http::HeaderName::from_static("spin-client-addr"),
    http::HeaderName::from_static("x-forwarded-for"),
];

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    // Every route is a `GET` or `HEAD`: no body, and only the headers named here.
    let request = match bindery_edge::incoming::read_head(&incoming, true, &HEADERS) {
        Ok(r) => r,
        Err(e) => return respond::send(out, respond::text(e.status_code(), &e.to_string())),
    };
    // An event stream lasts minutes; the request resource is not needed for it.
    drop(incoming);
    let path = request.uri().path().to_string();
    let route = routes::parse(&path);
    // BinderHub answers a CORS preflight with an empty 200 on every route.
    if request.method() == http::Method::OPTIONS {
        let mut preflight = Response::new(Vec::new());
        let headers = preflight.headers_mut();
        headers.insert(http::header::ALLOW, http::HeaderValue::from_static(ALLOWED));
        for (name, value) in [
            ("access-control-allow-headers", "cache-control"),
            ("access-control-allow-methods", ALLOWED),
            // As the answers of the resolve API and /versions.
            ("access-control-allow-origin", "*"),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
        return respond::send(out, preflight);
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return respond::send(out, respond::method_not_allowed(ALLOWED));
    }
    let response = match route {
        // A `HEAD` learns what a `GET` would answer; it must not start a launch.
        Route::Build { .. } if request.method() == http::Method::HEAD => {
            let mut head = Response::new(Vec::new());
            for (name, value) in STREAM_HEADERS {
                head.headers_mut()
                    .insert(name, http::HeaderValue::from_static(value));
            }
            head
        }
        Route::Build { provider, spec } => {
            return build_stream(&request, &provider, &spec, out).await;
        }
        // Banned networks get nothing but `/health` and `/versions`, which federations
        // poll; `/build` and the resolve API check on their own, with their own answers.
        Route::Home => refused_network(&request)
            .unwrap_or_else(|| html(200, pages::home(&base_url(&request, None)))),
        Route::Loading { provider, spec } => {
            refused_network(&request).unwrap_or_else(|| loading(&request, &provider, &spec))
        }
        Route::Resolve { provider, spec } => resolve_api(&request, &provider, &spec).await,
        Route::Legacy { rest } => refused_network(&request).unwrap_or_else(|| {
            launch::legacy_redirect(&rest).map_or_else(respond::not_found, |to| redirect(&to))
        }),
        Route::Health => health().await,
        Route::Versions => versions(),
        Route::NotFound => respond::not_found(),
    };
    let mut response = if request.method() == http::Method::HEAD {
        respond::for_head(response)
    } else {
        response
    };
    response.headers_mut().insert(
        "access-control-allow-headers",
        http::HeaderValue::from_static("cache-control"),
    );
    respond::send(out, response);
}

/// The methods every route takes.
const ALLOWED: &str = "GET, HEAD, OPTIONS";

/// The answer to a client in a banned network (`ban_networks`), if this one is: an error
/// page naming the network's label. A `ban_networks` that does not parse refuses too,
/// naming the variable.
fn refused_network(request: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
    let base = base_url(request, None);
    let names = [
        bindery_edge::config::BAN_NETWORKS,
        bindery_edge::config::TRUSTED_PROXIES,
    ];
    let message = match EdgeConfig::load_declared(&names) {
        Ok(cfg) => {
            let ip = client_ip(request, &cfg)?;
            policy::ip_banned_message(cfg.ban_networks.matching(ip)?)
        }
        Err(e) => return Some(html(500, pages::error(500, &e.to_string(), &base))),
    };
    Some(html(403, pages::error(403, &message, &base)))
}

/// The launch component's configuration: the variables it declares in `spin.toml`.
fn load_config() -> Result<EdgeConfig, bindery_edge::ConfigError> {
    EdgeConfig::load_declared(bindery_edge::config::LAUNCH_VARIABLES)
}

fn html(status: u16, body: String) -> Response<Vec<u8>> {
    respond::with_body(status, "text/html; charset=utf-8", body)
}

fn redirect(location: &str) -> Response<Vec<u8>> {
    let mut response = respond::text(302, "redirecting");
    if let Ok(v) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}

/// The public base URL: the configured one, else the request's own scheme and host.
fn base_url(request: &Request<Vec<u8>>, cfg: Option<&EdgeConfig>) -> String {
    if let Some(url) = cfg.and_then(|c| c.public_url.clone()) {
        return format!("{}/", url.trim_end_matches('/'));
    }
    let uri = request.uri();
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}/"),
        _ => "/".into(),
    }
}

/// The client's address: Spin's `spin-client-addr` (`ip:port`), or, when that is one of
/// the `trusted_proxies`, the address its `X-Forwarded-For` names.
fn client_ip(request: &Request<Vec<u8>>, cfg: &EdgeConfig) -> Option<std::net::IpAddr> {
    let addr = respond::header(request, "spin-client-addr")?;
    let peer = addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .ok()
        .or_else(|| addr.parse().ok())?;
    // Every line, even one holding bytes that are not ASCII: a client's own garbage must
    // not hide the entry its proxy appended to the same line.
    let lines: Vec<String> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let forwarded: Vec<&str> = lines.iter().map(String::as_str).collect();
    Some(policy::client_address(
        peer,
        &forwarded,
        &cfg.trusted_proxies,
    ))
}

fn loading(request: &Request<Vec<u8>>, provider: &str, raw_spec: &str) -> Response<Vec<u8>> {
    let cfg = load_config().ok();
    let base = base_url(request, cfg.as_ref());
    let Ok(provider_id) = ProviderId::parse(provider) else {
        return html(
            404,
            pages::error(
                404,
                &format!("No provider found for prefix {provider}"),
                &base,
            ),
        );
    };
    if !provider_id.ui_route_matches(raw_spec) {
        return html(
            404,
            pages::error(404, "This is not a valid link for that provider", &base),
        );
    }
    let settings = cfg
        .as_ref()
        .map(|c| c.providers.clone())
        .unwrap_or_default();
    let spec = match Spec::parse(provider_id, raw_spec, &settings) {
        Ok(s) => s,
        Err(e) => return html(400, pages::error(400, &e.to_string(), &base)),
    };
    let query = request.uri().query().unwrap_or_default();
    let launch_path = match launch::launch_path(
        query_param(query, "urlpath").as_deref(),
        query_param(query, "labpath").as_deref(),
        query_param(query, "filepath").as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return html(400, pages::error(400, &e.to_string(), &base)),
    };
    // People read the repository, not its escaped spec: `http://host/repo.git (main)`
    // rather than `http%3A%2F%2Fhost%2Frepo.git/main`.
    let shown = pages::repository_label(&spec.repo_url(), spec.unresolved_ref());
    let title = format!("{}: {shown}", provider_id.display_name());
    let share = match query {
        "" => format!("{base}v2/{provider}/{}", spec.raw()),
        q => format!("{base}v2/{provider}/{}?{q}", spec.raw()),
    };
    html(
        200,
        pages::loading(&pages::Loading {
            title: &title,
            spec: &shown,
            build_url: &format!("{base}build/{provider}/{}", spec.raw()),
            launch_path: &launch_path,
            share_url: &share,
            base_url: &base,
        }),
    )
}

/// The answer of `GET /api/v1/resolve/...`. The fields are in the alphabetical order a
/// `serde_json` map would give them, which earlier versions answered with.
#[derive(serde::Serialize)]
struct ResolveAnswer<'a> {
    binder_persistent_request: String,
    binder_request: String,
    build_name: String,
    image: &'a str,
    image_present: Option<bool>,
    provider: &'a str,
    #[serde(rename = "ref")]
    unresolved_ref: Option<&'a str>,
    ref_url: &'a str,
    repo_url: String,
    resolved_ref: &'a str,
    resolved_spec: &'a str,
    spec: &'a str,
}

async fn resolve_api(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
) -> Response<Vec<u8>> {
    // Most calls find both the ref and the image in the cache, and those need only the
    // few variables of `CACHED_RESOLVE_VARIABLES`: each variable is a host call. A miss
    // reads the rest once.
    let mut cfg = match ResolveConfig::load() {
        Ok(c) => c,
        Err(e) => return respond::json_error(500, &e.to_string()),
    };
    let cached = &cfg.cached;
    if let Some(label) =
        client_ip(request, cached).and_then(|ip| cached.ban_networks.matching(ip).map(String::from))
    {
        return respond::json_error(403, &policy::ip_banned_message(&label));
    }
    let spec = match ProviderId::parse(provider)
        .and_then(|p| Spec::parse(p, raw_spec, &cached.providers))
    {
        Ok(s) => s,
        Err(e) => return respond::json_error(400, &e.to_string()),
    };
    if cached.policy.is_banned(spec.raw()) {
        return respond::json_error(403, &policy::banned_message(spec.raw()));
    }
    let prefix = match cached.image_prefix() {
        Ok(p) => p.to_string(),
        Err(e) => return respond::json_error(500, &e.to_string()),
    };
    let cache = Cache::open_default();
    let fetch = SpinFetch::default();
    let now = respond::now();
    let result = match resolve_from_cache(&spec, cached, &cache, now) {
        FromCache::Answered(result) => result,
        FromCache::Ask(expired) => match cfg.full() {
            Ok(full) => resolve_upstream(&spec, full, &cache, &fetch, now, expired).await,
            Err(e) => return respond::json_error(500, &e.to_string()),
        },
    };
    let resolved = match &result.outcome {
        Outcome::Resolved(r) => r.clone(),
        Outcome::NotFound(m) => return respond::json_error(404, m),
        Outcome::RateLimited { message, .. } => return respond::json_error(429, message),
        Outcome::Failed(m) => return respond::json_error(502, m),
    };
    let image = image::image_name(&prefix, &resolved.build_slug, &resolved.resolved_ref);
    let presence = match presence_from_cache(&image, &cache, now) {
        Some(presence) => Ok(presence),
        None => match cfg.full() {
            Ok(full) => check_registry(&image, full, &cache, &fetch, now).await,
            Err(e) => return respond::json_error(500, &e.to_string()),
        },
    };
    let (present, image_cache) = match &presence {
        Ok(p) => (Some(p.present), if p.from_cache { "hit" } else { "miss" }),
        Err(e) => {
            eprintln!("bindery-launch: registry check for {image} failed: {e}");
            (None, "error")
        }
    };
    let body = ResolveAnswer {
        binder_persistent_request: launch::binder_persistent_request(
            spec.provider(),
            &resolved.resolved_spec,
        ),
        binder_request: launch::binder_request(spec.provider(), spec.raw()),
        build_name: image::build_name(&resolved.build_slug, &resolved.resolved_ref),
        image: &image,
        image_present: present,
        provider: spec.provider().as_str(),
        unresolved_ref: spec.unresolved_ref(),
        ref_url: &resolved.ref_url,
        repo_url: spec.repo_url(),
        resolved_ref: &resolved.resolved_ref,
        resolved_spec: &resolved.resolved_spec,
        spec: spec.raw(),
    };
    let mut response = respond::json(200, &body);
    let headers = response.headers_mut();
    headers.insert(
        CACHE_HEADER,
        http::HeaderValue::from_static(result.source.cache_header()),
    );
    headers.insert(
        "x-bindery-image-cache",
        http::HeaderValue::from_static(image_cache),
    );
    headers.insert(
        "access-control-allow-origin",
        http::HeaderValue::from_static("*"),
    );
    response
}

/// The resolve route's configuration: [`CACHED_RESOLVE_VARIABLES`] first, and
/// [`RESOLVE_VARIABLES`] only when a provider or the registry must be asked.
///
/// [`CACHED_RESOLVE_VARIABLES`]: bindery_edge::config::CACHED_RESOLVE_VARIABLES
/// [`RESOLVE_VARIABLES`]: bindery_edge::config::RESOLVE_VARIABLES
struct ResolveConfig {
    cached: EdgeConfig,
    full: Option<EdgeConfig>,
}

impl ResolveConfig {
    fn load() -> Result<Self, bindery_edge::ConfigError> {
        Ok(Self {
            cached: EdgeConfig::load_declared(bindery_edge::config::CACHED_RESOLVE_VARIABLES)?,
            full: None,
        })
    }

    fn full(&mut self) -> Result<&EdgeConfig, bindery_edge::ConfigError> {
        let full = match self.full.take() {
            Some(full) => full,
            None => EdgeConfig::load_declared(bindery_edge::config::RESOLVE_VARIABLES)?,
        };
        Ok(self.full.insert(full))
    }
}

/// How long a health answer is reused: a federation polls `/health` every few seconds,
/// and each check costs a worker and a registry round trip.
const HEALTH_TTL: u64 = 10;

/// A health answer kept in the KV store for [`HEALTH_TTL`] seconds.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedHealth {
    ok: bool,
    checks: serde_json::Value,
    expires_at: u64,
}

impl bindery_core::cache::Expiring for CachedHealth {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// Health of what the edge depends on, in BinderHub's shape; 503 when something is down.
async fn health() -> Response<Vec<u8>> {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(e) => {
            return respond::json(
                503,
                &json!({"ok": false, "checks": [{"service": "Configuration", "ok": false, "error": e.to_string()}]}),
            );
        }
    };
    let cache = Cache::open_default();
    let now = respond::now();
    let key = "v1/health/edge";
    let (ok, checks, source) = match cache.get_fresh::<CachedHealth>(key, now) {
        Some(h) => (h.ok, h.checks, "hit"),
        None => {
            let (ok, checks) = check_health(&cfg).await;
            cache.put(
                key,
                &CachedHealth {
                    ok,
                    checks: checks.clone(),
                    expires_at: now + HEALTH_TTL,
                },
            );
            (ok, checks, "miss")
        }
    };
    let mut response = respond::json(
        if ok { 200 } else { 503 },
        &json!({"ok": ok, "checks": checks}),
    );
    response
        .headers_mut()
        .insert("cache-control", http::HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(CACHE_HEADER, http::HeaderValue::from_static(source));
    response
}

async fn check_health(cfg: &EdgeConfig) -> (bool, serde_json::Value) {
    // Both checks at once, each within a few seconds: a part that accepts connections and
    // never answers is as unhealthy as one that is down.
    let fetch = SpinFetch::within(Limits::QUICK);
    let worker_check = async {
        match cfg.worker().map(|w| worker::get(w, "/health")) {
            Ok(Ok(req)) => bindery_edge::fetch::Fetch::send(&fetch, req)
                .await
                .is_ok_and(|r| r.status().is_success()),
            _ => false,
        }
    };
    let registry_check = async {
        match cfg
            .registry()
            .map(|r| Request::get(format!("{}/v2/", r.url)).body(Vec::new()))
        {
            // 401 means the registry is up and wants credentials.
            Ok(Ok(req)) => bindery_edge::fetch::Fetch::send(&fetch, req)
                .await
                .is_ok_and(|r| r.status().is_success() || r.status() == 401),
            _ => false,
        }
    };
    let (worker_ok, registry_ok) = futures::future::join(worker_check, registry_check).await;
    let checks = json!([
        {"service": "Bindery worker", "ok": worker_ok},
        {"service": "Docker registry", "ok": registry_ok},
    ]);
    (worker_ok && registry_ok, checks)
}

fn versions() -> Response<Vec<u8>> {
    let version = concat!("bindery-", env!("CARGO_PKG_VERSION"));
    let mut response = respond::json(
        200,
        &json!({"binderhub": version, "builder_info": {"bindery": version}}),
    );
    response.headers_mut().insert(
        "access-control-allow-origin",
        http::HeaderValue::from_static("*"),
    );
    response
}

/// Writes events to the client; remembers whether the client is still there.
struct Stream<S> {
    sink: S,
    open: bool,
}

impl<S: futures::Sink<Vec<u8>> + Unpin> Stream<S> {
    async fn raw(&mut self, text: String) {
        if self.open && self.sink.send(text.into_bytes()).await.is_err() {
            self.open = false;
        }
    }

    async fn event(&mut self, event: &Event, id: Option<String>) {
        let mut sse = SseEvent::new(event.to_json());
        sse.id = id;
        self.raw(sse::encode(&sse)).await;
    }

    async fn fail(&mut self, status: u16, message: &str) {
        self.event(&Event::failed(Some(status), message), None)
            .await;
    }
}

/// The headers of the event stream (and of a `HEAD` of it).
const STREAM_HEADERS: [(&str, &str); 4] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("access-control-allow-headers", "cache-control"),
];

/// `GET /build/<provider>/<spec>`: every error is a `failed` event on a 200 stream.
async fn build_stream(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    out: ResponseOutparam,
) {
    let headers = STREAM_HEADERS.map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()));
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(200).is_err() {
        return;
    }
    let sink = outgoing.take_body();
    out.set(outgoing);
    let mut stream = Stream { sink, open: true };
    run_build(request, provider, raw_spec, &mut stream).await;
}

async fn run_build<S: futures::Sink<Vec<u8>> + Unpin>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    stream: &mut Stream<S>,
) {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(e) => return stream.fail(500, &e.to_string()).await,
    };
    // BinderHub's order: the client's network first, then what it asked for.
    let client = client_ip(request, &cfg);
    if let Some(label) = client.and_then(|ip| cfg.ban_networks.matching(ip).map(String::from)) {
        return stream.fail(403, &policy::ip_banned_message(&label)).await;
    }
    if !launch::accepts_event_stream(respond::header(request, "accept")) {
        return stream.fail(400, MISSING_ACCEPT).await;
    }
    let worker_cfg = match cfg.worker() {
        Ok(w) => w,
        Err(e) => return stream.fail(500, &e.to_string()).await,
    };
    let cache = Cache::open_default();
    let fetch = SpinFetch::default();

    let provider_id = match ProviderId::parse(provider) {
        Ok(p) => p,
        Err(e) => return stream.fail(400, &e.to_string()).await,
    };
    let spec = match Spec::parse(provider_id, raw_spec, &cfg.providers) {
        Ok(s) => s,
        Err(e) => return stream.fail(400, &e.to_string()).await,
    };
    if cfg.policy.is_banned(spec.raw()) {
        return stream.fail(403, &policy::banned_message(spec.raw())).await;
    }

    // A reconnecting EventSource resumes the launch it was following, once its link has
    // passed the same checks as a new launch: a banned or malformed link resumes nothing.
    if let Some((launch_id, after)) =
        respond::header(request, "last-event-id").and_then(ids::parse_last_event_id)
    {
        let events_url = format!("{LAUNCHES_PATH}/{launch_id}/events");
        return relay(
            &cfg,
            &cache,
            stream,
            &launch_id,
            &events_url,
            Some(&after),
            None,
        )
        .await;
    }

    let now = respond::now();
    let result = resolve_spec(&spec, &cfg, &cache, &fetch, now).await;
    let resolved = match result.outcome {
        Outcome::Resolved(r) => r,
        Outcome::NotFound(m) => return stream.fail(404, &m).await,
        Outcome::RateLimited { message, .. } => return stream.fail(429, &message).await,
        Outcome::Failed(m) => return stream.fail(502, &m).await,
    };
    if resolved.fell_back_to_head {
        let notice = format!(
            "Could not find ref {} in {}. Trying again with HEAD instead: the default branch may have been renamed. Please update your links.\n",
            spec.unresolved_ref().unwrap_or_default(),
            spec.repo_url()
        );
        stream
            .event(&Event::new(Phase::Waiting, notice), None)
            .await;
    }
    let prefix = match cfg.image_prefix() {
        Ok(p) => p.to_string(),
        Err(e) => return stream.fail(500, &e.to_string()).await,
    };
    let image_name = image::image_name(&prefix, &resolved.build_slug, &resolved.resolved_ref);
    let present = match check_image(&image_name, &cfg, &cache, &fetch, now).await {
        Ok(p) => p.present,
        Err(e) => {
            // As BinderHub does after its retries: treat the image as missing; the worker
            // checks again before it builds.
            eprintln!("bindery-launch: registry check for {image_name} failed: {e}");
            false
        }
    };
    if present {
        stream
            .event(&Event::built(image_name.clone(), true), None)
            .await;
    } else {
        stream
            .event(
                &Event::new(Phase::Waiting, "Waiting for build to start...\n"),
                None,
            )
            .await;
    }
    let launch_request = LaunchRequest {
        provider: provider_id.as_str().to_string(),
        spec: spec.raw().to_string(),
        repo_url: spec.repo_url(),
        resolved_ref: resolved.resolved_ref.clone(),
        resolved_spec: resolved.resolved_spec.clone(),
        image: image_name.clone(),
        image_present: present,
        build_slug: resolved.build_slug.clone(),
        ref_url: resolved.ref_url.clone(),
        launch_host: base_url(request, Some(&cfg)),
        binder_request: launch::binder_request(provider_id, spec.raw()),
        binder_persistent_request: launch::binder_persistent_request(
            provider_id,
            &resolved.resolved_spec,
        ),
        launch_path: String::new(),
        client_ip: client.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    let to_worker = SpinFetch::within(Limits::WORKER);
    let accepted = match worker::request_launch(worker_cfg, &launch_request, &to_worker).await {
        Ok(a) => a,
        Err(e) => {
            return stream
                .fail(503, &format!("Failed to start the launch: {e}"))
                .await;
        }
    };
    if !present {
        cache.put_status(&image_name, LastStatus::Building, now, &cfg.ttl);
    }
    relay(
        &cfg,
        &cache,
        stream,
        &accepted.id,
        &accepted.events_url,
        None,
        Some(&image_name),
    )
    .await;
}

/// Relays the worker's numbered events until `ready` or `failed`, recording build results
/// in the cache for the badges and the next launch.
async fn relay<S: futures::Sink<Vec<u8>> + Unpin>(
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    stream: &mut Stream<S>,
    launch_id: &str,
    events_url: &str,
    after: Option<&str>,
    image_name: Option<&str>,
) {
    let Ok(worker_cfg) = cfg.worker() else { return };
    let request = match worker::events_request(worker_cfg, events_url, after) {
        Ok(r) => r,
        Err(e) => return stream.fail(500, &e.to_string()).await,
    };
    let mut upstream = match send_streaming(request, Limits::WORKER).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) if r.status == 404 => return stream.fail(404, "This launch is no longer known to the build service; reload the page to start again").await,
        Ok(r) => return stream.fail(502, &format!("The build service answered {} for the launch's events", r.status)).await,
        Err(e) => return stream.fail(503, &format!("Failed to follow the launch: {e}")).await,
    };
    let mut decoder = SseDecoder::new();
    let mut image = image_name.map(String::from);
    while let Some(chunk) = upstream.next_chunk().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return stream
                    .fail(502, &format!("The build service's stream broke: {e}"))
                    .await;
            }
        };
        for message in decoder.feed(&chunk) {
            match message {
                SseMessage::Comment(text) => stream.raw(sse::comment(&text)).await,
                SseMessage::Overflow => {}
                SseMessage::Event { id, data, .. } => {
                    let Ok(event) = Event::from_json(&data) else {
                        continue;
                    };
                    let now = respond::now();
                    if let Some(i) = event.image_name.clone().or_else(|| event.image.clone()) {
                        image.get_or_insert(i);
                    }
                    match (event.phase, image.as_deref()) {
                        (Phase::Built, Some(i)) => {
                            mark_built(i, cfg, cache, now);
                        }
                        (Phase::Failed, Some(i)) => {
                            // A cached "present" may be why it failed (an image pruned from
                            // the registry fails at the pull): the next launch asks the
                            // registry again, one manifest check instead of hours of
                            // failures until the entry expires.
                            forget_image(i, cache);
                            if cache.status(i, now).is_some() {
                                cache.put_status(i, LastStatus::Failed, now, &cfg.ttl);
                            }
                        }
                        _ => {}
                    }
                    let relay_id = id.map(|i| ids::relay_id(launch_id, &i));
                    stream.event(&event, relay_id).await;
                    if event.phase.is_terminal() || !stream.open {
                        return;
                    }
                }
            }
        }
        if !stream.open {
            return;
        }
    }
    stream
        .fail(
            502,
            "The build service closed the event stream unexpectedly",
        )
        .await;
}

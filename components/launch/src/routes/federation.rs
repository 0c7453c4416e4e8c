//! Federation mode: with `federation` set, the edge is mybinder.org's redirector in front
//! of member BinderHubs (Bindery edges or Python BinderHubs).
//!
//! - `/build/...`: `307` to `<member url><path and query>`, the member chosen by the
//!   `host` cookie when it names a healthy member, else by the configured balancer
//!   (`bindery_core::federation::choose`); the answer (re)sets the cookie for the path
//!   and carries BinderHub's CORS headers.
//! - `/active_hosts`: the healthy members, `{"active_hosts": {name: entry}}`.
//! - everything else the launch component is routed (`/`, `/v2/...`, `/health`,
//!   `/versions`, `/api/...`, anything unrouted): proxied (`GET`) to the prime with
//!   `X-Forwarded-Host`, `Origin` set to the federation's own origin and
//!   `X-Binder-Launch-Host`, so build tokens minted by the prime name the federation and
//!   verify on every member that shares the prime's `build_token_secret`.
//!
//! Badges (`/badge.svg`, `/badge_logo.svg`, `/status/...`) stay with the badge component,
//! and webhooks with theirs. Health lives in the key-value store (`bindery_edge::
//! federation`); a request that finds members due answers first and then checks them
//! ([`refresh`]), one request at a time.

use bindery_core::federation::health::HEALTH_REASONS;
use bindery_core::federation::{self, NOT_PROXIED};
use bindery_edge::config::{FEDERATION, FEDERATION_VARIABLES};
use bindery_edge::federation::Federation;
use bindery_edge::metrics::{self, FEDERATION_HEALTH, FEDERATION_REDIRECT_COUNT};
use bindery_edge::{Fetch, respond};
use http::{HeaderValue, Method, Request, Response};

use super::{ALLOWED, Answer, preflight};
use crate::client;
use crate::env::Env;

/// The request headers passed on to the prime (besides those set here).
const PASSED: [&str; 4] = ["accept", "accept-language", "user-agent", "if-none-match"];

/// A uniform random number in `0..1`.
fn random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The answer in federation mode, or `None` when `federation` is empty (reading it is
/// the one variable read every request of the component pays for the mode).
pub async fn handle<F: Fetch + Clone>(
    request: &Request<Vec<u8>>,
    env: &Env<'_, F>,
) -> Option<Answer> {
    let federated = match env.variables.load(&[FEDERATION]) {
        Ok(cfg) => cfg.federation.is_some(),
        Err(e) => return Some(Answer::Whole(respond::text(500, &e.to_string()))),
    };
    if !federated {
        return None;
    }
    let cfg = match env.variables.load(FEDERATION_VARIABLES) {
        Ok(cfg) => cfg,
        Err(e) => return Some(Answer::Whole(respond::text(500, &e.to_string()))),
    };
    let fed = cfg.federation.as_ref()?;
    let (cache, now) = (env.cache(), env.now());
    let state = fed.state(cache, now);
    let path = request.uri().path();
    let response = match request.method() {
        &Method::OPTIONS => preflight(),
        m if m != Method::GET && m != Method::HEAD => respond::method_not_allowed(ALLOWED),
        _ if path.starts_with("/build/") => redirect(request, fed, &state),
        _ if path == "/active_hosts" || path == "/active_hosts/" => active_hosts(fed, &state),
        _ => proxy(request, fed, &client::base_url(request, Some(&cfg)), env).await,
    };
    let response = if request.method() == Method::HEAD {
        respond::for_head(response)
    } else {
        response
    };
    Some(if fed.refresh_due(&state, cache, now) {
        Answer::ThenRefresh(response)
    } else {
        Answer::Whole(response)
    })
}

/// The `307` of a `/build` request.
fn redirect(
    request: &Request<Vec<u8>>,
    fed: &Federation,
    state: &federation::FederationState,
) -> Response<Vec<u8>> {
    let cookie = request
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(federation::cookie_value);
    let path = request.uri().path();
    let Some(choice) = federation::choose(&fed.config, state, path, cookie, random()) else {
        return respond::text(503, "no federation member can take builds now\n");
    };
    let target = request.uri().path_and_query().map_or(path, |p| p.as_str());
    let location = format!("{}{target}", choice.member.url);
    metrics::increment(
        &FEDERATION_REDIRECT_COUNT,
        &[&choice.member.name, choice.reason.as_str()],
    );
    let set_cookie =
        federation::set_cookie(&choice.member.url, path, fed.config.host_cookie_age_hours);
    let (Ok(location), Ok(set_cookie)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&set_cookie),
    ) else {
        return respond::text(400, "this path cannot be redirected\n");
    };
    let mut response = Response::new(Vec::new());
    *response.status_mut() = http::StatusCode::TEMPORARY_REDIRECT;
    let headers = response.headers_mut();
    headers.insert("location", location);
    headers.insert("set-cookie", set_cookie);
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("cache-control"),
    );
    response
}

/// `/active_hosts`: the members in the rotation with their entries as configured.
fn active_hosts(fed: &Federation, state: &federation::FederationState) -> Response<Vec<u8>> {
    let hosts: serde_json::Map<String, serde_json::Value> = state
        .active(&fed.config)
        .into_iter()
        .map(|m| (m.name.clone(), m.raw.clone()))
        .collect();
    let mut response = respond::json(200, &serde_json::json!({ "active_hosts": hosts }));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// Everything else: the prime's answer to the same `GET`, as the redirector proxies it.
async fn proxy<F: Fetch>(
    request: &Request<Vec<u8>>,
    fed: &Federation,
    base: &str,
    env: &Env<'_, F>,
) -> Response<Vec<u8>> {
    let Some(prime) = fed.config.prime() else {
        return respond::text(500, "variable `federation` names no prime\n");
    };
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let origin = base.trim_end_matches('/');
    let mut outgoing = Request::get(format!("{}{target}", prime.url));
    for name in PASSED {
        for value in request.headers().get_all(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    if let Some(host) = respond::header(request, "host") {
        outgoing = outgoing.header("x-forwarded-host", host);
    }
    // The client the prime's own limits and bans see: the chain so far and the peer.
    let mut chain: Vec<String> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if let Some(peer) = respond::header(request, "spin-client-addr")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    {
        chain.push(peer.ip().to_string());
    }
    if !chain.is_empty() {
        outgoing = outgoing.header("x-forwarded-for", chain.join(", "));
    }
    let outgoing = outgoing
        .header("origin", origin)
        .header("x-binder-launch-host", format!("{origin}/"))
        .body(Vec::new());
    let answer = match outgoing {
        Ok(outgoing) => env.upstream.send(outgoing).await,
        Err(e) => return respond::text(400, &format!("this request cannot be proxied: {e}\n")),
    };
    match answer {
        Ok(answer) => {
            let (mut parts, body) = answer.into_parts();
            for name in NOT_PROXIED {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, body)
        }
        Err(e) => respond::text(
            502,
            &format!(
                "failed to reach the federation's prime {}: {e}\n",
                prime.name
            ),
        ),
    }
}

/// Checks the members that are due, after the answer has gone out: takes the lease, checks
/// within `check.timeout`, stores the state, gives the lease back.
pub async fn refresh<F: Fetch + Clone>(env: &Env<'_, F>) {
    let Ok(cfg) = env.variables.load(&[FEDERATION]) else {
        return;
    };
    let Some(fed) = cfg.federation.as_ref() else {
        return;
    };
    let (cache, now) = (env.cache(), env.now());
    let holder = format!("{:016x}", (random() * (1u64 << 53) as f64) as u64);
    if !fed.take_lease(cache, &holder, now) {
        return;
    }
    let fetch = env.quick.within_limits(fed.limits());
    let (_, outcomes) = fed.refresh(cache, &fetch, now, &mut random).await;
    // `federation_health{member, reason}`: 1 for the reason of the member's last check
    // (`""`: healthy), 0 for the member's other reasons.
    for (member, outcome) in &outcomes {
        let current = outcome.metric_reason();
        for reason in HEALTH_REASONS {
            metrics::set(
                &FEDERATION_HEALTH,
                &[member, reason],
                i64::from(reason == current),
            );
        }
    }
    fed.release_lease(cache);
}

//! Who is asking: the client's address (for the ban rules and the worker's quotas), the
//! public base URL the answer links to, and the federation it came through, if any.

use std::net::IpAddr;

use bindery_core::policy;
use bindery_edge::config::EdgeConfig;
use bindery_edge::respond;
use http::Request;

/// The public base URL, ending in `/`: the configured one, else the request's own scheme
/// and host.
pub fn base_url<B>(request: &Request<B>, cfg: Option<&EdgeConfig>) -> String {
    if let Some(url) = cfg.and_then(|c| c.public_url.as_deref()) {
        return format!("{}/", url.trim_end_matches('/'));
    }
    let uri = request.uri();
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}/"),
        _ => "/".into(),
    }
}

/// The header a BinderHub federation's redirector adds when it proxies a page from its
/// prime member: the federation's public URL (`https://mybinder.org/`).
pub const LAUNCH_HOST_HEADER: &str = "x-binder-launch-host";

/// The base of shared links, badges and `binder_launch_host`, ending in `/`: BinderHub's
/// `badge_base_url` when set (a federation member's federation), else [`base_url`].
pub fn link_base<B>(request: &Request<B>, cfg: Option<&EdgeConfig>) -> String {
    match cfg.and_then(|c| c.badge_base_url.as_deref()) {
        Some(url) => format!("{}/", url.trim_end_matches('/')),
        None => base_url(request, cfg),
    }
}

/// The federation this request came through, ending in `/`: `badge_base_url`, when the
/// request carries it as `X-Binder-Launch-Host` (the redirector's proxy to its prime). Only
/// the configured value is believed, so a client cannot point a page's event stream or a
/// token's origin anywhere else by sending the header.
pub fn federation<B>(request: &Request<B>, cfg: &EdgeConfig) -> Option<String> {
    let configured = cfg.badge_base_url.as_deref()?.trim_end_matches('/');
    let sent = respond::header(request, LAUNCH_HOST_HEADER)?.trim_end_matches('/');
    sent.eq_ignore_ascii_case(configured)
        .then(|| format!("{configured}/"))
}

/// Where the loading page opens its event stream, ending in `/`: the federation's URL
/// when the page came through it (so the redirector picks the member, as for BinderHub's
/// relative URL), else [`base_url`].
pub fn stream_base<B>(request: &Request<B>, cfg: Option<&EdgeConfig>) -> String {
    cfg.and_then(|c| federation(request, c))
        .unwrap_or_else(|| base_url(request, cfg))
}

/// The client's address: Spin's `spin-client-addr` (`ip:port`), or, when that is one of
/// the `trusted_proxies`, the address its `X-Forwarded-For` names.
pub fn client_ip<B>(request: &Request<B>, cfg: &EdgeConfig) -> Option<IpAddr> {
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

/// The message refusing the client, when its address is in one of the `ban_networks`
/// (naming the network's label).
pub fn banned<B>(request: &Request<B>, cfg: &EdgeConfig) -> Option<String> {
    let ip = client_ip(request, cfg)?;
    cfg.ban_networks.matching(ip).map(policy::ip_banned_message)
}

//! Who is asking: the client's address (for the ban rules and the worker's quotas) and
//! the public base URL the answer links to.

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

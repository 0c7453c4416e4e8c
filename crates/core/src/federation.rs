//! Federation mode: the edge as mybinder.org's redirector in front of member BinderHubs.
//!
//! `/build/...` is redirected (307) to a member chosen by the `host` cookie when it names
//! a healthy member, else by weighted rendezvous hashing of the repository (or weighted
//! random choice); members are checked with their `/versions` and `/health`; everything
//! else is proxied to the prime. The decisions live here, the I/O in the launch
//! component.
//!
//! - [`config`]: the redirector's JSON configuration, parsed and bounded.
//! - [`rendezvous`]: the load-balancing key, blake2b-64 scores, weighted random choice.
//! - [`health`]: what a member's `/versions` and `/health` answers say.
//! - [`state`]: the shared health record, its timing rules and the refresh lease.

pub mod config;
pub mod health;
pub mod rendezvous;
pub mod state;

pub use config::{CheckSettings, FederationConfig, FederationConfigError, LoadBalancer, Member};
pub use health::Outcome;
pub use state::{FederationState, Lease, MemberHealth};

use sha2::{Digest, Sha256};

/// The name of the cookie that keeps a browser on one member.
pub const COOKIE: &str = "host";

/// Why a member was chosen: the `reason` label of `federation_redirect_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request's `host` cookie named a healthy member.
    Cookie,
    /// The load balancer chose.
    LoadBalancer,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Cookie => "cookie",
            Reason::LoadBalancer => "load_balancer",
        }
    }
}

/// The member a `/build` request goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice<'c> {
    /// The member.
    pub member: &'c Member,
    /// Why.
    pub reason: Reason,
}

/// Chooses the member for a `/build` request with raw `path`, the value of its `host`
/// cookie, and `r` (uniform in `0..1`, used by the random balancer).
pub fn choose<'c>(
    cfg: &'c FederationConfig,
    state: &FederationState,
    path: &str,
    cookie: Option<&str>,
    r: f64,
) -> Option<Choice<'c>> {
    let candidates = state.candidates(cfg);
    if let Some(member) = cookie.and_then(|url| candidates.iter().find(|m| m.url == url)) {
        return Some(Choice {
            member,
            reason: Reason::Cookie,
        });
    }
    // The primes of the fallback may all weigh 0: they count alike then.
    let weight = |m: &Member| if m.weight > 0.0 { m.weight } else { 1.0 };
    let index = match cfg.load_balancer {
        LoadBalancer::Rendezvous => {
            let key = rendezvous::key(path);
            let buckets: Vec<(&str, f64)> = candidates
                .iter()
                .map(|m| (m.name.as_str(), weight(m)))
                .collect();
            rendezvous::rank(&key, &buckets)
        }
        LoadBalancer::Random => {
            let weights: Vec<f64> = candidates.iter().map(|m| weight(m)).collect();
            rendezvous::weighted(&weights, r)
        }
    }?;
    candidates.get(index).map(|member| Choice {
        member,
        reason: Reason::LoadBalancer,
    })
}

/// The value of the `host` cookie in a `Cookie` header, unquoted (Python's cookies quote
/// a value holding `/`).
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name.trim() == COOKIE).then(|| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
    })
}

/// The `Set-Cookie` value that keeps this `path` on `url` for `age_hours`; the path is
/// cut before any `;` or `,` (which would end or split the attribute).
pub fn set_cookie(url: &str, path: &str, age_hours: f64) -> String {
    let path = path
        .split([';', ',', ' '])
        .next()
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let seconds = (age_hours * 3600.0).round() as u64;
    format!("{COOKIE}={url}; Max-Age={seconds}; Path={path}")
}

/// A fingerprint of the configuration text: the shared state of another configuration
/// is not reused.
pub fn fingerprint(text: &str) -> String {
    let digest = Sha256::digest(text.trim().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Response headers a proxied answer does not carry over: the hop-by-hop ones and those
/// the edge sets itself (the redirector drops the same four).
pub const NOT_PROXIED: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "te",
];

#[cfg(test)]
mod tests;

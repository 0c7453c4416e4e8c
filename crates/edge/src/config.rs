//! Component configuration, read from Spin variables.
//!
//! Every value is a Spin component variable mapped from an application variable of the
//! same name in `spin.toml` ([`VARIABLES`] lists them). A component reads those it
//! declares with [`EdgeConfig::load_declared`]; a variable the component does not declare
//! reads as unset, and an empty string is unset too. Malformed values (a bad URL, regex,
//! CIDR or number) fail the load with an error that names the variable; values that only
//! some requests need (the worker, the registry, the image prefix) are checked by the
//! getters that hand them out, so a badge never fails because the worker token is unset.
//!
//! Lists (`prebuild_specs`, `banned_specs`, `allowed_specs`, `high_quota_specs`,
//! `ban_networks`) hold one item per line; a value without a newline is split on commas
//! instead, so a short list fits on a command line. A pattern that contains a comma
//! (`a{1,3}`) must therefore be written one per line.
//!
//! No error message ever contains the value of a secret.

use std::fmt;

use bindery_core::cache::CacheTtl;
use bindery_core::policy::{BanNetworks, PolicyError, SpecPatterns, SpecPolicy};
use bindery_core::provider::ProviderSettings;
use bindery_core::resolve::Credentials;
use bindery_core::validate::shown;
use thiserror::Error;

/// One configuration variable: its name in `spin.toml` and whether it is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The variable name, both the application and the component variable.
    pub name: &'static str,
    /// True when the value must be declared `secret = true` and never shown.
    pub secret: bool,
}

const fn var(name: &'static str) -> Var {
    Var {
        name,
        secret: false,
    }
}

const fn secret(name: &'static str) -> Var {
    Var { name, secret: true }
}

/// Every variable `EdgeConfig` knows; [`EdgeConfig::load_declared`] reads those a
/// component declares.
pub const VARIABLES: &[Var] = &[
    var(WORKER_URL),
    secret(WORKER_TOKEN),
    var(REGISTRY_URL),
    var(REGISTRY_USERNAME),
    secret(REGISTRY_PASSWORD),
    var(IMAGE_PREFIX),
    secret(GITHUB_TOKEN),
    secret(GITLAB_TOKEN),
    secret(GITHUB_WEBHOOK_SECRET),
    secret(GITLAB_WEBHOOK_SECRET),
    var(PREBUILD_SPECS),
    var(BANNED_SPECS),
    var(ALLOWED_SPECS),
    var(HIGH_QUOTA_SPECS),
    var(BAN_NETWORKS),
    var(TRUSTED_PROXIES),
    var(PUBLIC_URL),
    var(GITHUB_API),
    var(GITLAB_API),
    var(DOI_RESOLVER),
    var(FIGSHARE_API),
    var(HYDROSHARE_BASE),
    var(REF_TTL_SECONDS),
    var(IMAGE_PRESENT_TTL_SECONDS),
    var(IMAGE_MISSING_TTL_SECONDS),
];

/// The worker's base URL (`http://127.0.0.1:8585`).
pub const WORKER_URL: &str = "worker_url";
/// The bearer token of the worker API.
pub const WORKER_TOKEN: &str = "worker_token";
/// The registry's base URL, for the manifest check (`http://127.0.0.1:5000`).
pub const REGISTRY_URL: &str = "registry_url";
/// The registry username (pull access is enough).
pub const REGISTRY_USERNAME: &str = "registry_username";
/// The registry password.
pub const REGISTRY_PASSWORD: &str = "registry_password";
/// The image name prefix (`127.0.0.1:5000/binder-`).
pub const IMAGE_PREFIX: &str = "image_prefix";
/// A GitHub API token.
pub const GITHUB_TOKEN: &str = "github_token";
/// A GitLab API token.
pub const GITLAB_TOKEN: &str = "gitlab_token";
/// The secret of the GitHub push webhook.
pub const GITHUB_WEBHOOK_SECRET: &str = "github_webhook_secret";
/// The secret token of the GitLab push webhook.
pub const GITLAB_WEBHOOK_SECRET: &str = "gitlab_webhook_secret";
/// Patterns of specs a push webhook prebuilds.
pub const PREBUILD_SPECS: &str = "prebuild_specs";
/// Patterns of specs that may not launch.
pub const BANNED_SPECS: &str = "banned_specs";
/// Patterns of the only specs that may launch (empty: all).
pub const ALLOWED_SPECS: &str = "allowed_specs";
/// Patterns of specs with the higher per-repo quota.
pub const HIGH_QUOTA_SPECS: &str = "high_quota_specs";
/// `cidr=label` pairs of banned client networks.
pub const BAN_NETWORKS: &str = "ban_networks";
/// Networks of the reverse proxies in front of the edge, whose `X-Forwarded-For` is believed.
pub const TRUSTED_PROXIES: &str = "trusted_proxies";
/// The Binder's public base URL (`binder_launch_host`).
pub const PUBLIC_URL: &str = "public_url";
/// GitHub's API base URL.
pub const GITHUB_API: &str = "github_api";
/// GitLab's API base URL.
pub const GITLAB_API: &str = "gitlab_api";
/// The DOI resolver.
pub const DOI_RESOLVER: &str = "doi_resolver";
/// Figshare's API base URL.
pub const FIGSHARE_API: &str = "figshare_api";
/// HydroShare's base URL.
pub const HYDROSHARE_BASE: &str = "hydroshare_base";
/// Lifetime of a cached branch ref, in seconds.
pub const REF_TTL_SECONDS: &str = "ref_ttl_seconds";
/// Lifetime of a cached "image present", in seconds.
pub const IMAGE_PRESENT_TTL_SECONDS: &str = "image_present_ttl_seconds";
/// Lifetime of a cached "image missing", in seconds.
pub const IMAGE_MISSING_TTL_SECONDS: &str = "image_missing_ttl_seconds";

/// The variables the badge component declares and reads.
pub const BADGE_VARIABLES: &[&str] = &[IMAGE_PREFIX];

/// The variables the webhook component declares and reads.
pub const WEBHOOK_VARIABLES: &[&str] = &[
    WORKER_URL,
    WORKER_TOKEN,
    IMAGE_PREFIX,
    GITHUB_WEBHOOK_SECRET,
    GITLAB_WEBHOOK_SECRET,
    PREBUILD_SPECS,
    BANNED_SPECS,
    ALLOWED_SPECS,
];

/// The variables the launch component declares and reads: all but the webhook secrets
/// and `prebuild_specs`.
pub const LAUNCH_VARIABLES: &[&str] = &[
    WORKER_URL,
    WORKER_TOKEN,
    REGISTRY_URL,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    IMAGE_PREFIX,
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    BANNED_SPECS,
    ALLOWED_SPECS,
    HIGH_QUOTA_SPECS,
    BAN_NETWORKS,
    TRUSTED_PROXIES,
    PUBLIC_URL,
    GITHUB_API,
    GITLAB_API,
    DOI_RESOLVER,
    FIGSHARE_API,
    HYDROSHARE_BASE,
    REF_TTL_SECONDS,
    IMAGE_PRESENT_TTL_SECONDS,
    IMAGE_MISSING_TTL_SECONDS,
];

/// What the launch component's `/api/v1/resolve` reads: [`LAUNCH_VARIABLES`] but the
/// worker's address and token and the public URL, which it never uses. Every variable is
/// a host call on every request, and badges, CI and tools call this route often.
pub const RESOLVE_VARIABLES: &[&str] = &[
    REGISTRY_URL,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    IMAGE_PREFIX,
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    BANNED_SPECS,
    ALLOWED_SPECS,
    HIGH_QUOTA_SPECS,
    BAN_NETWORKS,
    TRUSTED_PROXIES,
    GITHUB_API,
    GITLAB_API,
    DOI_RESOLVER,
    FIGSHARE_API,
    HYDROSHARE_BASE,
    REF_TTL_SECONDS,
    IMAGE_PRESENT_TTL_SECONDS,
    IMAGE_MISSING_TTL_SECONDS,
];

/// What a resolve answered from the cache alone reads: the ban rules (and the proxies
/// whose `X-Forwarded-For` names the client), the image prefix,
/// and the one provider endpoint that a parsed spec keeps (HydroShare's base, in its
/// repository URL). [`crate::resolve::resolve_from_cache`] and
/// [`crate::registry::presence_from_cache`] need nothing else; a miss reads
/// [`RESOLVE_VARIABLES`]. A test checks that a spec and the ban rules come out the same
/// from either list.
pub const CACHED_RESOLVE_VARIABLES: &[&str] = &[
    IMAGE_PREFIX,
    BANNED_SPECS,
    ALLOWED_SPECS,
    HIGH_QUOTA_SPECS,
    BAN_NETWORKS,
    TRUSTED_PROXIES,
    HYDROSHARE_BASE,
];

/// A secret value. `Debug` never shows it and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, to put into a header or an HMAC; never into a log or a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why the configuration cannot serve a request. The component answers 500 with this text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A variable this request needs is unset or empty.
    #[error("variable `{name}` is not set: {hint}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A variable holds a value that cannot be used. For a secret the reason never quotes
    /// the value.
    #[error("variable `{name}` is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The variables provider failed.
    #[error("failed to read variable `{name}`: {reason}")]
    Provider {
        /// The variable.
        name: &'static str,
        /// The provider's message.
        reason: String,
    },
}

/// The worker endpoint: base URL (no trailing `/`) and bearer token.
#[derive(Debug, Clone, Copy)]
pub struct Worker<'a> {
    /// The base URL, without a trailing `/`.
    pub url: &'a str,
    /// The bearer token.
    pub token: &'a Secret,
}

/// The registry of the manifest check.
///
/// `url` is the registry's base URL and `image_prefix` starts with that registry's host:
/// with `image_prefix = "127.0.0.1:5000/binder-"` and `registry_url =
/// "http://127.0.0.1:5000"`, image `127.0.0.1:5000/binder-x-123abc:<sha>` is checked as
/// `HEAD http://127.0.0.1:5000/v2/binder-x-123abc/manifests/<sha>` (the repository is the
/// image name without its first `/` segment, BinderHub's split). They are separate because
/// the URL carries the scheme and may differ from the name pushed under (a registry
/// reached through a proxy or a cluster-internal name).
#[derive(Debug, Clone, Copy)]
pub struct Registry<'a> {
    /// The base URL, without a trailing `/`.
    pub url: &'a str,
    /// The username and password for HTTP Basic, when a username is set.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// Everything an edge component is configured with.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `worker_url`, validated, without a trailing `/`.
    pub worker_url: Option<String>,
    /// `worker_token`.
    pub worker_token: Option<Secret>,
    /// `registry_url`, validated, without a trailing `/`.
    pub registry_url: Option<String>,
    /// `registry_username`.
    pub registry_username: Option<String>,
    /// `registry_password`.
    pub registry_password: Option<Secret>,
    /// `image_prefix`.
    pub image_prefix: Option<String>,
    /// Provider endpoints: the defaults with `github_api`, `gitlab_api`, `doi_resolver`,
    /// `figshare_api` and `hydroshare_base` applied (repository hosts stay the public ones).
    pub providers: ProviderSettings,
    /// `github_token` and `gitlab_token`.
    pub credentials: Credentials,
    /// `github_webhook_secret`.
    pub github_webhook_secret: Option<Secret>,
    /// `gitlab_webhook_secret`.
    pub gitlab_webhook_secret: Option<Secret>,
    /// `prebuild_specs`, compiled.
    pub prebuild_specs: SpecPatterns,
    /// `banned_specs`, `allowed_specs` and `high_quota_specs`, compiled.
    pub policy: SpecPolicy,
    /// `ban_networks`, parsed.
    pub ban_networks: BanNetworks,
    /// `trusted_proxies`, parsed (the networks carry no labels).
    pub trusted_proxies: BanNetworks,
    /// `public_url`, validated, without a trailing `/`; `None`: derive from the request.
    pub public_url: Option<String>,
    /// Cache lifetimes: the defaults with the `*_ttl_seconds` variables applied.
    pub ttl: CacheTtl,
}

impl EdgeConfig {
    /// Reads the variables named in `declared` from Spin; every other one reads as unset
    /// without asking. A component passes the list its `spin.toml` entry declares
    /// ([`BADGE_VARIABLES`], [`WEBHOOK_VARIABLES`], [`LAUNCH_VARIABLES`]; a test checks
    /// they agree): learning that an undeclared variable is unset costs a host call and an
    /// error message each, and the badge declares one variable of two dozen.
    #[cfg(target_arch = "wasm32")]
    pub fn load_declared(declared: &[&str]) -> Result<Self, ConfigError> {
        use spin_sdk::variables::{Error, get};
        Self::from_source(|name| {
            if !declared.contains(&name) {
                return Ok(None);
            }
            match get(name) {
                Ok(value) => Ok(Some(value)),
                Err(Error::Undefined(_) | Error::InvalidName(_)) => Ok(None),
                Err(Error::Provider(reason) | Error::Other(reason)) => Err(ConfigError::Provider {
                    name,
                    reason: shown(&reason),
                }),
            }
        })
    }

    /// Builds the configuration from a lookup of raw values (`None`: undeclared).
    pub fn from_source(
        mut get: impl FnMut(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut value = |name: &'static str| -> Result<Option<String>, ConfigError> {
            Ok(get(name)?
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()))
        };
        let secret = |v: Option<String>| v.map(Secret);

        let mut providers = ProviderSettings::default();
        let endpoints: [(&'static str, &mut String); 5] = [
            (GITHUB_API, &mut providers.github_api),
            (GITLAB_API, &mut providers.gitlab_api),
            (DOI_RESOLVER, &mut providers.doi_resolver),
            (FIGSHARE_API, &mut providers.figshare_api),
            (HYDROSHARE_BASE, &mut providers.hydroshare_base),
        ];
        for (name, field) in endpoints {
            if let Some(raw) = value(name)? {
                *field = parse_base_url(name, &raw)?;
            }
        }

        let mut ttl = CacheTtl::default();
        let ttls: [(&'static str, &mut u64); 3] = [
            (REF_TTL_SECONDS, &mut ttl.ref_seconds),
            (IMAGE_PRESENT_TTL_SECONDS, &mut ttl.image_present_seconds),
            (IMAGE_MISSING_TTL_SECONDS, &mut ttl.image_missing_seconds),
        ];
        for (name, field) in ttls {
            if let Some(raw) = value(name)? {
                *field = parse_seconds(name, &raw)?;
            }
        }

        let list = |raw: Option<String>| raw.as_deref().map(split_list).unwrap_or_default();
        let banned = list(value(BANNED_SPECS)?);
        let allowed = list(value(ALLOWED_SPECS)?);
        let high_quota = list(value(HIGH_QUOTA_SPECS)?);
        let policy = SpecPolicy::new(&banned, &allowed, &high_quota, serde_json::Value::Null)
            .map_err(|e| policy_error(e, BANNED_SPECS))?;
        let prebuild = list(value(PREBUILD_SPECS)?);
        let prebuild_specs = SpecPatterns::new(PREBUILD_SPECS, &prebuild)
            .map_err(|e| policy_error(e, PREBUILD_SPECS))?;
        let ban_networks = match value(BAN_NETWORKS)? {
            Some(raw) => parse_ban_networks(&raw)?,
            None => BanNetworks::default(),
        };
        let trusted_proxies = match value(TRUSTED_PROXIES)? {
            Some(raw) => parse_trusted_proxies(&raw)?,
            None => BanNetworks::default(),
        };

        Ok(Self {
            worker_url: value(WORKER_URL)?
                .map(|raw| parse_base_url(WORKER_URL, &raw))
                .transpose()?,
            worker_token: secret(value(WORKER_TOKEN)?),
            registry_url: value(REGISTRY_URL)?
                .map(|raw| parse_base_url(REGISTRY_URL, &raw))
                .transpose()?,
            registry_username: value(REGISTRY_USERNAME)?,
            registry_password: secret(value(REGISTRY_PASSWORD)?),
            image_prefix: value(IMAGE_PREFIX)?
                .map(|raw| parse_image_prefix(&raw))
                .transpose()?,
            credentials: Credentials {
                github_token: value(GITHUB_TOKEN)?,
                gitlab_token: value(GITLAB_TOKEN)?,
            },
            providers,
            github_webhook_secret: secret(value(GITHUB_WEBHOOK_SECRET)?),
            gitlab_webhook_secret: secret(value(GITLAB_WEBHOOK_SECRET)?),
            prebuild_specs,
            policy,
            ban_networks,
            trusted_proxies,
            public_url: value(PUBLIC_URL)?
                .map(|raw| parse_base_url(PUBLIC_URL, &raw))
                .transpose()?,
            ttl,
        })
    }

    /// The worker endpoint, or which variable is missing.
    pub fn worker(&self) -> Result<Worker<'_>, ConfigError> {
        let url = self.worker_url.as_deref().ok_or(ConfigError::Missing {
            name: WORKER_URL,
            hint: "set it to the worker's base URL, e.g. http://127.0.0.1:8585",
        })?;
        let token = self.worker_token.as_ref().ok_or(ConfigError::Missing {
            name: WORKER_TOKEN,
            hint: "set it (SPIN_VARIABLE_WORKER_TOKEN) to the token the worker was started with",
        })?;
        Ok(Worker { url, token })
    }

    /// The registry of the manifest check, or which variable is missing.
    pub fn registry(&self) -> Result<Registry<'_>, ConfigError> {
        let url = self.registry_url.as_deref().ok_or(ConfigError::Missing {
            name: REGISTRY_URL,
            hint: "set it to the base URL of the registry in image_prefix, e.g. http://127.0.0.1:5000",
        })?;
        let credentials = self.registry_username.as_deref().map(|user| {
            let password = self.registry_password.as_ref().map_or("", Secret::expose);
            (user, password)
        });
        Ok(Registry { url, credentials })
    }

    /// The image name prefix, or an error naming `image_prefix`.
    pub fn image_prefix(&self) -> Result<&str, ConfigError> {
        self.image_prefix.as_deref().ok_or(ConfigError::Missing {
            name: IMAGE_PREFIX,
            hint: "set it to `<registry host>/<name prefix>`, e.g. 127.0.0.1:5000/binder-",
        })
    }
}

/// Splits a list variable: one item per line when the value has a newline, otherwise
/// comma-separated; items are trimmed and empty ones dropped.
pub fn split_list(raw: &str) -> Vec<String> {
    let items: Vec<&str> = if raw.contains('\n') {
        raw.lines().collect()
    } else {
        raw.split(',').collect()
    };
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `ban_networks`: `cidr=label` items (see [`split_list`]).
pub fn parse_ban_networks(raw: &str) -> Result<BanNetworks, ConfigError> {
    let pairs = split_list(raw)
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((cidr, label)) if !cidr.trim().is_empty() && !label.trim().is_empty() => {
                Ok((cidr.trim().to_owned(), label.trim().to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                name: BAN_NETWORKS,
                reason: format!("expected `cidr=label`, got {}", shown(&item)),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    BanNetworks::new(&pairs).map_err(|e| policy_error(e, BAN_NETWORKS))
}

/// Parses `trusted_proxies`: networks or addresses (see [`split_list`]).
pub fn parse_trusted_proxies(raw: &str) -> Result<BanNetworks, ConfigError> {
    let networks: Vec<(String, String)> = split_list(raw)
        .into_iter()
        .map(|cidr| (cidr, String::new()))
        .collect();
    BanNetworks::new(&networks).map_err(|e| policy_error(e, TRUSTED_PROXIES))
}

/// Parses a base URL: absolute http(s) with a host, no credentials, query or fragment;
/// returned without a trailing `/`.
pub fn parse_base_url(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    // The configuration is read on every request (a fresh instance each time), and most
    // values are plain `http(s)://host[:port][/path]`: those need no URL parser.
    if plain_base_url(raw) {
        return Ok(raw.trim_end_matches('/').to_owned());
    }
    parse_base_url_fully(name, raw)
}

/// [`parse_base_url`] through the URL parser, for every value.
fn parse_base_url_fully(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        reason: format!("{reason}, got {}", shown(raw)),
    };
    let url = url::Url::parse(raw).map_err(|_| invalid("expected an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo a URL that carries a password.
        return Err(ConfigError::Invalid {
            name,
            reason: "the URL must not carry credentials; use the username/password variables"
                .to_owned(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Whether `raw` is an http(s) URL that a URL parser would accept unchanged and that
/// passes [`parse_base_url`]'s rules: `http(s)://host[:port][/path]` with a lower-case DNS
/// name (its last label starting with a letter) or a canonical dotted IPv4 address, a port
/// up to 65535, and a path of unreserved characters. Anything else goes to the full parser.
fn plain_base_url(raw: &str) -> bool {
    // Bytes and slices throughout: this runs for every URL variable on every request, and
    // `str` searches by `char` cost several times more in a wasm guest.
    let Some(rest) = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.as_bytes();
    let (authority, path) =
        rest.split_at(rest.iter().position(|&b| b == b'/').unwrap_or(rest.len()));
    let (host, port) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0_u32, |n, &b| n * 10 + u32::from(b - b'0')) <= 65535
    });
    let labels = || host.split(|&b| b == b'.');
    // A label starting `xn--` is punycode, which the URL parser decodes and may refuse.
    let labels_ok = !host.is_empty()
        && labels().all(|label| {
            !label.is_empty()
                && !label.starts_with(b"xn--")
                && label
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let last = labels().next_back().unwrap_or_default();
    let host_ok = if last.iter().all(u8::is_ascii_digit) {
        labels().count() == 4
            && labels().all(|p| {
                (1..=3).contains(&p.len())
                    && p.iter().all(u8::is_ascii_digit)
                    && (p.len() == 1 || p[0] != b'0')
                    && p.iter().fold(0_u32, |n, &b| n * 10 + u32::from(b - b'0')) <= 255
            })
    } else {
        last.first().is_some_and(u8::is_ascii_lowercase)
    };
    port_ok
        && labels_ok
        && host_ok
        && path
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
}

/// Parses a number of seconds.
pub fn parse_seconds(name: &'static str, raw: &str) -> Result<u64, ConfigError> {
    raw.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("expected a whole number of seconds, got {}", shown(raw)),
    })
}

/// An image prefix must name a registry host (`host[:port]/...`): without one the manifest
/// check has no repository to ask for, and images could not be pushed anywhere.
fn parse_image_prefix(raw: &str) -> Result<String, ConfigError> {
    let ok = raw
        .split_once('/')
        .is_some_and(|(host, _)| !host.is_empty())
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'#' | b'?'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name: IMAGE_PREFIX,
            reason: format!(
                "expected `<registry host>/<name prefix>` such as 127.0.0.1:5000/binder-, got {}",
                shown(raw)
            ),
        })
    }
}

fn policy_error(e: PolicyError, fallback: &'static str) -> ConfigError {
    let name = match &e {
        PolicyError::InvalidPattern { list, .. } => match *list {
            "banned_specs" => BANNED_SPECS,
            "allowed_specs" => ALLOWED_SPECS,
            "high_quota_specs" => HIGH_QUOTA_SPECS,
            _ => fallback,
        },
        _ => fallback,
    };
    ConfigError::Invalid {
        name,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bindery_core::Spec;

    use super::*;

    #[test]
    fn plain_urls_skip_the_parser_only_where_it_would_agree() {
        let candidates = [
            "https://api.github.com",
            "https://api.github.com/",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:65535/api/v4",
            "http://bindery-worker.binder.svc:8080",
            "https://gitlab.example.org/api/v4/",
            "http://localhost:1",
            // Each of these must go to the full parser.
            "http://256.0.0.1",
            "http://1.2.3",
            "http://01.2.3.4",
            "http://a.0x1f",
            "http://a.123",
            "http://host:65536",
            "http://host:",
            "http://Host.example",
            "http://user@host",
            "http://host/a?b",
            "http://host/a#b",
            "http://host/%41",
            "http://",
            "http:///path",
            "ftp://host",
            "http://host..example",
            "http://host.example.",
            "http://[::1]:80",
            "http://xn--a.example",
            "http://xn--.example",
            "http://www.xn--bcher-kva.example",
        ];
        let mut fast = 0;
        for raw in candidates {
            let full = parse_base_url_fully("worker_url", raw);
            if plain_base_url(raw) {
                fast += 1;
                assert_eq!(
                    parse_base_url("worker_url", raw).ok(),
                    Some(full.expect(raw)),
                    "{raw}"
                );
            }
            assert_eq!(
                parse_base_url("worker_url", raw).is_ok(),
                parse_base_url_fully("worker_url", raw).is_ok(),
                "{raw}"
            );
        }
        assert_eq!(fast, 7, "the plain URLs above take the fast path");
    }

    #[test]
    fn the_fast_path_agrees_with_the_parser_on_generated_urls() {
        // A small deterministic generator (xorshift) of URL-like strings built from the
        // characters the fast path decides on.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap_or(0)
        };
        let prefixes = ["http://", "https://", "http:/", "HTTP://", "ws://", ""];
        let alphabet: Vec<char> = "abcxyz0189.-:/abcxyz0189._~%@?#[]AZ 2567".chars().collect();
        // Punycode labels, which the URL parser decodes (and refuses when invalid).
        let labels = ["xn--a", "xn--bcher-kva", "xn--"];
        let (mut fast, mut agreed_ok) = (0, 0);
        for _ in 0..50_000 {
            let mut raw = prefixes[next(prefixes.len())].to_owned();
            if next(8) == 0 {
                raw.push_str(labels[next(labels.len())]);
            }
            for _ in 0..next(16) {
                raw.push(alphabet[next(alphabet.len())]);
            }
            let quick = parse_base_url("registry_url", &raw).ok();
            let full = parse_base_url_fully("registry_url", &raw).ok();
            assert_eq!(quick, full, "{raw:?}");
            fast += usize::from(plain_base_url(&raw));
            agreed_ok += usize::from(full.is_some());
        }
        // The generator must reach both paths, or the test proves nothing.
        assert!(fast > 500, "only {fast} generated URLs took the fast path");
        assert!(agreed_ok > fast, "no valid URL went through the parser");
    }

    fn load(pairs: &[(&str, &str)]) -> Result<EdgeConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EdgeConfig::from_source(|name| Ok(map.get(name).cloned()))
    }

    /// A configuration from `pairs`, reading only the variables in `list`.
    fn load_only(pairs: &[(&str, &str)], list: &[&str]) -> EdgeConfig {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        EdgeConfig::from_source(|name| {
            Ok(list
                .contains(&name)
                .then(|| map.get(name).map(|v| (*v).to_owned()))
                .flatten())
        })
        .unwrap()
    }

    #[test]
    fn a_cached_resolve_reads_all_its_answer_depends_on() {
        // Every variable the resolve route reads, none at its default.
        let pairs = [
            (REGISTRY_URL, "http://registry.example.org:5000"),
            (REGISTRY_USERNAME, "puller"),
            (REGISTRY_PASSWORD, "pw"),
            (IMAGE_PREFIX, "registry.example.org:5000/x-"),
            (GITHUB_TOKEN, "ghp_x"),
            (GITLAB_TOKEN, "glpat_x"),
            (BANNED_SPECS, "org/banned.*"),
            (ALLOWED_SPECS, "org/.*,zenodo/.*,hydroshare/.*"),
            (HIGH_QUOTA_SPECS, "org/big.*"),
            (BAN_NETWORKS, "192.0.2.0/24=a test network"),
            (TRUSTED_PROXIES, "10.0.0.0/8"),
            (GITHUB_API, "http://127.0.0.1:9001"),
            (GITLAB_API, "http://127.0.0.1:9002/api/v4"),
            (DOI_RESOLVER, "http://127.0.0.1:9003"),
            (FIGSHARE_API, "http://127.0.0.1:9004/v2"),
            (HYDROSHARE_BASE, "http://127.0.0.1:9005"),
            (REF_TTL_SECONDS, "7"),
            (IMAGE_PRESENT_TTL_SECONDS, "8"),
            (IMAGE_MISSING_TTL_SECONDS, "9"),
        ];
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names, RESOLVE_VARIABLES,
            "every resolve variable is set above"
        );
        assert!(
            CACHED_RESOLVE_VARIABLES
                .iter()
                .all(|n| RESOLVE_VARIABLES.contains(n))
        );
        let full = load_only(&pairs, RESOLVE_VARIABLES);
        let cached = load_only(&pairs, CACHED_RESOLVE_VARIABLES);

        assert_eq!(cached.image_prefix, full.image_prefix);
        assert_eq!(cached.ban_networks, full.ban_networks);
        assert_eq!(cached.trusted_proxies, full.trusted_proxies);
        assert!(!full.trusted_proxies.is_empty());
        let raws = ["org/banned-x/main", "org/repo/main", "other/repo/main"];
        for raw in raws {
            assert_eq!(
                cached.policy.is_banned(raw),
                full.policy.is_banned(raw),
                "{raw}"
            );
        }
        assert!(full.policy.is_banned(raws[0]) && full.policy.is_banned(raws[2]));
        assert!(!full.policy.is_banned(raws[1]));

        // A parsed spec is the same from either, for every provider: its repository URL,
        // resolved spec and ref URL, which the answer shows, come from it.
        let links = [
            "gh/org/repo/main",
            "gl/group/project/main",
            "gist/user/0123456789abcdef/main",
            "git/https%3A%2F%2Fexample.org%2Frepo.git/main",
            "zenodo/10.5281/zenodo.3242074",
            "figshare/10.6084/m9.figshare.9782777.v1",
            "hydroshare/142c59757ed54de1816777828c9716e7",
            "dataverse/10.7910/DVN/TJCLKP",
            "ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fx",
        ];
        for link in links {
            let from_full = Spec::parse_path(link, &full.providers).unwrap();
            let from_cached = Spec::parse_path(link, &cached.providers).unwrap();
            assert_eq!(from_cached, from_full, "{link}");
        }
        // The endpoints a miss needs are left at their defaults by the short list.
        assert_ne!(cached.providers.github_api, full.providers.github_api);
        assert_ne!(cached.ttl, full.ttl);
    }

    #[test]
    fn nothing_declared_loads_with_defaults() {
        let cfg = load(&[]).unwrap();
        assert_eq!(cfg.providers, ProviderSettings::default());
        assert_eq!(cfg.ttl, CacheTtl::default());
        assert!(cfg.prebuild_specs.is_empty());
        assert!(!cfg.policy.is_banned("a/b/c"));
        assert!(cfg.ban_networks.is_empty());
        assert!(cfg.public_url.is_none());
    }

    #[test]
    fn missing_values_are_named_by_the_getters() {
        let cfg = load(&[(WORKER_URL, "http://127.0.0.1:8585/"), (WORKER_TOKEN, "  ")]).unwrap();
        let err = cfg.worker().unwrap_err();
        assert!(
            err.to_string().contains("`worker_token` is not set"),
            "{err}"
        );
        let err = cfg.registry().unwrap_err();
        assert!(err.to_string().contains("`registry_url`"), "{err}");
        let err = cfg.image_prefix().unwrap_err();
        assert!(err.to_string().contains("`image_prefix`"), "{err}");

        let cfg = load(&[(WORKER_URL, "http://127.0.0.1:8585/"), (WORKER_TOKEN, "t")]).unwrap();
        let worker = cfg.worker().unwrap();
        assert_eq!(worker.url, "http://127.0.0.1:8585");
        assert_eq!(worker.token.expose(), "t");
    }

    #[test]
    fn values_are_parsed() {
        let cfg = load(&[
            (REGISTRY_URL, "http://127.0.0.1:5000"),
            (REGISTRY_USERNAME, "puller"),
            (REGISTRY_PASSWORD, "pw"),
            (IMAGE_PREFIX, "127.0.0.1:5000/binder-"),
            (GITHUB_API, "http://127.0.0.1:9000/"),
            (REF_TTL_SECONDS, "5"),
            (IMAGE_MISSING_TTL_SECONDS, "0"),
            (PREBUILD_SPECS, "binder-examples/.*, other/"),
            (BANNED_SPECS, "evil/.*"),
            (BAN_NETWORKS, "10.0.0.0/8=the lab\n192.168.0.1=home"),
            (TRUSTED_PROXIES, "172.16.0.0/12, 192.0.2.1"),
            (PUBLIC_URL, "https://binder.example.org/"),
            (GITHUB_TOKEN, "ghp"),
        ])
        .unwrap();
        assert_eq!(
            cfg.registry().unwrap().credentials,
            Some(("puller", "pw")),
            "basic credentials"
        );
        assert_eq!(cfg.image_prefix().unwrap(), "127.0.0.1:5000/binder-");
        assert_eq!(cfg.providers.github_api, "http://127.0.0.1:9000");
        assert_eq!(cfg.providers.github_host, "github.com", "repo hosts stay");
        assert_eq!(cfg.ttl.ref_seconds, 5);
        assert_eq!(cfg.ttl.image_missing_seconds, 0);
        assert_eq!(cfg.ttl.image_present_seconds, 21_600);
        assert!(cfg.prebuild_specs.matches("Binder-Examples/octave/HEAD"));
        assert!(cfg.prebuild_specs.matches("other/x/main"));
        assert!(!cfg.prebuild_specs.matches("x/binder-examples/main"));
        assert!(cfg.policy.is_banned("EVIL/x/main"));
        let ip = "10.1.2.3".parse().unwrap();
        assert_eq!(cfg.ban_networks.matching(ip), Some("the lab"));
        for (proxy, trusted) in [
            ("172.20.0.1", true),
            ("192.0.2.1", true),
            ("10.1.2.3", false),
        ] {
            let proxy = proxy.parse().unwrap();
            assert_eq!(
                cfg.trusted_proxies.matching(proxy).is_some(),
                trusted,
                "{proxy}"
            );
        }
        assert_eq!(
            cfg.public_url.as_deref(),
            Some("https://binder.example.org")
        );
        assert_eq!(cfg.credentials.github_token.as_deref(), Some("ghp"));
    }

    #[test]
    fn lists_split_on_newlines_when_there_are_any() {
        assert_eq!(split_list("a, b,,c "), ["a", "b", "c"]);
        assert_eq!(split_list("a{1,3}\n b \n\n"), ["a{1,3}", "b"]);
        assert!(split_list(" ").is_empty());
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            (WORKER_URL, "127.0.0.1:8585"),
            (WORKER_URL, "ftp://host"),
            (REGISTRY_URL, "http://host/?q"),
            (GITLAB_API, "not a url"),
            (REF_TTL_SECONDS, "-1"),
            (IMAGE_PRESENT_TTL_SECONDS, "1h"),
            (PREBUILD_SPECS, "a)|(b"),
            (BANNED_SPECS, "("),
            (ALLOWED_SPECS, "["),
            (HIGH_QUOTA_SPECS, "x{"),
            (BAN_NETWORKS, "10.0.0.0/8"),
            (BAN_NETWORKS, "nonsense=label"),
            (TRUSTED_PROXIES, "10.0.0.0/8,proxy.example.org"),
            (TRUSTED_PROXIES, "10.0.0.0/33"),
            (IMAGE_PREFIX, "binder-"),
            (PUBLIC_URL, "binder.example.org"),
        ];
        for (name, raw) in cases {
            let err = load(&[(name, raw)]).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{name}`")),
                "{name}={raw}: {err}"
            );
        }
    }

    #[test]
    fn secrets_never_show() {
        let cfg = load(&[
            (WORKER_TOKEN, "tok-SECRET"),
            (REGISTRY_PASSWORD, "pw-SECRET"),
            (GITHUB_WEBHOOK_SECRET, "gh-SECRET"),
            (GITLAB_WEBHOOK_SECRET, "gl-SECRET"),
            (GITHUB_TOKEN, "ght-SECRET"),
            (GITLAB_TOKEN, "glt-SECRET"),
        ])
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        let err = load(&[(WORKER_URL, "https://user:SECRET@host")]).unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn provider_failures_are_reported_with_the_name() {
        let err = EdgeConfig::from_source(|name| {
            if name == GITHUB_TOKEN {
                Err(ConfigError::Provider {
                    name,
                    reason: "vault down".into(),
                })
            } else {
                Ok(None)
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("`github_token`"), "{err}");
    }

    #[test]
    fn every_variable_is_listed_once_and_component_lists_are_known() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len());
        for list in [BADGE_VARIABLES, WEBHOOK_VARIABLES, LAUNCH_VARIABLES] {
            for name in list {
                assert!(names.contains(name), "{name}");
            }
        }
        // The resolve route reads a part of what the launch component declares, and
        // leaves out only what it never uses.
        let left_out: Vec<&str> = LAUNCH_VARIABLES
            .iter()
            .copied()
            .filter(|name| !RESOLVE_VARIABLES.contains(name))
            .collect();
        assert_eq!(left_out, [WORKER_URL, WORKER_TOKEN, PUBLIC_URL]);
        assert!(
            RESOLVE_VARIABLES
                .iter()
                .all(|n| LAUNCH_VARIABLES.contains(n))
        );
    }
}

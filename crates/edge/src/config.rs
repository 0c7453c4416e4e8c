//! Component configuration, read from Spin variables.
//!
//! Every value is a Spin component variable mapped from an application variable of the
//! same name in `spin.toml` ([`VARIABLES`] lists them, with who reads each). A component
//! reads those its reader's list names with `EdgeConfig::load_declared` (wasm only); a
//! variable the component does not declare reads as unset, and an empty string is unset
//! too. Malformed values (a bad URL, regex, CIDR or number) fail the load with an error
//! that names the variable; values that only some requests need (the worker, the registry,
//! the image prefix) are checked by the getters that hand them out, so a badge never fails
//! because the worker token is unset.
//!
//! Lists (`prebuild_specs`, `banned_specs`, `allowed_specs`, `high_quota_specs`,
//! `ban_networks`) hold one item per line; a value without a newline is split on commas
//! instead, so a short list fits on a command line. A pattern that contains a comma
//! (`a{1,3}`) must therefore be written one per line.
//!
//! No error message ever contains the value of a secret.
//!
//! - [`variables`]: the table of variables and the per-reader lists derived from it.
//! - [`parse`]: parsing of the values.
//! - [`limits`]: the settings of build tokens and of the rate limit on `/build`.

pub mod limits;
pub mod parse;
pub mod variables;

pub use bindery_core::Secret;
use bindery_core::cache::CacheTtl;
use bindery_core::cors::CorsOrigins;
use bindery_core::csp::FrameAncestors;
use bindery_core::policy::{BanNetworks, SpecList, SpecPatterns, SpecPolicy};
use bindery_core::provider::ProviderSettings;
use bindery_core::resolve::Credentials;
#[cfg(target_arch = "wasm32")]
use bindery_core::validate::shown;
use thiserror::Error;

pub use limits::{BuildRate, BuildTokenSettings};
pub use parse::{
    parse_ban_networks, parse_base_url, parse_seconds, parse_trusted_proxies, split_list,
};
use parse::{parse_frame_ancestors, parse_image_prefix, policy_error};
pub use variables::*;

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
#[derive(Debug, Clone)]
pub struct Registry<'a> {
    /// The base URL, without a trailing `/`.
    pub url: &'a str,
    /// The pull credentials, when a username is set (the rule is the core's, shared with
    /// the worker).
    pub credentials: Option<bindery_core::registry::Credentials>,
}

/// Everything an edge component is configured with.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `worker_url`, validated, without a trailing `/`.
    pub worker_url: Option<String>,
    /// `worker_token`.
    pub worker_token: Option<Secret>,
    /// `use_registry`: whether images are looked up in the registry (default) or by asking
    /// the worker, whose images stay in its build engine.
    pub use_registry: bool,
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
    /// `frame_ancestors`, validated; `'self'` when unset.
    pub frame_ancestors: FrameAncestors,
    /// `public_url`, validated, without a trailing `/`; `None`: derive from the request.
    pub public_url: Option<String>,
    /// `badge_base_url`, validated, without a trailing `/`; `None`: the public URL.
    pub badge_base_url: Option<String>,
    /// `cors_allow_origin`, parsed; `None`: no `Access-Control-Allow-Origin` but where
    /// Bindery always sends `*` (the resolve API, `/versions`).
    pub cors_allow_origin: Option<CorsOrigins>,
    /// `about_message`: the operator's HTML for `/about`.
    pub about_message: Option<String>,
    /// Cache lifetimes: the defaults with the `*_ttl_seconds` variables applied.
    pub ttl: CacheTtl,
    /// Build tokens (`build_token_*`).
    pub build_token: BuildTokenSettings,
    /// The per-client limit on `/build` (`build_rate_*`).
    pub build_rate: BuildRate,
    /// Whether `/build?build_only=true` may build without launching
    /// (`allow_build_only`, default false: BinderHub's `enable_api_only_mode`).
    pub allow_build_only: bool,
    /// `federation`, parsed: `Some` when the edge is a federation's redirector.
    pub federation: Option<crate::federation::Federation>,
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
        let secret = |v: Option<String>| v.map(Secret::new);

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
        // Only a pattern can fail here, and its error names its list.
        let policy = SpecPolicy::new(&banned, &allowed, &high_quota, serde_json::Value::Null)
            .map_err(|e| policy_error(e, BANNED_SPECS))?;
        let prebuild = list(value(PREBUILD_SPECS)?);
        let prebuild_specs = SpecPatterns::new(SpecList::Prebuild, &prebuild)
            .map_err(|e| policy_error(e, PREBUILD_SPECS))?;
        let ban_networks = match value(BAN_NETWORKS)? {
            Some(raw) => parse_ban_networks(&raw)?,
            None => BanNetworks::default(),
        };
        let (build_token, build_rate) = limits::parse_limits(&mut value)?;
        let allow_build_only = value(ALLOW_BUILD_ONLY)?
            .map(|raw| limits::parse_bool(ALLOW_BUILD_ONLY, &raw))
            .transpose()?
            .unwrap_or(false);
        let trusted_proxies = match value(TRUSTED_PROXIES)? {
            Some(raw) => parse_trusted_proxies(&raw)?,
            None => BanNetworks::default(),
        };

        let federation = match value(FEDERATION)? {
            Some(raw) => {
                crate::federation::Federation::parse(&raw).map_err(|e| ConfigError::Invalid {
                    name: FEDERATION,
                    reason: e.to_string(),
                })?
            }
            None => None,
        };

        Ok(Self {
            worker_url: value(WORKER_URL)?
                .map(|raw| parse_base_url(WORKER_URL, &raw))
                .transpose()?,
            worker_token: secret(value(WORKER_TOKEN)?),
            use_registry: value(USE_REGISTRY)?
                .map(|raw| limits::parse_bool(USE_REGISTRY, &raw))
                .transpose()?
                .unwrap_or(true),
            registry_url: value(REGISTRY_URL)?
                .map(|raw| parse_base_url(REGISTRY_URL, &raw))
                .transpose()?,
            registry_username: value(REGISTRY_USERNAME)?,
            registry_password: secret(value(REGISTRY_PASSWORD)?),
            image_prefix: value(IMAGE_PREFIX)?
                .map(|raw| parse_image_prefix(&raw))
                .transpose()?,
            credentials: Credentials {
                github_token: secret(value(GITHUB_TOKEN)?),
                gitlab_token: secret(value(GITLAB_TOKEN)?),
            },
            providers,
            github_webhook_secret: secret(value(GITHUB_WEBHOOK_SECRET)?),
            gitlab_webhook_secret: secret(value(GITLAB_WEBHOOK_SECRET)?),
            prebuild_specs,
            policy,
            ban_networks,
            trusted_proxies,
            frame_ancestors: value(FRAME_ANCESTORS)?
                .map(|raw| parse_frame_ancestors(&raw))
                .transpose()?
                .unwrap_or_default(),
            public_url: value(PUBLIC_URL)?
                .map(|raw| parse_base_url(PUBLIC_URL, &raw))
                .transpose()?,
            badge_base_url: value(BADGE_BASE_URL)?
                .map(|raw| parse_base_url(BADGE_BASE_URL, &raw))
                .transpose()?,
            cors_allow_origin: value(CORS_ALLOW_ORIGIN)?
                .map(|raw| {
                    CorsOrigins::parse(&raw).map_err(|e| ConfigError::Invalid {
                        name: CORS_ALLOW_ORIGIN,
                        reason: e.to_string(),
                    })
                })
                .transpose()?,
            about_message: value(ABOUT_MESSAGE)?,
            ttl,
            build_token,
            build_rate,
            allow_build_only,
            federation,
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
        let credentials = bindery_core::registry::Credentials::from_config(
            self.registry_username.as_deref(),
            self.registry_password.as_ref().map(Secret::expose),
        );
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

#[cfg(test)]
mod tests;

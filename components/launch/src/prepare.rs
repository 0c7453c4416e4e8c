//! What `/build` and `/api/v1/resolve` share: from the request to the image name.
//!
//! [`Prepare`] walks a link through the same steps for both routes, in BinderHub's order:
//! the configuration, the client's network, the spec and its ban, the resolution of its
//! ref (from the cache when it can), the image name, then whether the image exists.
//! Each step either goes on or refuses with a [`Refusal`], whose
//! [`status`](Refusal::status) is the one mapping of a refusal, and of a resolution's
//! [`Outcome`], to an HTTP status: the resolve API answers it as JSON, `/build` as a
//! `failed` event.

use std::net::IpAddr;

use bindery_core::build_token::{BuildTokenError, INVALID_BUILD_TOKEN};
use bindery_core::launch::{BUILD_ONLY_NOT_ALLOWED, MISSING_ACCEPT};
use bindery_core::provider::{ProviderId, Spec};
use bindery_core::resolve::{Outcome, Resolved};
use bindery_core::{InputError, image, policy};
use bindery_edge::config::EdgeConfig;
use bindery_edge::registry::{Remember, check_presence};
use bindery_edge::{
    ConfigError, Fetch, FromCache, Presence, ResolveSource, presence_from_cache,
    resolve_from_cache, resolve_upstream,
};
use http::Request;
use thiserror::Error;

use crate::client;
use crate::env::Env;

/// Why a link is not launched or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The component's configuration cannot serve the request.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client is in a banned network; the message names the network's label.
    #[error("{0}")]
    Network(String),
    /// The event stream was asked for without `Accept: text/event-stream`.
    #[error("{MISSING_ACCEPT}")]
    NotAnEventStream,
    /// `build_only=true` on an edge that does not allow it (`allow_build_only`).
    #[error("{BUILD_ONLY_NOT_ALLOWED}")]
    BuildOnlyNotAllowed,
    /// The provider or spec does not parse.
    #[error(transparent)]
    Spec(#[from] InputError),
    /// The spec is banned; the message is BinderHub's.
    #[error("{0}")]
    BannedSpec(String),
    /// The repository or ref does not exist (or is private).
    #[error("{0}")]
    NotFound(String),
    /// The provider's rate limit is exhausted.
    #[error("{0}")]
    RateLimited(String),
    /// The provider failed otherwise.
    #[error("{0}")]
    Upstream(String),
    /// The build token does not verify, has expired, or is for another link or origin.
    #[error("{INVALID_BUILD_TOKEN}")]
    BuildToken(BuildTokenError),
    /// The client is past its `/build` limit; the window ends in this many seconds.
    #[error("{}", policy::rate_limit_message(*.0))]
    TooManyBuilds(u64),
    /// The worker, which counts `/build` and runs every launch, cannot be asked.
    #[error("Failed to start the launch: {0}")]
    Worker(String),
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Config(_) => 500,
            Self::Network(_) | Self::BannedSpec(_) | Self::BuildToken(_) => 403,
            Self::NotAnEventStream | Self::BuildOnlyNotAllowed | Self::Spec(_) => 400,
            Self::NotFound(_) => 404,
            Self::RateLimited(_) | Self::TooManyBuilds(_) => 429,
            Self::Upstream(_) => 502,
            Self::Worker(_) => 503,
        }
    }

    /// The resolved ref of a resolution, or why there is none.
    pub fn from_outcome(outcome: Outcome) -> Result<Resolved, Self> {
        match outcome {
            Outcome::Resolved(resolved) => Ok(resolved),
            Outcome::NotFound(message) => Err(Self::NotFound(message)),
            Outcome::RateLimited { message, .. } => Err(Self::RateLimited(message)),
            Outcome::Failed(message) => Err(Self::Upstream(message)),
        }
    }
}

/// A link's resolution and image name.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The resolved ref and what derives from it.
    pub resolved: Resolved,
    /// Where the resolution came from.
    pub source: ResolveSource,
    /// The image name.
    pub image: String,
}

/// One link on its way from the request to an image; see the module's documentation.
pub struct Prepare<'e, 'a, F> {
    env: &'e Env<'a, F>,
    first: EdgeConfig,
    rest: Option<&'static [&'static str]>,
    full: Option<EdgeConfig>,
}

impl<F> std::fmt::Debug for Prepare<'_, '_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepare").finish_non_exhaustive()
    }
}

impl<'e, 'a, F: Fetch> Prepare<'e, 'a, F> {
    /// Reads the variables in `first`, and, when given, those in `rest` once a step needs
    /// more than `first` holds: an answer from the cache then costs only the host calls
    /// of `first`.
    pub fn load(
        env: &'e Env<'a, F>,
        first: &[&str],
        rest: Option<&'static [&'static str]>,
    ) -> Result<Self, Refusal> {
        Ok(Self {
            env,
            first: env.variables.load(first)?,
            rest,
            full: None,
        })
    }

    /// The configuration read up front.
    pub fn config(&self) -> &EdgeConfig {
        &self.first
    }

    /// The whole configuration, reading the rest of it the first time.
    pub fn full(&mut self) -> Result<&EdgeConfig, Refusal> {
        let Some(rest) = self.rest else {
            return Ok(&self.first);
        };
        let full = match self.full.take() {
            Some(full) => full,
            None => self.env.variables.load(rest)?,
        };
        Ok(self.full.insert(full))
    }

    /// The client's address, unless it is in a banned network.
    pub fn admit<B>(&self, request: &Request<B>) -> Result<Option<IpAddr>, Refusal> {
        let client = client::client_ip(request, &self.first);
        match client.and_then(|ip| self.first.ban_networks.matching(ip)) {
            Some(label) => Err(Refusal::Network(policy::ip_banned_message(label))),
            None => Ok(client),
        }
    }

    /// The spec of `<provider>/<raw spec>`, unless it does not parse or is banned.
    pub fn spec(&self, provider: &str, raw_spec: &str) -> Result<Spec, Refusal> {
        let provider = ProviderId::parse(provider)?;
        let spec = Spec::parse(provider, raw_spec, &self.first.providers)?;
        if self.first.policy.is_banned(spec.raw()) {
            return Err(Refusal::BannedSpec(policy::banned_message(spec.raw())));
        }
        Ok(spec)
    }

    /// Resolves the spec's ref, from the cache when it can, and names its image.
    pub async fn resolve(&mut self, spec: &Spec) -> Result<Prepared, Refusal> {
        let prefix = self.first.image_prefix()?.to_owned();
        let (env, now) = (self.env, self.env.now());
        let result = match resolve_from_cache(spec, &self.first, env.cache(), now) {
            FromCache::Answered(result) => result,
            FromCache::Ask(expired) => {
                let full = self.full()?;
                resolve_upstream(spec, full, env.cache(), &env.upstream, now, expired).await
            }
        };
        let resolved = Refusal::from_outcome(result.outcome)?;
        let image = image::image_name(&prefix, &resolved.build_slug, &resolved.resolved_ref);
        Ok(Prepared {
            resolved,
            source: result.source,
            image,
        })
    }

    /// Whether the prepared image is in the registry (with `use_registry = false`: as the
    /// worker says), from the cache when it can. `None` when that did not say (logged): BinderHub treats that as missing after its
    /// retries, and the worker checks again before it builds. The image of a commit nobody
    /// checked (a `git` link's) leaves only a "present" entry behind ([`Remember::after`]).
    pub async fn presence(&mut self, prepared: &Prepared) -> Result<Option<Presence>, Refusal> {
        let (env, now) = (self.env, self.env.now());
        let (image, remember) = (&prepared.image, Remember::after(prepared.source));
        if let Some(presence) = presence_from_cache(image, env.cache(), now) {
            return Ok(Some(presence));
        }
        let full = self.full()?;
        match check_presence(image, remember, full, env.cache(), &env.upstream, now).await {
            Ok(presence) => Ok(Some(presence)),
            Err(e) => {
                eprintln!("bindery-launch: image check for {image} failed: {e}");
                Ok(None)
            }
        }
    }
}

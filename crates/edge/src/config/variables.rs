//! The edge's variables: one table ([`VARIABLES`]) of every name, whether it is a secret
//! and which readers ([`Reader`]) read it; every per-reader list is derived from it at
//! compile time, so a new variable is one row here (and its declaration in `spin.toml`).

use Reader::{Badge, CachedResolve, Federation, Launch, Resolve, Webhook};
use bindery_core::policy::SpecList;

/// A reader of variables: a component, or one route of the launch component that reads
/// fewer variables than the component declares (each variable read is a host call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The badge component.
    Badge,
    /// The webhook component.
    Webhook,
    /// The launch component: every variable its `spin.toml` entry declares.
    Launch,
    /// The launch component's `/api/v1/resolve` when it must ask a provider or the registry.
    Resolve,
    /// `/api/v1/resolve` answered from the cache alone.
    CachedResolve,
    /// What every request of the launch component reads first: whether the edge is a
    /// federation's redirector (`federation`), and in that mode nothing else but the
    /// public URL its proxied requests name.
    Federation,
}

impl Reader {
    /// Every reader.
    pub const ALL: [Reader; 6] = [
        Reader::Badge,
        Reader::Webhook,
        Reader::Launch,
        Reader::Resolve,
        Reader::CachedResolve,
        Reader::Federation,
    ];

    /// The names this reader reads, in table order.
    pub const fn variables(self) -> &'static [&'static str] {
        match self {
            Reader::Badge => BADGE_VARIABLES,
            Reader::Webhook => WEBHOOK_VARIABLES,
            Reader::Launch => LAUNCH_VARIABLES,
            Reader::Resolve => RESOLVE_VARIABLES,
            Reader::CachedResolve => CACHED_RESOLVE_VARIABLES,
            Reader::Federation => FEDERATION_VARIABLES,
        }
    }
}

/// One configuration variable: its name in `spin.toml`, whether it is a secret, and who
/// reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The variable name, both the application and the component variable.
    pub name: &'static str,
    /// True when the value must be declared `secret = true` and never shown.
    pub secret: bool,
    /// The readers that read it.
    pub readers: &'static [Reader],
}

impl Var {
    /// True when `reader` reads this variable.
    pub const fn read_by(&self, reader: Reader) -> bool {
        let mut i = 0;
        while i < self.readers.len() {
            // `==` on an enum is not const; the discriminants compare the same.
            if self.readers[i] as u8 == reader as u8 {
                return true;
            }
            i += 1;
        }
        false
    }
}

const fn var(name: &'static str, readers: &'static [Reader]) -> Var {
    Var {
        name,
        secret: false,
        readers,
    }
}

const fn secret(name: &'static str, readers: &'static [Reader]) -> Var {
    Var {
        name,
        secret: true,
        readers,
    }
}

/// A resolve that asks the provider reads everything the answer depends on.
const RESOLVING: &[Reader] = &[Launch, Resolve];
/// What a provider resolution needs, read also by the webhook, which re-resolves a
/// pushed ref instead of trusting the push.
const PROVIDER_RESOLVING: &[Reader] = &[Launch, Resolve, Webhook];
/// What a cached resolve needs (the ban rules, the image prefix, and the one provider
/// endpoint a parsed spec keeps: HydroShare's base, in its repository URL), so a cached
/// answer comes out the same as a resolved one.
const CACHED: &[Reader] = &[Launch, Resolve, CachedResolve];

/// Every variable `EdgeConfig` knows, with who reads it; `EdgeConfig::load_declared`
/// reads those a reader's list names.
pub const VARIABLES: &[Var] = &[
    // The resolve API asks the worker whether an image exists when `use_registry` is false.
    var(WORKER_URL, &[Launch, Resolve, Webhook]),
    secret(WORKER_TOKEN, &[Launch, Resolve, Webhook]),
    var(USE_REGISTRY, RESOLVING),
    var(REGISTRY_URL, RESOLVING),
    var(REGISTRY_USERNAME, RESOLVING),
    secret(REGISTRY_PASSWORD, RESOLVING),
    var(
        IMAGE_PREFIX,
        &[Launch, Resolve, CachedResolve, Badge, Webhook],
    ),
    secret(GITHUB_TOKEN, PROVIDER_RESOLVING),
    secret(GITLAB_TOKEN, PROVIDER_RESOLVING),
    secret(GITHUB_WEBHOOK_SECRET, &[Webhook]),
    secret(GITLAB_WEBHOOK_SECRET, &[Webhook]),
    var(PREBUILD_SPECS, &[Webhook]),
    var(BANNED_SPECS, &[Launch, Resolve, CachedResolve, Webhook]),
    var(ALLOWED_SPECS, &[Launch, Resolve, CachedResolve, Webhook]),
    var(HIGH_QUOTA_SPECS, CACHED),
    var(BAN_NETWORKS, CACHED),
    var(TRUSTED_PROXIES, CACHED),
    var(PUBLIC_URL, &[Launch, Federation]),
    var(BADGE_BASE_URL, &[Launch]),
    var(CORS_ALLOW_ORIGIN, &[Launch]),
    var(ABOUT_MESSAGE, &[Launch]),
    // Read by the page routes alone (not the resolve API), with the ban rules.
    var(FRAME_ANCESTORS, &[Launch]),
    var(GITHUB_API, PROVIDER_RESOLVING),
    var(GITLAB_API, PROVIDER_RESOLVING),
    var(DOI_RESOLVER, RESOLVING),
    var(FIGSHARE_API, RESOLVING),
    var(HYDROSHARE_BASE, CACHED),
    var(REF_TTL_SECONDS, PROVIDER_RESOLVING),
    var(IMAGE_PRESENT_TTL_SECONDS, RESOLVING),
    var(IMAGE_MISSING_TTL_SECONDS, RESOLVING),
    secret(BUILD_TOKEN_SECRET, &[Launch]),
    var(BUILD_TOKEN_EXPIRES_SECONDS, &[Launch]),
    var(BUILD_TOKEN_CHECK_ORIGIN, &[Launch]),
    var(BUILD_RATE_LIMIT, &[Launch]),
    var(BUILD_RATE_PERIOD_SECONDS, &[Launch]),
    var(ALLOW_BUILD_ONLY, &[Launch]),
    var(FEDERATION, &[Launch, Federation]),
];

/// How many variables `reader` reads.
const fn count(reader: Reader) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < VARIABLES.len() {
        if VARIABLES[i].read_by(reader) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The names `reader` reads, in table order; `N` is [`count`]`(reader)`.
const fn names<const N: usize>(reader: Reader) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut j) = (0, 0);
    while i < VARIABLES.len() {
        if VARIABLES[i].read_by(reader) {
            out[j] = VARIABLES[i].name;
            j += 1;
        }
        i += 1;
    }
    out
}

/// The variables the badge component declares and reads.
pub const BADGE_VARIABLES: &[&str] = &names::<{ count(Badge) }>(Badge);

/// The variables the webhook component declares and reads.
pub const WEBHOOK_VARIABLES: &[&str] = &names::<{ count(Webhook) }>(Webhook);

/// The variables the launch component declares and reads: all but the webhook secrets
/// and `prebuild_specs`.
pub const LAUNCH_VARIABLES: &[&str] = &names::<{ count(Launch) }>(Launch);

/// What the launch component's `/api/v1/resolve` reads: [`LAUNCH_VARIABLES`] but the
/// worker's address and token and the public URL, which it never uses. Every variable is
/// a host call on every request, and badges, CI and tools call this route often.
pub const RESOLVE_VARIABLES: &[&str] = &names::<{ count(Resolve) }>(Resolve);

/// What a resolve answered from the cache alone reads: the ban rules (and the proxies
/// whose `X-Forwarded-For` names the client), the image prefix, and the one provider
/// endpoint that a parsed spec keeps (HydroShare's base, in its repository URL).
/// [`crate::resolve::resolve_from_cache`] and [`crate::registry::presence_from_cache`]
/// need nothing else; a miss reads [`RESOLVE_VARIABLES`]. A test checks that a spec and
/// the ban rules come out the same from either list.
pub const CACHED_RESOLVE_VARIABLES: &[&str] = &names::<{ count(CachedResolve) }>(CachedResolve);

/// What federation mode reads: `federation` and `public_url`. Outside that mode a request
/// reads `federation` alone first ([`FEDERATION`]), one host call.
pub const FEDERATION_VARIABLES: &[&str] = &names::<{ count(Federation) }>(Federation);

/// The worker's base URL (`http://127.0.0.1:8585`).
pub const WORKER_URL: &str = "worker_url";
/// The bearer token of the worker API.
pub const WORKER_TOKEN: &str = "worker_token";
/// Whether images are looked up in the registry (`true`, the default) or, for a Binder on
/// one machine whose images stay in the build engine, by asking the worker (`false`);
/// BinderHub's setting of that name.
pub const USE_REGISTRY: &str = "use_registry";
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
pub const PREBUILD_SPECS: &str = SpecList::Prebuild.setting();
/// Patterns of specs that may not launch.
pub const BANNED_SPECS: &str = SpecList::Banned.setting();
/// Patterns of the only specs that may launch (empty: all).
pub const ALLOWED_SPECS: &str = SpecList::Allowed.setting();
/// Patterns of specs with the higher per-repo quota.
pub const HIGH_QUOTA_SPECS: &str = SpecList::HighQuota.setting();
/// `cidr=label` pairs of banned client networks.
pub const BAN_NETWORKS: &str = "ban_networks";
/// Networks of the reverse proxies in front of the edge, whose `X-Forwarded-For` is believed.
pub const TRUSTED_PROXIES: &str = "trusted_proxies";
/// The Binder's public base URL (`binder_launch_host`).
pub const PUBLIC_URL: &str = "public_url";
/// BinderHub's `badge_base_url`: the base of shared links, badges and
/// `binder_launch_host` (a federation's public URL, `https://mybinder.org`); empty: the
/// public URL.
pub const BADGE_BASE_URL: &str = "badge_base_url";
/// BinderHub's `cors_allow_origin`: `*` or the origins whose pages may read the answers
/// (`bindery_core::cors`).
pub const CORS_ALLOW_ORIGIN: &str = "cors_allow_origin";
/// BinderHub's `about_message`: the operator's HTML on `/about`.
pub const ABOUT_MESSAGE: &str = "about_message";
/// Who may show the pages in a frame: the `frame-ancestors` source list of their
/// Content Security Policy (`'self'` when unset).
pub const FRAME_ANCESTORS: &str = "frame_ancestors";
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
/// The hex secret of build tokens; empty: one generated and kept in the key-value store.
pub const BUILD_TOKEN_SECRET: &str = "build_token_secret";
/// Lifetime of a build token, in seconds (default 300).
pub const BUILD_TOKEN_EXPIRES_SECONDS: &str = "build_token_expires_seconds";
/// Whether a build token must come from the origin it was minted for (default true).
pub const BUILD_TOKEN_CHECK_ORIGIN: &str = "build_token_check_origin";
/// Whether `/build?build_only=true` may build an image without launching it
/// (BinderHub's API-only mode; default false).
pub const ALLOW_BUILD_ONLY: &str = "allow_build_only";
/// The federation redirector's JSON configuration; empty: not a federation.
pub const FEDERATION: &str = "federation";
/// `/build` requests per client address per window without a build token (default 10; 0: off).
pub const BUILD_RATE_LIMIT: &str = "build_rate_limit";
/// The window of `build_rate_limit`, in seconds (default 3600).
pub const BUILD_RATE_PERIOD_SECONDS: &str = "build_rate_period_seconds";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_lists_are_the_ones_the_components_declared_before_the_table() {
        assert_eq!(BADGE_VARIABLES, [IMAGE_PREFIX]);
        assert_eq!(
            WEBHOOK_VARIABLES,
            [
                WORKER_URL,
                WORKER_TOKEN,
                IMAGE_PREFIX,
                // The webhook re-resolves a pushed ref with the provider (issue 12).
                GITHUB_TOKEN,
                GITLAB_TOKEN,
                GITHUB_WEBHOOK_SECRET,
                GITLAB_WEBHOOK_SECRET,
                PREBUILD_SPECS,
                BANNED_SPECS,
                ALLOWED_SPECS,
                GITHUB_API,
                GITLAB_API,
                REF_TTL_SECONDS,
            ]
        );
        // Issue 12 added the five `build_token_*` and `build_rate_*` variables, and
        // `frame_ancestors` of the pages; issue 14 `allow_build_only`, `badge_base_url`,
        // `cors_allow_origin`, `about_message` and `federation`; issue 15 `use_registry`,
        // with which the resolve API may ask the worker.
        assert_eq!(LAUNCH_VARIABLES.len(), 34);
        assert_eq!(FEDERATION_VARIABLES, [PUBLIC_URL, FEDERATION]);
        assert_eq!(RESOLVE_VARIABLES.len(), 22);
        // The cached resolve is the hot path: each variable is a host call per request.
        assert_eq!(
            CACHED_RESOLVE_VARIABLES,
            [
                IMAGE_PREFIX,
                BANNED_SPECS,
                ALLOWED_SPECS,
                HIGH_QUOTA_SPECS,
                BAN_NETWORKS,
                TRUSTED_PROXIES,
                HYDROSHARE_BASE,
            ]
        );
    }

    #[test]
    fn every_reader_reads_its_list_and_nothing_else() {
        for reader in Reader::ALL {
            let expected: Vec<&str> = VARIABLES
                .iter()
                .filter(|v| v.readers.contains(&reader))
                .map(|v| v.name)
                .collect();
            assert_eq!(reader.variables(), expected, "{reader:?}");
        }
        // What a route reads the launch component must declare.
        for reader in [Reader::Resolve, Reader::CachedResolve, Reader::Federation] {
            for name in reader.variables() {
                assert!(LAUNCH_VARIABLES.contains(name), "{reader:?}: {name}");
            }
        }
        assert!(
            CACHED_RESOLVE_VARIABLES
                .iter()
                .all(|n| RESOLVE_VARIABLES.contains(n))
        );
    }

    #[test]
    fn pattern_variables_are_named_like_their_policy_lists() {
        for (name, list) in [
            (BANNED_SPECS, SpecList::Banned),
            (ALLOWED_SPECS, SpecList::Allowed),
            (HIGH_QUOTA_SPECS, SpecList::HighQuota),
            (PREBUILD_SPECS, SpecList::Prebuild),
        ] {
            assert_eq!(name, list.setting());
            assert!(VARIABLES.iter().any(|v| v.name == name), "{name}");
        }
    }
}

//! Repository providers: how a `<provider>/<spec>` link names a repository and a ref.
//!
//! A provider is one module: its parsed spec type, its [`ProviderInfo`] (`INFO`) and its
//! [`Provider`] implementation, which holds its derived names and its steps of a
//! resolution. The table below lists the modules once; from it come [`ProviderId`],
//! [`Spec`], [`PROVIDERS`] and every dispatch between them. The syntax and rules are
//! BinderHub's (BINDERHUB.md §2), so existing links keep working and produce the same
//! image names. Parsing does no I/O; [`crate::resolve`] runs a resolution, asking the
//! provider for each request and reading each answer with it.
//!
//! The table also describes the providers to UIs (BinderHub's `/api/repoproviders`,
//! [`repo_providers`]).
//!
//! Adding a provider: write its module (spec type, `parse`, `INFO`, `impl Provider`), add
//! one line to the table, and allow its hosts in `spin.toml`. Only a provider whose
//! endpoint operators (or tests) move needs more: a field of [`ProviderSettings`] and the
//! edge variable that sets it.

use std::fmt;

use crate::validate::{self, InputError};

pub mod ckan;
mod contract;
pub mod dataverse;
mod display;
pub mod figshare;
pub mod gist;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod hydroshare;
mod info;
pub mod zenodo;

pub(crate) use contract::host_of;
pub use contract::{
    Accept, Answer, Auth, Cx, FULL_COMMIT, Fetch, Next, Progress, Provider, parse_timestamp,
};
pub use display::{DEFAULT_REF, display_config, repo_providers};
pub use git::{AdvertisedRef, AdvertisementError, parse_advertisement};
pub use info::{KnownPrefixes, ProviderInfo, RepoEncoding, UiRoute};

/// Generates, from one list of `Variant => module::SpecType`, the provider id enum, the
/// parsed spec enum, the table of [`ProviderInfo`]s and the dispatch between them.
macro_rules! providers {
    ($($(#[doc = $doc:literal])* $variant:ident => $module:ident::$spec:ident,)*) => {
        /// The providers Bindery knows, one per row of the provider table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProviderId {
            $($(#[doc = $doc])* $variant,)*
        }

        /// A parsed `<provider>/<spec>`: one variant per provider, holding its module's type.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Spec {
            $($(#[doc = $doc])* $variant($module::$spec),)*
        }

        /// The provider table: every provider's metadata, in the order the home page and
        /// error messages list them.
        pub const PROVIDERS: &[&ProviderInfo] = &[$(&$module::INFO,)*];

        impl ProviderId {
            /// Every provider, in table order.
            pub const ALL: [ProviderId; PROVIDERS.len()] = [$(ProviderId::$variant,)*];

            /// The provider's row in the table.
            pub fn info(self) -> &'static ProviderInfo {
                match self {
                    $(ProviderId::$variant => &$module::INFO,)*
                }
            }
        }

        impl Spec {
            /// Runs the provider's own parser.
            fn parse_as(
                provider: ProviderId,
                raw: &str,
                settings: &ProviderSettings,
            ) -> Result<Spec, InputError> {
                match provider {
                    $(ProviderId::$variant => $module::$spec::parse(raw, settings).map(Spec::$variant),)*
                }
            }

            /// The provider of this spec.
            pub fn provider(&self) -> ProviderId {
                match self {
                    $(Spec::$variant(_) => ProviderId::$variant,)*
                }
            }

            /// The provider module's view of this spec.
            pub fn as_provider(&self) -> &dyn Provider {
                match self {
                    $(Spec::$variant(s) => s,)*
                }
            }
        }
    };
}

providers! {
    /// `gh/<user>/<repo>/<ref>`: GitHub.
    GitHub => github::GitHubSpec,
    /// `gl/<encoded namespace>/<ref>`: GitLab.
    GitLab => gitlab::GitLabSpec,
    /// `gist/<user>/<id>[/<ref>]`: GitHub gists.
    Gist => gist::GistSpec,
    /// `git/<encoded url>/<encoded ref>`: any git repository by URL.
    Git => git::GitSpec,
    /// `zenodo/<doi>`: Zenodo records.
    Zenodo => zenodo::ZenodoSpec,
    /// `figshare/<doi>`: Figshare articles.
    Figshare => figshare::FigshareSpec,
    /// `hydroshare/<url or doi holding a resource id>`: HydroShare resources.
    Hydroshare => hydroshare::HydroshareSpec,
    /// `dataverse/<doi>`: Dataverse datasets.
    Dataverse => dataverse::DataverseSpec,
    /// `ckan/<encoded dataset url>`: CKAN datasets.
    Ckan => ckan::CkanSpec,
}

impl ProviderId {
    /// The URL prefix (`gh`, `gl`, ...).
    pub fn as_str(self) -> &'static str {
        self.info().prefix
    }

    /// The name shown to people (and used as the metrics `provider` label).
    pub fn display_name(self) -> &'static str {
        self.info().display_name
    }

    /// Parses a URL prefix.
    pub fn parse(prefix: &str) -> Result<ProviderId, InputError> {
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == prefix)
            .ok_or_else(|| InputError::UnknownProvider {
                shown: validate::shown(prefix),
            })
    }

    /// Whether links for this provider carry a ref (data providers are versioned by record).
    pub fn has_ref(self) -> bool {
        self.info().has_ref
    }

    /// Whether the home page percent-encodes the repository part of a link.
    pub fn url_encodes_repo(self) -> bool {
        self.info().url_encodes_repo()
    }

    /// Whether `spec` matches the provider's UI route (BinderHub's `validateRegex`), after
    /// trailing slashes are removed.
    pub fn ui_route_matches(self, spec: &str) -> bool {
        self.info().ui_route.matches(spec)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the providers live. Defaults are the public services; tests and private
/// installations point the API bases elsewhere. Repository hosts stay separate from API
/// bases so that a test server does not change image names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// GitHub's web host, used in repository URLs.
    pub github_host: String,
    /// GitHub's API base URL.
    pub github_api: String,
    /// GitLab's web host.
    pub gitlab_host: String,
    /// GitLab's API base URL (`https://<host>/api/v4`).
    pub gitlab_api: String,
    /// The gist web host.
    pub gist_host: String,
    /// The DOI resolver.
    pub doi_resolver: String,
    /// Figshare's API base URL.
    pub figshare_api: String,
    /// HydroShare's base URL.
    pub hydroshare_base: String,
    /// Whether secret gists may be launched.
    pub allow_secret_gist: bool,
    /// URL schemes the `git` provider accepts.
    pub git_protocols: Vec<String>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            github_host: "github.com".into(),
            github_api: "https://api.github.com".into(),
            gitlab_host: "gitlab.com".into(),
            gitlab_api: "https://gitlab.com/api/v4".into(),
            gist_host: "gist.github.com".into(),
            doi_resolver: "https://doi.org".into(),
            figshare_api: "https://api.figshare.com/v2".into(),
            hydroshare_base: "https://www.hydroshare.org".into(),
            allow_secret_gist: false,
            git_protocols: ["http", "https", "git", "ssh"].map(String::from).to_vec(),
        }
    }
}

impl Spec {
    /// Parses `<provider>/<spec>` as it appears in a URL path.
    pub fn parse_path(path: &str, settings: &ProviderSettings) -> Result<Spec, InputError> {
        let (prefix, spec) = path.split_once('/').unwrap_or((path, ""));
        Spec::parse(ProviderId::parse(prefix)?, spec, settings)
    }

    /// Parses the raw spec text of `provider` (still percent-encoded where BinderHub's is).
    /// Trailing slashes are removed first, as BinderHub does.
    pub fn parse(
        provider: ProviderId,
        raw: &str,
        settings: &ProviderSettings,
    ) -> Result<Spec, InputError> {
        let raw = raw.trim_end_matches('/');
        validate::validate_spec_text(raw)?;
        let spec = Spec::parse_as(provider, raw, settings)?;
        validate::validate_repo_url("repository URL", &spec.repo_url())?;
        if let Some(r) = spec.unresolved_ref().filter(|r| !r.is_empty()) {
            validate::validate_ref("ref", r)?;
        }
        Ok(spec)
    }

    /// The spec text as given (trailing slashes removed): what ban lists match against.
    pub fn raw(&self) -> &str {
        self.as_provider().raw()
    }

    /// The repository URL (or DOI) as users know it; what repo2docker clones or fetches.
    pub fn repo_url(&self) -> String {
        self.as_provider().repo_url()
    }

    /// The ref as written in the link; `None` for providers whose links carry no ref.
    pub fn unresolved_ref(&self) -> Option<&str> {
        self.as_provider().unresolved_ref()
    }

    /// The build slug, the input of image naming. Providers whose slug depends on the
    /// resolved record (Zenodo, Figshare, HydroShare) need `resolved_ref`; without it they
    /// give `None`.
    pub fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String> {
        self.as_provider().build_slug(resolved_ref)
    }

    /// The spec of the same launch pinned to `resolved_ref`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        self.as_provider().resolved_spec(resolved_ref)
    }

    /// A link a person can open to see the resolved ref.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        self.as_provider().ref_url(resolved_ref)
    }

    /// The repository argument repo2docker receives (always last on its command line).
    pub fn repo2docker_repo(&self) -> String {
        self.repo_url()
    }

    /// The part of the spec that names the repository without its ref: a cache key.
    pub fn repo_key(&self) -> String {
        self.as_provider().repo_key()
    }

    /// True when the link already names a full commit.
    pub fn is_pinned(&self) -> bool {
        self.unresolved_ref().is_some_and(validate::is_full_commit)
    }

    /// True when the link names a full commit that is used as given, without asking the
    /// provider: only for providers that cannot check one
    /// ([`ProviderInfo::checks_pinned_commits`]). Every other pinned link is looked up
    /// once, so a made-up commit is "not found" before it reaches the registry or a build.
    pub fn is_pinned_unchecked(&self) -> bool {
        self.is_pinned() && !self.provider().info().checks_pinned_commits
    }

    /// Checks that `resolved_ref` has the shape this provider's resolution produces.
    ///
    /// Resolved refs become image tags and reach repo2docker, so an operator's `--ref` or a
    /// cached value of the wrong shape is refused here.
    pub fn validate_resolved_ref(&self, resolved_ref: &str) -> Result<(), InputError> {
        let info = self.provider().info();
        let bad = |expected| InputError::BadResolvedRef {
            provider: info.prefix,
            shown: validate::shown(resolved_ref),
            expected,
        };
        if !self.as_provider().resolved_ref_ok(resolved_ref) {
            return Err(bad(info.resolved_ref));
        }
        // Every resolved ref becomes an image tag.
        if resolved_ref.len() > 128 {
            return Err(bad("at most 128 characters (an image tag)"));
        }
        Ok(())
    }
}

/// True for a non-empty run of ASCII digits.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// BinderHub's `strip_suffix`: removes `suffix` once when present.
pub fn strip_suffix<'a>(text: &'a str, suffix: &str) -> &'a str {
    text.strip_suffix(suffix).unwrap_or(text)
}

/// An error from a provider's parser.
pub(crate) fn bad_spec(message: impl Into<String>) -> InputError {
    InputError::BadSpec {
        message: message.into(),
    }
}

/// Splits a DOI spec into its prefix (`10.5281`) and suffix, refusing anything else.
pub(crate) fn split_doi(provider: &str, raw: &str) -> Result<(String, String), InputError> {
    if let Some((prefix, suffix)) = raw.split_once('/') {
        let digits = prefix.strip_prefix("10.").unwrap_or("");
        if is_digits(digits) && !suffix.is_empty() {
            return Ok((prefix.to_string(), suffix.to_string()));
        }
    }
    Err(bad_spec(format!(
        "{provider} spec must be a DOI like 10.5281/zenodo.3242074, not {}",
        validate::shown(raw)
    )))
}

#[cfg(test)]
mod tests;

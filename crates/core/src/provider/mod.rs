//! Repository providers: how a `<provider>/<spec>` link names a repository and a ref.
//!
//! One module per provider, each a parsed spec type; [`Spec`] dispatches over them. The
//! syntax and rules are BinderHub's (BINDERHUB.md §2), so existing links keep working and
//! produce the same image names. Parsing does no I/O; [`crate::resolve`] turns an
//! unresolved ref into an immutable one.

use std::fmt;

use crate::validate::{self, InputError};

pub mod ckan;
pub mod dataverse;
pub mod figshare;
pub mod gist;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod hydroshare;
pub mod zenodo;

/// The providers Bindery knows, by their URL prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderId {
    /// `gh`: GitHub.
    GitHub,
    /// `gl`: GitLab.
    GitLab,
    /// `gist`: GitHub gists.
    Gist,
    /// `git`: any git repository by URL.
    Git,
    /// `zenodo`: Zenodo records by DOI.
    Zenodo,
    /// `figshare`: Figshare articles by DOI.
    Figshare,
    /// `hydroshare`: HydroShare resources.
    Hydroshare,
    /// `dataverse`: Dataverse datasets by DOI.
    Dataverse,
    /// `ckan`: CKAN datasets by URL.
    Ckan,
}

impl ProviderId {
    /// Every provider, in BinderHub's order.
    pub const ALL: [ProviderId; 9] = [
        ProviderId::GitHub,
        ProviderId::Gist,
        ProviderId::Git,
        ProviderId::GitLab,
        ProviderId::Zenodo,
        ProviderId::Figshare,
        ProviderId::Hydroshare,
        ProviderId::Dataverse,
        ProviderId::Ckan,
    ];

    /// The URL prefix (`gh`, `gl`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::GitHub => "gh",
            ProviderId::GitLab => "gl",
            ProviderId::Gist => "gist",
            ProviderId::Git => "git",
            ProviderId::Zenodo => "zenodo",
            ProviderId::Figshare => "figshare",
            ProviderId::Hydroshare => "hydroshare",
            ProviderId::Dataverse => "dataverse",
            ProviderId::Ckan => "ckan",
        }
    }

    /// The name shown to people (and used as the metrics `provider` label).
    pub fn display_name(self) -> &'static str {
        match self {
            ProviderId::GitHub => "GitHub",
            ProviderId::GitLab => "GitLab",
            ProviderId::Gist => "Gist",
            ProviderId::Git => "Git",
            ProviderId::Zenodo => "Zenodo",
            ProviderId::Figshare => "Figshare",
            ProviderId::Hydroshare => "Hydroshare",
            ProviderId::Dataverse => "Dataverse",
            ProviderId::Ckan => "CKAN",
        }
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
        matches!(
            self,
            ProviderId::GitHub | ProviderId::GitLab | ProviderId::Gist | ProviderId::Git
        )
    }

    /// Whether the home page percent-encodes the repository part of a link.
    pub fn url_encodes_repo(self) -> bool {
        matches!(
            self,
            ProviderId::GitLab | ProviderId::Git | ProviderId::Hydroshare | ProviderId::Ckan
        )
    }

    /// Whether `spec` matches the provider's UI route (BinderHub's `validateRegex`), after
    /// trailing slashes are removed.
    pub fn ui_route_matches(self, spec: &str) -> bool {
        let spec = spec.trim_end_matches('/');
        let parts: Vec<&str> = spec.split('/').collect();
        let nonempty = |s: &&str| !s.is_empty();
        match self {
            ProviderId::GitHub => {
                parts.len() >= 3
                    && parts[..2].iter().all(nonempty)
                    && !parts[2..].join("/").is_empty()
            }
            ProviderId::GitLab | ProviderId::Git => {
                parts.len() >= 2 && nonempty(&parts[0]) && !parts[1..].join("/").is_empty()
            }
            ProviderId::Gist => (2..=3).contains(&parts.len()) && parts.iter().all(nonempty),
            ProviderId::Zenodo | ProviderId::Figshare | ProviderId::Dataverse => {
                let Some((prefix, rest)) = spec.split_once('/') else {
                    return false;
                };
                prefix.len() > 3
                    && prefix.starts_with("10.")
                    && prefix[3..].bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
            }
            ProviderId::Hydroshare | ProviderId::Ckan => parts.len() == 1 && !spec.is_empty(),
        }
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

/// A parsed `<provider>/<spec>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `gh/<user>/<repo>/<ref>`.
    GitHub(github::GitHubSpec),
    /// `gl/<encoded namespace>/<ref>`.
    GitLab(gitlab::GitLabSpec),
    /// `gist/<user>/<id>[/<ref>]`.
    Gist(gist::GistSpec),
    /// `git/<encoded url>/<encoded ref>`.
    Git(git::GitSpec),
    /// `zenodo/<doi>`.
    Zenodo(zenodo::ZenodoSpec),
    /// `figshare/<doi>`.
    Figshare(figshare::FigshareSpec),
    /// `hydroshare/<url or doi holding a resource id>`.
    Hydroshare(hydroshare::HydroshareSpec),
    /// `dataverse/<doi>`.
    Dataverse(dataverse::DataverseSpec),
    /// `ckan/<encoded dataset url>`.
    Ckan(ckan::CkanSpec),
}

macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Spec::GitHub($s) => $body,
            Spec::GitLab($s) => $body,
            Spec::Gist($s) => $body,
            Spec::Git($s) => $body,
            Spec::Zenodo($s) => $body,
            Spec::Figshare($s) => $body,
            Spec::Hydroshare($s) => $body,
            Spec::Dataverse($s) => $body,
            Spec::Ckan($s) => $body,
        }
    };
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
        let spec = match provider {
            ProviderId::GitHub => Spec::GitHub(github::GitHubSpec::parse(raw, settings)?),
            ProviderId::GitLab => Spec::GitLab(gitlab::GitLabSpec::parse(raw, settings)?),
            ProviderId::Gist => Spec::Gist(gist::GistSpec::parse(raw, settings)?),
            ProviderId::Git => Spec::Git(git::GitSpec::parse(raw, settings)?),
            ProviderId::Zenodo => Spec::Zenodo(zenodo::ZenodoSpec::parse(raw)?),
            ProviderId::Figshare => Spec::Figshare(figshare::FigshareSpec::parse(raw)?),
            ProviderId::Hydroshare => {
                Spec::Hydroshare(hydroshare::HydroshareSpec::parse(raw, settings)?)
            }
            ProviderId::Dataverse => Spec::Dataverse(dataverse::DataverseSpec::parse(raw)?),
            ProviderId::Ckan => Spec::Ckan(ckan::CkanSpec::parse(raw)?),
        };
        validate::validate_repo_url("repository URL", &spec.repo_url())?;
        if let Some(r) = spec.unresolved_ref().filter(|r| !r.is_empty()) {
            validate::validate_ref("ref", r)?;
        }
        Ok(spec)
    }

    /// The provider of this spec.
    pub fn provider(&self) -> ProviderId {
        match self {
            Spec::GitHub(_) => ProviderId::GitHub,
            Spec::GitLab(_) => ProviderId::GitLab,
            Spec::Gist(_) => ProviderId::Gist,
            Spec::Git(_) => ProviderId::Git,
            Spec::Zenodo(_) => ProviderId::Zenodo,
            Spec::Figshare(_) => ProviderId::Figshare,
            Spec::Hydroshare(_) => ProviderId::Hydroshare,
            Spec::Dataverse(_) => ProviderId::Dataverse,
            Spec::Ckan(_) => ProviderId::Ckan,
        }
    }

    /// The spec text as given (trailing slashes removed): what ban lists match against.
    pub fn raw(&self) -> &str {
        each!(self, s => &s.raw)
    }

    /// The repository URL (or DOI) as users know it; what repo2docker clones or fetches.
    pub fn repo_url(&self) -> String {
        each!(self, s => s.repo_url())
    }

    /// The ref as written in the link; `None` for providers whose links carry no ref.
    pub fn unresolved_ref(&self) -> Option<&str> {
        match self {
            Spec::GitHub(s) => Some(&s.unresolved_ref),
            Spec::GitLab(s) => Some(&s.unresolved_ref),
            Spec::Gist(s) => Some(&s.unresolved_ref),
            Spec::Git(s) => Some(&s.unresolved_ref),
            _ => None,
        }
    }

    /// The build slug, the input of image naming. Providers whose slug depends on the
    /// resolved record (Zenodo, Figshare, HydroShare) need `resolved_ref`; without it they
    /// give `None`.
    pub fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String> {
        match self {
            Spec::GitHub(s) => Some(s.build_slug()),
            Spec::GitLab(s) => Some(s.build_slug()),
            Spec::Gist(s) => Some(s.build_slug()),
            Spec::Git(s) => Some(s.build_slug()),
            Spec::Dataverse(s) => Some(s.build_slug()),
            Spec::Ckan(s) => Some(s.build_slug()),
            Spec::Zenodo(_) | Spec::Figshare(_) | Spec::Hydroshare(_) => {
                resolved_ref.map(|r| format!("{}-{r}", self.provider()))
            }
        }
    }

    /// The spec of the same launch pinned to `resolved_ref`.
    pub fn resolved_spec(&self, resolved_ref: &str) -> String {
        each!(self, s => s.resolved_spec(resolved_ref))
    }

    /// A link a person can open to see the resolved ref.
    pub fn ref_url(&self, resolved_ref: &str) -> String {
        each!(self, s => s.ref_url(resolved_ref))
    }

    /// The repository argument repo2docker receives (always last on its command line).
    pub fn repo2docker_repo(&self) -> String {
        self.repo_url()
    }

    /// The part of the spec that names the repository without its ref: a cache key.
    pub fn repo_key(&self) -> String {
        match self {
            Spec::GitHub(s) => format!("{}/{}", s.user, s.repo),
            Spec::GitLab(s) => s.namespace.clone(),
            Spec::Gist(s) => s.gist_id.clone(),
            Spec::Git(s) => s.url.clone(),
            _ => self.raw().to_string(),
        }
    }

    /// True when the link already names an immutable ref and needs no resolution.
    pub fn is_pinned(&self) -> bool {
        self.unresolved_ref().is_some_and(validate::is_full_commit)
    }

    /// Checks that `resolved_ref` has the shape this provider's resolution produces.
    ///
    /// Resolved refs become image tags and reach repo2docker, so an operator's `--ref` or a
    /// cached value of the wrong shape is refused here.
    pub fn validate_resolved_ref(&self, resolved_ref: &str) -> Result<(), InputError> {
        let provider = self.provider().as_str();
        let bad = |expected| InputError::BadResolvedRef {
            provider,
            shown: validate::shown(resolved_ref),
            expected,
        };
        let ok = match self {
            Spec::GitHub(_) | Spec::GitLab(_) | Spec::Gist(_) | Spec::Git(_) => {
                validate::is_full_commit(resolved_ref)
            }
            Spec::Zenodo(_) => is_digits(resolved_ref),
            Spec::Figshare(_) => resolved_ref
                .split_once(".v")
                .is_some_and(|(a, b)| is_digits(a) && is_digits(b)),
            Spec::Hydroshare(_) => resolved_ref.split_once(".v").is_some_and(|(a, b)| {
                a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()) && is_digits(b)
            }),
            Spec::Dataverse(_) => resolved_ref.split_once(".v").is_some_and(|(a, b)| {
                is_digits(a)
                    && b.split_once('.')
                        .is_some_and(|(x, y)| is_digits(x) && is_digits(y))
            }),
            Spec::Ckan(s) => resolved_ref
                .strip_prefix(&format!("{}.v", s.dataset))
                .is_some_and(is_digits),
        };
        if !ok {
            return Err(bad(match self {
                Spec::GitHub(_) | Spec::GitLab(_) | Spec::Gist(_) | Spec::Git(_) => {
                    "a full commit id (40 lower-case hex digits)"
                }
                Spec::Zenodo(_) => "a Zenodo record id (digits)",
                Spec::Figshare(_) => "<article id>.v<version>",
                Spec::Hydroshare(_) => "<32-hex resource id>.v<unix time>",
                Spec::Dataverse(_) => "<dataset id>.v<major>.<minor>",
                Spec::Ckan(_) => "<dataset>.v<unix time>",
            }));
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

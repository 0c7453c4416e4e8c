//! What Bindery knows about a provider without parsing a spec: its row in the provider
//! table. Each provider module defines one [`ProviderInfo`] as `INFO`; the table in
//! [`super`] lists them, and everything that enumerates providers (prefix parsing, the
//! unknown-prefix message, the home page's menu and link rules) reads the table.

use std::fmt;

/// One provider's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The URL prefix (`gh`, `gl`, ...).
    pub prefix: &'static str,
    /// The name shown to people (page titles) and used as the metrics `provider` label.
    pub display_name: &'static str,
    /// The entry of the home page's repository menu.
    pub menu_label: &'static str,
    /// What the repository field asks for (BinderHub's `repo.label`).
    pub repo_label: &'static str,
    /// A repository as people write it (BinderHub's `repo.placeholder`, after "example: ").
    pub example: &'static str,
    /// Whether links carry a ref (data providers are versioned by record instead).
    pub has_ref: bool,
    /// How the home page writes the repository part of a link.
    pub repo_encoding: RepoEncoding,
    /// The web host (with a trailing `/`) that the home page strips from a pasted
    /// `http(s)://<host>/...` URL, for providers whose links name the repository without it.
    pub paste_host: Option<&'static str>,
    /// The shape of a `/v2` link's spec (BinderHub's `validateRegex`).
    pub ui_route: UiRoute,
    /// What a resolved ref of this provider looks like, in words for error messages.
    pub resolved_ref: &'static str,
    /// Whether a link that names a full commit is looked up with the provider before it
    /// is used (once: the answer is cached for good, commits never change). Only
    /// providers with an API that answers for any commit check (GitHub, GitLab, gists);
    /// a plain git server lists only its branch and tag tips, so `git` takes a pinned
    /// commit as given, as BinderHub does. Meaningless without `has_ref`.
    pub checks_pinned_commits: bool,
}

impl ProviderInfo {
    /// Whether the home page percent-encodes the repository part of a link.
    pub fn url_encodes_repo(&self) -> bool {
        self.repo_encoding == RepoEncoding::Percent
    }
}

/// How the repository part of a link is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoEncoding {
    /// As typed: slashes separate its parts (`user/repo`, a DOI).
    AsTyped,
    /// Percent-encoded as one path segment (a namespace or URL holding `/`).
    Percent,
}

/// The shape of the spec a `/v2/<provider>/<spec>` page accepts, checked after trailing
/// slashes are removed. A spec of the wrong shape gets BinderHub's 404 page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiRoute {
    /// `<user>/<repo>/<ref...>`.
    UserRepoRef,
    /// `<repository>/<ref...>`.
    RepoRef,
    /// `<user>/<id>[/<ref>]`.
    UserIdOptionalRef,
    /// `10.<digits>/<suffix...>`.
    Doi,
    /// One non-empty segment (an encoded URL or id).
    OneSegment,
}

impl UiRoute {
    /// BinderHub's `spec.validateRegex` for this shape (JavaScript syntax, matched by its
    /// UI against the whole spec).
    pub fn validate_regex(self) -> &'static str {
        match self {
            UiRoute::UserRepoRef => "[^/]+/[^/]+/.+",
            UiRoute::RepoRef => "[^/]+/.+",
            UiRoute::UserIdOptionalRef => "[^/]+/[^/]+(/[^/]+)?",
            UiRoute::Doi => r"10\.\d+\/(.)+",
            UiRoute::OneSegment => "[^/]+",
        }
    }

    /// Whether `spec` has this shape.
    pub fn matches(self, spec: &str) -> bool {
        let spec = spec.trim_end_matches('/');
        let parts: Vec<&str> = spec.split('/').collect();
        let nonempty = |s: &&str| !s.is_empty();
        match self {
            UiRoute::UserRepoRef => {
                parts.len() >= 3
                    && parts[..2].iter().all(nonempty)
                    && !parts[2..].join("/").is_empty()
            }
            UiRoute::RepoRef => {
                parts.len() >= 2 && nonempty(&parts[0]) && !parts[1..].join("/").is_empty()
            }
            UiRoute::UserIdOptionalRef => {
                (2..=3).contains(&parts.len()) && parts.iter().all(nonempty)
            }
            UiRoute::Doi => {
                let Some((prefix, rest)) = spec.split_once('/') else {
                    return false;
                };
                prefix.len() > 3
                    && prefix.starts_with("10.")
                    && prefix[3..].bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
            }
            UiRoute::OneSegment => parts.len() == 1 && !spec.is_empty(),
        }
    }
}

/// The known prefixes, comma-separated in table order, for the unknown-prefix message.
#[derive(Debug, Clone, Copy)]
pub struct KnownPrefixes;

impl fmt::Display for KnownPrefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, info) in super::PROVIDERS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(info.prefix)?;
        }
        Ok(())
    }
}

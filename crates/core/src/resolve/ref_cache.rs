//! The ref cache's policy: what a cached ref answers, what is revalidated, what is stored.
//!
//! The caller reads and writes the store; these functions only decide, so the edge and a
//! test decide alike:
//!
//! - A link that names a full commit of a provider that can check it (GitHub, GitLab,
//!   gists) is resolved like a branch, once: the provider's confirmation is cached under the
//!   commit and never expires ([`crate::cache::NEVER`]), and a commit that does not exist
//!   is "not found" and caches nothing. So a loop of made-up commits writes no entry and
//!   never reaches the registry or a build. A `git` link's commit cannot be checked
//!   without cloning: it is taken as given, with no call and no cache write ([`pinned`]).
//! - A fresh cached ref that fits the spec answers with no upstream call ([`consult`]).
//! - An expired entry with an ETag is revalidated with `If-None-Match`
//!   ([`revalidation`]): a `304` costs nothing against GitHub's rate limit and extends the
//!   entry.
//! - A resolved ref is cached for `ref_seconds`; "not found", "rate limited" and failures
//!   are not cached ([`after_upstream`]).
//! - When GitHub's `master`/`main` no longer exists and `HEAD` was used instead, the
//!   answer is cached under `HEAD`, not under the missing branch: every stale link keeps
//!   going through the fallback, so it keeps getting the "please update your links" notice.

use super::{Outcome, Resolved, Resolver, Revalidation, Step};
use crate::cache::{CacheTtl, CachedRef, Lookup, NEVER, RefSource, repo_ref_key, spec_ref_key};
use crate::provider::{ProviderSettings, Spec};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveSource {
    /// The link named a full commit that its provider cannot check (`git`): taken as
    /// given, not verified.
    Pinned,
    /// A fresh cache entry.
    Cache,
    /// An expired cache entry confirmed by the provider (`304 Not Modified`).
    Revalidated,
    /// The provider API.
    Upstream,
}

impl ResolveSource {
    /// Whether the provider resolved or confirmed the ref: false only for a commit taken
    /// as given ([`ResolveSource::Pinned`]), about which nothing but what exists (a
    /// present image) may be stored, since anyone can make such links up.
    pub fn is_checked(self) -> bool {
        self != Self::Pinned
    }

    /// `hit` for answers that needed no upstream call, `miss` otherwise: the value of the
    /// `x-bindery-cache` header.
    pub fn cache_header(self) -> &'static str {
        match self {
            Self::Pinned | Self::Cache => "hit",
            Self::Revalidated => "revalidated",
            Self::Upstream => "miss",
        }
    }
}

/// The answer for a link that names a full commit its provider cannot check, without
/// reading the cache; `None` for every other spec (a checkable commit goes through the
/// cache and the provider like a branch). `settings` are those `spec` was parsed with.
pub fn pinned(spec: &Spec, settings: &ProviderSettings) -> Option<Outcome> {
    if !spec.is_pinned_unchecked() {
        return None;
    }
    // No token is sent for an unchecked commit: the resolver answers without a request.
    let mut resolver = Resolver::new(spec, settings, &Default::default(), None);
    Some(match resolver.start() {
        Step::Done(outcome) => outcome,
        _ => Outcome::Failed("a pinned ref needed an upstream call".into()),
    })
}

/// What the ref cache's entry for `spec` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consulted {
    /// A fresh entry that fits: the answer, with no provider call.
    Fresh(Resolved),
    /// Ask the provider, revalidating this expired entry (it has an ETag and fits).
    Revalidate(CachedRef),
    /// Ask the provider.
    Ask,
    /// Ask the provider: the fresh entry does not have the shape `spec`'s provider
    /// produces (written by another version, or tampered with). Worth a log line.
    Unfit,
}

/// Decides from the entry under [`spec_ref_key`]`(spec)` (`None`: absent or unreadable).
pub fn consult(spec: &Spec, lookup: Option<Lookup<CachedRef>>) -> Consulted {
    match lookup {
        Some(Lookup::Fresh(entry)) => match from_cache(spec, &entry) {
            Some(resolved) => Consulted::Fresh(resolved),
            None => Consulted::Unfit,
        },
        Some(Lookup::Expired(entry))
            if entry.etag.is_some() && from_cache(spec, &entry).is_some() =>
        {
            Consulted::Revalidate(entry)
        }
        _ => Consulted::Ask,
    }
}

/// What the resolver sends to revalidate `expired`: its ETag and the commit it named.
pub fn revalidation(expired: &CachedRef) -> Option<Revalidation> {
    expired.etag.as_ref().map(|etag| Revalidation {
        etag: etag.clone(),
        resolved_ref: expired.resolved_ref.clone(),
    })
}

/// An entry to store after the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefWrite {
    /// Where: the spec's key, or its repository's `HEAD` after a fallback.
    pub key: String,
    /// What.
    pub entry: CachedRef,
}

/// Where the answer the provider gave at `now` came from, and what to cache:
/// `expired` is the entry that was revalidated, if any.
pub fn after_upstream(
    spec: &Spec,
    outcome: &Outcome,
    expired: Option<CachedRef>,
    now: u64,
    ttl: &CacheTtl,
) -> (ResolveSource, Option<RefWrite>) {
    let Outcome::Resolved(resolved) = outcome else {
        return (ResolveSource::Upstream, None);
    };
    match expired {
        Some(old)
            if old.resolved_ref == resolved.resolved_ref
                && old.etag == resolved.etag
                && !resolved.fell_back_to_head =>
        {
            let write = RefWrite {
                key: spec_ref_key(spec),
                entry: old.revalidated(now, ttl),
            };
            (ResolveSource::Revalidated, Some(write))
        }
        _ => {
            let key = if resolved.fell_back_to_head {
                repo_ref_key(spec, "HEAD")
            } else {
                spec_ref_key(spec)
            };
            let entry = CachedRef {
                resolved_ref: resolved.resolved_ref.clone(),
                resolved_spec: resolved.resolved_spec.clone(),
                ref_url: resolved.ref_url.clone(),
                build_slug: resolved.build_slug.clone(),
                etag: resolved.etag.clone(),
                source: RefSource::Api,
                stored_at: now,
                // The provider confirmed the commit the link names: that never changes.
                expires_at: if spec.is_pinned() {
                    NEVER
                } else {
                    ttl.ref_expires_at(RefSource::Api, now)
                },
            };
            (ResolveSource::Upstream, Some(RefWrite { key, entry }))
        }
    }
}

/// Rebuilds a [`Resolved`] from a cache entry, recomputing everything derived from the
/// ref from `spec` (so an entry written by an older version cannot smuggle in a different
/// slug or URL); `None` when the cached ref does not have the shape `spec`'s provider
/// produces.
pub fn from_cache(spec: &Spec, entry: &CachedRef) -> Option<Resolved> {
    spec.validate_resolved_ref(&entry.resolved_ref).ok()?;
    Some(Resolved {
        resolved_spec: spec.resolved_spec(&entry.resolved_ref),
        ref_url: spec.ref_url(&entry.resolved_ref),
        build_slug: spec.build_slug(Some(&entry.resolved_ref))?,
        resolved_ref: entry.resolved_ref.clone(),
        etag: entry.etag.clone(),
        fell_back_to_head: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";
    const SHA2: &str = "2479e0252b2e648bb755ee913292b79495931717";
    const NOW: u64 = 1_700_000_000;

    fn spec(path: &str) -> Spec {
        Spec::parse_path(path, &ProviderSettings::default()).unwrap()
    }

    fn entry(sha: &str, etag: Option<&str>, expires_at: u64) -> CachedRef {
        let spec = spec("gh/o/r/main");
        CachedRef {
            resolved_ref: sha.into(),
            resolved_spec: spec.resolved_spec(sha),
            ref_url: spec.ref_url(sha),
            build_slug: spec.build_slug(Some(sha)).unwrap(),
            etag: etag.map(Into::into),
            source: RefSource::Api,
            stored_at: 0,
            expires_at,
        }
    }

    fn resolved(sha: &str, etag: Option<&str>, fell_back_to_head: bool) -> Outcome {
        let mut resolved = from_cache(&spec("gh/o/r/main"), &entry(sha, etag, 0)).unwrap();
        resolved.fell_back_to_head = fell_back_to_head;
        Outcome::Resolved(resolved)
    }

    #[test]
    fn only_an_uncheckable_commit_link_is_answered_without_the_cache() {
        let settings = ProviderSettings::default();
        let git = spec(&format!("git/https%3A%2F%2Fexample.org%2Fr.git/{SHA}"));
        let outcome = pinned(&git, &settings).unwrap();
        assert!(
            matches!(&outcome, Outcome::Resolved(r) if r.resolved_ref == SHA),
            "{outcome:?}"
        );
        for checked in [
            format!("gh/o/r/{SHA}"),
            format!("gl/g%2Fp/{SHA}"),
            format!("gist/u/abc/{SHA}"),
            "gh/o/r/main".into(),
        ] {
            assert_eq!(pinned(&spec(&checked), &settings), None, "{checked}");
        }
    }

    #[test]
    fn a_confirmed_commit_is_cached_for_good_and_a_missing_one_not_at_all() {
        let spec = spec(&format!("gh/o/r/{SHA}"));
        let ttl = CacheTtl::default();
        let found = Outcome::Resolved(from_cache(&spec, &entry(SHA, None, 0)).unwrap());
        let (source, write) = after_upstream(&spec, &found, None, NOW, &ttl);
        let write = write.unwrap();
        assert_eq!(source, ResolveSource::Upstream);
        assert_eq!(write.key, format!("v1/ref/gh/o%2Fr/{SHA}"));
        assert_eq!(write.entry.expires_at, NEVER);
        assert!(matches!(
            consult(&spec, Some(crate::cache::decode(&crate::cache::encode(&write.entry), u64::MAX - 1))),
            Consulted::Fresh(r) if r.resolved_ref == SHA
        ));
        let gone = Outcome::NotFound("no such commit".into());
        assert_eq!(
            after_upstream(&spec, &gone, None, NOW, &ttl),
            (ResolveSource::Upstream, None)
        );
    }

    #[test]
    fn fresh_entries_answer_expired_ones_with_an_etag_are_revalidated() {
        let spec = spec("gh/o/r/main");
        let fresh = Some(Lookup::Fresh(entry(SHA, None, NOW + 1)));
        assert!(matches!(consult(&spec, fresh), Consulted::Fresh(r) if r.resolved_ref == SHA));
        let with_etag = entry(SHA, Some("\"e1\""), NOW);
        assert_eq!(
            consult(&spec, Some(Lookup::Expired(with_etag.clone()))),
            Consulted::Revalidate(with_etag.clone())
        );
        let revalidation = revalidation(&with_etag).unwrap();
        assert_eq!(
            (
                revalidation.etag.as_str(),
                revalidation.resolved_ref.as_str()
            ),
            ("\"e1\"", SHA)
        );
        let without = Some(Lookup::Expired(entry(SHA, None, NOW)));
        assert_eq!(consult(&spec, without), Consulted::Ask);
        assert_eq!(consult(&spec, Some(Lookup::Corrupt)), Consulted::Ask);
        assert_eq!(consult(&spec, None), Consulted::Ask);
        let unfit = Some(Lookup::Fresh(entry("not-a-sha", None, NOW + 1)));
        assert_eq!(consult(&spec, unfit), Consulted::Unfit);
    }

    #[test]
    fn only_resolved_refs_are_stored_and_a_fallback_under_head() {
        let spec = spec("gh/o/r/main");
        let ttl = CacheTtl::default();
        let (source, write) = after_upstream(&spec, &resolved(SHA, None, false), None, NOW, &ttl);
        let write = write.unwrap();
        assert_eq!(source, ResolveSource::Upstream);
        assert_eq!(write.key, "v1/ref/gh/o%2Fr/main");
        assert_eq!(write.entry.expires_at, NOW + ttl.ref_seconds);
        let (_, write) = after_upstream(&spec, &resolved(SHA, None, true), None, NOW, &ttl);
        assert_eq!(write.unwrap().key, "v1/ref/gh/o%2Fr/HEAD");
        for outcome in [
            Outcome::NotFound("gone".into()),
            Outcome::Failed("down".into()),
            Outcome::RateLimited {
                reset_at: None,
                message: "later".into(),
            },
        ] {
            assert_eq!(
                after_upstream(&spec, &outcome, None, NOW, &ttl),
                (ResolveSource::Upstream, None)
            );
        }
    }

    #[test]
    fn a_confirmed_entry_is_extended_and_a_changed_one_replaced() {
        let spec = spec("gh/o/r/main");
        let ttl = CacheTtl::default();
        let old = entry(SHA, Some("\"e1\""), NOW);
        let same = resolved(SHA, Some("\"e1\""), false);
        let (source, write) = after_upstream(&spec, &same, Some(old.clone()), NOW, &ttl);
        assert_eq!(source, ResolveSource::Revalidated);
        assert_eq!(write.unwrap().entry, old.clone().revalidated(NOW, &ttl));
        let moved = resolved(SHA2, Some("\"e2\""), false);
        let (source, write) = after_upstream(&spec, &moved, Some(old), NOW, &ttl);
        assert_eq!(source, ResolveSource::Upstream);
        assert_eq!(write.unwrap().entry.resolved_ref, SHA2);
    }

    #[test]
    fn cache_headers_say_hit_only_without_a_call() {
        assert!(!ResolveSource::Pinned.is_checked());
        assert!(ResolveSource::Cache.is_checked() && ResolveSource::Upstream.is_checked());
        assert_eq!(ResolveSource::Pinned.cache_header(), "hit");
        assert_eq!(ResolveSource::Cache.cache_header(), "hit");
        assert_eq!(ResolveSource::Revalidated.cache_header(), "revalidated");
        assert_eq!(ResolveSource::Upstream.cache_header(), "miss");
    }
}

//! Ref resolution at the edge: the KV ref cache first, the provider API on a miss.
//!
//! The policy (what a commit link, a fresh, an expired or a missing entry lead to, and
//! what is stored after the provider answered) is `bindery_core::resolve::ref_cache`;
//! this module reads and writes the store and sends the resolver's requests with the
//! given [`Fetch`]. ssh and `git://` repositories need `git ls-remote`, which a component
//! cannot run: they fail with a clear message.
//!
//! A link that names a full commit of GitHub, GitLab or a gist is looked up once with the
//! provider like a branch: a commit that does not exist is [`Outcome::NotFound`] and
//! writes nothing, so the launch (which resolves before it asks the registry) refuses a
//! made-up commit before any registry check, "missing" entry or worker call; a confirmed
//! one is cached for good and later answered from the cache.
//!
//! Each consultation of the ref cache is counted as a hit or a miss, each provider request
//! by provider, and GitHub's remaining rate limit is kept as a gauge ([`crate::metrics`]).

use bindery_core::Spec;
use bindery_core::cache::CachedRef;
use bindery_core::resolve::ref_cache::{self, Consulted};
pub use bindery_core::resolve::ref_cache::{ResolveSource, from_cache};
use bindery_core::resolve::{Outcome, Resolved, Resolver, Step};

use crate::cache::{Cache, spec_ref_key};
use crate::config::EdgeConfig;
use crate::fetch::Fetch;
use crate::metrics::{self, CacheName};

/// The result of [`resolve_spec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveResult {
    /// How the resolution ended (messages are for the user, BinderHub's wording).
    pub outcome: Outcome,
    /// Where the answer came from.
    pub source: ResolveSource,
    /// How many upstream requests were sent.
    pub upstream_calls: u32,
    /// GitHub's `x-ratelimit-remaining` after the last call, when GitHub was asked.
    pub github_rate_remaining: Option<i64>,
}

impl ResolveResult {
    /// The resolved ref, if the outcome is [`Outcome::Resolved`].
    pub fn resolved(&self) -> Option<&Resolved> {
        match &self.outcome {
            Outcome::Resolved(r) => Some(r),
            _ => None,
        }
    }
}

/// The message for repositories only `git ls-remote` can resolve.
pub const LS_REMOTE_UNSUPPORTED: &str = "ssh and git:// repositories are resolved by the worker, which this Binder does not do yet; use an https URL";

/// What the ref cache gives for a spec: [`resolve_from_cache`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromCache {
    /// The answer, with no provider call.
    Answered(ResolveResult),
    /// No answer: the provider must be asked ([`resolve_upstream`]), revalidating this
    /// expired entry (one with an ETag that fits the spec) when there is one.
    Ask(Option<CachedRef>),
}

impl FromCache {
    /// The answer, if the cache gave one.
    pub fn answer(self) -> Option<ResolveResult> {
        match self {
            Self::Answered(result) => Some(result),
            Self::Ask(_) => None,
        }
    }
}

/// What [`resolve_spec`] answers without asking the provider: a `git` link that names a
/// full commit (taken as given), or a fresh ref-cache entry that fits `spec` (a confirmed
/// commit's entry is always fresh). It uses none of `cfg`'s endpoints, tokens or
/// lifetimes (an unchecked commit asks nothing, and `spec` carries the settings it was
/// parsed with), so a caller may pass a configuration loaded with only
/// [`crate::config::CACHED_RESOLVE_VARIABLES`].
pub fn resolve_from_cache(spec: &Spec, cfg: &EdgeConfig, cache: &Cache<'_>, now: u64) -> FromCache {
    let done = |outcome, source| ResolveResult {
        outcome,
        source,
        upstream_calls: 0,
        github_rate_remaining: None,
    };
    if let Some(outcome) = ref_cache::pinned(spec, &cfg.providers) {
        return FromCache::Answered(done(outcome, ResolveSource::Pinned));
    }
    let consulted = ref_cache::consult(spec, cache.cached_ref(spec, now));
    metrics::cache_lookup(CacheName::Ref, matches!(consulted, Consulted::Fresh(_)));
    match consulted {
        Consulted::Fresh(resolved) => {
            FromCache::Answered(done(Outcome::Resolved(resolved), ResolveSource::Cache))
        }
        Consulted::Revalidate(entry) => FromCache::Ask(Some(entry)),
        Consulted::Ask => FromCache::Ask(None),
        Consulted::Unfit => {
            eprintln!(
                "bindery-edge: cached ref under {} does not fit its spec, ignored",
                spec_ref_key(spec)
            );
            FromCache::Ask(None)
        }
    }
}

/// Resolves `spec`'s ref, through the ref cache (see the module docs).
pub async fn resolve_spec(
    spec: &Spec,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> ResolveResult {
    match resolve_from_cache(spec, cfg, cache, now) {
        FromCache::Answered(answer) => answer,
        FromCache::Ask(expired) => resolve_upstream(spec, cfg, cache, fetch, now, expired).await,
    }
}

/// [`resolve_spec`] past the cache, after [`resolve_from_cache`] said
/// [`FromCache::Ask`]: asks the provider (revalidating `expired` when given) and caches
/// a resolved ref.
pub async fn resolve_upstream(
    spec: &Spec,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
    expired: Option<CachedRef>,
) -> ResolveResult {
    let revalidation = expired.as_ref().and_then(ref_cache::revalidation);
    let mut resolver = Resolver::new(spec, &cfg.providers, &cfg.credentials, revalidation);
    let mut calls = 0u32;
    let mut step = resolver.start();
    let outcome = loop {
        match step {
            Step::Done(outcome) => break outcome,
            Step::Fetch(request) => {
                calls += 1;
                metrics::provider_request(spec.provider());
                match fetch.send(request).await {
                    Ok(response) => step = resolver.on_response(&response, now),
                    Err(e) => {
                        break Outcome::Failed(format!(
                            "Error resolving ref for {}:{}: {e}",
                            spec.provider(),
                            spec.raw()
                        ));
                    }
                }
            }
            Step::LsRemote { .. } => {
                break Outcome::Failed(format!(
                    "Error resolving ref for {}:{}: {LS_REMOTE_UNSUPPORTED}",
                    spec.provider(),
                    spec.raw()
                ));
            }
        }
    };

    if let Some(remaining) = resolver.github_rate_remaining() {
        metrics::github_rate_limit_remaining(remaining);
    }
    let (source, write) = ref_cache::after_upstream(spec, &outcome, expired, now, &cfg.ttl);
    if let Some(write) = write {
        cache.put(&write.key, &write.entry);
    }
    ResolveResult {
        outcome,
        source,
        upstream_calls: calls,
        github_rate_remaining: resolver.github_rate_remaining(),
    }
}

#[cfg(test)]
mod tests {
    use bindery_core::cache::RefSource;
    use bindery_core::provider::ProviderSettings;

    use super::*;
    use crate::cache::MemoryKv;
    use crate::testing::{ScriptedFetch, block_on, response};

    const NOW: u64 = 1_700_000_000;
    const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";
    const SHA2: &str = "2479e0252b2e648bb755ee913292b79495931717";
    const API: &str = "http://127.0.0.1:9/";

    fn cfg() -> EdgeConfig {
        let mut cfg = EdgeConfig::from_source(|_| Ok(None)).unwrap();
        cfg.providers.github_api = API.trim_end_matches('/').into();
        cfg
    }

    fn spec(path: &str) -> Spec {
        Spec::parse_path(path, &ProviderSettings::default()).unwrap()
    }

    fn commit(sha: &str, etag: &str) -> http::Response<Vec<u8>> {
        response(
            200,
            &[("etag", etag), ("x-ratelimit-remaining", "59")],
            format!(r#"{{"sha":"{sha}"}}"#),
        )
    }

    /// A GitHub whose `o/r` has `main` at `sha`, with ETag `"e1"`.
    fn main_at(sha: &str) -> ScriptedFetch {
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            &format!("{API}repos/o/r/commits/main"),
            commit(sha, "\"e1\""),
        );
        fetch
    }

    #[test]
    fn a_miss_asks_github_then_the_cache_answers() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = main_at(SHA);
        let spec = spec("gh/o/r/main");
        let first = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW));
        assert_eq!(first.source, ResolveSource::Upstream);
        assert_eq!(first.upstream_calls, 1);
        assert_eq!(first.github_rate_remaining, Some(59));
        let r = first.resolved().unwrap();
        assert_eq!(r.resolved_ref, SHA);
        assert_eq!(r.resolved_spec, format!("o/r/{SHA}"));

        let again = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW + 59));
        assert_eq!(again.source, ResolveSource::Cache);
        assert_eq!(again.upstream_calls, 0);
        assert_eq!(again.resolved(), first.resolved());
        assert_eq!(fetch.calls(), 1);
    }

    #[test]
    fn the_cache_alone_answers_fresh_entries_and_commit_links_and_nothing_else() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = main_at(SHA);
        // The configuration a cached resolve loads: no endpoints, tokens or lifetimes.
        let bare = EdgeConfig::from_source(|_| Ok(None)).unwrap();
        let branch = spec("gh/o/r/main");
        assert_eq!(
            resolve_from_cache(&branch, &bare, &cache, NOW),
            FromCache::Ask(None)
        );

        let asked = block_on(resolve_spec(&branch, &cfg(), &cache, &fetch, NOW));
        let cached = resolve_from_cache(&branch, &bare, &cache, NOW + 1)
            .answer()
            .unwrap();
        assert_eq!(cached.source, ResolveSource::Cache);
        assert_eq!(cached.upstream_calls, 0);
        assert_eq!(cached.resolved(), asked.resolved());
        // Expired (the default lifetime is a minute): the provider must be asked again,
        // revalidating the entry with its ETag.
        match resolve_from_cache(&branch, &bare, &cache, NOW + 61) {
            FromCache::Ask(Some(entry)) => assert_eq!(entry.etag.as_deref(), Some("\"e1\"")),
            other => panic!("expected an entry to revalidate, got {other:?}"),
        }

        let git = spec(&format!("git/https%3A%2F%2Fexample.org%2Fr.git/{SHA}"));
        let pinned = resolve_from_cache(&git, &bare, &cache, NOW);
        let pinned = pinned.answer().unwrap();
        assert_eq!(pinned.source, ResolveSource::Pinned);
        assert_eq!(pinned.resolved().unwrap().resolved_ref, SHA);
        assert_eq!(
            resolve_from_cache(&spec(&format!("gh/o/r/{SHA}")), &bare, &cache, NOW),
            FromCache::Ask(None),
            "a GitHub commit is checked first"
        );
        assert_eq!(fetch.calls(), 1, "only resolve_spec asked GitHub");
    }

    #[test]
    fn an_expired_github_entry_is_revalidated_with_its_etag() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        let url = format!("{API}repos/o/r/commits/main");
        fetch.once("GET", &url, commit(SHA, "\"e1\""));
        fetch.once("GET", &url, response(304, &[], ""));
        fetch.once("GET", &url, commit(SHA2, "\"e2\""));
        let spec = spec("gh/o/r/main");
        block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW));

        let second = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW + 60));
        assert_eq!(second.source, ResolveSource::Revalidated);
        assert_eq!(second.source.cache_header(), "revalidated");
        assert_eq!(second.resolved().unwrap().resolved_ref, SHA);
        assert_eq!(
            fetch.requests()[1].headers()["if-none-match"],
            "\"e1\"",
            "conditional request"
        );
        // The 304 extended the entry: fresh again for another minute.
        let third = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW + 119));
        assert_eq!(third.source, ResolveSource::Cache);
        assert_eq!(fetch.calls(), 2);

        // A changed branch answers 200 with the new commit, which replaces the entry.
        let fourth = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW + 200));
        assert_eq!(fourth.source, ResolveSource::Upstream);
        assert_eq!(fourth.resolved().unwrap().resolved_ref, SHA2);
        let fifth = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW + 201));
        assert_eq!(fifth.resolved().unwrap().resolved_ref, SHA2);
        assert_eq!(fetch.calls(), 3);
    }

    #[test]
    fn a_git_commit_needs_no_call_and_no_cache_write() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        let result = block_on(resolve_spec(
            &spec(&format!("git/https%3A%2F%2Fexample.org%2Fr.git/{SHA}")),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert_eq!(result.source, ResolveSource::Pinned);
        assert_eq!(result.resolved().unwrap().resolved_ref, SHA);
        assert_eq!(fetch.calls(), 0);
        assert!(kv.keys().is_empty());
    }

    /// Issue 12: a GitHub commit is checked once, then answered from a cache entry that
    /// never expires.
    #[test]
    fn a_pinned_commit_is_checked_once_and_then_cached_for_good() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            &format!("{API}repos/o/r/commits/{SHA}"),
            commit(SHA, "\"c\""),
        );
        let pinned = spec(&format!("gh/o/r/{SHA}"));
        let first = block_on(resolve_spec(&pinned, &cfg(), &cache, &fetch, NOW));
        assert_eq!(first.source, ResolveSource::Upstream);
        assert_eq!(first.resolved().unwrap().resolved_ref, SHA);
        assert_eq!(kv.keys(), [format!("v1/ref/gh/o%2Fr/{SHA}")]);
        // Years later, still from the cache: commits never change.
        let later = block_on(resolve_spec(&pinned, &cfg(), &cache, &fetch, u64::MAX - 1));
        assert_eq!(later.source, ResolveSource::Cache);
        assert_eq!(later.resolved(), first.resolved());
        assert_eq!(fetch.calls(), 1);
    }

    /// Issue 12: made-up commits, on every provider that can check them, are "not found"
    /// and leave the store empty, so a loop of random pins cannot grow it; a rate limit or
    /// a provider that is down says so and writes nothing either.
    #[test]
    fn a_random_pin_writes_no_kv_entry() {
        const GL: &str = "http://127.0.0.1:9/gl/";
        let random = "5e2f0c9a7b3d4e1f8a6b0c2d4e6f8a0b1c3d5e7f";
        let mut cfg = cfg();
        cfg.providers.gitlab_api = GL.trim_end_matches('/').into();
        let fetch = ScriptedFetch::new();
        let no_commit = r#"{"message":"No commit found for SHA"}"#;
        fetch.on(
            "GET",
            &format!("{API}repos/o/r/commits/{random}"),
            response(422, &[], no_commit),
        );
        fetch.on(
            "GET",
            &format!("{API}repos/o/gone/commits/{random}"),
            response(404, &[], "{}"),
        );
        fetch.on(
            "GET",
            &format!("{GL}projects/g%2Fp/repository/commits/{random}"),
            response(404, &[], r#"{"message":"404 Commit Not Found"}"#),
        );
        fetch.on(
            "GET",
            &format!("{API}gists/abc/{random}"),
            response(404, &[], "{}"),
        );
        fetch.on(
            "GET",
            &format!("{API}repos/o/limited/commits/{random}"),
            response(403, &[("x-ratelimit-remaining", "0")], "{}"),
        );
        let cases = [
            ("gh/o/r", "not found"),
            ("gh/o/gone", "not found"),
            ("gl/g%2Fp", "not found"),
            ("gist/u/abc", "not found"),
            ("gh/o/limited", "rate limited"),
            ("gh/o/down", "failed"),
        ];
        for (repo, expected) in cases {
            let kv = MemoryKv::default();
            let cache = Cache::new(&kv);
            let pinned = spec(&format!("{repo}/{random}"));
            let result = block_on(resolve_spec(&pinned, &cfg, &cache, &fetch, NOW));
            let got = match result.outcome {
                Outcome::NotFound(_) => "not found",
                Outcome::RateLimited { .. } => "rate limited",
                Outcome::Failed(_) => "failed",
                Outcome::Resolved(_) => "resolved",
            };
            assert_eq!(got, expected, "{repo}: {result:?}");
            assert_eq!(result.upstream_calls, 1, "{repo}");
            assert!(kv.keys().is_empty(), "{repo}: {:?}", kv.keys());
        }
    }

    #[test]
    fn not_found_and_rate_limits_are_not_cached() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            &format!("{API}repos/o/gone/"),
            response(404, &[], "{}"),
        );
        fetch.on(
            "GET",
            &format!("{API}repos/o/limited/"),
            response(403, &[("x-ratelimit-remaining", "0")], "{}"),
        );
        let gone = block_on(resolve_spec(
            &spec("gh/o/gone/dev"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert!(matches!(gone.outcome, Outcome::NotFound(_)), "{gone:?}");
        let limited = block_on(resolve_spec(
            &spec("gh/o/limited/dev"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert!(matches!(limited.outcome, Outcome::RateLimited { .. }));
        assert!(kv.keys().is_empty());
        let again = block_on(resolve_spec(
            &spec("gh/o/gone/dev"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert_eq!(again.upstream_calls, 1, "asked again");
    }

    #[test]
    fn a_master_to_head_fallback_is_cached_under_head_only() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            &format!("{API}repos/o/r/commits/master"),
            response(404, &[], "{}"),
        );
        fetch.on(
            "GET",
            &format!("{API}repos/o/r/commits/HEAD"),
            commit(SHA, "\"h\""),
        );
        let result = block_on(resolve_spec(
            &spec("gh/o/r/master"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert!(result.resolved().unwrap().fell_back_to_head);
        assert_eq!(result.upstream_calls, 2);
        assert_eq!(kv.keys(), ["v1/ref/gh/o%2Fr/HEAD"]);
        let head = block_on(resolve_spec(
            &spec("gh/o/r/HEAD"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        assert_eq!(head.source, ResolveSource::Cache);
    }

    #[test]
    fn upstream_failures_and_ls_remote_are_clear_failures() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        let result = block_on(resolve_spec(
            &spec("gh/o/r/main"),
            &cfg(),
            &cache,
            &fetch,
            NOW,
        ));
        let Outcome::Failed(message) = &result.outcome else {
            panic!("{result:?}")
        };
        assert!(
            message.starts_with(
                "Error resolving ref for gh:o/r/main: failed to reach http://127.0.0.1:9"
            ),
            "{message}"
        );

        let ssh = spec("git/ssh%3A%2F%2Fgit%40example.org%2Fr.git/main");
        let result = block_on(resolve_spec(&ssh, &cfg(), &cache, &fetch, NOW));
        let Outcome::Failed(message) = &result.outcome else {
            panic!("{result:?}")
        };
        assert!(message.contains("resolved by the worker"), "{message}");
        assert_eq!(result.upstream_calls, 0);
        assert!(kv.keys().is_empty());
    }

    #[test]
    fn a_cached_ref_of_the_wrong_shape_is_ignored() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let spec = spec("gh/o/r/main");
        cache.put(
            &spec_ref_key(&spec),
            &CachedRef {
                resolved_ref: "--upload-pack=evil".into(),
                resolved_spec: String::new(),
                ref_url: String::new(),
                build_slug: String::new(),
                etag: None,
                source: RefSource::Webhook,
                stored_at: NOW,
                expires_at: NOW + 100,
            },
        );
        let fetch = ScriptedFetch::new();
        fetch.on("GET", API, commit(SHA, "\"e\""));
        let result = block_on(resolve_spec(&spec, &cfg(), &cache, &fetch, NOW));
        assert_eq!(result.resolved().unwrap().resolved_ref, SHA);
        assert_eq!(result.source, ResolveSource::Upstream);
    }
}

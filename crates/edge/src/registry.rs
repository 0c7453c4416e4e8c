//! "Does this image exist?": the KV presence cache first, the registry on a miss (or, with
//! `use_registry = false`, the worker: [`check_presence`]).
//!
//! A fresh cached answer (present for `image_present_ttl_seconds`, missing for
//! `image_missing_ttl_seconds`) needs no call. Otherwise the manifest is checked by
//! [`bindery_core::registry::ManifestCheck`], the state machine the worker drives too: a
//! `HEAD` with a cached bearer token for the repository, else HTTP Basic when
//! `registry_username` is set; a `401` bearer challenge is answered with a token from the
//! challenge's realm and one retry. This module only sends its requests and keeps what it
//! says to keep: tokens until just before they expire (dropped when the registry refuses
//! them), and the answer. Registry errors are not cached. For the image of a commit
//! nobody checked (a `git` link's), only a present image is kept
//! ([`Remember::PresentOnly`]); a made-up `gh`, `gl` or `gist` commit never gets here,
//! since the launch resolves (and so checks the commit) before it asks the registry.
//!
//! The repository asked for is the image name without its first `/` segment (BinderHub's
//! split, [`bindery_core::split_image`]), on the registry at `registry_url`: see
//! [`crate::config::Registry`] for how `registry_url` and `image_prefix` relate.

use bindery_core::cache::{CachedToken, LastStatus, Lookup};
use bindery_core::registry::{ImagePresence, ManifestCheck, ManifestCheckError, Step, TokenChange};
use bindery_core::split_image;
use thiserror::Error;

use crate::cache::Cache;
use crate::config::{ConfigError, EdgeConfig};
use crate::fetch::{Fetch, FetchError};
use crate::metrics::{self, CacheName};
use crate::resolve::ResolveSource;
use crate::worker::WorkerError;

/// Whether an image exists, and how that was learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// True when the registry has the manifest.
    pub present: bool,
    /// True when the answer came from the cache (no registry call).
    pub from_cache: bool,
    /// The manifest digest, when known.
    pub digest: Option<String>,
    /// How many registry requests were sent (manifest checks and token requests).
    pub upstream_calls: u32,
}

/// Why the registry check gave no answer. The launch path treats this as "missing" after
/// reporting it (BinderHub builds when the registry keeps failing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryCheckError {
    /// `registry_url` is not set.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry could not be reached.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The registry's answers gave no presence: refused credentials, an unexpected status,
    /// a challenge or token answer that cannot be used, or a request that cannot be built.
    #[error(transparent)]
    Check(#[from] ManifestCheckError),
    /// With `use_registry = false`: the worker did not say.
    #[error("the worker did not say whether the image exists: {0}")]
    Worker(#[from] WorkerError),
}

/// What [`check_image`] answers without asking the registry: a fresh "present" or
/// "missing" for `image` in the cache. It needs no configuration. Each call
/// is counted as an image cache hit or miss ([`crate::metrics`]).
pub fn presence_from_cache(image: &str, cache: &Cache<'_>, now: u64) -> Option<Presence> {
    let presence = match cache.image_presence(image, now) {
        Some(Lookup::Fresh(entry)) => Some(Presence {
            present: entry.present,
            from_cache: true,
            digest: entry.digest,
            upstream_calls: 0,
        }),
        Some(Lookup::Expired(_) | Lookup::Corrupt) | None => None,
    };
    metrics::cache_lookup(CacheName::Image, presence.is_some());
    presence
}

/// Checks whether `image` (a full name with tag) exists (see the module docs).
pub async fn check_image(
    image: &str,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<Presence, RegistryCheckError> {
    match presence_from_cache(image, cache, now) {
        Some(presence) => Ok(presence),
        None => check_presence(image, Remember::Everything, cfg, cache, fetch, now).await,
    }
}

/// What a registry check may write to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remember {
    /// The answer, present or missing, and the registry's tokens: the image's ref was
    /// resolved or confirmed by its provider, so these entries follow real commits.
    Everything,
    /// Only that the image is present. For a ref nobody checked (a `git` link's commit,
    /// taken as given): a "missing" entry or a token for a repository anyone can make up
    /// would let a loop of made-up links grow the store without bound.
    PresentOnly,
}

impl Remember {
    /// What to remember about the image of a ref resolved from `source`.
    pub fn after(source: ResolveSource) -> Self {
        if source.is_checked() {
            Self::Everything
        } else {
            Self::PresentOnly
        }
    }
}

/// [`check_image`] past the cache: asks the registry for `image`'s manifest (with the
/// configured credentials or a cached token) and caches the answer.
pub async fn check_registry(
    image: &str,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<Presence, RegistryCheckError> {
    check_registry_remembering(image, Remember::Everything, cfg, cache, fetch, now).await
}

/// Whether `image` exists, past the cache: in the registry ([`check_registry_remembering`]),
/// or, with `use_registry = false`, as the worker says (its build engine holds the images
/// of a Binder on one machine); the answer is kept as `remember` allows, like the
/// registry's.
pub async fn check_presence(
    image: &str,
    remember: Remember,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<Presence, RegistryCheckError> {
    if cfg.use_registry {
        return check_registry_remembering(image, remember, cfg, cache, fetch, now).await;
    }
    let answer = crate::worker::request_image(cfg.worker()?, image, fetch).await?;
    if answer.image != image {
        return Err(RegistryCheckError::Worker(WorkerError::Answer(format!(
            "the worker answered about another image, {}",
            bindery_core::validate::shown(&answer.image)
        ))));
    }
    if answer.present {
        cache.put_present(image, None, now, &cfg.ttl);
    } else if remember == Remember::Everything {
        cache.put_missing(image, now, &cfg.ttl);
    }
    Ok(Presence {
        present: answer.present,
        from_cache: false,
        digest: None,
        upstream_calls: 1,
    })
}

/// [`check_registry`] writing only what `remember` allows: a launch passes
/// [`Remember::after`] its resolution's source.
pub async fn check_registry_remembering(
    image: &str,
    remember: Remember,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<Presence, RegistryCheckError> {
    let everything = remember == Remember::Everything;
    let registry = cfg.registry()?;
    let name = split_image(image);
    let repository = name.repository.as_str();
    let cached_token = cache.token(registry.url, repository, now).map(|t| t.token);
    let apply = |change: Option<TokenChange>| match change {
        Some(TokenChange::Store(token)) if everything => {
            if let Some(entry) = CachedToken::from_registry_token(&token, now, &cfg.ttl) {
                cache.put_token(registry.url, repository, &entry);
            }
        }
        Some(TokenChange::Forget) => cache.forget_token(registry.url, repository),
        Some(TokenChange::Store(_)) | None => {}
    };
    let (mut check, mut step) = ManifestCheck::new(
        registry.url,
        repository,
        &name.tag,
        registry.credentials,
        cached_token,
        now,
    );
    loop {
        step = match step {
            Step::Send { request, token } => {
                apply(token);
                let answer = fetch.send(request).await?;
                check.feed(answer.status().as_u16(), answer.headers(), answer.body())
            }
            Step::Done(found) => {
                let (present, digest) = match found {
                    ImagePresence::Present { digest } => (true, digest),
                    ImagePresence::Missing => (false, None),
                };
                if present {
                    cache.put_present(image, digest.clone(), now, &cfg.ttl);
                } else if everything {
                    cache.put_missing(image, now, &cfg.ttl);
                }
                return Ok(Presence {
                    present,
                    from_cache: false,
                    digest,
                    upstream_calls: check.requests_sent(),
                });
            }
            Step::Failed { error, token } => {
                apply(token);
                return Err(error.into());
            }
        };
    }
}

/// Drops a cached "present" for `image`: a launch found the image gone (pruned), so the
/// next request checks the registry again and rebuilds.
pub fn forget_image(image: &str, cache: &Cache<'_>) {
    cache.forget_image(image);
}

/// Records that `image` was just built and pushed: present, and status `built` for the
/// live badge.
pub fn mark_built(image: &str, cfg: &EdgeConfig, cache: &Cache<'_>, now: u64) {
    cache.put_present(image, None, now, &cfg.ttl);
    cache.put_status(image, LastStatus::Built, now, &cfg.ttl);
}

#[cfg(test)]
mod tests {
    use bindery_core::cache::token_key;

    use super::*;
    use crate::cache::MemoryKv;
    use crate::config::{IMAGE_PREFIX, REGISTRY_PASSWORD, REGISTRY_URL, REGISTRY_USERNAME};
    use crate::testing::{ScriptedFetch, block_on, response};

    const NOW: u64 = 1_700_000_000;
    const REG: &str = "http://127.0.0.1:5000";
    const IMAGE: &str =
        "127.0.0.1:5000/binder-o-2dr-abc123:1479e0252b2e648bb755ee913292b79495931717";
    const MANIFEST: &str = "http://127.0.0.1:5000/v2/binder-o-2dr-abc123/manifests/";
    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn cfg(user: Option<&str>) -> EdgeConfig {
        EdgeConfig::from_source(|name| {
            Ok(match name {
                REGISTRY_URL => Some(REG.into()),
                IMAGE_PREFIX => Some("127.0.0.1:5000/binder-".into()),
                REGISTRY_USERNAME => user.map(String::from),
                REGISTRY_PASSWORD => user.map(|_| "pw".into()),
                _ => None,
            })
        })
        .unwrap()
    }

    fn challenge() -> http::Response<Vec<u8>> {
        response(
            401,
            &[(
                "www-authenticate",
                "Bearer realm=\"http://127.0.0.1:5001/token\",service=\"reg\",scope=\"repository:binder-o-2dr-abc123:pull\"",
            )],
            "",
        )
    }

    #[test]
    fn present_answers_are_cached_and_reused() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "HEAD",
            MANIFEST,
            response(200, &[("docker-content-digest", DIGEST)], ""),
        );
        let first = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW)).unwrap();
        assert_eq!(
            first,
            Presence {
                present: true,
                from_cache: false,
                digest: Some(DIGEST.into()),
                upstream_calls: 1
            }
        );
        assert!(fetch.requests()[0].headers().get("authorization").is_none());
        let again = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW + 3600)).unwrap();
        assert!(again.present && again.from_cache);
        assert_eq!(fetch.calls(), 1);
        // The cache alone gives the same answer, and none for another image.
        assert_eq!(presence_from_cache(IMAGE, &cache, NOW + 3600), Some(again));
        assert_eq!(
            presence_from_cache("127.0.0.1:5000/binder-x:1", &cache, NOW),
            None
        );

        forget_image(IMAGE, &cache);
        assert_eq!(presence_from_cache(IMAGE, &cache, NOW + 3601), None);
        let after = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW + 3601)).unwrap();
        assert!(!after.from_cache);
    }

    #[test]
    fn missing_answers_live_seconds() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on("HEAD", MANIFEST, response(404, &[], ""));
        let first = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW)).unwrap();
        assert!(!first.present);
        assert!(
            block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW + 9))
                .unwrap()
                .from_cache
        );
        assert!(
            !block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW + 10))
                .unwrap()
                .from_cache
        );
        mark_built(IMAGE, &cfg(None), &cache, NOW + 11);
        let built = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW + 12)).unwrap();
        assert!(built.present && built.from_cache);
        assert_eq!(fetch.calls(), 2);
    }

    #[test]
    fn a_bearer_challenge_is_followed_once_and_the_token_cached() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.once("HEAD", MANIFEST, challenge());
        fetch.on(
            "GET",
            "http://127.0.0.1:5001/token?scope=repository%3Abinder-o-2dr-abc123%3Apull&service=reg",
            response(200, &[], r#"{"token":"tok1","expires_in":300}"#),
        );
        fetch.on("HEAD", MANIFEST, response(200, &[], ""));
        let cfg = cfg(Some("puller"));
        let first = block_on(check_image(IMAGE, &cfg, &cache, &fetch, NOW)).unwrap();
        assert!(first.present);
        assert_eq!(first.upstream_calls, 3);
        let requests = fetch.requests();
        assert!(
            requests[0].headers()["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        assert_eq!(requests[1].headers()["authorization"], "Basic cHVsbGVyOnB3");
        assert_eq!(requests[2].headers()["authorization"], "Bearer tok1");
        drop(requests);
        assert!(kv.keys().contains(&token_key(REG, "binder-o-2dr-abc123")));

        // Another tag of the same repository uses the cached token straight away.
        let other = IMAGE.replace("1479e", "2479e");
        let second = block_on(check_image(&other, &cfg, &cache, &fetch, NOW + 10)).unwrap();
        assert_eq!(second.upstream_calls, 1);
        assert_eq!(
            fetch.requests()[3].headers()["authorization"],
            "Bearer tok1"
        );
    }

    #[test]
    fn a_cached_token_the_registry_refuses_is_replaced_by_a_fresh_one() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        let token_url = "http://127.0.0.1:5001/token";
        fetch.once("HEAD", MANIFEST, challenge());
        fetch.once("GET", token_url, response(200, &[], r#"{"token":"old"}"#));
        fetch.once("HEAD", MANIFEST, response(404, &[], ""));
        // Later: the cached `old` is refused, a fresh token is fetched and accepted.
        fetch.once("HEAD", MANIFEST, challenge());
        fetch.once("GET", token_url, response(200, &[], r#"{"token":"new"}"#));
        fetch.once("HEAD", MANIFEST, response(200, &[], ""));
        let cfg = cfg(None);
        assert!(
            !block_on(check_registry(IMAGE, &cfg, &cache, &fetch, NOW))
                .unwrap()
                .present
        );
        let later = block_on(check_registry(IMAGE, &cfg, &cache, &fetch, NOW + 1)).unwrap();
        assert!(later.present);
        assert_eq!(later.upstream_calls, 3);
        assert_eq!(fetch.requests()[3].headers()["authorization"], "Bearer old");
        assert_eq!(fetch.requests()[5].headers()["authorization"], "Bearer new");
        let cached = cache.token(REG, "binder-o-2dr-abc123", NOW + 2);
        assert_eq!(cached.map(|t| t.token).as_deref(), Some("new"));
    }

    #[test]
    fn a_refused_token_is_dropped_and_a_second_challenge_is_unauthorized() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on("HEAD", MANIFEST, challenge());
        fetch.on(
            "GET",
            "http://127.0.0.1:5001/token",
            response(200, &[], r#"{"token":"t"}"#),
        );
        let err = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW)).unwrap_err();
        assert!(
            matches!(
                err,
                RegistryCheckError::Check(ManifestCheckError::Unauthorized { .. })
            ),
            "{err}"
        );
        assert_eq!(fetch.calls(), 3, "HEAD, token, HEAD: no loop");
        assert!(
            kv.keys().iter().all(|k| !k.starts_with("v1/token/")),
            "{:?}",
            kv.keys()
        );
        assert!(
            kv.keys().iter().all(|k| !k.starts_with("v1/image/")),
            "errors are not cached"
        );
    }

    /// Issue 12: the image of a commit nobody checked leaves no "missing" entry and no
    /// token behind; a present one is still remembered.
    #[test]
    fn an_unchecked_commit_leaves_only_a_present_image_behind() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.once("HEAD", MANIFEST, challenge());
        fetch.on(
            "GET",
            "http://127.0.0.1:5001/token",
            response(200, &[], r#"{"token":"t","expires_in":300}"#),
        );
        fetch.once("HEAD", MANIFEST, response(404, &[], ""));
        fetch.once("HEAD", MANIFEST, response(200, &[], ""));
        let remember = Remember::after(ResolveSource::Pinned);
        assert_eq!(remember, Remember::PresentOnly);
        assert_eq!(
            Remember::after(ResolveSource::Upstream),
            Remember::Everything
        );
        let missing = block_on(check_registry_remembering(
            IMAGE,
            remember,
            &cfg(None),
            &cache,
            &fetch,
            NOW,
        ))
        .unwrap();
        assert!(!missing.present);
        assert!(kv.keys().is_empty(), "{:?}", kv.keys());
        let present = block_on(check_registry_remembering(
            IMAGE,
            remember,
            &cfg(None),
            &cache,
            &fetch,
            NOW + 1,
        ))
        .unwrap();
        assert!(present.present);
        assert_eq!(kv.keys(), [bindery_core::cache::image_key(IMAGE)]);
    }

    /// Issue 15: with `use_registry = false` the worker is asked (its engine holds the
    /// images), never the registry, and its answers are cached like the registry's.
    #[test]
    fn without_a_registry_the_worker_is_asked_and_its_answer_cached() {
        use crate::config::{USE_REGISTRY, WORKER_TOKEN, WORKER_URL};
        let cfg = EdgeConfig::from_source(|name| {
            Ok(match name {
                USE_REGISTRY => Some("false".into()),
                WORKER_URL => Some("http://127.0.0.1:8585".into()),
                WORKER_TOKEN => Some("tok".into()),
                REGISTRY_URL => Some(REG.into()),
                IMAGE_PREFIX => Some("127.0.0.1:5000/binder-".into()),
                _ => None,
            })
        })
        .unwrap();
        let asked = format!(
            "http://127.0.0.1:8585/api/v1/images?image={}",
            bindery_core::resolve::encode_all(IMAGE)
        );
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        let answer = |present: bool| {
            let body = serde_json::json!({"image": IMAGE, "present": present}).to_string();
            response(200, &[], body.as_str())
        };
        fetch.once("GET", &asked, answer(false));
        fetch.once("GET", &asked, answer(false));
        fetch.once("GET", &asked, answer(true));
        fetch.once(
            "GET",
            &asked,
            response(503, &[], r#"{"message":"engine down"}"#),
        );
        let pinned = Remember::PresentOnly;
        let missing = block_on(check_presence(IMAGE, pinned, &cfg, &cache, &fetch, NOW)).unwrap();
        assert!(!missing.present && !missing.from_cache);
        assert!(
            kv.keys().is_empty(),
            "an unchecked commit's miss is not kept"
        );
        let missing = block_on(check_image(IMAGE, &cfg, &cache, &fetch, NOW)).unwrap();
        assert!(!missing.present);
        assert!(
            block_on(check_image(IMAGE, &cfg, &cache, &fetch, NOW + 1))
                .unwrap()
                .from_cache
        );
        let present = block_on(check_image(IMAGE, &cfg, &cache, &fetch, NOW + 60)).unwrap();
        assert!(present.present && !present.from_cache);
        let requests = fetch.requests();
        assert!(requests.iter().all(|r| r.uri().path() == "/api/v1/images"));
        assert_eq!(requests[0].headers()["authorization"], "Bearer tok");
        drop(requests);
        forget_image(IMAGE, &cache);
        let err = block_on(check_image(IMAGE, &cfg, &cache, &fetch, NOW + 61)).unwrap_err();
        assert!(matches!(err, RegistryCheckError::Worker(_)), "{err}");
        assert!(err.to_string().contains("503"), "{err}");
        assert_eq!(presence_from_cache(IMAGE, &cache, NOW + 62), None);
        assert_eq!(fetch.calls(), 4);
    }

    #[test]
    fn registry_errors_are_reported_not_cached() {
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on("HEAD", MANIFEST, response(503, &[], ""));
        let err = block_on(check_image(IMAGE, &cfg(None), &cache, &fetch, NOW)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the registry answered http 503 for binder-o-2dr-abc123"
        );
        assert!(kv.keys().is_empty());

        let unconfigured = EdgeConfig::from_source(|_| Ok(None)).unwrap();
        let err = block_on(check_image(IMAGE, &unconfigured, &cache, &fetch, NOW)).unwrap_err();
        assert!(err.to_string().contains("registry_url"), "{err}");
    }
}

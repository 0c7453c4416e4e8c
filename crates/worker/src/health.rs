//! `/health`, BinderHub's shape ([`Health`], the core's type the edge answers with too):
//! `{"ok": ..., "checks": [{"service": ..., "ok": ...}, ...]}`.
//!
//! The checks, all run concurrently: `JupyterHub API`; the executor's own (`Container
//! engine`, or `Kubernetes API`); BinderHub's informational `Pod quota` when the executor
//! runs builds as pods; `Docker registry` when one is configured. `ok` is true when every
//! check that is not `_ignore_failure` is. A check's reason goes to the log only: `/health`
//! is public.
//!
//! The answer is reused for `health_cache` (BinderHub caches its checks for 15 s), and
//! refreshed single-flight, so frequent polling never runs the checks more than once at a
//! time. A stale answer is given at once while the checks run behind it, and the worker
//! makes its first answer at start: a part that hangs (a hub that accepts connections and
//! never answers) makes the checks slow, never `/health` (a federation's redirector waits
//! two seconds by default).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bindery_core::worker_api::{Health, HealthCheck};

use crate::builds::Builds;
use crate::error_chain;
use crate::executor::{ExecutorError, PodCounts};
use crate::hub::HubClient;

/// How long one health check may take before it counts as failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long past its `max_age` an answer is still given while a fresh one is made behind
/// it; an answer older than that is not given, the request waits for fresh checks.
pub const STALE_FOR: Duration = Duration::from_secs(60);

/// The last answer and when it was made, and the one refresh that may run.
#[derive(Debug)]
pub struct HealthCache {
    last: Arc<std::sync::Mutex<Option<(Instant, Health)>>>,
    /// Held while the checks run: one refresh at a time.
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// How long past `max_age` an answer is still given ([`STALE_FOR`]).
    stale_for: Duration,
}

impl Default for HealthCache {
    fn default() -> Self {
        Self::with_stale_for(STALE_FOR)
    }
}

impl HealthCache {
    /// A cache giving answers up to `stale_for` past their `max_age` while refreshing.
    pub fn with_stale_for(stale_for: Duration) -> Self {
        Self {
            last: Arc::default(),
            refresh: Arc::default(),
            stale_for,
        }
    }

    fn last(&self) -> Option<(Instant, Health)> {
        lock(&self.last).clone()
    }

    /// The answer, fast whatever a part does: the cached one while it is younger than
    /// `max_age`; a stale one (up to `stale_for` past `max_age`) at once, while the
    /// checks run behind it; else the answer of `checks`, run by one caller at a time (the
    /// others wait for it and reuse its answer).
    pub async fn answer<Fut>(&self, max_age: Duration, checks: impl FnOnce() -> Fut) -> Health
    where
        Fut: Future<Output = Health> + Send + 'static,
    {
        let asked = Instant::now();
        if let Some((at, health)) = self.last() {
            let age = at.elapsed();
            if age < max_age {
                return health;
            }
            if age < max_age + self.stale_for {
                self.refresh_behind(checks);
                return health;
            }
        }
        let _refreshing = self.refresh.lock().await;
        // An answer made while this request waited for the lock is newer than the
        // question, whatever `max_age` says.
        if let Some((_, health)) = self
            .last()
            .filter(|(at, _)| *at >= asked || at.elapsed() < max_age)
        {
            return health;
        }
        let health = checks().await;
        *lock(&self.last) = Some((Instant::now(), health.clone()));
        health
    }

    /// Runs `checks` in a task of its own and keeps their answer, unless a refresh runs
    /// already (the worker calls this at start, so the first poll finds an answer).
    pub fn refresh_behind<Fut>(&self, checks: impl FnOnce() -> Fut)
    where
        Fut: Future<Output = Health> + Send + 'static,
    {
        let Ok(refreshing) = Arc::clone(&self.refresh).try_lock_owned() else {
            return;
        };
        let last = Arc::clone(&self.last);
        let checks = checks();
        tokio::spawn(async move {
            let health = checks.await;
            *lock(&last) = Some((Instant::now(), health));
            drop(refreshing);
        });
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs every check at once and sums them up.
pub async fn run_checks(
    hub: &HubClient,
    builds: &Builds,
    image_prefix: &str,
    total_quota: Option<u32>,
) -> Health {
    let hub = async { HealthCheck::new("JupyterHub API", hub.healthy(HEALTH_TIMEOUT).await) };
    let executor = builds.executor();
    let pods = async {
        match executor.pod_counts() {
            Some(counts) => Some(pod_quota_check(counts.await, total_quota)),
            None => None,
        }
    };
    let registry = registry_check(builds, image_prefix);
    let (hub, own, pods, registry) =
        futures::future::join4(hub, executor.health(), pods, registry).await;
    let mut checks = vec![hub];
    checks.extend(own);
    checks.extend(pods);
    checks.extend(registry);
    Health::of(checks)
}

/// BinderHub's `Docker registry` check, when a registry is configured: a manifest request
/// for a made-up image under `image_prefix`; only an answer matters, a 404 is healthy.
async fn registry_check(builds: &Builds, image_prefix: &str) -> Option<HealthCheck> {
    let registry = builds.registry()?;
    let probe = format!("{image_prefix}some-image-name:12345");
    let check = registry.image_present(&probe);
    let ok = match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "health: the registry does not answer");
            false
        }
        Err(_) => {
            tracing::warn!("health: the registry did not answer in time");
            false
        }
    };
    Some(HealthCheck::new("Docker registry", ok))
}

/// BinderHub's `Pod quota` check: informational (`_ignore_failure`), so it never makes
/// `/health` fail; `ok` says whether the pods fit the total quota (always, without one).
pub fn pod_quota_check(
    counts: Result<PodCounts, ExecutorError>,
    total_quota: Option<u32>,
) -> HealthCheck {
    match counts {
        Ok(counts) => {
            let total = counts.build_pods + counts.user_pods;
            let ok = total_quota.is_none_or(|quota| total <= quota as usize);
            HealthCheck::new("Pod quota", ok)
                .informational()
                .with("total_pods", total)
                .with("build_pods", counts.build_pods)
                .with("user_pods", counts.user_pods)
                .with("quota", total_quota)
        }
        Err(error) => {
            let error = error_chain(&error);
            tracing::warn!(%error, "health: failed to count pods");
            HealthCheck::new("Pod quota", false).informational()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_pod_quota_is_informational_and_compares_all_pods_with_the_total_quota() {
        let counts = PodCounts {
            build_pods: 1,
            user_pods: 3,
        };
        let over = pod_quota_check(Ok(counts), Some(3));
        assert_eq!(
            serde_json::to_value(over).expect("json"),
            json!({
                "service": "Pod quota", "ok": false, "total_pods": 4, "build_pods": 1,
                "user_pods": 3, "quota": 3, "_ignore_failure": true,
            })
        );
        assert!(pod_quota_check(Ok(counts), Some(4)).ok);
        assert!(pod_quota_check(Ok(counts), None).ok);
        let failed = pod_quota_check(Err(ExecutorError::ApiTimeout), Some(4));
        assert_eq!(
            serde_json::to_value(failed).expect("json"),
            json!({"service": "Pod quota", "ok": false, "_ignore_failure": true})
        );
    }

    fn report(ok: bool) -> Health {
        Health::of(vec![HealthCheck::new("Test", ok)])
    }

    #[tokio::test]
    async fn an_answer_is_reused_while_young_and_given_stale_while_the_checks_run_behind_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = HealthCache::with_stale_for(Duration::from_secs(3600));
        // Young for an hour: the checks are not run again.
        let hour = Duration::from_secs(3600);
        assert_eq!(
            cache.answer(hour, || async { report(true) }).await,
            report(true)
        );
        assert_eq!(
            cache.answer(hour, || async { report(false) }).await,
            report(true)
        );
        // Stale at once (`max_age` zero): the old answer comes back although the checks
        // hang until released...
        let release = tokio::sync::watch::channel(false).0;
        let mut released = release.subscribe();
        let hanging = async move {
            let _ = released.wait_for(|r| *r).await;
            report(false)
        };
        let stale = tokio::time::timeout(
            Duration::from_secs(30),
            cache.answer(Duration::ZERO, move || hanging),
        )
        .await
        .expect("a stale answer does not wait for the checks");
        assert_eq!(stale, report(true));
        // ... and while they run no other refresh starts.
        let started = AtomicUsize::new(0);
        let again = cache
            .answer(Duration::ZERO, || {
                started.fetch_add(1, Ordering::SeqCst);
                async { report(true) }
            })
            .await;
        assert_eq!(again, report(true));
        assert_eq!(started.load(Ordering::SeqCst), 0);
        // Once they end, their answer is the one given.
        release.send_replace(true);
        let refreshed = async {
            loop {
                let answer = cache.answer(hour, || async { report(false) }).await;
                if answer == report(false) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), refreshed)
            .await
            .expect("the refresh behind the stale answer is kept");
        // Too old to give: the request waits for its checks.
        let strict = HealthCache::with_stale_for(Duration::ZERO);
        assert_eq!(
            strict
                .answer(Duration::ZERO, || async { report(true) })
                .await,
            report(true)
        );
        assert_eq!(
            strict
                .answer(Duration::ZERO, || async { report(false) })
                .await,
            report(false)
        );
    }
}

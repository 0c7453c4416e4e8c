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
//! refreshed single-flight: while one request runs the checks, the others wait for it and
//! answer with its result, so frequent polling never runs the checks more than once at a
//! time.

use std::future::Future;
use std::time::{Duration, Instant};

use bindery_core::worker_api::{Health, HealthCheck};

use crate::builds::Builds;
use crate::error_chain;
use crate::executor::{ExecutorError, PodCounts};
use crate::hub::HubClient;

/// How long one health check may take before it counts as failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The last answer and when it was made.
#[derive(Debug, Default)]
pub struct HealthCache {
    /// Held while the checks run: one refresh at a time, the others wait for it and reuse
    /// its answer.
    last: tokio::sync::Mutex<Option<(Instant, Health)>>,
}

impl HealthCache {
    /// The cached answer while it is younger than `max_age`, else the answer of `checks`,
    /// run by one caller at a time.
    pub async fn answer(&self, max_age: Duration, checks: impl Future<Output = Health>) -> Health {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        // An answer made while this request waited for the lock is newer than the
        // question, whatever `max_age` says.
        if let Some((_, health)) = last
            .as_ref()
            .filter(|(at, _)| *at >= asked || at.elapsed() < max_age)
        {
            return health.clone();
        }
        let health = checks.await;
        *last = Some((Instant::now(), health.clone()));
        health
    }
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
    async fn an_answer_is_reused_while_it_is_young_and_made_again_after() {
        let cache = HealthCache::default();
        assert_eq!(
            cache
                .answer(Duration::from_secs(60), async { report(true) })
                .await,
            report(true)
        );
        assert_eq!(
            cache
                .answer(Duration::from_secs(60), async { report(false) })
                .await,
            report(true)
        );
        assert_eq!(
            cache.answer(Duration::ZERO, async { report(false) }).await,
            report(false)
        );
    }
}

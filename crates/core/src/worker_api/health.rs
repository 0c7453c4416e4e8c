//! `/health` in BinderHub's shape, answered by the worker and by the launch component:
//! `{"checks": [{"service": ..., "ok": ...}, ...], "ok": ...}`.
//!
//! A check may carry more fields (the `Pod quota` check's counts, a configuration
//! error's text); `_ignore_failure` marks a check that is informational, which never
//! makes the whole answer unhealthy (BinderHub's `health.py`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// BinderHub's name of the registry check.
pub const REGISTRY_SERVICE: &str = "Docker registry";

/// Bindery's own check, on the edge: whether the worker answers its `/health`.
pub const WORKER_SERVICE: &str = "Bindery worker";

/// One entry of `checks`. The fields are declared in the alphabetical order the earlier
/// `json!` answers had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Informational: a failure does not make the answer unhealthy.
    #[serde(rename = "_ignore_failure", default, skip_serializing_if = "is_false")]
    pub ignore_failure: bool,
    /// What went wrong, when the check can say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the service is healthy.
    pub ok: bool,
    /// The service's name: `JupyterHub API`, `Docker registry`, `Pod quota`, ...
    pub service: String,
    /// Any further fields, such as the pod counts of `Pod quota`.
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl HealthCheck {
    /// A check of `service` that is `ok` or not.
    pub fn new(service: impl Into<String>, ok: bool) -> Self {
        Self {
            ignore_failure: false,
            error: None,
            ok,
            service: service.into(),
            details: BTreeMap::new(),
        }
    }

    /// The same check, failed with `error`.
    pub fn failed(service: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            ..Self::new(service, false)
        }
    }

    /// The same check, marked informational.
    pub fn informational(mut self) -> Self {
        self.ignore_failure = true;
        self
    }

    /// The same check with a further field.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(name.into(), value.into());
        self
    }
}

/// A whole `/health` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Every check, in the order they are shown.
    pub checks: Vec<HealthCheck>,
    /// Whether every check that is not informational is ok.
    pub ok: bool,
}

impl Health {
    /// The answer of these checks: ok when every one that counts is.
    pub fn of(checks: Vec<HealthCheck>) -> Self {
        let ok = checks.iter().all(|c| c.ok || c.ignore_failure);
        Self { checks, ok }
    }

    /// The edge's answer: the worker's checks as the worker reports them (BinderHub's
    /// `JupyterHub API`, `Docker registry`, `Pod quota`, and its executor's), then Bindery's
    /// own [`WORKER_SERVICE`]: whether the worker answered at all (`None`: it did not), and
    /// failing too when the worker said `ok: false` with no failing check to show why.
    ///
    /// The edge checks the registry it reads manifests from too (`edge_registry`; `None`:
    /// none configured). That folds into the worker's [`REGISTRY_SERVICE`] entry, which is
    /// then ok only when both reach a registry, or stands alone when the worker reports
    /// none: a federation reads one `Docker registry` check per member.
    pub fn of_member(worker: Option<Health>, edge_registry: Option<bool>) -> Self {
        let worker_ok = worker
            .as_ref()
            .is_some_and(|w| w.ok || w.checks.iter().any(|c| !c.ok && !c.ignore_failure));
        let mut checks = worker.map(|w| w.checks).unwrap_or_default();
        if let Some(edge_ok) = edge_registry {
            match checks.iter_mut().find(|c| c.service == REGISTRY_SERVICE) {
                Some(check) => check.ok &= edge_ok,
                None => checks.push(HealthCheck::new(REGISTRY_SERVICE, edge_ok)),
            }
        }
        checks.push(HealthCheck::new(WORKER_SERVICE, worker_ok));
        Self::of(checks)
    }

    /// The status to answer with: 200 when ok, 503 otherwise.
    pub fn status_code(&self) -> u16 {
        if self.ok { 200 } else { 503 }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn health_serialises_as_the_json_answers_did() {
        let health = Health::of(vec![
            HealthCheck::new("JupyterHub API", true),
            HealthCheck::new("Docker registry", true),
            HealthCheck::new("Pod quota", false)
                .informational()
                .with("total_pods", 3)
                .with("build_pods", 1)
                .with("user_pods", 2)
                .with("quota", serde_json::Value::Null),
        ]);
        assert!(health.ok, "an informational failure does not count");
        assert_eq!(health.status_code(), 200);
        let expected = json!({
            "ok": true,
            "checks": [
                {"service": "JupyterHub API", "ok": true},
                {"service": "Docker registry", "ok": true},
                {"service": "Pod quota", "ok": false, "total_pods": 3, "build_pods": 1,
                 "user_pods": 2, "quota": null, "_ignore_failure": true},
            ],
        });
        assert_eq!(serde_json::to_value(&health).unwrap(), expected);
        let back: Health = serde_json::from_value(expected).unwrap();
        assert_eq!(back, health);
        // The same bytes as `json!` gave, whose maps are sorted.
        let two = Health::of(vec![HealthCheck::new("Bindery worker", true)]);
        assert_eq!(
            serde_json::to_string(&two).unwrap(),
            r#"{"checks":[{"ok":true,"service":"Bindery worker"}],"ok":true}"#
        );
    }

    #[test]
    fn the_edge_passes_the_workers_checks_on_and_adds_its_own() {
        let worker = Health::of(vec![
            HealthCheck::new("JupyterHub API", true),
            HealthCheck::new("Docker registry", true),
            HealthCheck::new("Pod quota", true)
                .informational()
                .with("total_pods", 2)
                .with("quota", 100),
        ]);
        let both = Health::of_member(Some(worker.clone()), Some(true));
        assert!(both.ok);
        let names: Vec<&str> = both.checks.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(
            names,
            [
                "JupyterHub API",
                "Docker registry",
                "Pod quota",
                "Bindery worker"
            ]
        );
        assert_eq!(
            both.checks[2], worker.checks[2],
            "Pod quota as the worker said"
        );
        // The edge cannot reach its registry: the one registry check fails.
        let edge_down = Health::of_member(Some(worker.clone()), Some(false));
        assert!(!edge_down.ok);
        assert_eq!(
            edge_down
                .checks
                .iter()
                .filter(|c| c.service == REGISTRY_SERVICE)
                .count(),
            1
        );
        assert!(!edge_down.checks[1].ok);
        // A worker without a registry: the edge's check stands alone.
        let no_registry = Health::of(vec![HealthCheck::new("JupyterHub API", false)]);
        let answer = Health::of_member(Some(no_registry), Some(true));
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"ok": false, "checks": [
                {"service": "JupyterHub API", "ok": false},
                {"service": "Docker registry", "ok": true},
                {"service": "Bindery worker", "ok": true},
            ]})
        );
        // A worker that says it is not ok, with no failing check to say why, is not ok.
        let unexplained = Health {
            ok: false,
            checks: Vec::new(),
        };
        let answer = Health::of_member(Some(unexplained), None);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"ok": false, "checks": [{"service": "Bindery worker", "ok": false}]})
        );
        // No worker answer: nothing of it is claimed.
        let silent = Health::of_member(None, None);
        assert_eq!(
            serde_json::to_value(&silent).unwrap(),
            json!({"ok": false, "checks": [{"service": "Bindery worker", "ok": false}]})
        );
    }

    #[test]
    fn a_failed_check_makes_the_answer_unhealthy_and_says_why() {
        let health = Health::of(vec![HealthCheck::failed("Configuration", "no worker_url")]);
        assert!(!health.ok);
        assert_eq!(health.status_code(), 503);
        assert_eq!(
            serde_json::to_value(&health).unwrap(),
            json!({"ok": false, "checks": [{"service": "Configuration", "ok": false, "error": "no worker_url"}]})
        );
    }
}

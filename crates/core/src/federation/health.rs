//! What a member's `/versions` and `/health` answers say, as the redirector reads them.
//!
//! A check has three outcomes. [`Outcome::Healthy`]. [`Outcome::Failed`], a logical
//! failure that is not retried: `/versions` differs from the prime's (reason
//! `versions`), a check in `/health` says `ok: false` (reason: its `service`), or the
//! `Pod quota` check leaves less than `pod_headroom` free slots (reason `Pod quota`).
//! [`Outcome::Error`]: no answer, an answer other than 200 (a `/health` 503 included), or
//! a body that is not the expected JSON; retried before it counts (reason `unknown`).

use serde_json::Value;

/// The largest `/health` or `/versions` body read, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One answer of a member: status and body, or why there was none.
pub type Answer<'a> = Result<(u16, &'a [u8]), String>;

/// The result of one check of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Versions agree, every check is ok, with room below the pod quota.
    Healthy,
    /// A logical failure, not retried; `reason` is the `reason` label of
    /// `federation_health`: `versions` or the failing check's `service`.
    Failed {
        /// `versions`, or the failing check's service.
        reason: String,
        /// What was seen, for the log.
        detail: String,
    },
    /// The member did not answer as it should; retried.
    Error {
        /// What went wrong, for the log.
        detail: String,
    },
}

/// The `reason` labels of `federation_health`, a fixed set so that what a member's
/// `/health` names cannot grow the series: `""` for a healthy member, `versions`, BinderHub's
/// three checks, `unknown` (no proper answer) and `other` (any other failing check).
pub const HEALTH_REASONS: [&str; 7] = [
    "",
    "versions",
    "JupyterHub API",
    "Docker registry",
    "Pod quota",
    "unknown",
    "other",
];

impl Outcome {
    /// This outcome's `reason` label of `federation_health`, one of [`HEALTH_REASONS`].
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Outcome::Healthy => "",
            Outcome::Error { .. } => "unknown",
            Outcome::Failed { reason, .. } => HEALTH_REASONS
                .iter()
                .find(|known| !known.is_empty() && *known == reason)
                .copied()
                .unwrap_or("other"),
        }
    }
}

/// The JSON of an answer that must be a 200 with a JSON body.
fn json(what: &str, answer: Answer<'_>) -> Result<Value, String> {
    let (status, body) = answer.map_err(|e| format!("{what}: {e}"))?;
    if status != 200 {
        return Err(format!("{what} answered {status}"));
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!("{what} is over {MAX_ANSWER_BYTES} bytes"));
    }
    serde_json::from_slice(body).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// Reads a `/versions` answer: its JSON, or the error to retry.
pub fn versions(answer: Answer<'_>) -> Result<Value, String> {
    json("/versions", answer)
}

/// Reads a `/health` answer against `pod_headroom` (0: no headroom rule).
pub fn health(answer: Answer<'_>, pod_headroom: u64) -> Outcome {
    let body = match json("/health", answer) {
        Ok(body) => body,
        Err(detail) => return Outcome::Error { detail },
    };
    let Some(checks) = body.get("checks").and_then(Value::as_array) else {
        return Outcome::Error {
            detail: "/health has no `checks` list".into(),
        };
    };
    for check in checks {
        let service = check
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        // A check without a boolean `ok` is malformed, which the redirector's
        // `check["ok"]` raises on: an error, retried.
        let Some(ok) = check.get("ok").and_then(Value::as_bool) else {
            return Outcome::Error {
                detail: format!("/health check {service:?} has no boolean `ok`"),
            };
        };
        if !ok {
            return Outcome::Failed {
                reason: service.to_owned(),
                detail: format!("/health check {service:?} is not ok"),
            };
        }
        if service == "Pod quota" && pod_headroom > 0 {
            let quota = check.get("quota").and_then(Value::as_u64);
            let total = check.get("total_pods").and_then(Value::as_u64);
            if let (Some(quota), Some(total)) = (quota, total)
                && total.saturating_add(pod_headroom) >= quota
            {
                return Outcome::Failed {
                    reason: service.to_owned(),
                    detail: format!(
                        "{total} of {quota} pods leaves less than the headroom of {pod_headroom}"
                    ),
                };
            }
        }
    }
    Outcome::Healthy
}

/// The outcome of a whole check: `/versions` first (equal to `reference`, the prime's,
/// when one is known), then `/health`.
pub fn conclude(
    versions: &Result<Value, String>,
    reference: Option<&Value>,
    health: Outcome,
) -> Outcome {
    match versions {
        Err(detail) => Outcome::Error {
            detail: detail.clone(),
        },
        Ok(v) if reference.is_some_and(|r| r != v) => Outcome::Failed {
            reason: "versions".into(),
            detail: format!("/versions {v} differs from the prime's"),
        },
        Ok(_) => health,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("json")
    }

    fn quota(total: u64, quota: Option<u64>) -> Vec<u8> {
        body(&json!({"ok": true, "checks": [
            {"service": "JupyterHub API", "ok": true},
            {"service": "Pod quota", "total_pods": total, "build_pods": 0, "user_pods": total,
             "quota": quota, "ok": true, "_ignore_failure": true},
        ]}))
    }

    #[test]
    fn health_answers_are_read_as_the_redirector_reads_them() {
        let ok = quota(10, Some(100));
        assert_eq!(health(Ok((200, &ok)), 10), Outcome::Healthy);
        // total + headroom >= quota: 90 + 10 >= 100.
        let near = quota(90, Some(100));
        assert!(matches!(
            health(Ok((200, &near)), 10),
            Outcome::Failed { reason, .. } if reason == "Pod quota"
        ));
        let below = quota(89, Some(100));
        assert_eq!(health(Ok((200, &below)), 10), Outcome::Healthy);
        // No headroom rule, or no quota: only `ok` counts.
        assert_eq!(health(Ok((200, &near)), 0), Outcome::Healthy);
        let unlimited = quota(5000, None);
        assert_eq!(health(Ok((200, &unlimited)), 10), Outcome::Healthy);
        let failing = body(&json!({"ok": false, "checks": [
            {"service": "Docker registry", "ok": false}]}));
        assert!(matches!(
            health(Ok((200, &failing)), 10),
            Outcome::Failed { reason, .. } if reason == "Docker registry"
        ));
        // A 503 (what BinderHub answers when a hard check fails) is an error, retried.
        assert!(matches!(
            health(Ok((503, &failing)), 10),
            Outcome::Error { .. }
        ));
        assert!(matches!(
            health(Ok((200, b"<html>")), 10),
            Outcome::Error { .. }
        ));
        assert!(matches!(
            health(Ok((200, b"{}")), 10),
            Outcome::Error { .. }
        ));
        assert!(matches!(
            health(Err("connection refused".into()), 10),
            Outcome::Error { .. }
        ));
        let big = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert!(matches!(health(Ok((200, &big)), 10), Outcome::Error { .. }));
    }

    #[test]
    fn versions_must_equal_the_primes() {
        let prime = json!({"binderhub": "1.0", "builder_info": {"build_image": "r2d:1"}});
        let same = Ok(prime.clone());
        let other = Ok(json!({"binderhub": "1.1", "builder_info": {"build_image": "r2d:1"}}));
        assert_eq!(
            conclude(&same, Some(&prime), Outcome::Healthy),
            Outcome::Healthy
        );
        assert!(matches!(
            conclude(&other, Some(&prime), Outcome::Healthy),
            Outcome::Failed { reason, .. } if reason == "versions"
        ));
        // Without the prime's versions, a member may be on its own.
        assert_eq!(conclude(&other, None, Outcome::Healthy), Outcome::Healthy);
        // An unhealthy /health still counts when versions agree.
        let failed = Outcome::Failed {
            reason: "Pod quota".into(),
            detail: String::new(),
        };
        assert_eq!(conclude(&same, Some(&prime), failed.clone()), failed);
        assert!(matches!(
            conclude(&Err("down".into()), Some(&prime), Outcome::Healthy),
            Outcome::Error { .. }
        ));
        assert_eq!(versions(Ok((200, br#"{"a":1}"#))), Ok(json!({"a": 1})));
        assert!(versions(Ok((404, b"{}"))).is_err());
    }

    #[test]
    fn the_metric_reason_is_one_of_a_fixed_set() {
        let failed = |reason: &str| Outcome::Failed {
            reason: reason.into(),
            detail: String::new(),
        };
        assert_eq!(Outcome::Healthy.metric_reason(), "");
        let error = Outcome::Error {
            detail: "timeout".into(),
        };
        assert_eq!(error.metric_reason(), "unknown");
        assert_eq!(failed("versions").metric_reason(), "versions");
        assert_eq!(failed("Pod quota").metric_reason(), "Pod quota");
        assert_eq!(
            failed("A service a member made up").metric_reason(),
            "other"
        );
        assert_eq!(failed("").metric_reason(), "other");
    }
}

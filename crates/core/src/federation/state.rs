//! The federation's health as one record in the key-value store, so every edge host that
//! shares the store agrees on it, and the rules that keep it fresh without a loop of
//! its own: a request that finds members due for a check takes the refresh
//! [`Lease`] (one refresher at a time) and checks them after answering.
//!
//! Timing follows the redirector: a healthy member is checked again after `period`, an
//! unhealthy one after `failed_period`, each wait scaled by `1 + jitter * (0.5 - r)`; a
//! check that errs is tried again a second later, up to `retries` attempts, keeping the
//! member's last state meanwhile. A member never checked counts as healthy (the
//! redirector's state before its first checks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{CheckSettings, FederationConfig, Member};
use super::health::Outcome;
use crate::cache::Expiring;

/// How long a state record is kept without being written, in seconds (for the sweep of
/// expired entries; any refresh writes it again).
pub const STATE_LIFETIME: u64 = 7 * 24 * 3600;

/// One member's last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHealth {
    /// Whether it is in the rotation.
    pub healthy: bool,
    /// Why not (`versions`, a check's service, `unknown`); empty when healthy.
    pub reason: String,
    /// When it was last checked (unix seconds).
    pub checked_at: u64,
    /// When it is due again.
    pub next_check_at: u64,
    /// Checks in a row that erred (counted up to `retries`).
    pub errors: u32,
}

/// The shared record: every member's health and the prime's last `/versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationState {
    /// The fingerprint of the configuration it was made for: another configuration
    /// starts afresh.
    pub config: String,
    /// Health by member name.
    pub members: BTreeMap<String, MemberHealth>,
    /// The prime's last `/versions`, which every member's must equal.
    pub prime_versions: Option<Value>,
    /// When the record may be swept.
    pub expires_at: u64,
}

impl Expiring for FederationState {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// `seconds * (1 + jitter * (0.5 - r))`, rounded up, at least one second.
pub fn jittered(seconds: f64, jitter: f64, r: f64) -> u64 {
    let wait = seconds * (1.0 + jitter * (0.5 - r.clamp(0.0, 1.0)));
    (wait.ceil() as u64).max(1)
}

impl FederationState {
    /// A record for the configuration `fingerprint`, nothing checked yet.
    pub fn new(fingerprint: &str, now: u64) -> Self {
        Self {
            config: fingerprint.to_owned(),
            members: BTreeMap::new(),
            prime_versions: None,
            expires_at: now + STATE_LIFETIME,
        }
    }

    /// Whether `name` is in the rotation (never checked: yes).
    pub fn is_healthy(&self, name: &str) -> bool {
        self.members.get(name).is_none_or(|m| m.healthy)
    }

    /// The members due for a check at `now` (never checked: due).
    pub fn due<'c>(&self, cfg: &'c FederationConfig, now: u64) -> Vec<&'c Member> {
        cfg.members
            .iter()
            .filter(|m| {
                self.members
                    .get(&m.name)
                    .is_none_or(|h| h.next_check_at <= now)
            })
            .collect()
    }

    /// Records a `/versions` answer of a prime: the reference for everyone.
    pub fn record_prime_versions(&mut self, versions: Value) {
        self.prime_versions = Some(versions);
    }

    /// Records the outcome of a check of `name` at `now`; `r` (uniform in `0..1`) draws
    /// the jitter.
    pub fn record(
        &mut self,
        check: &CheckSettings,
        name: &str,
        outcome: &Outcome,
        now: u64,
        r: f64,
    ) {
        let previous = self.members.get(name).cloned();
        let settled = |healthy: bool, reason: &str, period: f64| MemberHealth {
            healthy,
            reason: reason.to_owned(),
            checked_at: now,
            next_check_at: now + jittered(period, check.jitter, r),
            errors: 0,
        };
        let next = match outcome {
            Outcome::Healthy => settled(true, "", check.period),
            Outcome::Failed { reason, .. } => settled(false, reason, check.failed_period),
            Outcome::Error { .. } => {
                let errors = previous.as_ref().map_or(0, |p| p.errors) + 1;
                if errors >= check.retries {
                    settled(false, "unknown", check.failed_period)
                } else {
                    // Tried again a second later; the member keeps its state meanwhile.
                    MemberHealth {
                        healthy: previous.as_ref().is_none_or(|p| p.healthy),
                        reason: previous.map(|p| p.reason).unwrap_or_default(),
                        checked_at: now,
                        next_check_at: now + 1,
                        errors,
                    }
                }
            }
        };
        self.members.insert(name.to_owned(), next);
        self.expires_at = now + STATE_LIFETIME;
    }

    /// The healthy members, in configuration order (what `/active_hosts` lists).
    pub fn active<'c>(&self, cfg: &'c FederationConfig) -> Vec<&'c Member> {
        cfg.members
            .iter()
            .filter(|m| self.is_healthy(&m.name))
            .collect()
    }

    /// The members a `/build` may go to: the healthy ones with a positive weight; with
    /// none, the primes (healthy or not, as the redirector falls back).
    pub fn candidates<'c>(&self, cfg: &'c FederationConfig) -> Vec<&'c Member> {
        let healthy: Vec<&Member> = self
            .active(cfg)
            .into_iter()
            .filter(|m| m.weight > 0.0)
            .collect();
        if healthy.is_empty() {
            cfg.members.iter().filter(|m| m.prime).collect()
        } else {
            healthy
        }
    }
}

/// Who refreshes the state now: a request that finds members due writes one, reads it
/// back, and checks only when it reads its own `holder`; the lease expires on its own
/// when its holder never finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// A random id of the refreshing request.
    pub holder: String,
    /// When another request may take over.
    pub expires_at: u64,
}

impl Expiring for Lease {
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl Lease {
    /// A lease for `holder` from `now`, long enough for one check of every member (a
    /// `/versions` and a `/health` request at once, each within `timeout`).
    pub fn new(holder: String, check: &CheckSettings, now: u64) -> Self {
        Self {
            holder,
            expires_at: now + (check.timeout * 2.0).ceil() as u64 + 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::FederationConfig;

    fn config() -> FederationConfig {
        FederationConfig::parse(
            r#"{"check": {"period": 10, "jitter": 0, "retries": 3, "failed_period": 60},
                "hosts": {
                  "a": {"url": "https://a.example", "weight": 1, "prime": true},
                  "b": {"url": "https://b.example", "weight": 1},
                  "z": {"url": "https://z.example", "weight": 0}}}"#,
        )
        .expect("valid")
        .expect("set")
    }

    fn failed(reason: &str) -> Outcome {
        Outcome::Failed {
            reason: reason.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn before_any_check_every_member_counts_and_is_due() {
        let cfg = config();
        let state = FederationState::new("f", 100);
        assert_eq!(state.active(&cfg).len(), 3);
        assert_eq!(state.due(&cfg, 100).len(), 3);
        // Weight 0 is checked and listed, never chosen.
        let names: Vec<&str> = state
            .candidates(&cfg)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn healthy_members_wait_a_period_and_failed_ones_the_failed_period() {
        let cfg = config();
        let mut state = FederationState::new("f", 100);
        state.record(&cfg.check, "a", &Outcome::Healthy, 100, 0.5);
        state.record(&cfg.check, "b", &failed("versions"), 100, 0.5);
        assert_eq!(state.members["a"].next_check_at, 110);
        assert_eq!(state.members["b"].next_check_at, 160);
        assert!(!state.is_healthy("b"));
        assert_eq!(state.members["b"].reason, "versions");
        let due: Vec<&str> = state
            .due(&cfg, 110)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(due, ["a", "z"]);
        let names: Vec<&str> = state
            .candidates(&cfg)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
        // b comes back.
        state.record(&cfg.check, "b", &Outcome::Healthy, 160, 0.5);
        assert!(state.is_healthy("b"));
        assert_eq!(state.members["b"].reason, "");
    }

    #[test]
    fn errors_are_retried_a_second_apart_before_they_count() {
        let cfg = config();
        let mut state = FederationState::new("f", 0);
        let error = Outcome::Error {
            detail: "refused".into(),
        };
        state.record(&cfg.check, "b", &Outcome::Healthy, 0, 0.5);
        state.record(&cfg.check, "b", &error, 10, 0.5);
        assert!(state.is_healthy("b"));
        assert_eq!(state.members["b"].next_check_at, 11);
        state.record(&cfg.check, "b", &error, 11, 0.5);
        assert!(state.is_healthy("b"));
        // The third attempt of `retries: 3` settles it.
        state.record(&cfg.check, "b", &error, 12, 0.5);
        assert!(!state.is_healthy("b"));
        assert_eq!(state.members["b"].reason, "unknown");
        assert_eq!(state.members["b"].next_check_at, 72);
        // A success in between starts the count again.
        state.record(&cfg.check, "a", &error, 0, 0.5);
        state.record(&cfg.check, "a", &Outcome::Healthy, 1, 0.5);
        state.record(&cfg.check, "a", &error, 11, 0.5);
        assert_eq!(state.members["a"].errors, 1);
    }

    #[test]
    fn with_no_member_healthy_only_primes_are_chosen() {
        let cfg = config();
        let mut state = FederationState::new("f", 0);
        for name in ["a", "b", "z"] {
            state.record(&cfg.check, name, &failed("Pod quota"), 0, 0.5);
        }
        assert!(state.active(&cfg).is_empty());
        let names: Vec<&str> = state
            .candidates(&cfg)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn jitter_spreads_the_wait_around_the_period() {
        assert_eq!(jittered(10.0, 0.1, 0.5), 10);
        assert_eq!(jittered(100.0, 0.1, 0.0), 105);
        assert_eq!(jittered(100.0, 0.1, 1.0), 95);
        assert_eq!(jittered(0.2, 0.0, 0.5), 1);
    }
}

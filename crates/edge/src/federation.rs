//! Federation mode's I/O: the parsed `federation` variable, the shared health record in
//! the key-value store, the refresh lease, and the checks of the members
//! (`bindery_core::federation` decides; this reads and writes).
//!
//! The edge has no loop of its own: a request that finds members due takes the lease
//! (written, then read back: the store has no compare-and-swap, so two requests racing
//! for it in the same instant may both check, which costs a few extra requests and
//! nothing else) and checks them after its answer has gone out. Members are checked at
//! once, each with `/versions` and `/health` at once, every request within the
//! configuration's `check.timeout`.

use bindery_core::cache::{Lookup, federation_lease_key, federation_state_key};
use bindery_core::federation::{
    self, FederationConfig, FederationConfigError, FederationState, Lease, Member, Outcome, health,
};
use serde_json::Value;

use crate::cache::Cache;
use crate::fetch::{Fetch, Limits};

/// The `federation` variable, parsed, with the fingerprint of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Federation {
    /// The configuration.
    pub config: FederationConfig,
    /// [`federation::fingerprint`] of the text: the state of another text is not reused.
    pub fingerprint: String,
}

impl Federation {
    /// Parses the variable's value; `None` when empty.
    pub fn parse(text: &str) -> Result<Option<Self>, FederationConfigError> {
        Ok(FederationConfig::parse(text)?.map(|config| Self {
            config,
            fingerprint: federation::fingerprint(text),
        }))
    }

    /// The time limits of one check request: `check.timeout` for each step.
    pub fn limits(&self) -> Limits {
        let timeout = std::time::Duration::from_secs_f64(self.config.check.timeout);
        Limits {
            connect: Some(timeout),
            first_byte: Some(timeout),
            between_bytes: Some(timeout),
        }
    }

    /// The shared state: the stored record when it was made for this configuration, else
    /// a fresh one (every member counts, every member is due).
    pub fn state(&self, cache: &Cache<'_>, now: u64) -> FederationState {
        match cache.get::<FederationState>(&federation_state_key(), now) {
            Some(Lookup::Fresh(state) | Lookup::Expired(state))
                if state.config == self.fingerprint =>
            {
                state
            }
            _ => FederationState::new(&self.fingerprint, now),
        }
    }

    /// Whether some member is due for a check and nobody holds the lease.
    pub fn refresh_due(&self, state: &FederationState, cache: &Cache<'_>, now: u64) -> bool {
        !state.due(&self.config, now).is_empty()
            && cache
                .get_fresh::<Lease>(&federation_lease_key(), now)
                .is_none()
    }

    /// Takes the refresh lease for `holder`: true when the store holds it afterwards.
    pub fn take_lease(&self, cache: &Cache<'_>, holder: &str, now: u64) -> bool {
        let key = federation_lease_key();
        if cache.get_fresh::<Lease>(&key, now).is_some() {
            return false;
        }
        cache.put(
            &key,
            &Lease::new(holder.to_owned(), &self.config.check, now),
        );
        cache
            .get_fresh::<Lease>(&key, now)
            .is_some_and(|lease| lease.holder == holder)
    }

    /// Checks the members due at `now` (each `/versions` and `/health` through `fetch`,
    /// which the caller gives [`Federation::limits`]), records the outcomes in the state
    /// and stores it; `random` draws the jitter. Returns the state stored and each
    /// checked member's outcome.
    pub async fn refresh<F: Fetch>(
        &self,
        cache: &Cache<'_>,
        fetch: &F,
        now: u64,
        random: &mut dyn FnMut() -> f64,
    ) -> (FederationState, Vec<(String, Outcome)>) {
        let mut state = self.state(cache, now);
        let due = state.due(&self.config, now);
        let answers = futures::future::join_all(
            due.iter()
                .map(|m| check_member(m, fetch, self.config.pod_headroom)),
        )
        .await;
        // The primes' fresh versions first: every member is compared with them.
        for (member, (versions, _)) in due.iter().zip(&answers) {
            if let (true, Ok(v)) = (member.prime, versions) {
                state.record_prime_versions(v.clone());
            }
        }
        let mut outcomes = Vec::with_capacity(due.len());
        for (member, (versions, health)) in due.iter().zip(answers) {
            let outcome = health::conclude(&versions, state.prime_versions.as_ref(), health);
            state.record(&self.config.check, &member.name, &outcome, now, random());
            match &outcome {
                Outcome::Healthy => {}
                Outcome::Failed { reason, detail } => eprintln!(
                    "bindery-launch: federation member {} is unhealthy ({reason}): {detail}",
                    member.name
                ),
                Outcome::Error { detail } => eprintln!(
                    "bindery-launch: federation member {} check failed: {detail}",
                    member.name
                ),
            }
            outcomes.push((member.name.clone(), outcome));
        }
        cache.put(&federation_state_key(), &state);
        (state, outcomes)
    }

    /// Gives the lease back.
    pub fn release_lease(&self, cache: &Cache<'_>) {
        cache.delete(&federation_lease_key());
    }
}

/// One check of `member`: its `/versions` JSON (or why not) and what its `/health` says.
async fn check_member<F: Fetch>(
    member: &Member,
    fetch: &F,
    pod_headroom: u64,
) -> (Result<Value, String>, Outcome) {
    let get = |url: &str| {
        let request = http::Request::get(url)
            .header("accept", "application/json")
            .body(Vec::new());
        async move {
            let request = request.map_err(|e| e.to_string())?;
            let response = fetch.send(request).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((response.status().as_u16(), response.into_body()))
        }
    };
    let (versions, health) =
        futures::future::join(get(&member.versions), get(&member.health)).await;
    let versions = health::versions(
        versions
            .as_ref()
            .map(|(s, b)| (*s, b.as_slice()))
            .map_err(Clone::clone),
    );
    let health = health::health(
        health
            .as_ref()
            .map(|(s, b)| (*s, b.as_slice()))
            .map_err(Clone::clone),
        pod_headroom,
    );
    (versions, health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryKv;
    use crate::testing::{ScriptedFetch, block_on};
    use serde_json::json;

    const CONFIG: &str = r#"{"check": {"period": 10, "jitter": 0, "retries": 2, "failed_period": 60},
        "hosts": {
          "p": {"url": "http://p.test", "prime": true},
          "m": {"url": "http://m.test"}}}"#;

    fn federation() -> Federation {
        Federation::parse(CONFIG).expect("valid").expect("set")
    }

    fn json_answer(status: u16, body: &Value) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .body(serde_json::to_vec(body).expect("json"))
            .expect("response")
    }

    fn healthy() -> Value {
        json!({"ok": true, "checks": [{"service": "Pod quota", "total_pods": 1, "quota": 100, "ok": true}]})
    }

    #[test]
    fn a_refresh_checks_due_members_and_shares_the_result() {
        let fed = federation();
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            "http://p.test/versions",
            json_answer(200, &json!({"v": 1})),
        );
        fetch.on("GET", "http://p.test/health", json_answer(200, &healthy()));
        fetch.on(
            "GET",
            "http://m.test/versions",
            json_answer(200, &json!({"v": 2})),
        );
        fetch.on("GET", "http://m.test/health", json_answer(200, &healthy()));
        let state = fed.state(&cache, 100);
        assert!(fed.refresh_due(&state, &cache, 100));
        assert!(fed.take_lease(&cache, "me", 100));
        assert!(
            !fed.take_lease(&cache, "other", 100),
            "one refresher at a time"
        );
        assert!(!fed.refresh_due(&state, &cache, 100));
        let (state, outcomes) = block_on(fed.refresh(&cache, &fetch, 100, &mut || 0.5));
        fed.release_lease(&cache);
        assert_eq!(outcomes.len(), 2);
        assert!(state.is_healthy("p"));
        assert!(!state.is_healthy("m"), "versions differ from the prime's");
        assert_eq!(state.members["m"].reason, "versions");
        // Another request (another instance, same store) reads the same state and finds
        // nothing due until the period has passed.
        let again = fed.state(&cache, 105);
        assert_eq!(again, state);
        assert!(!fed.refresh_due(&again, &cache, 105));
        assert!(fed.refresh_due(&again, &cache, 110));
        // Only p is due at 110; m waits for its failed period.
        let due: Vec<&str> = again
            .due(&fed.config, 110)
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(due, ["p"]);
        // Another configuration starts afresh.
        let other = Federation::parse(&CONFIG.replace("60", "61"))
            .expect("valid")
            .expect("set");
        assert!(other.state(&cache, 105).members.is_empty());
    }

    #[test]
    fn a_member_that_does_not_answer_is_retried_then_dropped() {
        let fed = federation();
        let kv = MemoryKv::default();
        let cache = Cache::new(&kv);
        let fetch = ScriptedFetch::new();
        fetch.on(
            "GET",
            "http://p.test/versions",
            json_answer(200, &json!({"v": 1})),
        );
        fetch.on("GET", "http://p.test/health", json_answer(200, &healthy()));
        // m answers nothing (the script has no rule for it).
        let (state, _) = block_on(fed.refresh(&cache, &fetch, 0, &mut || 0.5));
        assert!(state.is_healthy("m"), "one error of two retries keeps it");
        assert_eq!(state.members["m"].next_check_at, 1);
        let (state, _) = block_on(fed.refresh(&cache, &fetch, 1, &mut || 0.5));
        assert!(!state.is_healthy("m"));
        assert_eq!(state.members["m"].reason, "unknown");
        let requests = fetch.requests();
        assert!(requests.iter().any(|r| r.uri() == "http://m.test/health"));
    }
}

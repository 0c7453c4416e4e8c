//! The launch quotas (BinderHub's `quota.py`), counted over this worker's own launches.
//!
//! A slot is taken when a launch is admitted, under one mutex, so concurrent launches can
//! never overshoot; it is given back when the launch fails, or, for a server that started,
//! when the hub no longer has that server ([`Admission::release_stopped`], run
//! periodically).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bindery_core::policy::{QuotaDecision, check_quota, count_running};

use crate::hub::HubClient;

/// One admitted launch: its image, its hub user once named, whether its server runs.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    image: String,
    /// The hub user of the launch's current attempt.
    pub(crate) user: Option<String>,
    /// Whether the server started (its slot is then freed by the quota refresh).
    pub(crate) running: bool,
}

/// The quota counter: one slot per admitted launch or running server.
#[derive(Debug, Default)]
pub struct Admission {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Admission {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts and admits under one lock: a launch admitted here has its slot already.
    pub fn admit(
        &self,
        launch_id: &str,
        image: &str,
        repo_quota: Option<u32>,
        total_quota: Option<u32>,
    ) -> QuotaDecision {
        let mut slots = self.slots();
        let images: Vec<&str> = slots.values().map(|s| s.image.as_str()).collect();
        let decision = check_quota(count_running(&images, image), repo_quota, total_quota);
        if decision == QuotaDecision::Admit {
            slots.insert(
                launch_id.to_owned(),
                Slot {
                    image: image.to_owned(),
                    user: None,
                    running: false,
                },
            );
        }
        decision
    }

    /// Gives a slot back.
    pub fn release(&self, launch_id: &str) {
        self.slots().remove(launch_id);
    }

    /// How many slots are taken.
    pub fn taken(&self) -> usize {
        self.slots().len()
    }

    /// Changes the slot of `launch_id`, when it holds one.
    pub(crate) fn update(&self, launch_id: &str, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.slots().get_mut(launch_id) {
            f(slot);
        }
    }

    fn running_users(&self) -> Vec<(String, String)> {
        self.slots()
            .iter()
            .filter(|(_, s)| s.running)
            .filter_map(|(id, s)| s.user.clone().map(|u| (id.clone(), u)))
            .collect()
    }

    /// Frees the slots of the servers `hub` no longer runs (culled or stopped); a user the
    /// hub cannot be asked about keeps its slot until the next refresh.
    pub async fn release_stopped(&self, hub: &HubClient) {
        for (id, user) in self.running_users() {
            let gone = match hub.user(&user).await {
                Ok(None) => true,
                Ok(Some(model)) => model
                    .get("servers")
                    .and_then(serde_json::Value::as_object)
                    .is_some_and(serde_json::Map::is_empty),
                Err(err) => {
                    tracing::debug!(%user, error = %err, "quota refresh: hub check failed");
                    false
                }
            };
            if gone {
                self.release(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_per_image_and_in_total_and_releases() {
        let admission = Admission::default();
        assert_eq!(
            admission.admit("l1", "r/a:1", Some(2), Some(3)),
            QuotaDecision::Admit
        );
        assert_eq!(
            admission.admit("l2", "r/a:2", Some(2), Some(3)),
            QuotaDecision::Admit
        );
        assert_eq!(
            admission.admit("l3", "r/a:3", Some(2), Some(3)),
            QuotaDecision::RepoExceeded { quota: 2 }
        );
        assert_eq!(
            admission.admit("l4", "r/b:1", Some(2), Some(3)),
            QuotaDecision::Admit
        );
        assert_eq!(
            admission.admit("l5", "r/c:1", Some(2), Some(3)),
            QuotaDecision::TotalExceeded
        );
        admission.release("l1");
        assert_eq!(
            admission.admit("l6", "r/c:1", Some(2), Some(3)),
            QuotaDecision::Admit
        );
        assert_eq!(admission.taken(), 3);
    }
}

//! The launch quotas (BinderHub's `quota.py`), counted over this worker's launches and the
//! servers JupyterHub runs.
//!
//! A slot is taken when a launch is admitted (before its build), under one mutex, so
//! concurrent launches can never overshoot; before the spawn the launch is checked again
//! against every other slot ([`Admission::recheck`]). A slot is given back when the launch
//! fails, or, for a server that started, when the hub no longer has that server.
//!
//! BinderHub counts running pods, so a restarted BinderHub knows them; the worker asks the
//! hub instead: at start and then periodically, [`Admission::sync`] lays the hub's ready
//! servers over the slots — a server the worker does not know (a previous worker's, or
//! another replica's) takes a slot, and a running server the hub no longer has frees its
//! own. Servers still spawning are not on that list; each is counted by the worker whose
//! launch spawns it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bindery_core::policy::{QuotaDecision, check_quota, count_running};

use crate::hub::{HubClient, HubServer};

/// One admitted launch: its image, its hub user once named, whether its server runs.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    image: String,
    /// The hub user of the launch's current attempt.
    pub(crate) user: Option<String>,
    /// Since when the server runs (its slot is then freed by the quota refresh).
    running: Option<Instant>,
}

impl Slot {
    /// The launch's server is ready.
    pub(crate) fn mark_running(&mut self) {
        self.running = Some(Instant::now());
    }
}

/// The slot id of a server found on the hub.
fn hub_slot_id(user: &str) -> String {
    format!("hub:{user}")
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
        let decision = decide(&slots, None, image, repo_quota, total_quota);
        if decision == QuotaDecision::Admit {
            slots.insert(
                launch_id.to_owned(),
                Slot {
                    image: image.to_owned(),
                    user: None,
                    running: None,
                },
            );
        }
        decision
    }

    /// Checks an admitted launch again (before its spawn), counting every slot but its
    /// own: servers found on the hub since admission count.
    pub fn recheck(
        &self,
        launch_id: &str,
        image: &str,
        repo_quota: Option<u32>,
        total_quota: Option<u32>,
    ) -> QuotaDecision {
        decide(
            &self.slots(),
            Some(launch_id),
            image,
            repo_quota,
            total_quota,
        )
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

    /// Lays the hub's ready `servers`, listed from `listed_at` on, over the slots: a
    /// server of a user no slot knows takes one; a running server's slot whose user is not
    /// on the list is freed, unless the server became ready after the list was asked for.
    pub fn sync(&self, servers: &[HubServer], listed_at: Instant) {
        let mut slots = self.slots();
        let on_hub: HashSet<&str> = servers.iter().map(|s| s.user.as_str()).collect();
        slots.retain(|_, slot| match (slot.running, slot.user.as_deref()) {
            (Some(since), Some(user)) => since >= listed_at || on_hub.contains(user),
            _ => true,
        });
        let known: HashSet<String> = slots.values().filter_map(|s| s.user.clone()).collect();
        for server in servers {
            if !known.contains(&server.user) {
                slots.insert(
                    hub_slot_id(&server.user),
                    Slot {
                        image: server.image.clone(),
                        user: Some(server.user.clone()),
                        running: Some(listed_at),
                    },
                );
            }
        }
    }

    /// Counts the hub's ready servers into the slots (see [`Admission::sync`]); a hub that
    /// cannot be asked leaves the slots as they are until the next refresh.
    pub async fn refresh(&self, hub: &HubClient) {
        let listed_at = Instant::now();
        match hub.ready_servers().await {
            Ok(servers) => self.sync(&servers, listed_at),
            Err(err) => {
                tracing::warn!(error = %err, "quota refresh: failed to list the hub's servers");
            }
        }
    }
}

/// The quota decision for `image` over `slots`, leaving out the slot of `except`.
fn decide(
    slots: &HashMap<String, Slot>,
    except: Option<&str>,
    image: &str,
    repo_quota: Option<u32>,
    total_quota: Option<u32>,
) -> QuotaDecision {
    let images: Vec<&str> = slots
        .iter()
        .filter(|(id, _)| Some(id.as_str()) != except)
        .map(|(_, s)| s.image.as_str())
        .collect();
    check_quota(count_running(&images, image), repo_quota, total_quota)
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

    fn server(user: &str, image: &str) -> HubServer {
        HubServer {
            user: user.into(),
            image: image.into(),
        }
    }

    #[test]
    fn servers_on_the_hub_count_after_a_restart_and_stopped_ones_free_their_slot() {
        let admission = Admission::default();
        let listed = Instant::now();
        // A fresh worker learns of two servers of r/a and one of r/b.
        admission.sync(
            &[
                server("u1", "r/a:1"),
                server("u2", "r/a:2"),
                server("u3", "r/b:1"),
            ],
            listed,
        );
        assert_eq!(admission.taken(), 3);
        let cases = [
            (
                "r/a:3",
                Some(2),
                None,
                QuotaDecision::RepoExceeded { quota: 2 },
            ),
            ("r/b:2", Some(2), None, QuotaDecision::Admit),
            ("r/c:1", None, Some(3), QuotaDecision::TotalExceeded),
        ];
        for (image, repo, total, expected) in cases {
            assert_eq!(
                admission.recheck("new", image, repo, total),
                expected,
                "{image}"
            );
        }
        // Our own launch of r/b becomes ready after the next listing is asked for: it
        // stays although that listing lacks it; u1 stopped, so its slot goes.
        assert_eq!(
            admission.admit("l1", "r/b:2", None, None),
            QuotaDecision::Admit
        );
        let second_listing = Instant::now();
        admission.update("l1", |slot| {
            slot.user = Some("u4".into());
            slot.mark_running();
        });
        admission.sync(
            &[server("u2", "r/a:2"), server("u3", "r/b:1")],
            second_listing,
        );
        assert_eq!(admission.taken(), 3, "u2, u3 and l1");
        assert_eq!(
            admission.admit("l2", "r/a:1", Some(2), None),
            QuotaDecision::Admit,
            "u1's slot was freed"
        );
        // A listing that names the launch's user does not add it twice.
        admission.sync(
            &[
                server("u2", "r/a:2"),
                server("u3", "r/b:1"),
                server("u4", "r/b:2"),
            ],
            Instant::now(),
        );
        assert_eq!(admission.taken(), 4);
    }

    #[test]
    fn the_recheck_before_the_spawn_counts_every_slot_but_the_launchs_own() {
        let admission = Admission::default();
        assert_eq!(
            admission.admit("l1", "r/a:1", Some(1), None),
            QuotaDecision::Admit
        );
        assert_eq!(
            admission.recheck("l1", "r/a:1", Some(1), None),
            QuotaDecision::Admit
        );
        // Another replica's server of the same repository appears meanwhile.
        admission.sync(&[server("other", "r/a:1")], Instant::now());
        assert_eq!(
            admission.recheck("l1", "r/a:1", Some(1), None),
            QuotaDecision::RepoExceeded { quota: 1 }
        );
    }
}

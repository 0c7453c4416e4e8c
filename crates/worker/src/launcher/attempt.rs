//! One launch attempt: BinderHub's hub sequence under a fresh user name, and the clean-up
//! of a failed attempt (only a user the attempt may have created is deleted).

use bindery_core::events::{Event, Phase, ReadyInfo};
use bindery_core::launch::hub_username;
use bindery_core::worker_api::LaunchRequest;
use serde_json::json;

use super::{Launcher, SHUTTING_DOWN};
use crate::events::EventLog;
use crate::hub::{HubError, escape_name};
use crate::ids;

/// Why one launch attempt failed, and whether another attempt may do better.
#[derive(Debug)]
pub(super) struct AttemptFailed {
    pub(super) reason: String,
    pub(super) retry: bool,
}

/// Whether an attempt's user is on the hub, as far as the attempt knows: only a user the
/// attempt may have created is deleted when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserState {
    /// `create_user` was not sent, or the hub refused it (a `409` is someone else's user of
    /// that name; another `4xx` made nothing).
    NotCreated,
    /// `create_user` is in flight, or ended without an answer (timeout, unreachable,
    /// `5xx`): the user may exist, and would be this attempt's.
    MaybeCreated,
    /// The hub created it.
    Created,
}

impl UserState {
    /// What `create_user`'s result says.
    fn after_create(result: &Result<(), HubError>) -> UserState {
        match result {
            Ok(()) => UserState::Created,
            Err(HubError::Status { status, .. }) if (400..500).contains(status) => {
                UserState::NotCreated
            }
            Err(_) => UserState::MaybeCreated,
        }
    }
}

impl Launcher {
    /// One attempt under a fresh user name (BinderHub's name rule, a new random suffix):
    /// `ready` on success; on failure the user is deleted when this attempt may have
    /// created it, so nothing leaks and nobody else's user is touched.
    pub(super) async fn attempt(
        &self,
        id: &str,
        request: &LaunchRequest,
        log: &EventLog,
    ) -> Result<(), AttemptFailed> {
        let user = hub_username(&request.repo_url, &ids::user_suffix());
        self.admission
            .update(id, |slot| slot.user = Some(user.clone()));
        let token = ids::server_token();
        let mut created = UserState::NotCreated;
        let spawn = tokio::time::timeout(
            self.launch_timeout,
            self.spawn(&user, &token, request, log, &mut created),
        );
        let outcome = tokio::select! {
            outcome = spawn => Some(outcome),
            () = self.stopped() => None,
        };
        let failure = match outcome {
            None => AttemptFailed {
                retry: false,
                reason: SHUTTING_DOWN.to_owned(),
            },
            Some(Ok(Ok(()))) => {
                self.admission.update(id, |slot| slot.mark_running());
                let url = format!("{}user/{}/", self.hub_url, escape_name(&user));
                tracing::info!(launch = id, %user, %url, "server ready");
                log.append(Event::ready(ReadyInfo {
                    url: Some(url),
                    token: Some(token),
                    image: Some(request.image.clone()),
                    repo_url: Some(request.repo_url.clone()),
                    binder_ref_url: Some(request.ref_url.clone()),
                    binder_launch_host: Some(request.launch_host.clone()),
                    binder_request: Some(request.binder_request.clone()),
                    binder_persistent_request: Some(request.binder_persistent_request.clone()),
                    binder_client_ip: Some(request.client_ip.clone()),
                }));
                return Ok(());
            }
            Some(Ok(Err(err))) => AttemptFailed {
                retry: err.worth_another_launch(),
                reason: err.reason(),
            },
            Some(Err(_)) => AttemptFailed {
                retry: true,
                reason: format!(
                    "the server took too long to launch (more than {} seconds)",
                    self.launch_timeout.as_secs()
                ),
            },
        };
        if created == UserState::NotCreated {
            // Never this attempt's user: a 409 names someone else's, which must stay.
            tracing::warn!(launch = id, %user, reason = failure.reason, "launch attempt failed before its user was created");
            return Err(failure);
        }
        tracing::warn!(launch = id, %user, reason = failure.reason, "launch attempt failed; deleting the user");
        // The user (and any half-started server) goes before anything else happens.
        if let Err(err) = self.hub.delete_user(&user).await {
            tracing::error!(launch = id, %user, error = %err, "failed to delete the user of a failed launch");
        }
        Err(failure)
    }

    /// BinderHub's hub sequence: create the user, request the server, follow its progress.
    async fn spawn(
        &self,
        user: &str,
        token: &str,
        request: &LaunchRequest,
        log: &EventLog,
        created: &mut UserState,
    ) -> Result<(), HubError> {
        *created = UserState::MaybeCreated;
        let result = self.hub.create_user(user).await;
        *created = UserState::after_create(&result);
        result?;
        let user_options = json!({
            "image": request.image,
            "token": token,
            "repo_url": request.repo_url,
            "binder_ref_url": request.ref_url,
            "binder_launch_host": request.launch_host,
            "binder_request": request.binder_request,
            "binder_persistent_request": request.binder_persistent_request,
            "binder_client_ip": request.client_ip,
        });
        self.hub.start_server(user, &user_options).await?;
        self.hub
            .follow_progress(user, |progress| {
                if !progress.message.is_empty() && !progress.failed {
                    log.append(Event::new(
                        Phase::Launching,
                        format!("{}\n", progress.message),
                    ));
                }
            })
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_user_the_attempt_may_have_created_counts_as_its_own() {
        let status = |status| {
            Err(HubError::Status {
                status,
                message: "no".into(),
            })
        };
        assert_eq!(UserState::after_create(&Ok(())), UserState::Created);
        // Someone else's user of that name, and refusals that made nothing.
        for code in [409, 403, 400] {
            assert_eq!(
                UserState::after_create(&status(code)),
                UserState::NotCreated
            );
        }
        // No answer or a failing hub: the user may be there, and would be ours.
        assert_eq!(
            UserState::after_create(&status(503)),
            UserState::MaybeCreated
        );
        assert_eq!(
            UserState::after_create(&Err(HubError::Timeout)),
            UserState::MaybeCreated
        );
        assert_eq!(
            UserState::after_create(&Err(HubError::Unreachable("down".into()))),
            UserState::MaybeCreated
        );
    }
}

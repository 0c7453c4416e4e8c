//! The webhook component: GitHub and GitLab push webhooks refresh the ref cache and
//! prebuild images before anyone clicks.
//!
//! - `POST /hooks/github`: events `ping` and `push`, authenticated by
//!   `X-Hub-Signature-256` (HMAC of the body with `github_webhook_secret`, or with the
//!   repository's own secret derived from it, see `bindery_core::webhook::RepoScope`); the
//!   delivery id is `X-GitHub-Delivery`.
//! - `POST /hooks/gitlab`: push and tag push hooks, authenticated by `X-Gitlab-Token`
//!   (`gitlab_webhook_secret`, or the repository's derived secret); the delivery id is
//!   `X-Gitlab-Event-UUID`, else `Idempotency-Key`.
//!
//! Order of checks: route (404), method (405), body size (413), configuration (500),
//! authenticity (401; 403 when the secret is not configured, so an endpoint deployed
//! before its secret is set never accepts anything), delivery id (400 when malformed; a
//! redelivery of a handled id answers `202 already processed` and does nothing), JSON
//! (400 with the core's message), and a derived secret must be the pushed repository's
//! (401). Nothing is written before authenticity is established.
//!
//! A push is a hint, not a fact. The shared secret is known to every repository owner
//! who set the hook up, and the delivery id is not signed, so the commit a push names is
//! never stored: a valid push to a branch or tag makes the edge ask the provider where
//! that ref (and `HEAD`, when the push says it went to the default branch) points now,
//! through the launch's own resolution, which stores the provider's answer in the ref
//! cache exactly as a launch would. A ref the provider does not know has its entry
//! dropped. The most a forged or replayed push can do is make the edge ask the provider
//! again. When the provider does not answer (down, rate limit, time limit), nothing is
//! changed, the answer is still `202` (status `provider unreachable`, with a log line),
//! and the delivery is not remembered, so a redelivery tries again.
//!
//! Then, when the image for the commit the provider named is not known to be present and
//! the spec matches `prebuild_specs` (matched like the ban lists) and is not banned, the
//! worker is asked for a prebuild and the image's status becomes "building" for the live
//! badge. The component reaches the provider APIs and the worker; it never asks the
//! registry, so "present" means present in the KV presence cache.
//!
//! The answer is `202` with a short JSON summary of what was done. A failed prebuild
//! request answers `502` and the delivery is not remembered, so a redelivery retries.

use bindery_core::cache::{LastStatus, Lookup};
use bindery_core::resolve::{Outcome, Resolved, encode_all, ref_cache};
use bindery_core::webhook::{
    GithubEvent, GitlabEvent, MAX_BODY_BYTES, PushEvent, PushProvider, WebhookError, delivery_key,
    parse_github, parse_gitlab, verify_delivery,
};
use bindery_core::worker_api::BuildRequest;
use bindery_core::{Spec, image_name};
use bindery_edge::cache::{Cache, spec_ref_key};
use bindery_edge::config::{EdgeConfig, GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SECRET};
use bindery_edge::fetch::Fetch;
use bindery_edge::resolve::resolve_upstream;
use bindery_edge::respond;
use bindery_edge::worker::request_build;
use futures::future::join_all;
use http::{Method, Request, Response};
use serde_json::{Value, json};

/// The largest body read: the core's limit (GitHub's 25 MiB). Reading stops as soon as a
/// body exceeds it, with a 413.
pub const MAX_BODY: usize = MAX_BODY_BYTES;

/// Maps a path to the provider whose hook it is.
pub fn route(path: &str) -> Option<PushProvider> {
    match path.trim_end_matches('/') {
        "/hooks/github" => Some(PushProvider::GitHub),
        "/hooks/gitlab" => Some(PushProvider::GitLab),
        _ => None,
    }
}

/// An answer that is not `202 accepted`.
type Refusal = (u16, String);

/// Answers a webhook delivery (see the module docs).
pub async fn handle(
    request: &Request<Vec<u8>>,
    config: impl FnOnce() -> Result<EdgeConfig, bindery_edge::ConfigError>,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Response<Vec<u8>> {
    let Some(provider) = route(request.uri().path()) else {
        return respond::not_found();
    };
    if request.method() != Method::POST {
        return respond::method_not_allowed("POST");
    }
    let body = request.body();
    if body.len() > MAX_BODY_BYTES {
        let e = WebhookError::BodyTooLarge { len: body.len() };
        return respond::json_error(e.status_code(), &e.to_string());
    }
    let cfg = match config() {
        Ok(cfg) => cfg,
        Err(e) => return respond::json_error(500, &e.to_string()),
    };
    match deliver(provider, request, &cfg, cache, fetch, now).await {
        Ok((status, summary)) => respond::json(status, &summary),
        Err((status, message)) => respond::json_error(status, &message),
    }
}

async fn deliver(
    provider: PushProvider,
    request: &Request<Vec<u8>>,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<(u16, Value), Refusal> {
    let header = |name| respond::header(request, name);
    let body = request.body();
    let refuse = |e: WebhookError, variable: &str| {
        let mut message = e.to_string();
        if e == WebhookError::SecretNotConfigured {
            message.push_str(&format!(" (set the `{variable}` variable)"));
        }
        (e.status_code(), message)
    };
    let (secret, variable) = match provider {
        PushProvider::GitHub => (&cfg.github_webhook_secret, GITHUB_WEBHOOK_SECRET),
        PushProvider::GitLab => (&cfg.gitlab_webhook_secret, GITLAB_WEBHOOK_SECRET),
    };
    let secret = secret.as_ref().map_or(&b""[..], |s| s.expose().as_bytes());
    let credential = match provider {
        PushProvider::GitHub => header("x-hub-signature-256"),
        PushProvider::GitLab => header("x-gitlab-token"),
    };
    let verified =
        verify_delivery(provider, secret, body, credential).map_err(|e| refuse(e, variable))?;

    let delivery = match provider {
        PushProvider::GitHub => header("x-github-delivery"),
        PushProvider::GitLab => header("x-gitlab-event-uuid").or_else(|| header("idempotency-key")),
    };
    let delivery_key = delivery
        .map(|id| delivery_key(provider, id))
        .transpose()
        .map_err(|e| refuse(e, variable))?;
    if let Some(key) = &delivery_key
        && cache.delivery_seen(key, now)
    {
        return Ok((
            202,
            json!({ "status": "already processed", "delivery": delivery }),
        ));
    }

    let push = match provider {
        PushProvider::GitHub => {
            match parse_github(header("x-github-event").unwrap_or_default(), body)
                .map_err(|e| refuse(e, variable))?
            {
                GithubEvent::Ping { .. } => None,
                GithubEvent::Push(push) => Some(push),
                GithubEvent::Ignored { event } => {
                    remember(cache, delivery_key.as_deref(), cfg, now);
                    return Ok((202, json!({ "status": "ignored", "event": event })));
                }
            }
        }
        PushProvider::GitLab => {
            match parse_gitlab(header("x-gitlab-event").unwrap_or_default(), body)
                .map_err(|e| refuse(e, variable))?
            {
                GitlabEvent::Push(push) => Some(push),
                GitlabEvent::Ignored { event } => {
                    remember(cache, delivery_key.as_deref(), cfg, now);
                    return Ok((202, json!({ "status": "ignored", "event": event })));
                }
            }
        }
    };
    let Some(push) = push else {
        remember(cache, delivery_key.as_deref(), cfg, now);
        return Ok((200, json!({ "status": "pong" })));
    };
    if !verified.covers(provider, &push.repo) {
        return Err(refuse(mismatch(provider), variable));
    }
    let (mut summary, handled) = on_push(&push, cfg, cache, fetch, now).await?;
    summary["delivery"] = json!(delivery);
    if handled {
        remember(cache, delivery_key.as_deref(), cfg, now);
    }
    Ok((202, summary))
}

/// The refusal of a credential that does not fit the delivery.
fn mismatch(provider: PushProvider) -> WebhookError {
    match provider {
        PushProvider::GitHub => WebhookError::SignatureMismatch,
        PushProvider::GitLab => WebhookError::TokenMismatch,
    }
}

fn remember(cache: &Cache<'_>, key: Option<&str>, cfg: &EdgeConfig, now: u64) {
    if let Some(key) = key {
        cache.remember_delivery(key, now, &cfg.ttl);
    }
}

/// The spec a launch link for the pushed ref would carry: `gh/<owner>/<repo>/<ref>` or
/// `gl/<encoded namespace>/<encoded ref>`.
pub fn push_spec(push: &PushEvent, git_ref: &str, cfg: &EdgeConfig) -> Result<Spec, Refusal> {
    let raw = match push.provider {
        PushProvider::GitHub => format!("{}/{git_ref}", push.repo),
        PushProvider::GitLab => format!("{}/{}", encode_all(&push.repo), encode_all(git_ref)),
    };
    Spec::parse(push.provider.provider_id(), &raw, &cfg.providers).map_err(|e| (400, e.to_string()))
}

/// What the provider said about one ref a push names.
enum Refresh {
    /// The ref resolved (and the ref cache now holds this answer).
    Resolved(Resolved),
    /// The provider says the ref does not exist: its entry was dropped.
    Gone,
    /// The provider could not be asked or refused to answer: nothing was changed.
    Unanswered(String),
}

/// Asks the provider where `spec`'s ref points now, through the launch's own resolution
/// (which caches the answer), revalidating the held entry's ETag when it has one.
async fn refresh(
    spec: &Spec,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Refresh {
    let held = cache
        .cached_ref(spec, now)
        .and_then(Lookup::any)
        .filter(|entry| ref_cache::from_cache(spec, entry).is_some());
    match resolve_upstream(spec, cfg, cache, fetch, now, held)
        .await
        .outcome
    {
        Outcome::Resolved(resolved) => Refresh::Resolved(resolved),
        Outcome::NotFound(_) => {
            cache.delete(&spec_ref_key(spec));
            Refresh::Gone
        }
        Outcome::RateLimited { message, .. } | Outcome::Failed(message) => {
            Refresh::Unanswered(message)
        }
    }
}

/// Re-resolves the pushed ref (and `HEAD` for the default branch) from the provider and
/// prebuilds the commit the provider names when configured; returns the summary to answer
/// with and whether the delivery was handled (false when the provider did not answer, so
/// that a redelivery tries again).
pub async fn on_push(
    push: &PushEvent,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<(Value, bool), Refusal> {
    let Some(git_ref) = push.branch.as_deref().or(push.tag.as_deref()) else {
        return Ok((
            json!({ "status": "ignored", "reason": "the push names no branch or tag" }),
            true,
        ));
    };
    let spec = push_spec(push, git_ref, cfg)?;
    let spec_text = format!("{}/{}", spec.provider(), spec.raw());

    // A push signed with our secret but about another host (GitHub Enterprise, a
    // self-hosted GitLab) is not about the repositories the configured API serves.
    let expected_host = match push.provider {
        PushProvider::GitHub => &cfg.providers.github_host,
        PushProvider::GitLab => &cfg.providers.gitlab_host,
    };
    let host = push
        .repo_url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default())
        .unwrap_or_default();
    if !host.eq_ignore_ascii_case(expected_host) {
        return Ok((
            json!({
                "status": "ignored",
                "reason": format!("the repository is on {host}, not on {expected_host}"),
            }),
            true,
        ));
    }

    // The push's own commit is never stored: anyone holding the shared secret could send
    // any commit for any repository, and a captured delivery can come again under a new
    // id. It only says "ask the provider now"; both refs are asked at once, so that a
    // default-branch push stays within the provider's delivery timeout.
    let mut refs = vec![(git_ref.to_owned(), spec.clone())];
    if push.is_default_branch() {
        refs.push(("HEAD".to_owned(), push_spec(push, "HEAD", cfg)?));
    }
    let answers = join_all(
        refs.iter()
            .map(|(_, spec)| refresh(spec, cfg, cache, fetch, now)),
    )
    .await;

    let mut summary = json!({ "status": "accepted", "spec": spec_text, "pushed": push.commit });
    let (mut refreshed, mut deleted, mut unanswered) = (Vec::new(), Vec::new(), None);
    for ((name, _), answer) in refs.iter().zip(&answers) {
        match answer {
            Refresh::Resolved(_) => refreshed.push(name.as_str()),
            Refresh::Gone => deleted.push(name.as_str()),
            Refresh::Unanswered(message) => {
                eprintln!(
                    "bindery-webhook: the push to {spec_text} was not followed: the provider did not answer for {name}, the cached ref is left as it was: {message}"
                );
                unanswered.get_or_insert(message.as_str());
            }
        }
    }
    summary["refreshed"] = json!(refreshed);
    summary["deleted"] = json!(deleted);
    if let Some(message) = unanswered {
        summary["status"] = json!("provider unreachable");
        summary["message"] = json!(message);
    }
    let handled = unanswered.is_none();
    let Some(Refresh::Resolved(resolved)) = answers.first() else {
        return Ok((summary, handled));
    };
    let commit = resolved.resolved_ref.as_str();
    summary["commit"] = json!(commit);

    let prefix = cfg.image_prefix().map_err(|e| (500, e.to_string()))?;
    let image = image_name(prefix, &resolved.build_slug, commit);
    summary["image"] = json!(image);
    let present = matches!(
        cache.image_presence(&image, now),
        Some(Lookup::Fresh(p)) if p.present
    );
    let skipped = if present {
        Some("image present")
    } else if !cfg.prebuild_specs.matches(spec.raw()) {
        Some("not in prebuild_specs")
    } else if cfg.policy.is_banned(spec.raw()) {
        Some("banned")
    } else if cache.status(&image, now).map(|s| s.status) == Some(LastStatus::Building) {
        Some("already building")
    } else {
        None
    };
    if let Some(reason) = skipped {
        summary["prebuild"] = json!(format!("skipped: {reason}"));
        return Ok((summary, handled));
    }

    let worker = cfg.worker().map_err(|e| (500, e.to_string()))?;
    let build = BuildRequest {
        provider: spec.provider().as_str().to_owned(),
        spec: spec.raw().to_owned(),
        repo_url: spec.repo_url(),
        resolved_ref: commit.to_owned(),
        image: image.clone(),
        build_slug: resolved.build_slug.clone(),
    };
    let accepted = request_build(worker, &build, fetch)
        .await
        .map_err(|e| (502, format!("failed to queue a prebuild of {image}: {e}")))?;
    cache.put_status(&image, LastStatus::Building, now, &cfg.ttl);
    summary["prebuild"] = json!("queued");
    summary["build_id"] = json!(accepted.id);
    Ok((summary, handled))
}

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod tests;

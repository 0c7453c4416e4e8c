//! The webhook component: GitHub and GitLab push webhooks refresh the ref cache and
//! prebuild images before anyone clicks.
//!
//! - `POST /hooks/github`: events `ping` and `push`, authenticated by
//!   `X-Hub-Signature-256` (HMAC of the body with `github_webhook_secret`); the delivery
//!   id is `X-GitHub-Delivery`.
//! - `POST /hooks/gitlab`: push and tag push hooks, authenticated by `X-Gitlab-Token`
//!   (`gitlab_webhook_secret`); the delivery id is `X-Gitlab-Event-UUID`, else
//!   `Idempotency-Key`.
//!
//! Order of checks: route (404), method (405), body size (413), configuration (500),
//! authenticity (401; 403 when the secret is not configured, so an endpoint deployed
//! before its secret is set never accepts anything), delivery id (400 when malformed; a
//! redelivery of a handled id answers `202 already processed` and does nothing), JSON
//! (400 with the core's message). Nothing is written before authenticity is established.
//!
//! A valid push to a branch or tag writes the new commit into the ref cache for that ref,
//! and for `HEAD` when it is the default branch, as a `webhook` entry (kept an hour; the
//! next push replaces it), with exactly the keys, resolved spec, ref URL and build slug
//! the launch path derives from the link `gh/<owner>/<repo>/<ref>` or
//! `gl/<encoded namespace>/<encoded ref>`. A deleted ref drops its entry. A push that an
//! entry contradicts (the entry holds neither its `before` nor its `after`: a late or
//! replayed delivery) drops the ref's entries instead, prebuilds nothing, and is
//! remembered for a day as stale. Then, when the
//! image for the new commit is not known to be present and the spec matches
//! `prebuild_specs` (matched like the ban lists) and is not banned, the worker is asked
//! for a prebuild and the image's status becomes "building" for the live badge. The
//! component may reach only the worker: it never asks the registry, so "present" means
//! present in the KV presence cache.
//!
//! The answer is `202` with a short JSON summary of what was done. A failed prebuild
//! request answers `502` and the delivery is not remembered, so a redelivery retries.

use bindery_core::cache::{CachedRef, LastStatus, Lookup, RefSource, stale_push_key};
use bindery_core::provider::ProviderId;
use bindery_core::resolve::encode_all;
use bindery_core::webhook::{
    GithubEvent, GitlabEvent, MAX_BODY_BYTES, PushEvent, PushProvider, WebhookError, delivery_key,
    parse_github, parse_gitlab, verify_github_signature, verify_gitlab_token,
};
use bindery_core::worker_api::BuildRequest;
use bindery_core::{Spec, image_name};
use bindery_edge::cache::{Cache, repo_ref_key, spec_ref_key};
use bindery_edge::config::{EdgeConfig, GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SECRET};
use bindery_edge::fetch::Fetch;
use bindery_edge::respond;
use bindery_edge::worker::request_build;
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
    let verified = match provider {
        PushProvider::GitHub => {
            verify_github_signature(secret, body, header("x-hub-signature-256"))
        }
        PushProvider::GitLab => verify_gitlab_token(secret, header("x-gitlab-token")),
    };
    verified.map_err(|e| refuse(e, variable))?;

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
    let mut summary = on_push(&push, cfg, cache, fetch, now).await?;
    summary["delivery"] = json!(delivery);
    remember(cache, delivery_key.as_deref(), cfg, now);
    Ok((202, summary))
}

fn remember(cache: &Cache<'_>, key: Option<&str>, cfg: &EdgeConfig, now: u64) {
    if let Some(key) = key {
        cache.remember_delivery(key, now, &cfg.ttl);
    }
}

/// The spec a launch link for the pushed ref would carry: `gh/<owner>/<repo>/<ref>` or
/// `gl/<encoded namespace>/<encoded ref>`.
pub fn push_spec(push: &PushEvent, git_ref: &str, cfg: &EdgeConfig) -> Result<Spec, Refusal> {
    let (provider, raw) = match push.provider {
        PushProvider::GitHub => (ProviderId::GitHub, format!("{}/{git_ref}", push.repo)),
        PushProvider::GitLab => (
            ProviderId::GitLab,
            format!("{}/{}", encode_all(&push.repo), encode_all(git_ref)),
        ),
    };
    Spec::parse(provider, &raw, &cfg.providers).map_err(|e| (400, e.to_string()))
}

/// Refreshes the ref cache for a validated push and prebuilds when configured; returns
/// the summary to answer with.
pub async fn on_push(
    push: &PushEvent,
    cfg: &EdgeConfig,
    cache: &Cache<'_>,
    fetch: &impl Fetch,
    now: u64,
) -> Result<Value, Refusal> {
    let Some(git_ref) = push.branch.as_deref().or(push.tag.as_deref()) else {
        return Ok(json!({ "status": "ignored", "reason": "the push names no branch or tag" }));
    };
    let spec = push_spec(push, git_ref, cfg)?;
    let spec_text = format!("{}/{}", spec.provider(), spec.raw());

    // A push signed with our secret but about another host (GitHub Enterprise, a
    // self-hosted GitLab) must not overwrite the cache of the public repository.
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
        return Ok(json!({
            "status": "ignored",
            "reason": format!("the repository is on {host}, not on {expected_host}"),
        }));
    }

    let mut refs = vec![git_ref.to_owned()];
    if push.is_default_branch() {
        refs.push("HEAD".to_owned());
    }
    let keys: Vec<String> = refs.iter().map(|r| repo_ref_key(&spec, r)).collect();
    debug_assert_eq!(keys[0], spec_ref_key(&spec));

    let Some(commit) = push.commit.as_deref() else {
        for key in &keys {
            cache.delete(key);
        }
        return Ok(json!({ "status": "accepted", "spec": spec_text, "deleted": refs }));
    };
    spec.validate_resolved_ref(commit)
        .map_err(|e| (400, e.to_string()))?;
    let Some(build_slug) = spec.build_slug(Some(commit)) else {
        return Err((400, format!("no build slug for {spec_text}")));
    };
    let entry = CachedRef {
        resolved_ref: commit.to_owned(),
        resolved_spec: spec.resolved_spec(commit),
        ref_url: spec.ref_url(commit),
        build_slug: build_slug.clone(),
        etag: None,
        source: RefSource::Webhook,
        stored_at: now,
        expires_at: cfg.ttl.ref_expires_at(RefSource::Webhook, now),
    };
    // A push moves a ref from `previous` to `commit`, and the delivery id is not signed:
    // a captured push can come again under a new id, and deliveries can come late. An
    // entry holding a third commit means this push is stale (or the cache missed pushes):
    // every key of the ref is dropped, so the next launch asks the provider, and the push
    // is remembered as stale for a day, so that sending it again once the entries are gone
    // cannot write its old commit either.
    let stale_marker = stale_push_key(&spec, git_ref, commit);
    let held: Vec<Option<String>> = keys
        .iter()
        .map(|key| {
            cache
                .get::<CachedRef>(key, now)
                .and_then(Lookup::any)
                .map(|held| held.resolved_ref)
        })
        .collect();
    let contradicted = held
        .iter()
        .flatten()
        .any(|held| held != commit && Some(held.as_str()) != push.previous.as_deref());
    if contradicted || cache.delivery_seen(&stale_marker, now) {
        for key in &keys {
            cache.delete(key);
        }
        cache.remember_delivery(&stale_marker, now, &cfg.ttl);
        return Ok(json!({
            "status": "accepted",
            "spec": spec_text,
            "commit": commit,
            "dropped": refs,
            "prebuild": "skipped: the push does not follow the cached ref",
        }));
    }
    for key in &keys {
        cache.put(key, &entry);
    }

    let prefix = cfg.image_prefix().map_err(|e| (500, e.to_string()))?;
    let image = image_name(prefix, &build_slug, commit);
    let mut summary = json!({
        "status": "accepted",
        "spec": spec_text,
        "commit": commit,
        "refreshed": refs,
        "image": image,
    });
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
        return Ok(summary);
    }

    let worker = cfg.worker().map_err(|e| (500, e.to_string()))?;
    let build = BuildRequest {
        provider: spec.provider().as_str().to_owned(),
        spec: spec.raw().to_owned(),
        repo_url: spec.repo_url(),
        resolved_ref: commit.to_owned(),
        image: image.clone(),
        build_slug,
    };
    let accepted = request_build(worker, &build, fetch)
        .await
        .map_err(|e| (502, format!("failed to queue a prebuild of {image}: {e}")))?;
    cache.put_status(&image, LastStatus::Building, now, &cfg.ttl);
    summary["prebuild"] = json!("queued");
    summary["build_id"] = json!(accepted.id);
    Ok(summary)
}

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
async fn serve(request: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    let request = match bindery_edge::incoming::read_request(request, MAX_BODY).await {
        Ok(request) => request,
        Err(e) => return respond::send(out, respond::json_error(e.status_code(), &e.to_string())),
    };
    let cache = Cache::open_default();
    // The webhook reaches only the worker, and must answer the provider within seconds.
    let fetch = bindery_edge::SpinFetch::within(bindery_edge::fetch::Limits::QUICK);
    respond::send(
        out,
        handle(
            &request,
            || EdgeConfig::load_declared(bindery_edge::config::WEBHOOK_VARIABLES),
            &cache,
            &fetch,
            respond::now(),
        )
        .await,
    );
}

#[cfg(test)]
mod tests;

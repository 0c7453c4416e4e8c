//! `GET /api/v1/resolve/<provider>/<spec>`: what a link resolves to, as JSON, with
//! `x-bindery-cache` (the ref) and `x-bindery-image-cache` (the image check) saying where
//! the answers came from.
//!
//! Most calls find both the ref and the image in the cache, and those read only the few
//! variables of [`CACHED_RESOLVE_VARIABLES`]: each variable is a host call. A miss reads
//! [`RESOLVE_VARIABLES`] once.

use bindery_core::{image, launch};
use bindery_edge::Fetch;
use bindery_edge::config::{CACHED_RESOLVE_VARIABLES, RESOLVE_VARIABLES};
use bindery_edge::respond::{self, CACHE_HEADER};
use http::{HeaderValue, Request, Response};

use crate::env::Env;
use crate::prepare::{Prepare, Refusal};

/// The answer. The fields are in the alphabetical order a `serde_json` map would give
/// them, which earlier versions answered with.
#[derive(serde::Serialize)]
struct ResolveAnswer<'a> {
    binder_persistent_request: String,
    binder_request: String,
    build_name: String,
    image: &'a str,
    image_present: Option<bool>,
    provider: &'a str,
    #[serde(rename = "ref")]
    unresolved_ref: Option<&'a str>,
    ref_url: &'a str,
    repo_url: String,
    resolved_ref: &'a str,
    resolved_spec: &'a str,
    spec: &'a str,
}

/// Answers `GET /api/v1/resolve/<provider>/<raw spec>`.
pub async fn resolve<F: Fetch>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
) -> Response<Vec<u8>> {
    match answer(request, provider, raw_spec, env).await {
        Ok(response) => response,
        Err(refusal) => respond::json_error(refusal.status(), &refusal.to_string()),
    }
}

async fn answer<F: Fetch>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
) -> Result<Response<Vec<u8>>, Refusal> {
    let mut prepare = Prepare::load(env, CACHED_RESOLVE_VARIABLES, Some(RESOLVE_VARIABLES))?;
    prepare.admit(request)?;
    let spec = prepare.spec(provider, raw_spec)?;
    let prepared = prepare.resolve(&spec).await?;
    let presence = prepare.presence(&prepared).await?;
    let (present, image_cache) = match &presence {
        Some(p) => (Some(p.present), if p.from_cache { "hit" } else { "miss" }),
        None => (None, "error"),
    };
    let resolved = &prepared.resolved;
    let body = ResolveAnswer {
        binder_persistent_request: launch::binder_persistent_request(
            spec.provider(),
            &resolved.resolved_spec,
        ),
        binder_request: launch::binder_request(spec.provider(), spec.raw()),
        build_name: image::build_name(&resolved.build_slug, &resolved.resolved_ref),
        image: &prepared.image,
        image_present: present,
        provider: spec.provider().as_str(),
        unresolved_ref: spec.unresolved_ref(),
        ref_url: &resolved.ref_url,
        repo_url: spec.repo_url(),
        resolved_ref: &resolved.resolved_ref,
        resolved_spec: &resolved.resolved_spec,
        spec: spec.raw(),
    };
    let mut response = respond::json(200, &body);
    let headers = response.headers_mut();
    headers.insert(
        CACHE_HEADER,
        HeaderValue::from_static(prepared.source.cache_header()),
    );
    headers.insert(
        "x-bindery-image-cache",
        HeaderValue::from_static(image_cache),
    );
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    Ok(response)
}

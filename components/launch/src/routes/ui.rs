//! The pages: `GET /` (home), `GET /v2/<provider>/<spec>` (the loading page, which opens
//! the event stream and redirects to the server when it is ready), `GET /about` and Binder 1's
//! `GET /repo/<user>/<repo>[/<path>]` links, redirected. Banned networks get an error
//! page instead of any of them.

use bindery_core::launch;
use bindery_core::provider::{ProviderId, Spec};
use bindery_core::worker_api::BINDERY_VERSION;
use bindery_edge::config::{
    ABOUT_MESSAGE, BADGE_BASE_URL, BAN_NETWORKS, LAUNCH_VARIABLES, PUBLIC_URL, TRUSTED_PROXIES,
};
use bindery_edge::respond;
use http::{Request, Response};

use super::query_param;
use crate::client::{self, base_url};
use crate::env::Env;
use crate::pages;
use crate::tokens;

/// `GET /`.
pub fn home<F>(request: &Request<Vec<u8>>, env: &Env<'_, F>) -> Response<Vec<u8>> {
    refused_network(request, env).unwrap_or_else(|| {
        // Links and badges made here point at `badge_base_url` (a federation) when set.
        let cfg = env.variables.load(&[PUBLIC_URL, BADGE_BASE_URL]).ok();
        html(200, pages::home(&client::link_base(request, cfg.as_ref())))
    })
}

/// `GET /about`: the version and the operator's `about_message`.
pub fn about<F>(request: &Request<Vec<u8>>, env: &Env<'_, F>) -> Response<Vec<u8>> {
    refused_network(request, env).unwrap_or_else(|| {
        let message = env
            .variables
            .load(&[ABOUT_MESSAGE])
            .ok()
            .and_then(|cfg| cfg.about_message);
        let page = pages::about(
            &base_url(request, None),
            BINDERY_VERSION,
            message.as_deref(),
        );
        html(200, page)
    })
}

/// `GET /repo/<rest>`: Binder 1 links, redirected to their `/v2` equivalent.
pub fn legacy<F>(request: &Request<Vec<u8>>, rest: &str, env: &Env<'_, F>) -> Response<Vec<u8>> {
    refused_network(request, env).unwrap_or_else(|| {
        launch::legacy_redirect(rest).map_or_else(respond::not_found, |to| redirect(&to))
    })
}

/// `GET /v2/<provider>/<spec>`: the loading page.
pub fn loading<F>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
) -> Response<Vec<u8>> {
    if let Some(refused) = refused_network(request, env) {
        return refused;
    }
    let cfg = env.variables.load(LAUNCH_VARIABLES).ok();
    let base = base_url(request, cfg.as_ref());
    let Ok(provider_id) = ProviderId::parse(provider) else {
        return html(
            404,
            pages::error(
                404,
                &format!("No provider found for prefix {provider}"),
                &base,
            ),
        );
    };
    if !provider_id.ui_route_matches(raw_spec) {
        return html(
            404,
            pages::error(404, "This is not a valid link for that provider", &base),
        );
    }
    let settings = cfg
        .as_ref()
        .map(|c| c.providers.clone())
        .unwrap_or_default();
    let spec = match Spec::parse(provider_id, raw_spec, &settings) {
        Ok(s) => s,
        Err(e) => return html(400, pages::error(400, &e.to_string(), &base)),
    };
    let query = request.uri().query().unwrap_or_default();
    let launch_path = match launch::launch_path(
        query_param(query, "urlpath").as_deref(),
        query_param(query, "labpath").as_deref(),
        query_param(query, "filepath").as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return html(400, pages::error(400, &e.to_string(), &base)),
    };
    // People read the repository, not its escaped spec: `http://host/repo.git (main)`
    // rather than `http%3A%2F%2Fhost%2Frepo.git/main`.
    let shown = pages::repository_label(&spec.repo_url(), spec.unresolved_ref());
    let title = format!("{}: {shown}", provider_id.display_name());
    // BinderHub's build token: `/build` with it skips the per-client rate limit.
    let token = cfg
        .as_ref()
        .and_then(|c| tokens::mint(request, provider, spec.raw(), c, env));
    let links = client::link_base(request, cfg.as_ref());
    let share = match query {
        "" => format!("{links}v2/{provider}/{}", spec.raw()),
        q => format!("{links}v2/{provider}/{}?{q}", spec.raw()),
    };
    let stream = client::stream_base(request, cfg.as_ref());
    html(
        200,
        pages::loading(&pages::Loading {
            title: &title,
            spec: &shown,
            build_url: &format!("{stream}build/{provider}/{}", spec.raw()),
            launch_path: &launch_path,
            share_url: &share,
            base_url: &base,
            build_token: token.as_deref(),
        }),
    )
}

/// The answer to a client in a banned network (`ban_networks`), if this one is: an error
/// page naming the network's label. A `ban_networks` that does not parse refuses too,
/// naming the variable.
fn refused_network<F>(request: &Request<Vec<u8>>, env: &Env<'_, F>) -> Option<Response<Vec<u8>>> {
    let base = base_url(request, None);
    let message = match env.variables.load(&[BAN_NETWORKS, TRUSTED_PROXIES]) {
        Ok(cfg) => client::banned(request, &cfg)?,
        Err(e) => return Some(html(500, pages::error(500, &e.to_string(), &base))),
    };
    Some(html(403, pages::error(403, &message, &base)))
}

fn html(status: u16, body: String) -> Response<Vec<u8>> {
    respond::with_body(status, "text/html; charset=utf-8", body)
}

fn redirect(location: &str) -> Response<Vec<u8>> {
    let mut response = respond::text(302, "redirecting");
    if let Ok(v) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}

//! The launch component: everything a click on a Binder link touches at the edge.
//!
//! - `GET /`: the home page (link and badge generator).
//! - `GET /v2/<provider>/<spec>`: the loading page; it opens the event stream below.
//! - `GET /build/<provider>/<spec>`: BinderHub's event stream. Resolution and the image
//!   check are answered from the KV cache when they can; only a miss asks the provider or
//!   the registry, and only a launch asks the worker, whose numbered events are relayed.
//! - `GET /api/v1/resolve/<provider>/<spec>`: what a link resolves to, as JSON.
//! - `GET /repo/<user>/<repo>[/<path>]`: Binder 1 links, redirected.
//! - `GET /health`, `GET /versions`: in BinderHub's shapes, with the worker's checks and
//!   `builder_info`, as a BinderHub federation reads them.
//! - `GET /api/repoproviders`, `GET /about`: BinderHub's provider descriptions (from the
//!   provider table) and about page.
//!
//! Every answer carries `cors_allow_origin` ([`cors`]), the event stream's included.
//!
//! Map of the crate: [`routes`] parses the path and answers, one module per route
//! (`build` and its `relay`, `ui` for the pages, `resolve`, `health`); [`prepare`] is what
//! `/build` and the resolve API share, from the request to the image name; [`client`]
//! says who asks; [`cors`] adds `cors_allow_origin`; [`tokens`] mints and checks build tokens; [`pages`] renders HTML; [`env`](mod@env) is the I/O every route goes through,
//! Spin's in the component and in-memory fakes in the native tests. The Spin entry
//! (wasm only) reads the request and sends the answer, nothing else. Every page leaves
//! through [`headers`], which adds its Content-Security-Policy (scripts by hash).

pub mod client;
pub mod cors;
pub mod env;
pub mod headers;
pub mod pages;
pub mod prepare;
pub mod routes;
pub mod tokens;

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod tests;

//! The launch component: everything a click on a Binder link touches at the edge.
//!
//! - `GET /`: the home page (link and badge generator).
//! - `GET /v2/<provider>/<spec>`: the loading page; it opens the event stream below.
//! - `GET /build/<provider>/<spec>`: BinderHub's event stream. Resolution and the image
//!   check are answered from the KV cache when they can; only a miss asks the provider or
//!   the registry, and only a launch asks the worker, whose numbered events are relayed.
//! - `GET /api/v1/resolve/<provider>/<spec>`: what a link resolves to, as JSON.
//! - `GET /repo/<user>/<repo>[/<path>]`: Binder 1 links, redirected.
//! - `GET /health`, `GET /versions`: in BinderHub's shapes.
//!
//! [`routes`], [`pages`] and [`ids`] are plain logic, tested natively; the handlers that
//! talk to Spin are in [`handler`] (wasm only).

pub mod ids;
pub mod pages;
pub mod routes;

#[cfg(target_arch = "wasm32")]
mod handler;

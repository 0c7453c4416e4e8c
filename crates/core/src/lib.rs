//! `bindery-core`: every decision Bindery makes, and no I/O.
//!
//! The edge components (wasm32-wasip2) and the in-cluster worker share this crate, so
//! a link resolves to the same image name wherever it is asked. Anything that talks to
//! the network is expressed as data: a module builds the `http::Request` to send and
//! parses the answer it is handed back, and the caller plugs in its own HTTP client.
//!
//! Map of the crate:
//!
//! - [`validate`]: refusal of hostile specs, refs, URLs and launch paths.
//! - [`escape`]: escapism-compatible escaping, the basis of image names.
//! - [`image`]: image names, build names and the registry repository/tag split.
//! - [`provider`]: the repository providers, one module each (parsing, metadata, resolution
//!   steps), listed once in the table [`provider::PROVIDERS`] behind [`provider::Spec`].
//! - [`resolve`]: the resolution of an unresolved ref as a conversation with upstream
//!   services, running the provider's steps.
//! - [`launch`]: what a launch carries (`binder_request`, launch path, hub user name).
//! - [`registry`]: the manifest check, bearer challenges and token requests.
//! - [`policy`]: ban and allow lists, per-repo configuration, quotas, IP bans, rate limits.
//! - [`events`]: BinderHub's build and launch events and repo2docker log mapping.
//! - [`sse`]: the server-sent events encoder and an incremental decoder.
//! - [`badge`]: launch and live status badges as SVG; [`favicon`]: BinderHub's favicons.
//! - [`build_token`]: BinderHub's build tokens (JWT HS256) minted by `/v2`, checked by
//!   `/build`.
//! - [`webhook`]: signature checks and push-event parsing for GitHub and GitLab.
//! - [`worker_api`]: the internal edge → worker API: requests and their checks, launch
//!   ids, the `/health` answer.
//! - [`cors`]: BinderHub's `cors_allow_origin`: which other sites may read the answers.
//! - [`federation`]: federation mode, the edge as mybinder.org's redirector: its
//!   configuration, rendezvous choice of a member, member health and the shared state.
//! - [`csp`]: Content Security Policy pieces of the pages: script hashes, `frame-ancestors`.
//! - [`secret`]: [`Secret`], a string whose `Debug` and `Display` never show it.
//! - [`cache`]: how cached refs, image presence and registry tokens are stored in a plain
//!   key-value store, with their expiry rules.
//! - [`metrics`]: the edge's metrics catalog, their series keys in the `metrics` store, and
//!   the Prometheus text format ([`metrics::text`], the worker's too).

#![warn(missing_docs)]

pub mod badge;
pub mod build_token;
pub mod cache;
pub mod cors;
pub mod csp;
pub mod escape;
pub mod events;
pub mod favicon;
pub mod federation;
pub mod hex;
pub mod image;
pub mod launch;
pub mod metrics;
pub mod policy;
pub mod provider;
pub mod registry;
pub mod resolve;
pub mod secret;
pub mod sse;
pub mod validate;
pub mod webhook;
pub mod worker_api;

pub use image::{ImageName, build_name, image_name, split_image};
pub use provider::{ProviderId, Spec};
pub use secret::Secret;
pub use validate::InputError;

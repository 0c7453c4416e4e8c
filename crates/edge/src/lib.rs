//! `bindery-edge`: the thin I/O layer between Bindery's edge components and Spin.
//!
//! `bindery-core` decides; this crate does the reading and writing around it, so the
//! `launch`, `badge` and `webhook` components stay a page each. Everything a component
//! needs from Spin goes through here: variables ([`config`]), the key-value store
//! ([`cache`]), outbound HTTP ([`fetch`]) and the incoming request ([`incoming`]).
//!
//! The Spin-specific parts exist only on `wasm32` (spin-sdk is a wasm-only dependency).
//! Everything else is written against two seams, [`fetch::Fetch`] for outbound HTTP and
//! [`cache::KvBackend`] for the store (and [`fetch::StreamingFetch`] for an answer read as
//! it arrives), so it builds and is tested natively with `testing::ScriptedFetch` and
//! [`cache::MemoryKv`].
//!
//! A component's handler typically reads:
//!
//! ```text
//! let request = incoming::read_head(&req, true, &HEADERS)?;      // wasm only
//! let cfg = EdgeConfig::load_declared(LAUNCH_VARIABLES)?;         // wasm only: Spin variables
//! let cache = Cache::open_default();                             // wasm only: Spin KV
//! let fetch = SpinFetch::default();                              // wasm only: spin_sdk::http
//! let result = resolve::resolve_spec(&spec, &cfg, &cache, &fetch, respond::now()).await;
//! ```
//!
//! Map of the crate:
//!
//! - [`config`]: [`EdgeConfig`] from Spin variables, secrets, and the variable names.
//! - [`cache`]: the typed KV cache ([`Cache`]); errors and corrupt entries are misses.
//! - [`fetch`]: [`fetch::Fetch`], `SpinFetch`, `send` and `send_streaming`, each request
//!   within [`fetch::Limits`].
//! - [`resolve`]: [`resolve::resolve_spec`]: ref cache, ETag revalidation, provider API;
//!   [`resolve::resolve_from_cache`] and [`resolve::resolve_upstream`], its two halves.
//! - [`registry`]: [`registry::check_image`]: presence cache, manifest `HEAD`, bearer tokens;
//!   [`registry::presence_from_cache`] and [`registry::check_registry`], its two halves.
//! - [`federation`]: federation mode's I/O: the parsed `federation` variable, the shared
//!   health record and its refresh lease in the store, the checks of the members.
//! - [`worker`]: requests to the worker API with its bearer token.
//! - [`metrics`]: the one API components count through (cache hits and misses, provider
//!   requests, GitHub's rate limit, federation series), atomic increments in the
//!   `metrics` key-value store; and the `/metrics` text read from it.
//! - [`respond`]: answers (text, JSON, SVG with ETag), `If-None-Match`, `now()`, and
//!   `send`, which writes a whole answer to Spin.
//! - [`timer`]: [`timer::Pause`], a wait: WASI's monotonic clock in a component, none in
//!   native tests.
//! - [`incoming`]: the incoming request as `http::Request<Vec<u8>>`: `read_head` (URI and
//!   named headers) and `read_request` (every header and a body up to a limit).
//! - `testing` (in the crate's own tests, and for other crates' tests with the `testing`
//!   feature; never shipped in a component): a scripted HTTP peer and `block_on`.

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod federation;
pub mod fetch;
pub mod incoming;
pub mod metrics;
pub mod registry;
pub mod resolve;
pub mod respond;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timer;
pub mod worker;

pub use cache::Cache;
pub use config::{ConfigError, EdgeConfig, Secret};
pub use fetch::{Fetch, FetchError, Limits, StreamingBody, StreamingFetch};
#[cfg(target_arch = "wasm32")]
pub use fetch::{SpinFetch, StreamingResponse, send, send_streaming};
pub use registry::{
    Presence, RegistryCheckError, check_image, check_presence, check_registry, forget_image,
    mark_built, presence_from_cache,
};
pub use resolve::{
    FromCache, ResolveResult, ResolveSource, resolve_from_cache, resolve_spec, resolve_upstream,
};

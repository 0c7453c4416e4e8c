//! What the routes do their I/O through: variables, the key-value store, outbound HTTP
//! and the clock. The component passes Spin's; native tests pass a map of variables, a
//! `MemoryKv` and a `ScriptedFetch`, so every route runs without a Spin runtime.

use std::cell::OnceCell;
use std::fmt;

use bindery_edge::ConfigError;
use bindery_edge::cache::Cache;
use bindery_edge::config::EdgeConfig;
use bindery_edge::timer::{self, Pause};

/// The component's variables.
pub trait Variables {
    /// The configuration from the variables named in `declared` (a list of
    /// `bindery_edge::config`); every other one reads as unset. Each variable read is a
    /// host call, so a route names the fewest it can answer with.
    fn load(&self, declared: &[&str]) -> Result<EdgeConfig, ConfigError>;
}

/// Spin's variables.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone, Copy)]
pub struct SpinVariables;

#[cfg(target_arch = "wasm32")]
impl Variables for SpinVariables {
    fn load(&self, declared: &[&str]) -> Result<EdgeConfig, ConfigError> {
        EdgeConfig::load_declared(declared)
    }
}

/// The I/O of one request. `F` is the outbound HTTP: `SpinFetch` in the component, a
/// scripted peer in tests; each purpose gets its own, with its own time limits.
pub struct Env<'a, F> {
    /// The variables.
    pub variables: &'a dyn Variables,
    /// Provider APIs and the registry (`Limits::UPSTREAM`).
    pub upstream: F,
    /// The worker API and its event stream (`Limits::WORKER`).
    pub worker: F,
    /// Health and versions checks (`Limits::HEALTH`).
    pub quick: F,
    /// The current unix time in seconds.
    pub clock: fn() -> u64,
    /// A wait: the component's sets WASI's clock; [`Env::new`] none, for native tests.
    pub pause: Pause,
    open_cache: &'a dyn Fn() -> Cache<'a>,
    cache: OnceCell<Cache<'a>>,
}

impl<F> fmt::Debug for Env<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl<'a, F: Clone> Env<'a, F> {
    /// An environment with one outbound client for every purpose and a store opened by
    /// `open_cache` when a route first needs it: opening is a host call, and the pages
    /// never need the store.
    pub fn new(
        variables: &'a dyn Variables,
        open_cache: &'a dyn Fn() -> Cache<'a>,
        fetch: F,
        clock: fn() -> u64,
    ) -> Self {
        Self {
            variables,
            upstream: fetch.clone(),
            worker: fetch.clone(),
            quick: fetch,
            clock,
            pause: timer::no_pause,
            open_cache,
            cache: OnceCell::new(),
        }
    }
}

impl<'a, F> Env<'a, F> {
    /// The key-value store, opened on first use.
    pub fn cache(&self) -> &Cache<'a> {
        self.cache.get_or_init(|| (self.open_cache)())
    }

    /// The current unix time in seconds.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }
}

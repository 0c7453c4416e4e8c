//! The wasmtime engine, the epoch ticker, and loading components through a cache of
//! precompiled code.
//!
//! One engine serves every component: pooling allocator (a fresh instance per request is
//! cheap only with it), epoch interruption (a request deadline that also bounds guests
//! stuck in a loop), and a memory limit per store. Compiling a component costs a few
//! hundred milliseconds, so compiled code is kept on disk, keyed by the wasm's hash and the
//! engine's compatibility hash, and later starts only map it in.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::world;

/// How often the epoch advances; the per-request deadline is checked at this granularity,
/// and a busy guest yields to other tasks this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A boxed error with its source chain, for wasmtime errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The `.wasm` file could not be read.
    #[error("failed to read component `{id}` from {path}")]
    Read {
        /// The component id.
        id: String,
        /// The source path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid component.
    #[error("failed to compile component `{id}` from {path}")]
    Compile {
        /// The component id.
        id: String,
        /// The source path.
        path: PathBuf,
        /// wasmtime's error.
        #[source]
        source: BoxError,
    },
    /// The component imports an interface outside the `bindery:edge` world.
    #[error(
        "component `{id}` imports `{import}`, which an edge component may not use (see wit/world.wit)"
    )]
    ForbiddenImport {
        /// The component id.
        id: String,
        /// The import's full name.
        import: String,
    },
    /// The component does not export the HTTP handler.
    #[error(
        "component `{id}` does not export wasi:http/incoming-handler@0.2.x: build it with spin-sdk 5.2's #[http_component]"
    )]
    MissingHandler {
        /// The component id.
        id: String,
    },
    /// Pre-instantiation failed.
    #[error("failed to link component `{id}`")]
    Link {
        /// The component id.
        id: String,
        /// wasmtime's error.
        #[source]
        source: BoxError,
    },
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    /// Component instances alive at once: the bound on concurrent requests.
    pub max_instances: u32,
    /// Linear memory one instance may grow to, in bytes.
    pub max_memory: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory: 64 << 20,
        }
    }
}

/// How much of each pooled memory, table and stack stays mapped between instances.
const KEEP_RESIDENT: usize = 2 << 20;

/// Builds the engine: pooling allocator, epoch interruption, component model.
pub(crate) fn engine(limits: EngineLimits) -> Result<Engine, BoxError> {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A Rust component instance holds a few core instances and tables (the program and the
    // adapter shims) and one or two memories.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(limits.max_memory)
        // Keep the first pages of a slot's memory, tables and stack mapped when the slot is
        // reused: resetting them with memset costs less than the page faults of a fresh
        // mapping on every request (a fresh instance per request touches the same pages).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only the pages the instance
        // touched instead of the whole kept-resident prefix.
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(wasmtime::Error::into_boxed_dyn_error)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread, until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        // A weak engine would be nicer, but the thread stops on drop anyway.
        let engine = engine.clone();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bindery-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a component was loaded, for the start-up log and cold-start measurements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The component id.
    pub id: String,
    /// Whether it was compiled now (`false`: mapped in from the precompiled cache).
    pub compiled: bool,
    /// Time spent reading, compiling or loading, and checking it.
    pub elapsed: Duration,
}

/// Loads a component: from the precompiled cache when it holds this exact wasm for this
/// engine, else compiling it and filling the cache. Then checks its imports and exports.
pub(crate) fn load_component(
    engine: &Engine,
    id: &str,
    path: &Path,
    cache_dir: &Path,
) -> Result<(Component, LoadReport), ComponentError> {
    let started = Instant::now();
    let bytes = std::fs::read(path).map_err(|source| ComponentError::Read {
        id: id.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let cached = cache_dir.join(format!("{}.cwasm", cache_key(engine, &bytes)));
    let (component, compiled) = match load_cached(engine, &cached) {
        Some(component) => (component, false),
        None => {
            let compile_error = |source: wasmtime::Error| ComponentError::Compile {
                id: id.to_owned(),
                path: path.to_owned(),
                source: source.into_boxed_dyn_error(),
            };
            let serialized = engine.precompile_component(&bytes).map_err(compile_error)?;
            store_cached(&cached, &serialized);
            // SAFETY: these bytes come from `precompile_component` on this very engine.
            let component =
                unsafe { Component::deserialize(engine, &serialized) }.map_err(compile_error)?;
            (component, true)
        }
    };
    if let Some(import) = world::forbidden_import(engine, &component) {
        return Err(ComponentError::ForbiddenImport {
            id: id.to_owned(),
            import,
        });
    }
    if !world::has_handler_export(engine, &component) {
        return Err(ComponentError::MissingHandler { id: id.to_owned() });
    }
    Ok((
        component,
        LoadReport {
            id: id.to_owned(),
            compiled,
            elapsed: started.elapsed(),
        },
    ))
}

/// The cache file name: the wasm's SHA-256 and a hash of everything in the engine that
/// makes compiled code incompatible (wasmtime version, target, settings).
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let wasm_hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{wasm_hex}-{:016x}", hasher.finish())
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: the cache directory is the host's own; files in it are written only by
    // `store_cached`, whole (write to a temporary name, then rename), from
    // `precompile_component`. wasmtime checks the header and the engine's compatibility
    // and refuses a file it cannot run.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "ignoring an unusable precompiled component");
            None
        }
    }
}

/// Writes a cache entry; failing to cache only costs a compile next time, so it is logged.
fn store_cached(path: &Path, serialized: &[u8]) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialized)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(err) = write() {
        tracing::warn!(path = %path.display(), error = %err, "failed to cache a precompiled component");
    }
}

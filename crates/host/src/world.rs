//! The `bindery:edge` world (`wit/world.wit`): what a component may import, and the linker
//! that provides exactly that.
//!
//! Linking alone would refuse a component importing something else, but with wasmtime's
//! generic "matching implementation was not found" message. Checking the imports first
//! names the offending import and says why, before any compilation cache entry is used.

use wasmtime::Engine;
use wasmtime::component::{Component, HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};

use crate::state::RequestState;

/// Host bindings for the vendored `fermyon:spin@2.0.0` interfaces.
pub(crate) mod spin {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/fermyon-spin@2.0.0",
        inline: "
            package bindery:host;
            world spin-imports {
                import fermyon:spin/key-value@2.0.0;
                import fermyon:spin/variables@2.0.0;
            }
        ",
        imports: {
            "fermyon:spin/key-value.[static]store.open": async | trappable,
            "fermyon:spin/key-value.[method]store.get": async | trappable,
            "fermyon:spin/key-value.[method]store.set": async | trappable,
            "fermyon:spin/key-value.[method]store.delete": async | trappable,
            "fermyon:spin/key-value.[method]store.exists": async | trappable,
            "fermyon:spin/key-value.[method]store.get-keys": async | trappable,
            default: trappable,
        },
        with: {
            "fermyon:spin/key-value.store": crate::kv::StoreHandle,
        },
    });
}

/// Host bindings for the vendored `wasi:keyvalue@0.2.0-draft2` interfaces (the store and
/// its atomic increment; Spin 3 and later provide the same).
pub(crate) mod keyvalue {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/wasi-keyvalue@0.2.0-draft2",
        inline: "
            package bindery:host-keyvalue;
            world keyvalue-imports {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
            }
        ",
        imports: {
            "wasi:keyvalue/store.open": async | trappable,
            "wasi:keyvalue/store.[method]bucket.get": async | trappable,
            "wasi:keyvalue/store.[method]bucket.set": async | trappable,
            "wasi:keyvalue/store.[method]bucket.delete": async | trappable,
            "wasi:keyvalue/store.[method]bucket.exists": async | trappable,
            "wasi:keyvalue/store.[method]bucket.list-keys": async | trappable,
            "wasi:keyvalue/atomics.increment": async | trappable,
            "wasi:keyvalue/atomics.swap": async | trappable,
            "wasi:keyvalue/atomics.[static]cas.new": async | trappable,
            "wasi:keyvalue/atomics.[method]cas.current": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::kv::StoreHandle,
            "wasi:keyvalue/atomics.cas": crate::kv::CasHandle,
        },
    });
}

/// The interfaces an edge component may import, with the version prefix accepted.
/// `wit/world.wit` lists the same set; a unit test keeps the two in step.
pub const ALLOWED_IMPORTS: &[(&str, &str)] = &[
    ("wasi:http/types", "0.2."),
    ("wasi:http/outgoing-handler", "0.2."),
    ("fermyon:spin/key-value", "2.0."),
    ("fermyon:spin/variables", "2.0."),
    ("wasi:keyvalue/store", "0.2.0-draft2"),
    ("wasi:keyvalue/atomics", "0.2.0-draft2"),
    ("wasi:io/error", "0.2."),
    ("wasi:io/poll", "0.2."),
    ("wasi:io/streams", "0.2."),
    ("wasi:cli/environment", "0.2."),
    ("wasi:cli/exit", "0.2."),
    ("wasi:cli/stdin", "0.2."),
    ("wasi:cli/stdout", "0.2."),
    ("wasi:cli/stderr", "0.2."),
    ("wasi:cli/terminal-input", "0.2."),
    ("wasi:cli/terminal-output", "0.2."),
    ("wasi:cli/terminal-stdin", "0.2."),
    ("wasi:cli/terminal-stdout", "0.2."),
    ("wasi:cli/terminal-stderr", "0.2."),
    ("wasi:random/random", "0.2."),
    ("wasi:random/insecure", "0.2."),
    ("wasi:random/insecure-seed", "0.2."),
    ("wasi:clocks/wall-clock", "0.2."),
    ("wasi:clocks/monotonic-clock", "0.2."),
];

/// The export every edge component must have.
pub const REQUIRED_EXPORT: (&str, &str) = ("wasi:http/incoming-handler", "0.2.");

/// Whether `name` (as a component names an import, e.g. `wasi:io/poll@0.2.6`) is allowed.
pub fn is_allowed_import(name: &str) -> bool {
    matches_any(name, ALLOWED_IMPORTS)
}

fn matches_any(name: &str, allowed: &[(&str, &str)]) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    allowed
        .iter()
        .any(|(i, v)| *i == interface && version.starts_with(v))
}

/// The first import of `component` outside the world, if any.
pub fn forbidden_import(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    ty.imports(engine)
        .map(|(name, _)| name)
        .find(|name| !is_allowed_import(name))
        .map(str::to_owned)
}

/// Whether `component` exports the HTTP handler the host calls.
pub fn has_handler_export(engine: &Engine, component: &Component) -> bool {
    let ty = component.component_type();
    ty.exports(engine)
        .any(|(name, _)| matches_any(name, &[REQUIRED_EXPORT]))
}

struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// A linker with exactly the world's imports: nothing for the filesystem or sockets.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
    type S = RequestState;

    let mut linker = Linker::<S>::new(engine);
    let l = &mut linker;
    io::error::add_to_linker::<S, Io>(l, |s| s.ctx().table)?;
    io::poll::add_to_linker::<S, Io>(l, |s| s.ctx().table)?;
    io::streams::add_to_linker::<S, Io>(l, |s| s.ctx().table)?;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    random::random::add_to_linker::<S, WasiRandom>(l, S::random)?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, S::random)?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, S::random)?;
    let cli = S::cli;
    cli::exit::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, cli)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
    spin::SpinImports::add_to_linker::<S, HasSelf<S>>(l, |s| s)?;
    keyvalue::KeyvalueImports::add_to_linker::<S, HasSelf<S>>(l, |s| s)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD: &str = include_str!("../../../wit/world.wit");

    fn world_items(keyword: &str) -> Vec<(String, String)> {
        WORLD
            .lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix(keyword)?.strip_suffix(';'))
            .map(|item| {
                let (interface, version) = item.trim().split_once('@').expect("versioned");
                (interface.to_owned(), version.to_owned())
            })
            .collect()
    }

    #[test]
    fn world_wit_and_the_allow_list_name_the_same_imports() {
        let world = world_items("import ");
        assert_eq!(world.len(), ALLOWED_IMPORTS.len(), "{world:?}");
        for (interface, version) in &world {
            assert!(
                is_allowed_import(&format!("{interface}@{version}")),
                "{interface}@{version} is in world.wit but not allowed"
            );
        }
        for (interface, prefix) in ALLOWED_IMPORTS {
            let listed = world
                .iter()
                .any(|(i, v)| i == interface && v.starts_with(prefix));
            assert!(
                listed,
                "{interface}@{prefix}x is allowed but not in world.wit"
            );
        }
    }

    #[test]
    fn world_wit_exports_the_http_handler() {
        let exports = world_items("export ");
        assert_eq!(exports.len(), 1);
        assert!(matches_any(
            &format!("{}@{}", exports[0].0, exports[0].1),
            &[REQUIRED_EXPORT]
        ));
    }

    #[test]
    fn imports_are_checked_by_interface_and_version() {
        let cases = [
            ("wasi:http/types@0.2.0", true),
            ("wasi:http/types@0.2.6", true),
            ("wasi:io/poll@0.2.3", true),
            ("fermyon:spin/key-value@2.0.0", true),
            ("wasi:keyvalue/store@0.2.0-draft2", true),
            ("wasi:keyvalue/atomics@0.2.0-draft2", true),
            ("wasi:keyvalue/batch@0.2.0-draft2", false),
            ("wasi:keyvalue/store@0.2.0", false),
            ("wasi:http/types@0.3.0", false),
            ("wasi:filesystem/types@0.2.6", false),
            ("wasi:filesystem/preopens@0.2.6", false),
            ("wasi:sockets/tcp@0.2.6", false),
            ("fermyon:spin/sqlite@2.0.0", false),
            ("fermyon:spin/key-value@3.0.0", false),
            ("spin:key-value/key-value@3.0.0", false),
            ("wasi:io/poll", false),
            ("fermyon:spin/key-value", false),
        ];
        for (name, allowed) in cases {
            assert_eq!(is_allowed_import(name), allowed, "{name}");
        }
    }
}

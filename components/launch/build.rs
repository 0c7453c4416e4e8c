//! Hashes the pages' inline script and style at build time: the Content-Security-Policy
//! allows exactly these, and every component instance is fresh, so hashing them on each
//! request would repeat the same work for every page view.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let mut code = String::new();
    for (name, asset) in [
        ("HOME_SCRIPT", "assets/home.js"),
        ("LOADING_SCRIPT", "assets/loading.js"),
        ("STYLE", "assets/style.css"),
    ] {
        let text = match std::fs::read_to_string(asset) {
            Ok(text) => text,
            Err(err) => panic!("failed to read {asset}: {err}"),
        };
        let source = bindery_core::csp::hash_source(&text);
        let _ = writeln!(
            code,
            "/// The CSP hash source of `{asset}`.\npub const {name}: &str = {source:?};"
        );
        println!("cargo::rerun-if-changed={asset}");
    }
    let path = PathBuf::from(out_dir).join("page_hashes.rs");
    if let Err(err) = std::fs::write(&path, code) {
        panic!("failed to write {}: {err}", path.display());
    }
    println!("cargo::rerun-if-changed=build.rs");
}

//! Renders the launch badges at build time. They never change for a build of Bindery, and
//! every component instance is fresh, so rendering and hashing them on each request would
//! repeat the same work for every README view.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let mut code = String::new();
    for (name, svg) in [
        ("BADGE", bindery_core::badge::launch_badge()),
        ("BADGE_LOGO", bindery_core::badge::launch_badge_logo()),
    ] {
        let etag = bindery_core::badge::etag(&svg);
        let _ = writeln!(code, "pub const {name}: &str = {svg:?};");
        let _ = writeln!(code, "pub const {name}_ETAG: &str = {etag:?};");
    }
    let path = PathBuf::from(out_dir).join("launch_badges.rs");
    if let Err(err) = std::fs::write(&path, code) {
        panic!("failed to write {}: {err}", path.display());
    }
    println!("cargo::rerun-if-changed=build.rs");
}

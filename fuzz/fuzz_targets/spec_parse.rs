//! Any text as `<provider>/<spec>`: parsing never panics, and whatever parses derives names
//! that keep their promises (length limits, DNS-safe build names, no option-like refs).
#![no_main]

use bindery_core::provider::{ProviderSettings, Spec};
use bindery_core::{image, launch, validate};
use libfuzzer_sys::fuzz_target;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = launch::launch_path(Some(text), None, None);
    let _ = validate::validate_ref("ref", text);
    let Ok(spec) = Spec::parse_path(text, &ProviderSettings::default()) else { return };
    let repo_url = spec.repo_url();
    assert!(!repo_url.starts_with('-'));
    if let Some(r) = spec.unresolved_ref() {
        assert!(!r.starts_with('-'));
    }
    let _ = spec.resolved_spec(SHA);
    let _ = spec.ref_url(SHA);
    let slug = spec.build_slug(Some(SHA)).unwrap_or_else(|| format!("{}-x", spec.provider()));
    let name = image::image_name("registry.example.org/binder/", &slug, SHA);
    assert!(name.rsplit_once(':').map_or(0, |(repo, _)| repo.len()) <= 255);
    let build = image::build_name(&slug, SHA);
    assert!(build.len() <= 63);
    assert!(build.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
});

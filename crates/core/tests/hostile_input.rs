//! Hostile specs, refs and paths: each is refused with a message that names the problem,
//! and nothing panics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use bindery_core::launch;
use bindery_core::provider::{ProviderSettings, Spec};

fn spec_error(path: &str) -> String {
    match Spec::parse_path(path, &ProviderSettings::default()) {
        Ok(spec) => panic!("{path:.80} was accepted as {spec:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_specs_are_refused_with_the_right_message() {
    let huge = format!("gh/user/repo/{}", "a".repeat(64 * 1024));
    let cases: Vec<(String, &str)> = vec![
        // Option-like refs and URLs.
        (
            "gh/user/repo/--upload-pack=evil".into(),
            "must not start with '-'",
        ),
        ("gh/user/repo/-c".into(), "must not start with '-'"),
        (
            "gl/group%2Fproject/--output%3D%2Ftmp%2Fx".into(),
            "must not start with '-'",
        ),
        (
            "git/https%3A%2F%2Fexample.org%2Fr.git/-u".into(),
            "must not start with '-'",
        ),
        ("git/--upload-pack%3Devil/main".into(), "not a URL"),
        ("gist/user/abc123/-x".into(), "must not start with '-'"),
        // Traversal.
        ("gh/user/repo/main/../../etc/passwd".into(), "contains '..'"),
        ("gh/../repo/main".into(), "may hold only"),
        ("gl/group%2F..%2F..%2Fadmin/main".into(), "GitLab namespace"),
        (
            "git/https%3A%2F%2Fexample.org%2F..%2Fsecret/main".into(),
            "contains '..'",
        ),
        ("gl/group%2Fproject/a..b".into(), "contains '..'"),
        // Control characters and whitespace, raw and percent-encoded.
        ("gh/user/repo/ma\0in".into(), "control character"),
        ("gh/user/repo/main\n".into(), "control character"),
        ("gl/group%2Fproject/ma%00in".into(), "control character"),
        (
            "git/https%3A%2F%2Fexample.org%2Fr.git/ma%0Ain".into(),
            "control character",
        ),
        ("gl/group%2Fproject/ma%20in".into(), "whitespace"),
        ("gh/user/repo/ma in".into(), "whitespace"),
        // Size.
        (huge, "too long"),
        // Unknown providers, bad encodings, shapes.
        (
            "svn/user/repo/main".into(),
            "No provider found for prefix \"svn\"",
        ),
        ("gl/%C3%28/main".into(), "not valid percent-encoded UTF-8"),
        (
            "git/file%3A%2F%2F%2Fetc%2Fpasswd/main".into(),
            "uses protocol \"file\"",
        ),
        (
            "git/ext%3A%3Ash%20-c%20evil/main".into(),
            "uses protocol \"ext\"",
        ),
        (
            "ckan/javascript%3Aalert(1)%2Fdataset%2Fx".into(),
            "must be http or https",
        ),
        ("zenodo/10.5281".into(), "must be a DOI"),
    ];
    for (path, expected) in &cases {
        let err = spec_error(path);
        assert!(err.contains(expected), "{:.80}: {err}", path);
        assert!(
            err.len() < 400,
            "the message for {:.40} is {} bytes long",
            path,
            err.len()
        );
        assert!(
            !err.contains('\0') && !err.contains('\n'),
            "the message for {:.40} carries control characters",
            path
        );
    }
}

#[test]
fn hostile_resolved_refs_are_refused() {
    let spec = Spec::parse_path("gh/user/repo/main", &ProviderSettings::default()).unwrap();
    for bad in [
        "-rf",
        "main",
        "../../x",
        "0123456789abcdef0123456789abcdef0123456\n",
        "",
        &"a".repeat(65_536),
    ] {
        let err = spec.validate_resolved_ref(bad).expect_err(bad).to_string();
        assert!(err.contains("expected a full commit id"), "{err}");
    }
}

#[test]
fn hostile_launch_paths_are_refused() {
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: &[Case] = &[
        (
            Some("https://evil.example/phish"),
            None,
            None,
            "must be a relative path",
        ),
        (
            Some("javascript:alert(1)"),
            None,
            None,
            "must be a relative path",
        ),
        (
            Some("/\\evil.example"),
            None,
            None,
            "must be a relative path",
        ),
        (None, Some("../../hub/api/users"), None, "contains '..'"),
        (None, None, Some("a/../../b"), "contains '..'"),
        (Some("lab\0"), None, None, "control character"),
    ];
    for (urlpath, labpath, filepath, expected) in cases {
        let err = launch::launch_path(*urlpath, *labpath, *filepath)
            .expect_err(expected)
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    let long = "a/".repeat(40_000);
    assert!(
        launch::launch_path(Some(&long), None, None)
            .unwrap_err()
            .to_string()
            .contains("too long")
    );
}

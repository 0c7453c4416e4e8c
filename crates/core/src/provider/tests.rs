//! Provider parsing: tables of specs and what they derive.

use super::*;

fn parse(path: &str) -> Result<Spec, InputError> {
    Spec::parse_path(path, &ProviderSettings::default())
}

#[test]
fn specs_derive_repo_urls_slugs_and_refs() {
    // (path, repo_url, unresolved ref, build slug without a resolved ref)
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        (
            "gh/binder-examples/octave/HEAD",
            "https://github.com/binder-examples/octave",
            Some("HEAD"),
            Some("binder-examples-octave"),
        ),
        (
            "gh/user/repo.git/hotfix/squash-bug",
            "https://github.com/user/repo",
            Some("hotfix/squash-bug"),
            Some("user-repo"),
        ),
        (
            "gl/gitlab-org%2Fgitlab-foss/v10.0.6",
            "https://gitlab.com/gitlab-org/gitlab-foss.git",
            Some("v10.0.6"),
            Some("gitlab_-org-gitlab_-foss"),
        ),
        (
            "gist/user/abc",
            "https://gist.github.com/user/abc.git",
            Some(""),
            Some("abc"),
        ),
        (
            "git/git%40github.com%3Ajupyterhub%2Fbinderhub/main",
            "ssh://git@github.com/jupyterhub/binderhub",
            Some("main"),
            Some("ssh://git@github.com/jupyterhub/binderhub"),
        ),
        (
            "zenodo/10.5281/zenodo.3242074/",
            "10.5281/zenodo.3242074",
            None,
            None,
        ),
        (
            "figshare/10.6084/m9.figshare.9782777.v1",
            "10.6084/m9.figshare.9782777.v1",
            None,
            None,
        ),
        (
            "hydroshare/10.4211%2Fhs.b8f6eae9d89241cf8b5904033460af61",
            "https://www.hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61",
            None,
            None,
        ),
        (
            "dataverse/10.7910/DVN/TJCLKP",
            "10.7910/DVN/TJCLKP",
            None,
            Some("dataverse-dvn-2ftjclkp"),
        ),
        (
            "ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fx",
            "https://demo.ckan.org/dataset/x",
            None,
            Some("ckan-x"),
        ),
    ];
    for (path, repo_url, unresolved, slug) in cases {
        let spec = parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(spec.repo_url(), *repo_url, "{path}");
        assert_eq!(spec.unresolved_ref(), *unresolved, "{path}");
        assert_eq!(spec.build_slug(None).as_deref(), *slug, "{path}");
    }
}

#[test]
fn bad_specs_are_refused_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("nope/a/b/c", "No provider found for prefix"),
        ("gh/nothing_to_split", "Spec is not of the form"),
        (
            "gh/short/suggestion",
            "Did you mean \"short/suggestion/HEAD\"?",
        ),
        ("gh/us er/repo/main", "whitespace"),
        ("gh/user/../main", "may hold only"),
        ("gh/user/repo/-upload-pack", "must not start with '-'"),
        ("gl/group%2F..%2Fx/main", "GitLab namespace"),
        ("gl/group%2Fp", "Did you mean"),
        ("gl/%FF/main", "not valid percent-encoded UTF-8"),
        ("git/not%20a%20repo/main", "not a URL"),
        ("git/ftp%3A%2F%2Fprotocol.unsupported/main", "uses protocol"),
        (
            "git/https%3A%2F%2Fexample.org%2Frepo/--upload-pack%3Dx",
            "must not start with '-'",
        ),
        ("git/-oProxyCommand%3Dx/main", "not a URL"),
        ("zenodo/not-a-doi", "must be a DOI"),
        (
            "figshare/10.6084/m9.figshare",
            "figshare spec must be a DOI",
        ),
        ("hydroshare/nothing-here", "no 32-hex resource id"),
        (
            "ckan/https%3A%2F%2Fdemo.ckan.org%2Fgroup%2Fx",
            "must name a dataset",
        ),
        (
            "ckan/file%3A%2F%2F%2Fetc%2Fpasswd%2Fdataset%2Fx",
            "must be http or https",
        ),
        ("gh/", "is empty"),
    ];
    for (path, expected) in cases {
        let err = parse(path).expect_err(path).to_string();
        assert!(err.contains(expected), "{path}: {err}");
    }
}

#[test]
fn resolved_refs_must_have_their_providers_shape() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let ok: &[(&str, &str)] = &[
        ("gh/a/b/main", sha),
        ("zenodo/10.5281/zenodo.1", "3242074"),
        ("figshare/10.6084/m9.figshare.1", "9782777.v3"),
        ("dataverse/10.7910/DVN/X", "3035124.v4.0"),
        (
            "hydroshare/142c59757ed54de1816777828c9716e7",
            "142c59757ed54de1816777828c9716e7.v1545934606",
        ),
        ("ckan/https%3A%2F%2Fa.org%2Fdataset%2Fx", "x.v1712023831"),
    ];
    for (path, r) in ok {
        parse(path)
            .unwrap()
            .validate_resolved_ref(r)
            .unwrap_or_else(|e| panic!("{path} {r}: {e}"));
    }
    for (path, r) in [
        ("gh/a/b/main", "main"),
        ("gh/a/b/main", "-x"),
        ("zenodo/10.5281/zenodo.1", "1.v2"),
        ("ckan/https%3A%2F%2Fa.org%2Fdataset%2Fx", "y.v1"),
    ] {
        assert!(
            parse(path).unwrap().validate_resolved_ref(r).is_err(),
            "{path} {r}"
        );
    }
}

#[test]
fn ui_routes_follow_validate_regexes() {
    assert!(ProviderId::GitHub.ui_route_matches("org/repo/main"));
    assert!(!ProviderId::GitHub.ui_route_matches("userrep/main/"));
    assert!(ProviderId::Zenodo.ui_route_matches("10.5281/zenodo.3242074/"));
    assert!(!ProviderId::Zenodo.ui_route_matches("zenodo.3242074"));
    assert!(ProviderId::Gist.ui_route_matches("user/12345"));
    assert!(!ProviderId::Ckan.ui_route_matches("a/b"));
}

#[test]
fn the_table_drives_ids_prefixes_and_the_unknown_prefix_message() {
    assert_eq!(ProviderId::ALL.len(), PROVIDERS.len());
    for (id, info) in ProviderId::ALL.into_iter().zip(PROVIDERS) {
        assert_eq!(id.info(), *info);
        assert_eq!(ProviderId::parse(info.prefix), Ok(id));
        assert_eq!(id.to_string(), info.prefix);
    }
    let err = ProviderId::parse("svn").unwrap_err().to_string();
    assert_eq!(
        err,
        "No provider found for prefix \"svn\" (known: gh, gl, gist, git, zenodo, figshare, hydroshare, dataverse, ckan)"
    );
}

#[test]
fn each_providers_row_agrees_with_what_its_parser_produces() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    for path in [
        "gh/a/b/main",
        "gl/group%2Fp/main",
        "gist/user/abc",
        "git/https%3A%2F%2Fexample.org%2Fr/main",
        "zenodo/10.5281/zenodo.1",
        "figshare/10.6084/m9.figshare.1",
        "hydroshare/142c59757ed54de1816777828c9716e7",
        "dataverse/10.7910/DVN/X",
        "ckan/https%3A%2F%2Fa.org%2Fdataset%2Fx",
    ] {
        let spec = parse(path).unwrap();
        let info = spec.provider().info();
        assert!(path.starts_with(&format!("{}/", info.prefix)), "{path}");
        assert_eq!(info.has_ref, spec.unresolved_ref().is_some(), "{path}");
        assert!(info.ui_route.matches(spec.raw()), "{path}");
        if info.resolved_ref == FULL_COMMIT {
            spec.validate_resolved_ref(sha).unwrap();
        } else {
            let err = spec.validate_resolved_ref(sha).unwrap_err().to_string();
            assert!(err.contains(info.resolved_ref), "{path}: {err}");
        }
    }
}

#[test]
fn a_redirect_repeats_the_providers_request_with_its_credential_but_without_the_etag() {
    use crate::resolve::{Credentials, Resolver, Revalidation, Step};
    let spec = parse("gh/a/b/main").unwrap();
    let credentials = Credentials {
        github_token: Some("ghp_t".into()),
        gitlab_token: None,
    };
    let revalidation = Revalidation {
        etag: "\"e1\"".into(),
        resolved_ref: "0123456789abcdef0123456789abcdef01234567".into(),
    };
    let mut resolver = Resolver::new(
        &spec,
        &ProviderSettings::default(),
        &credentials,
        Some(revalidation),
    );
    let Step::Fetch(first) = resolver.start() else {
        panic!("expected a request");
    };
    assert_eq!(first.headers()["if-none-match"], "\"e1\"");
    let moved = http::Response::builder()
        .status(301)
        .header("location", "/repositories/7/commits/main")
        .body(Vec::new())
        .unwrap();
    let Step::Fetch(second) = resolver.on_response(&moved, 0) else {
        panic!("expected the request again");
    };
    assert_eq!(
        second.uri(),
        "https://api.github.com/repositories/7/commits/main"
    );
    assert_eq!(second.headers()["authorization"], "Bearer ghp_t");
    let accepts: Vec<_> = second.headers().get_all("accept").iter().collect();
    assert_eq!(accepts, ["application/json", "application/vnd.github+json"]);
    assert!(second.headers().get("if-none-match").is_none());
    // An answer of the wrong kind ends the conversation instead of confusing the provider.
    assert!(matches!(
        resolver.on_ls_remote("whatever"),
        Step::Done(crate::resolve::Outcome::Failed(_))
    ));
}

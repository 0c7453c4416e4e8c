//! Resolution conversations with recorded-style answers.

use http::Response;

use super::*;
use crate::provider::{ProviderSettings, Spec};

const SHA: &str = "38e50c71130fcf56655685f0992f4f125bef3879";

fn spec(path: &str) -> Spec {
    Spec::parse_path(path, &ProviderSettings::default()).unwrap()
}

fn resolver(path: &str) -> Resolver {
    Resolver::new(
        &spec(path),
        &ProviderSettings::default(),
        &Credentials::default(),
        None,
    )
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Vec<u8>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.as_bytes().to_vec()).unwrap()
}

fn fetch(step: Step) -> Request<Vec<u8>> {
    match step {
        Step::Fetch(req) => req,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn done(step: Step) -> Outcome {
    match step {
        Step::Done(o) => o,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

fn resolved(step: Step) -> Resolved {
    match done(step) {
        Outcome::Resolved(r) => r,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

#[test]
fn github_branch_resolves_through_the_commits_api_and_keeps_the_etag() {
    let mut r = resolver("gh/jupyterhub/zero-to-jupyterhub-k8s/0.9.1");
    let req = fetch(r.start());
    assert_eq!(
        req.uri(),
        "https://api.github.com/repos/jupyterhub/zero-to-jupyterhub-k8s/commits/0.9.1"
    );
    assert!(req.headers().get("if-none-match").is_none());
    let body = format!(r#"{{"sha": "{SHA}"}}"#);
    let out = resolved(r.on_response(
        &answer(
            200,
            &[("etag", "W/\"abc\""), ("x-ratelimit-remaining", "4999")],
            &body,
        ),
        0,
    ));
    assert_eq!(out.resolved_ref, SHA);
    assert_eq!(out.etag.as_deref(), Some("W/\"abc\""));
    assert_eq!(
        out.resolved_spec,
        format!("jupyterhub/zero-to-jupyterhub-k8s/{SHA}")
    );
    assert_eq!(r.github_rate_remaining(), Some(4999));
}

#[test]
fn github_revalidation_is_a_conditional_request_and_304_reuses_the_cached_commit() {
    let s = spec("gh/org/repo/main");
    let cached = Revalidation {
        etag: "\"e1\"".into(),
        resolved_ref: SHA.into(),
    };
    let mut r = Resolver::new(
        &s,
        &ProviderSettings::default(),
        &Credentials::default(),
        Some(cached),
    );
    let req = fetch(r.start());
    assert_eq!(req.headers()["if-none-match"], "\"e1\"");
    let out = resolved(r.on_response(&answer(304, &[], ""), 0));
    assert_eq!(out.resolved_ref, SHA);
}

#[test]
fn github_master_falls_back_to_head_once() {
    let mut r = resolver("gh/org/repo/master");
    fetch(r.start());
    let req = fetch(r.on_response(
        &answer(422, &[], r#"{"message":"No commit found for SHA: master"}"#),
        0,
    ));
    assert!(req.uri().to_string().ends_with("/commits/HEAD"));
    let out = resolved(r.on_response(&answer(200, &[], &format!(r#"{{"sha":"{SHA}"}}"#)), 0));
    assert!(out.fell_back_to_head);

    let mut r = resolver("gh/org/repo/develop");
    fetch(r.start());
    assert!(matches!(
        done(r.on_response(&answer(404, &[], "{}"), 0)),
        Outcome::NotFound(_)
    ));
}

#[test]
fn github_rate_limit_says_when_to_try_again() {
    let mut r = resolver("gh/org/repo/main");
    fetch(r.start());
    let headers = [
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1000420"),
    ];
    match done(r.on_response(&answer(403, &headers, "{}"), 1_000_000)) {
        Outcome::RateLimited { reset_at, message } => {
            assert_eq!(reset_at, Some(1_000_420));
            assert_eq!(
                message,
                "GitHub rate limit exceeded. Try again in 10 minutes."
            );
        }
        other => panic!("{other:?}"),
    }
}

/// How a pinned-commit lookup ended, for the table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    Found,
    NotFound,
    RateLimited,
    Failed,
}

fn pin_kind(outcome: &Outcome) -> Pin {
    match outcome {
        Outcome::Resolved(r) => {
            assert_eq!(r.resolved_ref, SHA, "the commit the link names");
            Pin::Found
        }
        Outcome::NotFound(_) => Pin::NotFound,
        Outcome::RateLimited { .. } => Pin::RateLimited,
        Outcome::Failed(_) => Pin::Failed,
    }
}

/// Issue 12: a link that names a full commit is looked up with GitHub, GitLab or the gist
/// API before anything else; a made-up commit is "not found", a rate limit is not.
#[test]
fn pinned_commits_are_checked_with_their_provider() {
    type Answer<'a> = (u16, &'a [(&'a str, &'a str)], &'a str, Pin);
    let limited: &[(&str, &str)] = &[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1000"),
    ];
    let no_commit = r#"{"message":"No commit found for SHA"}"#;
    let (gh, gl) = (
        format!(r#"{{"sha": "{SHA}"}}"#),
        format!(r#"{{"id": "{SHA}"}}"#),
    );
    let gist = format!(r#"{{"public": true, "history": [{{"version": "{SHA}"}}]}}"#);
    let other = format!(r#"{{"sha": "{}"}}"#, "1".repeat(40));
    let github: Vec<Answer> = vec![
        (200, &[], &gh, Pin::Found),
        (404, &[], "{}", Pin::NotFound),
        (422, &[], no_commit, Pin::NotFound),
        (403, limited, "{}", Pin::RateLimited),
        (403, &[("retry-after", "60")], "{}", Pin::RateLimited),
        (429, &[], "{}", Pin::RateLimited),
        (403, &[], r#"{"message":"Forbidden"}"#, Pin::Failed),
        (502, &[], "bad gateway", Pin::Failed),
        (200, &[], &other, Pin::Failed),
    ];
    let gitlab: Vec<Answer> = vec![
        (200, &[], &gl, Pin::Found),
        (
            404,
            &[],
            r#"{"message":"404 Commit Not Found"}"#,
            Pin::NotFound,
        ),
        (422, &[], "{}", Pin::NotFound),
        (
            429,
            &[("retry-after", "120")],
            "Retry later",
            Pin::RateLimited,
        ),
        (503, &[], "down", Pin::Failed),
    ];
    let gists: Vec<Answer> = vec![
        (200, &[], &gist, Pin::Found),
        (404, &[], "{}", Pin::NotFound),
        (422, &[], "{}", Pin::NotFound),
        (403, limited, "{}", Pin::RateLimited),
        (500, &[], "oops", Pin::Failed),
    ];
    // (spec, the request it makes, the answers tried)
    let providers = [
        (
            format!("gh/o/r/{SHA}"),
            format!("https://api.github.com/repos/o/r/commits/{SHA}"),
            github,
        ),
        (
            format!("gl/g%2Fp/{SHA}"),
            format!("https://gitlab.com/api/v4/projects/g%2Fp/repository/commits/{SHA}"),
            gitlab,
        ),
        (
            format!("gist/u/abc123/{SHA}"),
            format!("https://api.github.com/gists/abc123/{SHA}"),
            gists,
        ),
    ];
    for (spec, url, answers) in providers {
        for (status, headers, body, expected) in answers {
            let mut r = resolver(&spec);
            let req = fetch(r.start());
            assert_eq!(req.uri(), url.as_str(), "{spec}");
            let outcome = done(r.on_response(&answer(status, headers, body), 0));
            let got = pin_kind(&outcome);
            assert_eq!(got, expected, "{spec} answered {status}: {outcome:?}");
        }
    }
}

#[test]
fn a_git_commit_is_taken_as_given_without_a_request() {
    let spec = format!("git/https%3A%2F%2Fexample.org%2Frepo.git/{SHA}");
    let mut r = resolver(&spec);
    assert_eq!(resolved(r.start()).resolved_ref, SHA);
    let table: Vec<_> = crate::provider::PROVIDERS
        .iter()
        .filter(|p| p.checks_pinned_commits)
        .map(|p| p.prefix)
        .collect();
    assert_eq!(table, ["gh", "gl", "gist"]);
}

#[test]
fn garbage_from_github_is_a_clear_failure() {
    for body in ["not json", r#"{"sha": "-rf"}"#, r#"{"sha": 5}"#, "{}"] {
        let mut r = resolver("gh/org/repo/main");
        fetch(r.start());
        assert!(
            matches!(
                done(r.on_response(&answer(200, &[], body), 0)),
                Outcome::Failed(_)
            ),
            "{body}"
        );
    }
}

#[test]
fn gist_resolves_latest_or_named_revision_and_refuses_secret_gists() {
    let body = |public: bool| {
        format!(
            r#"{{"public": {public}, "history": [{{"version": "{SHA}"}}, {{"version": "{}"}}]}}"#,
            "1".repeat(40)
        )
    };
    let mut r = resolver("gist/user/8a658f7f63b13768d1e75fa2464f5092");
    assert_eq!(
        fetch(r.start()).uri(),
        "https://api.github.com/gists/8a658f7f63b13768d1e75fa2464f5092"
    );
    assert_eq!(
        resolved(r.on_response(&answer(200, &[], &body(true)), 0)).resolved_ref,
        SHA
    );

    let mut r = resolver(&format!("gist/user/abc/{}", "1".repeat(40)));
    assert_eq!(
        fetch(r.start()).uri().to_string(),
        format!("https://api.github.com/gists/abc/{}", "1".repeat(40))
    );

    let mut r = resolver("gist/user/abc/HEAD");
    fetch(r.start());
    assert!(
        matches!(done(r.on_response(&answer(200, &[], &body(false)), 0)), Outcome::Failed(m) if m.contains("private gist"))
    );
}

#[test]
fn gitlab_encodes_namespace_and_ref_fully() {
    let mut r = resolver("gl/group%2Fsub%2Fmy-repo/feature%2Fx");
    let req = fetch(r.start());
    assert_eq!(
        req.uri(),
        "https://gitlab.com/api/v4/projects/group%2Fsub%2Fmy-repo/repository/commits/feature%2Fx"
    );
    let out = resolved(r.on_response(&answer(200, &[], &format!(r#"{{"id":"{SHA}"}}"#)), 0));
    assert_eq!(out.resolved_spec, format!("group%2Fsub%2Fmy-repo/{SHA}"));
    let mut r = resolver("gl/group%2Fp/nosuchref");
    fetch(r.start());
    assert!(matches!(
        done(r.on_response(
            &answer(404, &[], r#"{"message":"404 Commit Not Found"}"#),
            0
        )),
        Outcome::NotFound(_)
    ));
}

#[test]
fn git_over_http_reads_the_ref_advertisement_and_ssh_asks_for_ls_remote() {
    let mut r = resolver("git/https%3A%2F%2Fexample.org%2Frepo.git/main");
    let req = fetch(r.start());
    assert_eq!(
        req.uri(),
        "https://example.org/repo.git/info/refs?service=git-upload-pack"
    );
    let line = format!("{SHA} refs/heads/main\n");
    let body = format!(
        "001e# service=git-upload-pack\n0000{:04x}{line}0000",
        line.len() + 4
    );
    let ct = [(
        "content-type",
        "application/x-git-upload-pack-advertisement",
    )];
    assert_eq!(
        resolved(r.on_response(&answer(200, &ct, &body), 0)).resolved_ref,
        SHA
    );

    let mut r = resolver("git/git%40github.com%3Ajupyterhub%2Fbinderhub/main");
    match r.start() {
        Step::LsRemote { url, git_ref } => {
            assert_eq!(url, "ssh://git@github.com/jupyterhub/binderhub");
            assert_eq!(git_ref, "main");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        resolved(r.on_ls_remote(&format!("{SHA}\trefs/heads/main\n"))).resolved_ref,
        SHA
    );
}

#[test]
fn zenodo_follows_doi_redirects_to_the_newest_record() {
    let mut r = resolver("zenodo/10.5281/zenodo.3242073");
    assert_eq!(
        fetch(r.start()).uri(),
        "https://doi.org/10.5281/zenodo.3242073"
    );
    let req = fetch(r.on_response(
        &answer(
            302,
            &[("location", "https://zenodo.org/record/3242073")],
            "",
        ),
        0,
    ));
    assert_eq!(req.uri(), "https://zenodo.org/record/3242073");
    let req = fetch(r.on_response(&answer(301, &[("location", "/records/3242074")], ""), 0));
    assert_eq!(req.uri(), "https://zenodo.org/records/3242074");
    let out = resolved(r.on_response(&answer(200, &[], "<html>"), 0));
    assert_eq!(out.resolved_ref, "3242074");
    assert_eq!(out.resolved_spec, "10.5281/zenodo.3242074");
    assert_eq!(out.build_slug, "zenodo-3242074");
}

#[test]
fn redirect_loops_end_in_a_failure() {
    let mut r = resolver("zenodo/10.5281/zenodo.1");
    fetch(r.start());
    let mut last = None;
    for _ in 0..=MAX_REDIRECTS {
        last = Some(r.on_response(&answer(302, &[("location", "https://doi.org/loop")], ""), 0));
    }
    assert!(
        matches!(last, Some(Step::Done(Outcome::Failed(m))) if m.contains("too many redirects"))
    );
}

#[test]
fn figshare_without_version_asks_for_the_newest() {
    let mut r = resolver("figshare/10.6084/m9.figshare.9782777");
    fetch(r.start());
    let req = fetch(r.on_response(&answer(200, &[], ""), 0));
    assert_eq!(
        req.uri(),
        "https://api.figshare.com/v2/articles/9782777/versions"
    );
    let out = resolved(r.on_response(
        &answer(200, &[], r#"[{"version":1},{"version":3},{"version":2}]"#),
        0,
    ));
    assert_eq!(out.resolved_ref, "9782777.v3");
    assert_eq!(out.build_slug, "figshare-9782777.v3");

    let mut r = resolver("figshare/10.6084/m9.figshare.9782777.v1");
    fetch(r.start());
    assert_eq!(
        resolved(r.on_response(&answer(200, &[], ""), 0)).resolved_ref,
        "9782777.v1"
    );
}

#[test]
fn hydroshare_versions_by_modification_time() {
    let mut r = resolver(
        "hydroshare/https%3A%2F%2Fwww.hydroshare.org%2Fresource%2F142c59757ed54de1816777828c9716e7",
    );
    let req = fetch(r.start());
    assert_eq!(
        req.uri(),
        "https://www.hydroshare.org/hsapi/resource/142c59757ed54de1816777828c9716e7/scimeta/elements"
    );
    let body = r#"{"dates":[{"type":"created","start_date":"2018-01-01T00:00:00Z"},{"type":"modified","start_date":"2018-12-27T18:16:46.071815Z"}]}"#;
    let out = resolved(r.on_response(&answer(200, &[], body), 0));
    assert_eq!(
        out.resolved_ref,
        "142c59757ed54de1816777828c9716e7.v1545934606"
    );
}

#[test]
fn dataverse_finds_its_installation_through_the_doi() {
    let mut r = resolver("dataverse/10.7910/DVN/TJCLKP");
    fetch(r.start());
    let landing = "https://dataverse.harvard.edu/dataset.xhtml?persistentId=doi:10.7910/DVN/TJCLKP";
    fetch(r.on_response(&answer(302, &[("location", landing)], ""), 0));
    let req = fetch(r.on_response(&answer(200, &[], "<html>"), 0));
    assert_eq!(
        req.uri(),
        "https://dataverse.harvard.edu/api/datasets/:persistentId?persistentId=doi%3A10.7910%2FDVN%2FTJCLKP"
    );
    let body = r#"{"status":"OK","data":{"id":3035124,"latestVersion":{"versionNumber":4,"versionMinorNumber":0}}}"#;
    let out = resolved(r.on_response(&answer(200, &[], body), 0));
    assert_eq!(out.resolved_ref, "3035124.v4.0");
    assert_eq!(out.build_slug, "dataverse-dvn-2ftjclkp");
}

#[test]
fn ckan_uses_the_activity_when_the_link_names_one() {
    let mut r = resolver(
        "ckan/https%3A%2F%2Fdata.depositar.io%2Fdataset%2Fturtles%2Fhistory%2F93df7fd0-0edc",
    );
    let req = fetch(r.start());
    assert_eq!(
        req.uri(),
        "https://data.depositar.io/api/3/action/activity_data_show?id=93df7fd0-0edc&object_type=package"
    );
    let body = r#"{"success":true,"result":{"metadata_modified":"2024-04-02T02:10:31.123456"}}"#;
    assert_eq!(
        resolved(r.on_response(&answer(200, &[], body), 0)).resolved_ref,
        "turtles.v1712023831"
    );

    let mut r = resolver("ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fx");
    assert_eq!(
        fetch(r.start()).uri(),
        "https://demo.ckan.org/api/3/action/package_show?id=x"
    );
    assert!(matches!(
        done(r.on_response(&answer(404, &[], "{}"), 0)),
        Outcome::NotFound(_)
    ));
}

#[test]
fn tokens_are_sent_but_never_shown() {
    let creds = Credentials {
        github_token: Some("ghp_secret".into()),
        gitlab_token: Some("glpat".into()),
    };
    let mut r = Resolver::new(
        &spec("gh/o/r/main"),
        &ProviderSettings::default(),
        &creds,
        None,
    );
    let req = fetch(r.start());
    assert_eq!(req.headers()["authorization"], "Bearer ghp_secret");
    assert!(!format!("{r:?}").contains("ghp_secret"));
}

//! The pages' security headers (issue 12, point 8): every HTML answer carries a
//! Content-Security-Policy that allows exactly the scripts and styles it serves (by hash,
//! recomputed here from the served bytes), no inline handler exists, and the policy's
//! other directives are the ones the pages need.

use bindery_core::csp::hash_source;
use bindery_edge::config::{BAN_NETWORKS, FRAME_ANCESTORS, PUBLIC_URL};

use super::*;

/// One element of a page: its name, its attributes as written, and for `<script>` and
/// `<style>` the text inside.
#[derive(Debug)]
struct Tag {
    name: String,
    attributes: String,
    text: Option<String>,
}

/// The elements of `html`, in order. Text inside `<script>` and `<style>` is read as text,
/// as a browser does, so a `<` in a script is not taken for a tag.
fn tags(html: &str) -> Vec<Tag> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let end = rest.find('>').expect("every tag is closed");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        let (name, attributes) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        let name = name.to_ascii_lowercase();
        let text = if name == "script" || name == "style" {
            let close = format!("</{name}>");
            let end = rest.find(&close).expect("a closed element");
            let text = rest[..end].to_owned();
            rest = &rest[end + close.len()..];
            Some(text)
        } else {
            None
        };
        found.push(Tag {
            name,
            attributes: attributes.to_owned(),
            text,
        });
    }
    found
}

/// The attribute names of a tag (`a="x" b c='y'`).
fn attribute_names(attributes: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = attributes.trim_start();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        if end > 0 {
            names.push(rest[..end].to_ascii_lowercase());
        }
        rest = &rest[end..];
        if let Some(value) = rest.strip_prefix('=') {
            let quote = value.chars().next();
            rest = match quote {
                Some(q @ ('"' | '\'')) => value[1..].split_once(q).map_or("", |(_, r)| r),
                _ => value.split_once(char::is_whitespace).map_or("", |(_, r)| r),
            };
        } else {
            rest = rest.get(1..).unwrap_or("");
        }
        rest = rest.trim_start();
    }
    names
}

/// The directives of a policy, by name.
fn directives(policy: &str) -> Vec<(String, Vec<String>)> {
    policy
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_ascii_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

fn directive<'a>(all: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    let found: Vec<&(String, Vec<String>)> = all.iter().filter(|(n, _)| n == name).collect();
    assert_eq!(found.len(), 1, "{name} once in {all:?}");
    &found[0].1
}

/// Which page kind a case is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Home,
    Loading,
    Error,
}

/// Checks one answer: its headers, and that its policy covers exactly what it serves.
fn check(response: &http::Response<Vec<u8>>, kind: Kind, frame_ancestors: &str, case: &str) {
    let headers = response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{case}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{case}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{case}");
    let policy = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{case}: no content-security-policy"))
        .to_str()
        .unwrap();
    let all = directives(policy);
    assert_eq!(directive(&all, "default-src"), ["'none'"], "{case}");
    assert_eq!(directive(&all, "base-uri"), ["'none'"], "{case}");
    assert_eq!(directive(&all, "object-src"), ["'none'"], "{case}");
    assert_eq!(directive(&all, "form-action"), ["'none'"], "{case}");
    assert_eq!(
        directive(&all, "frame-ancestors").join(" "),
        frame_ancestors,
        "{case}"
    );
    let script_src = directive(&all, "script-src");
    let style_src = directive(&all, "style-src");
    for forbidden in ["'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"] {
        assert!(
            !script_src.iter().any(|s| s == forbidden) && !style_src.iter().any(|s| s == forbidden),
            "{case}: {policy}"
        );
    }

    let body = String::from_utf8(response.body().clone()).unwrap();
    let mut executable = 0;
    for tag in tags(&body) {
        let names = attribute_names(&tag.attributes);
        for name in &names {
            assert!(
                !name.starts_with("on") && name != "style",
                "{case}: <{} {}> has an inline {name}",
                tag.name,
                tag.attributes
            );
        }
        assert!(
            !tag.attributes.to_ascii_lowercase().contains("javascript:"),
            "{case}: {tag:?}"
        );
        match (tag.name.as_str(), &tag.text) {
            ("script", Some(text)) => {
                assert!(!names.contains(&"src".to_owned()), "{case}: {tag:?}");
                // A data block (`type="application/json"`) is never run, and CSP does not
                // look at it; any other script must be allowed by its hash.
                if tag.attributes.contains("type=\"application/json\"") {
                    serde_json::from_str::<serde_json::Value>(text).unwrap();
                } else {
                    executable += 1;
                    let hash = hash_source(text);
                    assert!(
                        script_src.contains(&hash),
                        "{case}: script {hash} not allowed by {policy}"
                    );
                }
            }
            ("style", Some(text)) => {
                assert!(style_src.contains(&hash_source(text)), "{case}: {policy}");
            }
            _ => {}
        }
    }
    // The policy allows the page's own script and nothing else.
    assert_eq!(script_src.len(), 1, "{case}: {policy}");
    match kind {
        Kind::Error => {
            assert_eq!(executable, 0, "{case}");
            assert_eq!(script_src, ["'none'"], "{case}");
        }
        Kind::Home | Kind::Loading => assert_eq!(executable, 1, "{case}"),
    }
    let connect = directive(&all, "connect-src");
    match kind {
        // The event stream of /build, on this Binder.
        Kind::Loading => assert!(connect.contains(&"'self'".to_owned()), "{case}"),
        Kind::Home | Kind::Error => assert_eq!(connect, ["'none'"], "{case}"),
    }
}

/// Path, variables, status, page kind, the `frame-ancestors` expected.
type Case = (&'static str, Pairs<'static>, u16, Kind, &'static str);
type Pairs<'a> = &'a [(&'static str, &'a str)];

#[test]
fn every_page_carries_a_policy_that_allows_exactly_its_own_script() {
    let hostile = "/v2/gh/o/r/main?urlpath=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    let cases: &[Case] = &[
        ("/", &[], 200, Kind::Home, "'self'"),
        ("/v2/gh/o/r/main", &[], 200, Kind::Loading, "'self'"),
        (
            "/v2/gh/o/r/main?urlpath=lab/tree/a.ipynb",
            &[(FRAME_ANCESTORS, "'self' https://*.jupyter.org")],
            200,
            Kind::Loading,
            "'self' https://*.jupyter.org",
        ),
        (hostile, &[], 200, Kind::Loading, "'self'"),
        (
            "/",
            &[(FRAME_ANCESTORS, "'none'")],
            200,
            Kind::Home,
            "'none'",
        ),
        ("/v2/nope/o/r", &[], 404, Kind::Error, "'self'"),
        ("/v2/gh/o", &[], 404, Kind::Error, "'self'"),
        (
            "/v2/gh/o/r/main?urlpath=..%2F..%2Fx",
            &[],
            400,
            Kind::Error,
            "'self'",
        ),
        ("/v2/gh/o/r/-main", &[], 400, Kind::Error, "'self'"),
        (
            "/",
            &[(BAN_NETWORKS, "198.51.100.0/24=a test network")],
            403,
            Kind::Error,
            "'self'",
        ),
        (
            "/repo/o/r",
            &[(BAN_NETWORKS, "198.51.100.0/24=a test network")],
            403,
            Kind::Error,
            "'self'",
        ),
        // A broken public_url leaves the page on the request's origin, as the page does,
        // and frame_ancestors still applies.
        (
            "/v2/gh/o/r/main",
            &[(PUBLIC_URL, "not a url"), (FRAME_ANCESTORS, "'none'")],
            200,
            Kind::Loading,
            "'none'",
        ),
        // A broken frame_ancestors is a configuration error naming the variable, and the
        // error page still carries a policy, with the default.
        (
            "/",
            &[(FRAME_ANCESTORS, "'self'; script-src *")],
            500,
            Kind::Error,
            "'self'",
        ),
        (
            "/v2/gh/o/r/main",
            &[(FRAME_ANCESTORS, "https://a\nx-evil: 1")],
            500,
            Kind::Error,
            "'self'",
        ),
    ];
    for (path, vars, status, kind, frame_ancestors) in cases {
        let world = World::new(vars);
        for method in ["GET", "HEAD"] {
            let case = format!("{method} {path} {vars:?}");
            let response = world.get(method, path, &[]);
            assert_eq!(response.status(), *status, "{case}");
            if method == "HEAD" {
                // The same headers, without the body to check them against.
                let get = world.get("GET", path, &[]);
                for name in [
                    "content-security-policy",
                    "referrer-policy",
                    "x-content-type-options",
                ] {
                    assert_eq!(
                        response.headers().get(name),
                        get.headers().get(name),
                        "{case}"
                    );
                }
                continue;
            }
            check(&response, *kind, frame_ancestors, &case);
            if *status == 500 {
                let body = String::from_utf8_lossy(response.body());
                assert!(body.contains("`frame_ancestors`"), "{case}: {body}");
            }
        }
    }
    assert_eq!(world_fetches(), 0);
}

/// The pages ask nothing upstream.
fn world_fetches() -> usize {
    let world = World::new(&[]);
    for path in ["/", "/v2/gh/o/r/main"] {
        world.get("GET", path, &[]);
    }
    world.fetch.calls()
}

#[test]
fn the_loading_page_may_connect_to_the_public_url_it_streams_from() {
    let world = World::new(&[(PUBLIC_URL, "https://binder.example/")]);
    let page = world.get("GET", "/v2/gh/o/r/main", &[]);
    assert!(
        String::from_utf8_lossy(page.body()).contains("https://binder.example/build/gh/o/r/main")
    );
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert_eq!(
        directive(&directives(policy), "connect-src"),
        ["'self'", "https://binder.example"]
    );
    check(&page, Kind::Loading, "'self'", "public_url");
}

#[test]
fn other_answers_carry_nosniff_but_no_page_policy() {
    let world = World::new(&[]);
    for path in [
        "/versions",
        "/repo/o/r",
        "/nowhere",
        "/api/v1/resolve/nope/x",
    ] {
        let response = world.get("GET", path, &[]);
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert!(
            response.headers().get("content-security-policy").is_none(),
            "{path}"
        );
    }
}

#[test]
fn the_page_scanner_sees_handlers_styles_and_scripts() {
    let found = tags(
        "<p onclick=\"x()\" class=a><i style='a:b' hidden></i><script>if (a<b) {}</script>\
         <script id=\"config\" type=\"application/json\">{}</script>",
    );
    let names: Vec<Vec<String>> = found
        .iter()
        .map(|t| attribute_names(&t.attributes))
        .collect();
    assert_eq!(
        names,
        [
            vec!["onclick".to_owned(), "class".to_owned()],
            vec!["style".to_owned(), "hidden".to_owned()],
            vec![],
            vec!["id".to_owned(), "type".to_owned()],
        ]
    );
    assert_eq!(found[2].text.as_deref(), Some("if (a<b) {}"));
}

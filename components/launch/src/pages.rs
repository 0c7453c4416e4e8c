//! The HTML pages: the home page's link generator, the loading page that follows a launch,
//! the about page and the error pages. Page, style and script are compiled into the component: no CDN, no extra
//! requests. Values reach the page as escaped text or as a JSON document in a
//! `<script type="application/json">` block, never as HTML.

use bindery_core::badge::escape_xml as escape_html;
use bindery_core::provider::PROVIDERS;
use serde_json::json;

const STYLE: &str = include_str!("../assets/style.css");
const LOADING_HTML: &str = include_str!("../assets/loading.html");
const LOADING_JS: &str = include_str!("../assets/loading.js");
const HOME_HTML: &str = include_str!("../assets/home.html");
const HOME_JS: &str = include_str!("../assets/home.js");

/// What the loading page needs.
#[derive(Debug, Clone)]
pub struct Loading<'a> {
    /// `<provider display name>: <repository>`.
    pub title: &'a str,
    /// The repository as the heading names it (see [`repository_label`]).
    pub spec: &'a str,
    /// The event stream to open, relative to this Binder.
    pub build_url: &'a str,
    /// The validated path to open on the server once ready.
    pub launch_path: &'a str,
    /// This page's own URL, for sharing.
    pub share_url: &'a str,
    /// The Binder's base URL.
    pub base_url: &'a str,
    /// The build token the page sends as `build_token` on `/build`, if one was minted.
    pub build_token: Option<&'a str>,
}

/// JSON that is safe inside `<script>`: `<`, `>` and `&` are written as unicode escapes,
/// so the text can never close the script element or open a comment.
pub fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// How the loading page names a repository: its URL, and the ref in brackets when the
/// link has one.
pub fn repository_label(repo_url: &str, unresolved_ref: Option<&str>) -> String {
    match unresolved_ref {
        Some(r) if !r.is_empty() => format!("{repo_url} ({r})"),
        _ => repo_url.to_owned(),
    }
}

/// Fills the `{{NAME}}` placeholders of `template` from `values` in one pass. Inserted
/// text is never scanned again, so a repository URL holding `{{CONFIG}}` stays that text;
/// `{{` not followed by a known name and `}}` is kept as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        template.len() + values.iter().map(|(_, value)| value.len()).sum::<usize>(),
    );
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let known = after.find("}}").and_then(|end| {
            values
                .iter()
                .find(|(name, _)| *name == &after[..end])
                .map(|(_, value)| (*value, end))
        });
        match known {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                // One brace on: the next one may open a placeholder (`{{{A}}}`).
                out.push('{');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The loading page.
pub fn loading(page: &Loading<'_>) -> String {
    let config = json!({
        "build_url": page.build_url,
        "launch_path": page.launch_path,
        "share_url": page.share_url,
        "build_token": page.build_token,
    });
    fill(
        LOADING_HTML,
        &[
            ("TITLE", &escape_html(page.title)),
            ("SPEC", &escape_html(page.spec)),
            ("BASE", &escape_html(page.base_url)),
            ("STYLE", STYLE),
            ("SCRIPT", LOADING_JS),
            ("CONFIG", &script_json(&config)),
        ],
    )
}

/// The provider table as the home page's script reads it: the menu, and the rules of
/// [`bindery_core::launch::launch_link`] and [`bindery_core::launch::detect_repo`].
fn home_providers() -> serde_json::Value {
    PROVIDERS
        .iter()
        .map(|p| {
            json!({
                "id": p.prefix,
                "label": p.menu_label,
                "has_ref": p.has_ref,
                "encode_repo": p.url_encodes_repo(),
                "paste_host": p.paste_host,
            })
        })
        .collect()
}

/// The home page.
pub fn home(base_url: &str) -> String {
    let config = json!({ "base_url": base_url, "providers": home_providers() });
    fill(
        HOME_HTML,
        &[
            ("BASE", &escape_html(base_url)),
            ("STYLE", STYLE),
            ("SCRIPT", HOME_JS),
            ("CONFIG", &script_json(&config)),
        ],
    )
}

/// The about page (BinderHub's `/about`): the version, and the operator's `about_message`
/// as it is (HTML the operator wrote, as in BinderHub; the page's Content-Security-Policy
/// lets no script in it run).
pub fn about(base_url: &str, version: &str, message: Option<&str>) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>About · Binder</title>\
         <style>{STYLE}</style></head><body><header><a href=\"{base}\">Binder</a></header><main>\
         <h1>About this Binder</h1><div class=\"card\">{message}\
         <p class=\"muted\">Running <a href=\"https://github.com/jupyterhub/binderhub\">BinderHub</a>'s API, \
         version <code id=\"version\">{version}</code>.</p></div></main></body></html>",
        base = escape_html(base_url),
        message = message.unwrap_or_default(),
        version = escape_html(version),
    )
}

/// A small error page for a bad `/v2` link.
pub fn error(status: u16, message: &str, base_url: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} · Binder</title>\
         <style>{STYLE}</style></head><body><header><a href=\"{base}\">Binder</a></header><main>\
         <h1>{status}</h1><div class=\"card\"><p class=\"error\">{msg}</p>\
         <p class=\"muted\">Check the link, or make a new one on the <a href=\"{base}\">home page</a>.</p></div></main></body></html>",
        base = escape_html(base_url),
        msg = escape_html(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_named_by_url_and_ref() {
        assert_eq!(
            repository_label("http://127.0.0.1:3000/notebooks.git", Some("main")),
            "http://127.0.0.1:3000/notebooks.git (main)"
        );
        assert_eq!(
            repository_label("https://doi.org/10.5281/zenodo.1", None),
            "https://doi.org/10.5281/zenodo.1"
        );
        assert_eq!(repository_label("https://x/r", Some("")), "https://x/r");
    }

    #[test]
    fn placeholders_in_inserted_text_stay_text() {
        let page = loading(&Loading {
            title: "Git: https://example.org/{{CONFIG}}{{SCRIPT}}",
            spec: "https://example.org/{{STYLE}} ({{BASE}})",
            build_url: "/build/git/x/HEAD",
            launch_path: "",
            share_url: "x",
            base_url: "/",
            build_token: None,
        });
        // The configuration and the script appear once each, where the template has them.
        assert_eq!(page.matches("\"build_url\"").count(), 1, "{page}");
        assert_eq!(page.matches(LOADING_JS).count(), 1);
        assert_eq!(page.matches(STYLE).count(), 1);
        assert!(page.contains("Git: https://example.org/{{CONFIG}}{{SCRIPT}}"));
        assert!(page.contains("https://example.org/{{STYLE}} ({{BASE}})"));
        // No placeholder of the template is left unfilled.
        for name in ["TITLE", "SPEC", "BASE", "STYLE", "SCRIPT", "CONFIG"] {
            let filled = page
                .replace("https://example.org/{{CONFIG}}{{SCRIPT}}", "")
                .replace("https://example.org/{{STYLE}} ({{BASE}})", "");
            assert!(!filled.contains(&format!("{{{{{name}}}}}")), "{name}");
        }
    }

    #[test]
    fn fill_keeps_unknown_and_unclosed_braces() {
        let values = [("A", "1{{B}}"), ("B", "2")];
        assert_eq!(fill("{{A}}-{{B}}", &values), "1{{B}}-2");
        assert_eq!(fill("{{C}} {{A", &values), "{{C}} {{A");
        assert_eq!(fill("x{{{A}}}y", &values), "x{1{{B}}}y");
        assert_eq!(fill("", &values), "");
    }

    #[test]
    fn hostile_specs_cannot_escape_the_page() {
        let page = loading(&Loading {
            title: "GitHub: </title><script>alert(1)</script>",
            spec: "<img src=x onerror=alert(1)>",
            build_url: "/build/gh/a/b/</script><script>alert(2)</script>",
            launch_path: "",
            share_url: "x",
            base_url: "/",
            build_token: None,
        });
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img src=x"));
        assert!(page.contains("\\u003c/script\\u003e"));
    }

    #[test]
    fn the_home_page_menu_and_link_rules_come_from_the_provider_table() {
        let page = home("/");
        let start = page
            .find("<script id=\"config\" type=\"application/json\">")
            .unwrap();
        let json = &page[start..];
        let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
        let config: serde_json::Value = serde_json::from_str(json).unwrap();
        let providers = config["providers"].as_array().unwrap();
        assert_eq!(providers.len(), PROVIDERS.len());
        for (entry, info) in providers.iter().zip(PROVIDERS) {
            assert_eq!(entry["id"], info.prefix);
            assert_eq!(entry["label"], info.menu_label);
            assert_eq!(entry["has_ref"], info.has_ref);
            assert_eq!(entry["encode_repo"], info.url_encodes_repo());
            assert_eq!(entry["paste_host"].as_str(), info.paste_host);
        }
        // The script keeps no copy of the table: no provider prefix appears in it as a key
        // or a string.
        for info in PROVIDERS {
            let prefix = info.prefix;
            for copy in [
                format!("\"{prefix}\""),
                format!("{prefix}:"),
                format!("'{prefix}'"),
            ] {
                assert!(!HOME_JS.contains(&copy), "home.js names {copy}");
            }
        }
        assert!(!HOME_HTML.contains("<option value=\"gh\""));
    }

    #[test]
    fn pages_carry_their_script_and_no_external_resources() {
        let page = home("https://binder.example/");
        assert!(
            page.contains("launch") && page.contains("\"base_url\":\"https://binder.example/\"")
        );
        for p in [
            page,
            loading(&Loading {
                title: "t",
                spec: "s",
                build_url: "/b",
                launch_path: "",
                share_url: "",
                base_url: "/",
                build_token: None,
            }),
        ] {
            assert!(!p.contains("src=\"http") && !p.contains("<link"), "no CDN");
            assert!(!p.contains("{{"), "every placeholder is filled");
        }
    }
}

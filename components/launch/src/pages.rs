//! The two HTML pages: the home page's link generator and the loading page that follows
//! a launch. Page, style and script are compiled into the component: no CDN, no extra
//! requests. Values reach the page as escaped text or as a JSON document in a
//! `<script type="application/json">` block, never as HTML.

use bindery_core::badge::escape_xml as escape_html;
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

/// The loading page.
pub fn loading(page: &Loading<'_>) -> String {
    let config = json!({
        "build_url": page.build_url,
        "launch_path": page.launch_path,
        "share_url": page.share_url,
    });
    // Placeholders are replaced script and config last, so text inserted earlier can never
    // be mistaken for a later placeholder.
    LOADING_HTML
        .replace("{{TITLE}}", &escape_html(page.title))
        .replace("{{SPEC}}", &escape_html(page.spec))
        .replace("{{BASE}}", &escape_html(page.base_url))
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", LOADING_JS)
        .replace("{{CONFIG}}", &script_json(&config))
}

/// The home page.
pub fn home(base_url: &str) -> String {
    let config = json!({ "base_url": base_url });
    HOME_HTML
        .replace("{{BASE}}", &escape_html(base_url))
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", HOME_JS)
        .replace("{{CONFIG}}", &script_json(&config))
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
    fn hostile_specs_cannot_escape_the_page() {
        let page = loading(&Loading {
            title: "GitHub: </title><script>alert(1)</script>",
            spec: "<img src=x onerror=alert(1)>",
            build_url: "/build/gh/a/b/</script><script>alert(2)</script>",
            launch_path: "",
            share_url: "x",
            base_url: "/",
        });
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img src=x"));
        assert!(page.contains("\\u003c/script\\u003e"));
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
            }),
        ] {
            assert!(!p.contains("src=\"http") && !p.contains("<link"), "no CDN");
            assert!(!p.contains("{{"), "every placeholder is filled");
        }
    }
}

//! The loading page's script, run by Node (whose `URL` is the WHATWG parser browsers
//! implement) against a stub DOM: the launch token only ever goes to a URL under the
//! server's path, whatever launch path the page was given (issue 12).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the page sends the browser after `ready` for `server`, or `None` when it refused.
fn redirect(launch_path: &str, server: &str) -> Option<String> {
    let root = workspace();
    let out = Command::new("node")
        .arg(root.join("tests/js/loading_redirect.cjs"))
        .arg(root.join("components/launch/assets/loading.js"))
        .arg(launch_path)
        .arg(server)
        .output()
        .expect("node (apt-get install nodejs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    if got["redirected"] == true {
        assert_eq!(got["phase"], "ready", "{got}");
        return Some(got["href"].as_str().unwrap().to_owned());
    }
    assert_eq!(got["phase"], "failed", "{got}");
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .contains("outside your server"),
        "{got}"
    );
    None
}

#[test]
fn the_token_goes_only_to_urls_under_the_servers_path() {
    const HUB: &str = "https://hub.example/user/x/";
    let allowed = [
        ("", HUB, "https://hub.example/user/x/?token=tok123"),
        (
            "lab/tree/x.ipynb",
            HUB,
            "https://hub.example/user/x/lab/tree/x.ipynb?token=tok123",
        ),
        (
            "doc/tree/a%20b.ipynb",
            "https://hub.example/user/x",
            "https://hub.example/user/x/doc/tree/a%20b.ipynb?token=tok123",
        ),
        (
            "tree/dir/",
            "/user/x/",
            "https://binder.example/user/x/tree/dir/?token=tok123",
        ),
    ];
    for (launch_path, server, expected) in allowed {
        assert_eq!(
            redirect(launch_path, server).as_deref(),
            Some(expected),
            "{launch_path:?}"
        );
    }
    for hostile in [
        "%2e./%2e./user/y/",
        ".%2E/hub/admin",
        "%2E%2e/%2e%2e/hub/token",
        "../../hub/token",
        "..\\..\\hub\\token",
        "/hub/admin",
        "//evil.example/x",
        "https://evil.example/",
        "a/../../y/",
    ] {
        assert_eq!(redirect(hostile, HUB), None, "{hostile:?}");
    }
}

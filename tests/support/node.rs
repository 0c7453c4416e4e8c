//! Node.js scripts of `tests/js` that drive real npm packages from `target/js`:
//! BinderHub's own API client, `@jupyterhub/binderhub-client`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::sse::get;
use crate::workspace;

/// The npm packages' directory: `BINDERY_NODE_PATH`, else `target/js/node_modules`.
pub fn node_modules() -> PathBuf {
    std::env::var("BINDERY_NODE_PATH").map_or_else(
        |_| workspace().join("target/js/node_modules"),
        PathBuf::from,
    )
}

/// Runs `@jupyterhub/binderhub-client` (`tests/js/binderhub_client.mjs`) for
/// `provider_spec` against the build API at `endpoint` (`http://host:port/build`) with
/// `options` (see the script) and returns its report: every item its iterator yielded.
pub fn binderhub_client(endpoint: &str, provider_spec: &str, options: &Value) -> Value {
    let modules = node_modules();
    assert!(
        modules.join("@jupyterhub/binderhub-client").exists(),
        "{} has no @jupyterhub/binderhub-client: run `cargo xtask setup`",
        modules.display()
    );
    let out = Command::new("node")
        .arg(workspace().join("tests/js/binderhub_client.mjs"))
        .arg(endpoint)
        .arg(provider_spec)
        .arg(options.to_string())
        .env("BINDERY_NODE_PATH", &modules)
        .output()
        .expect("node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client script failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(got["timedOut"], false, "{got:#}");
    got
}

/// The phases the client's iterator yielded, in order.
pub fn phases(got: &Value) -> Vec<String> {
    got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The build token the real loading page at `page_url` (`.../v2/<provider>/<spec>`)
/// carries.
pub async fn page_token(page_url: &str) -> String {
    let page = get(page_url, &[]).await;
    let html = page.text();
    let start = html
        .find("<script id=\"config\" type=\"application/json\">")
        .unwrap_or_else(|| panic!("no page config: {html}"));
    let json = &html[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let config: Value = serde_json::from_str(json).unwrap();
    config["build_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no build token: {json}"))
        .to_owned()
}

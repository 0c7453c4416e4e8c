//! BinderHub's `/api/repoproviders`: every provider's `display_config`, the description a
//! UI builds its form from (`id`, `displayName`, `repo.label`/`placeholder`/`urlEncode`,
//! `ref.enabled`/`default`, `spec.validateRegex`, `detect.regex`), made from the provider
//! table so that it names exactly the providers this Bindery serves.

use serde_json::{Map, Value, json};

use super::{PROVIDERS, ProviderInfo};

/// The ref a link without one gets (BinderHub's `ref.default`).
pub const DEFAULT_REF: &str = "HEAD";

/// One provider's `display_config`.
pub fn display_config(info: &ProviderInfo) -> Value {
    let mut repo = Map::new();
    repo.insert("label".into(), info.repo_label.into());
    repo.insert(
        "placeholder".into(),
        format!("example: {}", info.example).into(),
    );
    if info.url_encodes_repo() {
        repo.insert("urlEncode".into(), true.into());
    }
    let reference = if info.has_ref {
        json!({"enabled": true, "default": DEFAULT_REF})
    } else {
        json!({"enabled": false})
    };
    let mut config = json!({
        "id": info.prefix,
        "displayName": info.display_name,
        "repo": repo,
        "ref": reference,
        "spec": {"validateRegex": info.ui_route.validate_regex()},
    });
    if let Some(host) = info.paste_host {
        let host = host.replace('.', "\\.");
        config["detect"] = json!({ "regex": format!("^(https?://{host})?(?<repo>.*[^/])/?") });
    }
    config
}

/// The answer of `GET /api/repoproviders`: every provider of the table, in its order.
pub fn repo_providers() -> Value {
    Value::Array(PROVIDERS.iter().map(|info| display_config(info)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderId;

    #[test]
    fn every_provider_is_described_in_binderhubs_shape() {
        let all = repo_providers();
        let ids: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        let table: Vec<&str> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(ids, table);
        assert_eq!(
            display_config(ProviderId::GitHub.info()),
            json!({
                "id": "gh",
                "displayName": "GitHub",
                "repo": {
                    "label": "GitHub repository name or URL",
                    "placeholder": "example: binder-examples/requirements or https://github.com/binder-examples/requirements",
                },
                "ref": {"enabled": true, "default": "HEAD"},
                "spec": {"validateRegex": "[^/]+/[^/]+/.+"},
                "detect": {"regex": "^(https?://github\\.com/)?(?<repo>.*[^/])/?"},
            })
        );
        let gitlab = display_config(ProviderId::GitLab.info());
        assert_eq!(gitlab["repo"]["urlEncode"], true);
        let zenodo = display_config(ProviderId::Zenodo.info());
        assert_eq!(zenodo["ref"], json!({"enabled": false}));
        assert_eq!(zenodo["spec"]["validateRegex"], "10\\.\\d+\\/(.)+");
        assert!(zenodo.get("detect").is_none());
    }

    #[test]
    fn each_validate_regex_accepts_what_the_route_accepts() {
        // The regexes as a JavaScript UI applies them (`^(?:re)$`), against the route's own
        // check, on specs of every shape.
        let specs = [
            "o/r/main",
            "o/r/feature/x",
            "o/r",
            "group%2Fproject/main",
            "user/0123abcd",
            "user/0123abcd/ref",
            "10.5281/zenodo.3242074",
            "10.x/y",
            "https%3A%2F%2Fexample.org%2Fdataset%2Fa",
            "",
        ];
        for info in PROVIDERS {
            let re = regex::Regex::new(&format!(
                "^(?:{})$",
                info.ui_route.validate_regex().replace("\\/", "/")
            ))
            .unwrap();
            for spec in specs {
                assert_eq!(
                    re.is_match(spec),
                    info.ui_route.matches(spec),
                    "{}: {spec:?}",
                    info.prefix
                );
            }
        }
    }
}

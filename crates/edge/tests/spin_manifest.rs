//! `spin.toml` at the repository root: valid against Spin's manifest v2 JSON schema, and
//! consistent with the components and the variables they read.
//!
//! The schema (`tests/data/spin-manifest-v2.schema.json`, Spin's own, vendored) is checked
//! with Python's `jsonschema` in the venv `cargo xtask test` prepares under `target/pyenv`
//! (`BINDERY_PYTHON`); deliberately broken copies prove the check can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bindery_edge::config::{
    BADGE_VARIABLES, EdgeConfig, LAUNCH_VARIABLES, VARIABLES, WEBHOOK_VARIABLES,
};
use toml::{Table, Value};

/// The variable names the issue requires, each with a default or `required = true`.
const REQUIRED_NAMES: [&str; 12] = [
    "worker_url",
    "worker_token",
    "registry_url",
    "registry_username",
    "registry_password",
    "image_prefix",
    "github_token",
    "gitlab_token",
    "github_webhook_secret",
    "gitlab_webhook_secret",
    "prebuild_specs",
    "banned_specs",
];

const COMPONENTS: [&str; 3] = ["launch", "badge", "webhook"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest_text() -> String {
    std::fs::read_to_string(root().join("spin.toml")).expect("spin.toml at the repository root")
}

fn manifest() -> Table {
    toml::from_str(&manifest_text()).expect("spin.toml parses as TOML")
}

fn table<'a>(value: &'a Table, key: &str) -> &'a Table {
    value
        .get(key)
        .and_then(Value::as_table)
        .unwrap_or_else(|| panic!("`{key}` is a table"))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `{{ name }}` references in a template.
fn references(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("a closed template");
        names.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    names
}

/// Renders templates with the application variables' defaults.
fn render(template: &str, defaults: &BTreeMap<String, String>) -> String {
    let mut out = template.to_owned();
    for name in references(template) {
        let value = defaults
            .get(&name)
            .unwrap_or_else(|| panic!("`{name}` has a default"));
        for form in [format!("{{{{ {name} }}}}"), format!("{{{{{name}}}}}")] {
            out = out.replace(&form, value);
        }
    }
    out
}

fn defaults(manifest: &Table) -> BTreeMap<String, String> {
    table(manifest, "variables")
        .iter()
        .filter_map(|(name, def)| {
            def.get("default")
                .and_then(Value::as_str)
                .map(|d| (name.clone(), d.to_owned()))
        })
        .collect()
}

fn python() -> String {
    if let Ok(python) = std::env::var("BINDERY_PYTHON") {
        return python;
    }
    let venv = root().join("target/pyenv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    panic!(
        "BINDERY_PYTHON is not set: run the tests with `cargo xtask test`, which creates target/pyenv with jsonschema"
    )
}

/// Runs the schema check on `text`: `Ok` with the validator's output when valid.
fn schema_check(text: &str) -> Result<String, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut child = Command::new(python())
        .arg(here.join("py/validate_spin_manifest.py"))
        .arg(here.join("data/spin-manifest-v2.schema.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the venv lacks a package (run `cargo xtask setup`): {stderr}"
    );
    match out.status.code() {
        Some(0) => Ok(stdout),
        Some(1) => Err(stdout),
        _ => panic!("the validator crashed: {stderr}"),
    }
}

#[test]
fn spin_toml_is_valid_against_spins_schema() {
    let result = schema_check(&manifest_text());
    assert_eq!(result, Ok("valid\n".to_owned()));
}

#[test]
fn the_schema_check_refuses_broken_manifests() {
    let text = manifest_text();
    let broken = [
        (
            "spin_manifest_version = 2",
            "spin_manifest_version = \"two\"",
        ),
        (
            "key_value_stores = [\"default\"]\nallowed_outbound_hosts = []",
            "key_value_stores = [\"default\"]\nallowed_outbound_hosts = []\nallowed_hosts_typo = []",
        ),
        (
            "worker_url = { default = \"http://127.0.0.1:8585\" }",
            "worker_url = { default = \"http://127.0.0.1:8585\", secrets = true }",
        ),
        ("route = \"/hooks/github\"", "route = 42"),
        ("name = \"bindery\"", "nom = \"bindery\""),
    ];
    for (from, to) in broken {
        assert!(
            text.contains(from),
            "the fixture text `{from}` is in spin.toml"
        );
        let copy = text.replacen(from, to, 1);
        let result = schema_check(&copy);
        assert!(
            result.is_err(),
            "`{to}` passed the schema check: {result:?}"
        );
    }
}

#[test]
fn every_route_maps_to_a_component_and_every_component_is_routed() {
    let manifest = manifest();
    let components = table(&manifest, "component");
    assert_eq!(
        components
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        COMPONENTS.into_iter().collect()
    );
    let triggers = table(&manifest, "trigger")["http"].as_array().unwrap();
    let mut routes = BTreeSet::new();
    let mut routed = BTreeSet::new();
    for trigger in triggers {
        let route = trigger["route"].as_str().unwrap();
        let component = trigger["component"].as_str().unwrap();
        assert!(routes.insert(route), "route {route} appears twice");
        assert!(
            components.contains_key(component),
            "route {route} names unknown component {component}"
        );
        routed.insert(component);
    }
    assert_eq!(routed, COMPONENTS.into_iter().collect());
    for (route, component) in [
        ("/", "launch"),
        ("/v2/...", "launch"),
        ("/build/...", "launch"),
        ("/api/v1/resolve/...", "launch"),
        ("/repo/...", "launch"),
        ("/health", "launch"),
        ("/versions", "launch"),
        ("/...", "launch"),
        ("/badge.svg", "badge"),
        ("/badge_logo.svg", "badge"),
        ("/status/...", "badge"),
        ("/hooks/github", "webhook"),
        ("/hooks/gitlab", "webhook"),
    ] {
        let found = triggers
            .iter()
            .find(|t| t["route"].as_str() == Some(route))
            .unwrap_or_else(|| panic!("no route {route}"));
        assert_eq!(found["component"].as_str(), Some(component), "{route}");
    }
}

#[test]
fn variables_are_declared_defaulted_and_secret_where_needed() {
    let manifest = manifest();
    let variables = table(&manifest, "variables");
    for (name, def) in variables {
        let has_default = def.get("default").is_some_and(Value::is_str);
        let required = def.get("required").and_then(Value::as_bool) == Some(true);
        assert!(
            has_default || required,
            "{name} needs a default or required = true"
        );
    }
    for name in REQUIRED_NAMES {
        assert!(variables.contains_key(name), "{name} is declared");
    }
    for var in VARIABLES {
        let def = variables
            .get(var.name)
            .unwrap_or_else(|| panic!("{} is declared", var.name));
        let secret = def.get("secret").and_then(Value::as_bool) == Some(true);
        assert_eq!(secret, var.secret, "{}: secret = {}", var.name, var.secret);
    }
}

#[test]
fn component_variables_and_outbound_templates_reference_declared_variables() {
    let manifest = manifest();
    let declared = table(&manifest, "variables");
    let components = table(&manifest, "component");
    for (id, component) in components {
        let component = component.as_table().unwrap();
        let vars = component
            .get("variables")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        for (name, template) in &vars {
            for reference in references(template.as_str().unwrap()) {
                assert!(
                    declared.contains_key(&reference),
                    "{id}.{name} references undeclared {reference}"
                );
            }
        }
        for entry in strings(component.get("allowed_outbound_hosts")) {
            for reference in references(&entry) {
                assert!(declared.contains_key(&reference), "{id}: {entry}");
            }
        }
        let needed = match id.as_str() {
            "launch" => LAUNCH_VARIABLES,
            "badge" => BADGE_VARIABLES,
            "webhook" => WEBHOOK_VARIABLES,
            other => panic!("component {other} has no variable list in bindery_edge::config"),
        };
        for name in needed {
            assert_eq!(
                vars.get(*name).and_then(Value::as_str),
                Some(format!("{{{{ {name} }}}}").as_str()),
                "{id} maps {name} from the application variable of the same name"
            );
        }
        // A component asks Spin only for the variables on its list: one declared here
        // but missing from the list would be silently ignored.
        let declared_here: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
        let read: BTreeSet<&str> = needed.iter().copied().collect();
        assert_eq!(
            declared_here, read,
            "{id} declares exactly the variables its component reads"
        );
    }
}

#[test]
fn components_are_wired_to_their_packages_and_hosts() {
    let manifest = manifest();
    let defaults = defaults(&manifest);
    let components = table(&manifest, "component");
    for id in COMPONENTS {
        let component = table(components, id);
        assert_eq!(
            component["source"].as_str(),
            Some(format!("target/wasm32-wasip2/wasm/bindery_{id}.wasm").as_str())
        );
        // Badges count nothing; launch and webhook count in the `metrics` store.
        let stores: &[&str] = match id {
            "badge" => &["default"],
            _ => &["default", "metrics"],
        };
        assert_eq!(strings(component.get("key_value_stores")), stores, "{id}");
        let build = table(component, "build");
        assert_eq!(
            build["command"].as_str(),
            Some(
                format!("cargo build --target wasm32-wasip2 --profile wasm -p bindery-{id}")
                    .as_str()
            )
        );
        assert!(!strings(build.get("watch")).is_empty(), "{id} watch globs");
        // Rendered with the defaults, every entry is `scheme://host[:port]`.
        for entry in strings(component.get("allowed_outbound_hosts")) {
            let rendered = render(&entry, &defaults);
            let (scheme, rest) = rendered.split_once("://").expect("scheme://");
            assert!(matches!(scheme, "http" | "https"), "{id}: {rendered}");
            assert!(
                !rest.is_empty() && !rest.contains(['/', '?', '#', '@']),
                "{id}: {rendered} is not scheme://host[:port]"
            );
        }
    }
    assert!(strings(table(components, "badge").get("allowed_outbound_hosts")).is_empty());
    // The webhook re-resolves a pushed ref with the provider (a push is a hint, not a
    // fact) and prebuilds through the worker; nothing else.
    assert_eq!(
        strings(table(components, "webhook").get("allowed_outbound_hosts")),
        [
            "{{ worker_url }}",
            "https://api.github.com",
            "https://gitlab.com",
            "{{ extra_outbound_host }}"
        ]
    );
}

#[test]
fn the_defaults_form_a_working_configuration() {
    let defaults = defaults(&manifest());
    let cfg =
        EdgeConfig::from_source(|name| Ok(defaults.get(name).cloned())).expect("the defaults load");
    let worker = cfg.worker_url.as_deref();
    assert_eq!(worker, Some("http://127.0.0.1:8585"));
    assert_eq!(cfg.registry().unwrap().url, "http://127.0.0.1:5000");
    assert_eq!(cfg.image_prefix().unwrap(), "127.0.0.1:5000/binder-");
    assert!(
        cfg.worker().is_err(),
        "the worker token has no default: a launch names it"
    );
    assert!(cfg.github_webhook_secret.is_none() && cfg.gitlab_webhook_secret.is_none());
    assert_eq!(cfg.providers, Default::default());
    assert_eq!(cfg.ttl, Default::default());
}

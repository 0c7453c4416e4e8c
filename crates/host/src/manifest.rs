//! The subset of Spin's manifest v2 (`spin.toml`) that the host runs.
//!
//! Field names follow Spin's schema, and like Spin the parser refuses unknown fields, so a
//! typo fails at start-up instead of being silently ignored. Fields Spin knows but this
//! host cannot honour (`files`, `environment`, `sqlite_databases`, private routes, ...) are
//! refused the same way: running an app without them would be running a different app.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("failed to read manifest {path}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse, or named a field Spin's schema does not have.
    #[error("failed to parse manifest {path}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The manifest parsed but breaks one of Spin's rules.
    #[error("invalid manifest {path}: {reason}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong.
        reason: ManifestRule,
    },
}

/// A rule of Spin's that a parsed manifest breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestRule {
    /// Only manifest version 2 exists for this host.
    #[error("spin_manifest_version is {0}, and only version 2 is supported")]
    Version(i64),
    /// An application variable's name.
    #[error("variable name `{0}` must be lower_snake_case (a-z, 0-9, _)")]
    VariableName(String),
    /// A variable both required and defaulted.
    #[error("variable `{0}` cannot be both required and have a default")]
    RequiredWithDefault(String),
    /// A variable neither required nor defaulted.
    #[error("variable `{0}` needs a default or `required = true`")]
    NoDefault(String),
    /// A component id.
    #[error("component id `{0}` must be kebab-case (a-z, 0-9, -)")]
    ComponentId(String),
    /// A component variable's name.
    #[error("component `{component}`: variable name `{name}` must be lower_snake_case")]
    ComponentVariableName {
        /// The component.
        component: String,
        /// The variable.
        name: String,
    },
    /// A route to a component the manifest does not define.
    #[error(
        "route `{route}` names component `{component}`, which has no [component.{component}] table"
    )]
    UnknownComponent {
        /// The route.
        route: String,
        /// The missing component.
        component: String,
    },
    /// Two triggers on one route.
    #[error("route `{0}` appears twice")]
    DuplicateRoute(String),
}

/// A parsed and checked manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The directory the manifest lives in: component sources are relative to it.
    pub base_dir: PathBuf,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`: application variables by name.
    pub variables: BTreeMap<String, VariableDef>,
    /// `[[trigger.http]]` in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]` by id.
    pub components: BTreeMap<String, ComponentDef>,
}

/// `[application]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The application's name.
    pub name: String,
    /// Its version, free text.
    #[serde(default)]
    pub version: Option<String>,
    /// A description, free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors, free text.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Tool-specific settings, which Spin itself ignores too.
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

/// One application variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDef {
    /// The value used when the environment gives none.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether start-up fails when no value is given.
    #[serde(default)]
    pub required: bool,
    /// Whether the value must never be logged.
    #[serde(default)]
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// An optional trigger id.
    #[serde(default)]
    pub id: Option<String>,
    /// The route pattern, e.g. `/badge/...` or `/user/:name`.
    pub route: String,
    /// The id of the component that serves it.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDef {
    /// A description, free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The `.wasm` file, relative to the manifest's directory.
    pub source: PathBuf,
    /// `scheme://host[:port]` patterns the component may call.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Component variables: literals or `{{ app_var }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Build settings, used by `spin build` and ignored here.
    #[serde(default)]
    pub build: Option<BuildDef>,
    /// Tool-specific settings, ignored.
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

/// `[component.<id>.build]`: accepted so that a Spin manifest loads, never run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDef {
    /// The build command, a string or a list of strings.
    #[serde(default)]
    pub command: Option<toml::Value>,
    /// The directory the command runs in.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Globs `spin watch` watches.
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: i64,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDef>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base_dir).map_err(|err| match err {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
            ManifestError::Invalid { reason, .. } => ManifestError::Invalid {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// Parses and checks manifest text; `base_dir` anchors relative component sources.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        let invalid = |reason: ManifestRule| ManifestError::Invalid {
            path: PathBuf::new(),
            reason,
        };
        if raw.spin_manifest_version != 2 {
            return Err(invalid(ManifestRule::Version(raw.spin_manifest_version)));
        }
        let manifest = Manifest {
            base_dir: base_dir.to_owned(),
            application: raw.application,
            variables: raw.variables,
            http_triggers: raw.trigger.http,
            components: raw.component,
        };
        manifest.check().map_err(invalid)?;
        Ok(manifest)
    }

    /// The absolute-or-relative path of a component's `.wasm` file.
    pub fn component_source(&self, component: &ComponentDef) -> PathBuf {
        self.base_dir.join(&component.source)
    }

    /// Checks the rules Spin enforces beyond the schema.
    fn check(&self) -> Result<(), ManifestRule> {
        for (name, def) in &self.variables {
            if !is_variable_name(name) {
                return Err(ManifestRule::VariableName(name.clone()));
            }
            if def.required && def.default.is_some() {
                return Err(ManifestRule::RequiredWithDefault(name.clone()));
            }
            if !def.required && def.default.is_none() {
                return Err(ManifestRule::NoDefault(name.clone()));
            }
        }
        for (id, component) in &self.components {
            if !is_component_id(id) {
                return Err(ManifestRule::ComponentId(id.clone()));
            }
            if let Some(name) = component.variables.keys().find(|n| !is_variable_name(n)) {
                return Err(ManifestRule::ComponentVariableName {
                    component: id.clone(),
                    name: name.clone(),
                });
            }
        }
        let mut routes = std::collections::BTreeSet::new();
        for trigger in &self.http_triggers {
            if !self.components.contains_key(&trigger.component) {
                return Err(ManifestRule::UnknownComponent {
                    route: trigger.route.clone(),
                    component: trigger.component.clone(),
                });
            }
            if !routes.insert(trigger.route.trim_end_matches('/')) {
                return Err(ManifestRule::DuplicateRoute(trigger.route.clone()));
            }
        }
        Ok(())
    }
}

/// Spin's rule for variable names: lower-case letters, digits and underscores, starting with a letter.
pub(crate) fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_component_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
version = "0.1.0"
description = "a test"

[variables]
label = { default = "launch" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/badge/..."
component = "badge"

[component.badge]
source = "target/badge.wasm"
allowed_outbound_hosts = ["https://api.github.com"]
key_value_stores = ["default"]
[component.badge.variables]
label = "{{ label }}"
[component.badge.build]
command = "cargo build"
watch = ["src/**/*.rs"]
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/app"))
    }

    #[test]
    fn a_spin_manifest_parses_into_routes_components_and_variables() {
        let manifest = parse(MINIMAL).expect("parses");
        assert_eq!(manifest.application.name, "app");
        assert_eq!(manifest.http_triggers[0].route, "/badge/...");
        let badge = &manifest.components["badge"];
        assert_eq!(
            manifest.component_source(badge),
            Path::new("/app/target/badge.wasm")
        );
        assert_eq!(badge.variables["label"], "{{ label }}");
        assert!(manifest.variables["token"].secret);
    }

    #[test]
    fn unknown_and_unsupported_fields_are_refused() {
        let cases = [
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\nnmae = \"b\"\n",
                "nmae",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[component.c]\nsource = \"c.wasm\"\nfiles = [\"x\"]\n",
                "files",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.redis]]\nchannel = \"x\"\n",
                "redis",
            ),
            (
                "spin_manifest_version = 2\nextra = 1\n[application]\nname = \"a\"\n",
                "extra",
            ),
        ];
        for (text, field) in cases {
            let err = parse(text).expect_err(field);
            let chain = format!(
                "{err}: {}",
                std::error::Error::source(&err)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            assert!(chain.contains(field), "{field}: {chain}");
        }
    }

    #[test]
    fn broken_rules_are_explained() {
        let cases = [
            (
                "spin_manifest_version = 1\n[application]\nname = \"a\"\n",
                "only version 2",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[variables]\nBad = { default = \"x\" }\n",
                "lower_snake_case",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[variables]\nv = { secret = true }\n",
                "needs a default",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"missing\"\n",
                "has no [component.missing] table",
            ),
            (
                "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/x\"\ncomponent = \"c\"\n[[trigger.http]]\nroute = \"/x\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n",
                "appears twice",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(expected);
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}

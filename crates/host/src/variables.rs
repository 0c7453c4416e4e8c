//! Application and component variables, resolved as Spin resolves them.
//!
//! An application variable takes its value from `SPIN_VARIABLE_<NAME>` in the environment,
//! else from its manifest default; a required one with neither stops start-up. Component
//! variables are literals or `{{ app_var }}` templates, rendered once at load so a
//! request only looks a value up. Secret values print as `<redacted>` in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{VariableDef, is_variable_name};

/// Why variables could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum VariableError {
    /// A required variable has no value.
    #[error("variable `{name}` is required: set {env}")]
    Missing {
        /// The variable's name.
        name: String,
        /// The environment variable that would supply it.
        env: String,
    },
    /// A template names a variable the manifest does not define.
    #[error("{context}: template `{template}` refers to `{name}`, which is not in [variables]")]
    Undefined {
        /// Where the template is.
        context: String,
        /// The template text.
        template: String,
        /// The unknown name.
        name: String,
    },
    /// A template is malformed.
    #[error("{context}: malformed template `{template}`: {reason}")]
    Malformed {
        /// Where the template is.
        context: String,
        /// The template text.
        template: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A variable's value; `Debug` hides it when the variable is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    value: String,
    secret: bool,
}

impl Value {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether the value must never be logged.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<redacted>")
        } else {
            fmt::Debug::fmt(&self.value, f)
        }
    }
}

/// Resolved values by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    values: BTreeMap<String, Value>,
}

/// The environment variable Spin reads for application variable `name`.
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

impl Variables {
    /// Resolves application variables; `env` looks an environment variable up.
    pub fn resolve_app(
        defs: &BTreeMap<String, VariableDef>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut values = BTreeMap::new();
        for (name, def) in defs {
            let env_var = env_name(name);
            let value = env(&env_var).or_else(|| def.default.clone());
            let Some(value) = value else {
                return Err(VariableError::Missing {
                    name: name.clone(),
                    env: env_var,
                });
            };
            values.insert(
                name.clone(),
                Value {
                    value,
                    secret: def.secret,
                },
            );
        }
        Ok(Self { values })
    }

    /// Renders a component's `[component.<id>.variables]` against these application values.
    /// A value built from a secret variable stays secret.
    pub fn resolve_component(
        &self,
        component: &str,
        defs: &BTreeMap<String, String>,
    ) -> Result<Self, VariableError> {
        let mut values = BTreeMap::new();
        for (name, template) in defs {
            let context = format!("component `{component}` variable `{name}`");
            let value = self.render(&context, template)?;
            values.insert(name.clone(), value);
        }
        Ok(Self { values })
    }

    /// Renders `{{ name }}` templates inside `template`; text around them is kept.
    pub fn render(&self, context: &str, template: &str) -> Result<Value, VariableError> {
        let malformed = |reason| VariableError::Malformed {
            context: context.to_owned(),
            template: template.to_owned(),
            reason,
        };
        let mut out = String::with_capacity(template.len());
        let mut secret = false;
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| malformed("`{{` without `}}`"))?;
            let name = after[..end].trim();
            if !is_variable_name(name) {
                return Err(malformed(
                    "a template holds one lower_snake_case variable name",
                ));
            }
            let value = self
                .values
                .get(name)
                .ok_or_else(|| VariableError::Undefined {
                    context: context.to_owned(),
                    template: template.to_owned(),
                    name: name.to_owned(),
                })?;
            out.push_str(&value.value);
            secret |= value.secret;
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(malformed("`}}` without `{{`"));
        }
        out.push_str(rest);
        Ok(Value { value: out, secret })
    }

    /// A value by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(entries: &[(&str, Option<&str>, bool, bool)]) -> BTreeMap<String, VariableDef> {
        entries
            .iter()
            .map(|(name, default, required, secret)| {
                let def = VariableDef {
                    default: default.map(str::to_owned),
                    required: *required,
                    secret: *secret,
                };
                ((*name).to_owned(), def)
            })
            .collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_environment_overrides_the_default() {
        let defs = defs(&[
            ("label", Some("launch"), false, false),
            ("worker_url", Some("http://w"), false, false),
        ]);
        let env =
            |name: &str| (name == "SPIN_VARIABLE_WORKER_URL").then(|| "http://other".to_owned());
        let vars = Variables::resolve_app(&defs, env).expect("resolves");
        assert_eq!(vars.get("label").map(Value::expose), Some("launch"));
        assert_eq!(
            vars.get("worker_url").map(Value::expose),
            Some("http://other")
        );
    }

    #[test]
    fn a_missing_required_variable_names_itself_and_its_environment_variable() {
        let defs = defs(&[("worker_token", None, true, true)]);
        let err = Variables::resolve_app(&defs, no_env).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "variable `worker_token` is required: set SPIN_VARIABLE_WORKER_TOKEN"
        );
    }

    #[test]
    fn templates_render_with_surrounding_text() {
        let defs = defs(&[
            ("host", Some("example.org"), false, false),
            ("token", Some("s3cret"), false, true),
        ]);
        let vars = Variables::resolve_app(&defs, no_env).expect("resolves");
        let cases = [
            ("{{ host }}", "example.org"),
            ("{{host}}", "example.org"),
            ("https://{{ host }}/api", "https://example.org/api"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (template, expected) in cases {
            assert_eq!(
                vars.render("t", template).expect(template).expose(),
                expected
            );
        }
        assert!(
            vars.render("t", "Bearer {{ token }}")
                .expect("renders")
                .is_secret()
        );
        for bad in ["{{ host", "host }}", "{{ }}", "{{ Host }}", "{{ a b }}"] {
            assert!(vars.render("t", bad).is_err(), "{bad}");
        }
        let err = vars
            .render("component `c` variable `v`", "{{ nope }}")
            .expect_err("undefined");
        assert!(err.to_string().contains("`nope`"), "{err}");
    }

    #[test]
    fn secret_values_are_redacted_in_debug_output() {
        let defs = defs(&[
            ("token", Some("s3cret"), false, true),
            ("label", Some("launch"), false, false),
        ]);
        let vars = Variables::resolve_app(&defs, no_env).expect("resolves");
        let shown = format!("{vars:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("launch"),
            "{shown}"
        );
    }
}

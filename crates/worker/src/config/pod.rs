//! The build pod's settings of the `[kubernetes]` section, checked when the worker starts:
//! a malformed quantity, variable name or toleration would otherwise fail every build at
//! the API server, one Job at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ConfigError;
use super::file::{ResourcesFile, TolerationFile};

fn invalid(what: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        what: what.into(),
        message,
    }
}

/// Whether `text` reads as a Kubernetes quantity: a decimal number with an optional
/// exponent, binary suffix (`Ki` … `Ei`) or decimal suffix (`n`, `u`, `m`, `k`, `M` … `E`).
pub(super) fn is_quantity(text: &str) -> bool {
    let number = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = number
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(number.len());
    let (digits, suffix) = number.split_at(digits_end);
    let valid_digits =
        digits.matches('.').count() <= 1 && digits.chars().any(|c| c.is_ascii_digit());
    let valid_suffix = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exponent => exponent
            .strip_prefix(['e', 'E'])
            .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
            .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())),
    };
    valid_digits && valid_suffix
}

fn quantities(
    what: &str,
    map: Option<BTreeMap<String, String>>,
) -> Result<Option<BTreeMap<String, Quantity>>, ConfigError> {
    let Some(map) = map else { return Ok(None) };
    map.into_iter()
        .map(|(resource, amount)| {
            if is_quantity(&amount) {
                Ok((resource, Quantity(amount)))
            } else {
                Err(invalid(
                    &format!("{what}.{resource}"),
                    format!("{amount:?} is not a Kubernetes quantity (e.g. \"500m\", \"2Gi\")"),
                ))
            }
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `kubernetes.resources` as the build container's requests and limits.
pub(super) fn resources(file: ResourcesFile) -> Result<ResourceRequirements, ConfigError> {
    Ok(ResourceRequirements {
        requests: quantities("kubernetes.resources.requests", file.requests)?,
        limits: quantities("kubernetes.resources.limits", file.limits)?,
        ..ResourceRequirements::default()
    })
}

/// `kubernetes.extra_env`: names as Kubernetes takes them (no `=`, no control characters,
/// not empty).
pub(super) fn env(vars: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError> {
    for name in vars.keys() {
        if name.is_empty() || name.contains('=') || name.chars().any(char::is_control) {
            return Err(invalid(
                "kubernetes.extra_env",
                format!("{name:?} is not an environment variable name"),
            ));
        }
    }
    Ok(vars)
}

/// `kubernetes.tolerations`, with Kubernetes' rules for operators and effects.
pub(super) fn tolerations(list: Vec<TolerationFile>) -> Result<Vec<Toleration>, ConfigError> {
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let what = format!("kubernetes.tolerations[{i}]");
            let operator = t.operator.as_deref().unwrap_or("Equal");
            if !matches!(operator, "Equal" | "Exists") {
                return Err(invalid(
                    &what,
                    format!("operator {operator:?} is neither \"Equal\" nor \"Exists\""),
                ));
            }
            if operator == "Exists" && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(invalid(&what, "operator \"Exists\" takes no value".into()));
            }
            if let Some(effect) = t.effect.as_deref()
                && !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            {
                return Err(invalid(
                    &what,
                    format!("effect {effect:?} is not a taint effect"),
                ));
            }
            Ok(Toleration {
                key: t.key,
                operator: t.operator,
                value: t.value,
                effect: t.effect,
                toleration_seconds: t.toleration_seconds,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        let table = [
            ("1", true),
            ("500m", true),
            ("2Gi", true),
            ("1.5", true),
            ("2G", true),
            ("1e3", true),
            ("+1", true),
            ("", false),
            ("Gi", false),
            ("2 Gi", false),
            ("2GB", false),
            ("1.2.3", false),
            ("1e", false),
            ("lots", false),
        ];
        for (text, ok) in table {
            assert_eq!(is_quantity(text), ok, "{text:?}");
        }
    }

    #[test]
    fn tolerations_follow_kubernetes_rules() {
        let tol =
            |operator: Option<&str>, value: Option<&str>, effect: Option<&str>| TolerationFile {
                key: Some("k".into()),
                operator: operator.map(Into::into),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                toleration_seconds: None,
            };
        let table = [
            (tol(Some("Equal"), Some("v"), Some("NoSchedule")), true),
            (tol(None, Some("v"), None), true),
            (tol(Some("Exists"), None, Some("NoExecute")), true),
            (tol(Some("Exists"), Some("v"), None), false),
            (tol(Some("In"), Some("v"), None), false),
            (tol(Some("Equal"), Some("v"), Some("Never")), false),
        ];
        for (t, ok) in table {
            let shown = format!("{t:?}");
            assert_eq!(tolerations(vec![t]).is_ok(), ok, "{shown}");
        }
    }

    #[test]
    fn environment_names_must_be_names() {
        for (name, ok) in [
            ("GIT_LFS_SKIP_SMUDGE", true),
            ("", false),
            ("A=B", false),
            ("A\n", false),
        ] {
            let vars = BTreeMap::from([(name.to_owned(), "1".to_owned())]);
            assert_eq!(env(vars).is_ok(), ok, "{name:?}");
        }
    }
}

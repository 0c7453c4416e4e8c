//! The edge's Prometheus metrics: their catalog, how a series is keyed in the `metrics`
//! key-value store, and the `/metrics` text made from that store.
//!
//! Edge component instances live for one request, so nothing is counted in their memory.
//! A count is an atomic increment of a key in the store labelled [`STORE_LABEL`]
//! (`wasi:keyvalue/atomics.increment`), a gauge a `set` of its value; the key is the
//! series as the exposition writes it (`name{label="value",...}`), so the store is
//! readable as it is and `/metrics` is the store's entries under their catalog's
//! `# HELP` and `# TYPE`. `bindery edge` keeps that store in memory and adds the requests
//! it dispatches (by route and status); on Spin, it is whatever the runtime configuration
//! says the `metrics` label is.
//!
//! Cardinality is bounded by construction: every metric names its labels here, and every
//! label value comes from a fixed set (a provider, hit or miss, a `spin.toml` route) or
//! from the operator's configuration (a federation member), never from a request. A
//! label value is at most [`MAX_LABEL_VALUE`] bytes without control characters, and
//! `/metrics` shows only series of metrics in [`CATALOG`].

use std::collections::BTreeMap;

pub mod text;

pub use text::{Exposition, Kind};

/// The key-value store label of the metrics store.
pub const STORE_LABEL: &str = "metrics";

/// The longest label value a series may have, in bytes.
pub const MAX_LABEL_VALUE: usize = 64;

/// The longest series key `/metrics` shows (Spin's keys are at most 256 bytes).
pub const MAX_SERIES_KEY: usize = 256;

/// One metric: its name, help text, type and label names (in the order keys carry them).
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    /// The metric's name.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Counter or gauge (the store holds no histograms).
    pub kind: Kind,
    /// The label names, in order.
    pub labels: &'static [&'static str],
}

/// Requests the edge host answered, by `spin.toml` route (`unmatched` for none) and status.
/// Counted by `bindery edge` as it dispatches.
pub const EDGE_REQUESTS: Metric = Metric {
    name: "bindery_edge_requests_total",
    help: "Requests the edge answered, by spin.toml route and HTTP status",
    kind: Kind::Counter,
    labels: &["route", "status"],
};

/// Cache lookups that decided whether to ask upstream: `cache` is `ref` or `image`,
/// `result` is `hit` (answered from the store) or `miss`.
pub const CACHE_LOOKUPS: Metric = Metric {
    name: "bindery_edge_cache_lookups_total",
    help: "Ref and image cache lookups of the edge, by cache and result",
    kind: Kind::Counter,
    labels: &["cache", "result"],
};

/// Requests sent to a repository provider's API, by provider (its display name, as
/// BinderHub's `provider` labels).
pub const PROVIDER_REQUESTS: Metric = Metric {
    name: "bindery_edge_provider_requests_total",
    help: "Requests the edge sent to repository providers, by provider",
    kind: Kind::Counter,
    labels: &["provider"],
};

/// GitHub's `x-ratelimit-remaining`, from its latest API answer (BinderHub's name).
pub const GITHUB_RATE_LIMIT_REMAINING: Metric = Metric {
    name: "binderhub_github_rate_limit_remaining",
    help: "GitHub API requests remaining in the current rate-limit window",
    kind: Kind::Gauge,
    labels: &[],
};

/// Federation: whether a member is healthy (1) or not (0), and why (the federation
/// redirector's name).
pub const FEDERATION_HEALTH: Metric = Metric {
    name: "federation_health",
    help: "Health of each federation member (1 healthy, 0 not), by member and reason",
    kind: Kind::Gauge,
    labels: &["member", "reason"],
};

/// Federation: redirects of `/build` to a member, by member and reason (`cookie`,
/// `load_balancer`; the federation redirector's name).
pub const FEDERATION_REDIRECT_COUNT: Metric = Metric {
    name: "federation_redirect_count",
    help: "Redirects of /build to federation members, by member and reason",
    kind: Kind::Counter,
    labels: &["member", "reason"],
};

/// Every metric of the store, in the order `/metrics` shows them.
pub const CATALOG: &[&Metric] = &[
    &EDGE_REQUESTS,
    &CACHE_LOOKUPS,
    &PROVIDER_REQUESTS,
    &GITHUB_RATE_LIMIT_REMAINING,
    &FEDERATION_HEALTH,
    &FEDERATION_REDIRECT_COUNT,
];

/// Why a series key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// The values do not match the metric's labels one for one.
    #[error("metric {metric} has {expected} labels, {given} values given")]
    LabelCount {
        /// The metric.
        metric: &'static str,
        /// Its label count.
        expected: usize,
        /// The values given.
        given: usize,
    },
    /// A value is too long or holds a control character.
    #[error(
        "label {label} of {metric} must be at most {MAX_LABEL_VALUE} bytes without control characters"
    )]
    BadValue {
        /// The metric.
        metric: &'static str,
        /// The label.
        label: &'static str,
    },
}

/// The store key of `metric`'s series with `values` (one per label, in order).
pub fn series_key(metric: &Metric, values: &[&str]) -> Result<String, SeriesError> {
    if values.len() != metric.labels.len() {
        return Err(SeriesError::LabelCount {
            metric: metric.name,
            expected: metric.labels.len(),
            given: values.len(),
        });
    }
    for (label, value) in metric.labels.iter().zip(values) {
        if value.len() > MAX_LABEL_VALUE || value.chars().any(char::is_control) {
            return Err(SeriesError::BadValue {
                metric: metric.name,
                label,
            });
        }
    }
    let labels: Vec<(&str, &str)> = metric
        .labels
        .iter()
        .copied()
        .zip(values.iter().copied())
        .collect();
    let mut key = String::from(metric.name);
    text::write_labels(&mut key, &labels);
    Ok(key)
}

/// The catalog metric a store key is a series of, if it is a well-formed one: the name
/// of a metric in [`CATALOG`], then nothing or `{...}`, at most [`MAX_SERIES_KEY`] bytes,
/// no control characters. Anything else in the store is not shown.
pub fn parse_series(key: &str) -> Option<&'static Metric> {
    if key.len() > MAX_SERIES_KEY || key.chars().any(char::is_control) {
        return None;
    }
    let (name, labels) = match key.find('{') {
        Some(at) => key.split_at(at),
        None => (key, ""),
    };
    let labels_ok = labels.is_empty()
        || (labels.len() >= 2
            && labels.ends_with('}')
            && labels_well_formed(&labels[1..labels.len() - 1]));
    let metric = CATALOG.iter().copied().find(|m| m.name == name)?;
    labels_ok.then_some(metric)
}

/// `a="x",b="y"` with escaped values: nothing a sample line could be broken by.
fn labels_well_formed(inner: &str) -> bool {
    let mut rest = inner;
    while !rest.is_empty() {
        let Some(eq) = rest.find("=\"") else {
            return false;
        };
        let name = &rest[..eq];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        rest = &rest[eq + 2..];
        // The value runs to the first quote that is not escaped.
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return false;
        };
        rest = &rest[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
            if rest.is_empty() {
                return false;
            }
        } else if !rest.is_empty() {
            return false;
        }
    }
    true
}

/// A store value as a number: decimal text (how `bindery edge`, Redis and the edge's own
/// gauges write it) or eight big-endian bytes (how Spin's SQLite store keeps an
/// increment).
pub fn decode_value(bytes: &[u8]) -> Option<i64> {
    let text_like = !bytes.is_empty()
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && *b == b'-'));
    if text_like {
        return std::str::from_utf8(bytes).ok()?.parse().ok();
    }
    let be: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_be_bytes(be))
}

/// A gauge's value as the store keeps it: decimal text.
pub fn encode_value(value: i64) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The `/metrics` text of the store's entries (key, raw value): each catalog metric with
/// series, in catalog order, its series sorted; keys that are not series of a catalog
/// metric, and values that are not numbers, are left out.
pub fn render<K: AsRef<str>, V: AsRef<[u8]>>(entries: impl IntoIterator<Item = (K, V)>) -> String {
    let mut by_metric: BTreeMap<usize, BTreeMap<String, i64>> = BTreeMap::new();
    for (key, value) in entries {
        let key = key.as_ref();
        let Some(metric) = parse_series(key) else {
            continue;
        };
        let Some(value) = decode_value(value.as_ref()) else {
            continue;
        };
        let at = CATALOG
            .iter()
            .position(|m| m.name == metric.name)
            .unwrap_or(usize::MAX);
        by_metric
            .entry(at)
            .or_default()
            .insert(key.to_owned(), value);
    }
    let mut text = Exposition::new();
    for (at, series) in by_metric {
        let Some(metric) = CATALOG.get(at) else {
            continue;
        };
        text.family(metric.name, metric.help, metric.kind);
        for (key, value) in series {
            text.raw_sample(&key, value);
        }
    }
    text.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keys_are_exposition_series_with_escaped_values() {
        let cases: &[(&Metric, &[&str], Result<&str, ()>)] = &[
            (
                &GITHUB_RATE_LIMIT_REMAINING,
                &[],
                Ok("binderhub_github_rate_limit_remaining"),
            ),
            (
                &CACHE_LOOKUPS,
                &["ref", "hit"],
                Ok("bindery_edge_cache_lookups_total{cache=\"ref\",result=\"hit\"}"),
            ),
            (
                &FEDERATION_HEALTH,
                &["gesis \"2\"", "Pod quota"],
                Ok("federation_health{member=\"gesis \\\"2\\\"\",reason=\"Pod quota\"}"),
            ),
            (&CACHE_LOOKUPS, &["ref"], Err(())),
            (&PROVIDER_REQUESTS, &["line\nbreak"], Err(())),
            (&PROVIDER_REQUESTS, &[&"x".repeat(65)], Err(())),
        ];
        for (metric, values, expected) in cases {
            let key = series_key(metric, values);
            assert_eq!(key.as_deref().map_err(|_| ()), *expected, "{values:?}");
            if let Ok(key) = key {
                assert_eq!(parse_series(&key).map(|m| m.name), Some(metric.name));
            }
        }
        assert!(series_key(&PROVIDER_REQUESTS, &[&"x".repeat(64)]).is_ok());
    }

    #[test]
    fn only_well_formed_series_of_catalog_metrics_are_shown() {
        let refused = [
            "unknown_metric",
            "bindery_edge_cache_lookups_total{",
            "bindery_edge_cache_lookups_total{cache=\"ref\"",
            "bindery_edge_cache_lookups_total{cache=\"ref\"} 1\nevil 2",
            "bindery_edge_cache_lookups_total{cache=ref}",
            "bindery_edge_cache_lookups_total{cache=\"ref\",}",
            "bindery_edge_cache_lookups_total{cache=\"ref\"}x",
            "bindery_edge_cache_lookups_total{ca-che=\"ref\"}",
            "bindery_edge_cache_lookups_totally",
        ];
        for key in refused {
            assert_eq!(parse_series(key), None, "{key:?}");
        }
        let long = format!("federation_health{{member=\"{}\"}}", "m".repeat(250));
        assert_eq!(parse_series(&long), None);
        assert!(
            parse_series("bindery_edge_cache_lookups_total{cache=\"a\\\"}\",result=\"b\"}")
                .is_some()
        );
    }

    #[test]
    fn values_are_read_as_text_or_as_eight_big_endian_bytes() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"42", Some(42)),
            (b"-3", Some(-3)),
            (&7i64.to_be_bytes(), Some(7)),
            (b"", None),
            (b"4.5", None),
            (b"--1", None),
            (b"12345", Some(12345)),
            (&[1, 2, 3], None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_value(bytes), *expected, "{bytes:?}");
        }
        assert_eq!(decode_value(&encode_value(-17)), Some(-17));
    }

    #[test]
    fn the_exposition_groups_series_under_their_catalog_family() {
        let hit = series_key(&CACHE_LOOKUPS, &["ref", "hit"]).unwrap();
        let miss = series_key(&CACHE_LOOKUPS, &["ref", "miss"]).unwrap();
        let gauge = series_key(&GITHUB_RATE_LIMIT_REMAINING, &[]).unwrap();
        let text = render([
            (gauge.as_str(), b"4999".to_vec()),
            (miss.as_str(), 2i64.to_be_bytes().to_vec()),
            (hit.as_str(), b"5".to_vec()),
            ("stray key", b"1".to_vec()),
            (hit.as_str().trim_end_matches('}'), b"1".to_vec()),
        ]);
        assert_eq!(
            text,
            "# HELP bindery_edge_cache_lookups_total Ref and image cache lookups of the edge, by cache and result\n\
             # TYPE bindery_edge_cache_lookups_total counter\n\
             bindery_edge_cache_lookups_total{cache=\"ref\",result=\"hit\"} 5\n\
             bindery_edge_cache_lookups_total{cache=\"ref\",result=\"miss\"} 2\n\
             # HELP binderhub_github_rate_limit_remaining GitHub API requests remaining in the current rate-limit window\n\
             # TYPE binderhub_github_rate_limit_remaining gauge\n\
             binderhub_github_rate_limit_remaining 4999\n"
        );
        assert_eq!(render(Vec::<(String, Vec<u8>)>::new()), "");
    }
}

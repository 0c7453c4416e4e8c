//! Ban and allow lists, high-quota specs and per-repo configuration.
//!
//! Patterns are matched like Python's `re.match(pattern, spec, re.IGNORECASE)`: anchored at
//! the start, not at the end, case-insensitive, against the raw spec string as it appears
//! in the URL (percent-encoded for `gl` and `git`). Operators copy these lists from their
//! BinderHub configuration, so the semantics must not drift.

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::PolicyError;

/// The four provider settings, shaped like BinderHub's traitlets (every key optional), so
/// a configuration file or a test vector deserialises straight into it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SpecPolicyConfig {
    /// Specs that may never launch.
    pub banned_specs: Vec<String>,
    /// When non-empty, only these specs may launch (a banned spec stays banned).
    pub allowed_specs: Vec<String>,
    /// Specs that get `per_repo_quota_higher`.
    pub high_quota_specs: Vec<String>,
    /// A list of `{"pattern": <regex>, "config": <object>}`; `null` means none.
    pub spec_config: Value,
}

/// A list of spec patterns, named by the setting it comes from: the error of a pattern
/// that does not compile carries it, so a caller knows which setting to blame without
/// reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecList {
    /// `banned_specs`.
    Banned,
    /// `allowed_specs`.
    Allowed,
    /// `high_quota_specs`.
    HighQuota,
    /// The patterns of `spec_config` entries.
    SpecConfig,
    /// The edge's `prebuild_specs` (a [`SpecPatterns`]).
    Prebuild,
}

impl SpecList {
    /// The setting's name, as operators write it.
    pub const fn setting(self) -> &'static str {
        match self {
            Self::Banned => "banned_specs",
            Self::Allowed => "allowed_specs",
            Self::HighQuota => "high_quota_specs",
            Self::SpecConfig => "spec_config",
            Self::Prebuild => "prebuild_specs",
        }
    }
}

/// A compiled `spec_config` entry: the pattern and the config it merges in.
type SpecConfigEntry = (Regex, Map<String, Value>);

/// Compiled spec policy. Build it once from configuration; every check is a regex match.
#[derive(Debug, Clone)]
pub struct SpecPolicy {
    banned: Vec<Regex>,
    allowed: Vec<Regex>,
    high_quota: Vec<Regex>,
    spec_config: Vec<SpecConfigEntry>,
}

impl SpecPolicy {
    /// Compiles every pattern and validates every `spec_config` entry (a list of
    /// `{"pattern": <regex>, "config": <object>}`, or `null` for none); the first bad one is
    /// the error.
    pub fn new(
        banned_specs: &[String],
        allowed_specs: &[String],
        high_quota_specs: &[String],
        spec_config: Value,
    ) -> Result<Self, PolicyError> {
        Ok(Self {
            banned: compile_all(SpecList::Banned, banned_specs)?,
            allowed: compile_all(SpecList::Allowed, allowed_specs)?,
            high_quota: compile_all(SpecList::HighQuota, high_quota_specs)?,
            spec_config: parse_spec_config(&spec_config)?,
        })
    }

    /// [`SpecPolicy::new`] from the settings as deserialised from configuration.
    pub fn from_config(config: &SpecPolicyConfig) -> Result<Self, PolicyError> {
        Self::new(
            &config.banned_specs,
            &config.allowed_specs,
            &config.high_quota_specs,
            config.spec_config.clone(),
        )
    }

    /// True when `spec` may not launch: a banned pattern matches, or an allow list exists
    /// and no allowed pattern matches.
    pub fn is_banned(&self, spec: &str) -> bool {
        if self.banned.iter().any(|re| re.is_match(spec)) {
            return true;
        }
        !self.allowed.is_empty() && !self.allowed.iter().any(|re| re.is_match(spec))
    }

    /// True when a `high_quota_specs` pattern matches `spec`.
    pub fn has_higher_quota(&self, spec: &str) -> bool {
        self.high_quota.iter().any(|re| re.is_match(spec))
    }

    /// The repo config of `spec`: `{"quota": <per_repo_quota, or per_repo_quota_higher for
    /// a high-quota spec; null when unset>}`, then the `config` of every matching
    /// `spec_config` entry merged in order (later entries win, a `quota` key overrides).
    ///
    /// Infallible: [`SpecPolicy::new`] validated every entry. For an unvalidated
    /// `spec_config` use [`repo_config_from_value`].
    pub fn repo_config(
        &self,
        spec: &str,
        per_repo_quota: Option<u32>,
        per_repo_quota_higher: Option<u32>,
    ) -> Map<String, Value> {
        let quota = if self.has_higher_quota(spec) {
            per_repo_quota_higher
        } else {
            per_repo_quota
        };
        merge_config(&self.spec_config, spec, quota)
    }
}

/// The repo config of `spec` from a raw, unvalidated `spec_config` value: every entry is
/// validated, even when another entry matches, as BinderHub does.
///
/// The starting quota is `per_repo_quota_higher` when given, else `per_repo_quota`: this
/// function does not know the high-quota patterns, so a caller passes
/// `per_repo_quota_higher` only for a spec that [`SpecPolicy::has_higher_quota`] (or passes
/// `None`).
pub fn repo_config_from_value(
    spec_config: &Value,
    spec: &str,
    per_repo_quota: Option<u32>,
    per_repo_quota_higher: Option<u32>,
) -> Result<Map<String, Value>, PolicyError> {
    let quota = per_repo_quota_higher.or(per_repo_quota);
    Ok(merge_config(&parse_spec_config(spec_config)?, spec, quota))
}

/// The per-repo quota a repo config sets: `None` when `quota` is absent or null (and 0,
/// which [`super::check_quota`] reads as unlimited, is returned as it is).
pub fn quota_from_repo_config(config: &Map<String, Value>) -> Result<Option<u32>, PolicyError> {
    match config.get("quota") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|q| u32::try_from(q).ok())
            .map(Some)
            .ok_or(PolicyError::InvalidQuota),
    }
}

/// A list of spec patterns matched like the ban lists (start-anchored, case-insensitive,
/// against the raw spec), for settings other than the four above: the edge's
/// `prebuild_specs` uses it, so that an operator writes every list the same way.
#[derive(Debug, Clone, Default)]
pub struct SpecPatterns {
    patterns: Vec<Regex>,
}

impl SpecPatterns {
    /// Compiles `patterns`; `list` names the setting in the error of a bad pattern.
    pub fn new(list: SpecList, patterns: &[String]) -> Result<Self, PolicyError> {
        Ok(Self {
            patterns: compile_all(list, patterns)?,
        })
    }

    /// True when any pattern matches `spec`.
    pub fn matches(&self, spec: &str) -> bool {
        self.patterns.iter().any(|re| re.is_match(spec))
    }

    /// True when the list is empty (nothing matches).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// The message a banned spec gets (BinderHub's text).
pub fn banned_message(spec: &str) -> String {
    format!("Sorry, {spec} is not allowed to launch. Please contact admins for more info!")
}

fn merge_config(entries: &[SpecConfigEntry], spec: &str, quota: Option<u32>) -> Map<String, Value> {
    let mut config = Map::new();
    config.insert("quota".to_owned(), quota.map_or(Value::Null, Value::from));
    for (re, extra) in entries {
        if re.is_match(spec) {
            config.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    config
}

fn compile_all(list: SpecList, patterns: &[String]) -> Result<Vec<Regex>, PolicyError> {
    patterns.iter().map(|p| compile(list, p)).collect()
}

/// Compiles `pattern` with `re.match` + `IGNORECASE` semantics.
fn compile(list: SpecList, pattern: &str) -> Result<Regex, PolicyError> {
    let invalid = |e: regex::Error| PolicyError::InvalidPattern {
        list,
        pattern: crate::validate::shown(pattern),
        reason: e.to_string(),
    };
    // Compiled alone first: wrapped in `^(?:...)`, a pattern such as `a)|(b` would compile
    // and escape the anchor instead of being refused.
    Regex::new(pattern).map_err(invalid)?;
    Regex::new(&format!("(?i)^(?:{pattern})")).map_err(invalid)
}

fn parse_spec_config(value: &Value) -> Result<Vec<SpecConfigEntry>, PolicyError> {
    let entries = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(entries) => entries,
        _ => {
            return Err(PolicyError::InvalidSpecConfig {
                index: None,
                reason: "expected a list of entries",
            });
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let bad = |reason| PolicyError::InvalidSpecConfig {
                index: Some(i),
                reason,
            };
            let Value::Object(entry) = entry else {
                return Err(bad("expected an object with `pattern` and `config`"));
            };
            let pattern = match entry.get("pattern") {
                Some(Value::String(pattern)) => pattern,
                Some(_) => return Err(bad("`pattern` must be a string")),
                None => return Err(bad("missing `pattern`")),
            };
            let config = match entry.get("config") {
                Some(Value::Object(config)) => config.clone(),
                Some(_) => return Err(bad("`config` must be an object")),
                None => return Err(bad("missing `config`")),
            };
            Ok((compile(SpecList::SpecConfig, pattern)?, config))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(config: Value) -> SpecPolicy {
        SpecPolicy::from_config(&serde_json::from_value(config).unwrap()).unwrap()
    }

    const Z2JH: &str = "jupyterhub/zero-to-jupyterhub-k8s/v0.4";

    #[test]
    fn spec_patterns_match_like_ban_lists() {
        let p = SpecPatterns::new(
            SpecList::Prebuild,
            &["binder-examples/".into(), "a|b".into()],
        )
        .unwrap();
        assert!(p.matches("Binder-Examples/octave/HEAD"));
        assert!(p.matches("b/x/main"));
        assert!(!p.matches("someone/binder-examples/main"));
        assert!(!p.is_empty());
        assert!(!SpecPatterns::default().matches("anything"));
        let err = SpecPatterns::new(SpecList::Prebuild, &["a)|(b".into()]).unwrap_err();
        assert!(err.to_string().contains("prebuild_specs"), "{err}");
    }

    #[test]
    fn banned_specs_ban() {
        assert!(policy(json!({"banned_specs": ["^jupyterhub.*"]})).is_banned(Z2JH));
    }

    #[test]
    fn allowed_specs_allow_and_ban_the_rest() {
        let p = policy(json!({"allowed_specs": ["^jupyterhub.*"]}));
        assert!(!p.is_banned(Z2JH));
        assert!(p.is_banned("someone/else/HEAD"));
    }

    #[test]
    fn banned_wins_over_allowed() {
        assert!(
            policy(json!({"allowed_specs": ["^jupyterhub.*"], "banned_specs": [".*zero-to-.*"]}))
                .is_banned(Z2JH)
        );
    }

    #[test]
    fn bans_are_case_insensitive() {
        assert!(policy(json!({"banned_specs": [".*ddEEFF.*"]})).is_banned("AABBCcc/DDeeFF/v0.4"));
    }

    #[test]
    fn patterns_are_anchored_at_the_start_only() {
        let p = policy(json!({"banned_specs": ["evil", "a|b"]}));
        assert!(p.is_banned("evil/repo/HEAD"));
        assert!(p.is_banned("EVIL"));
        assert!(!p.is_banned("not-evil/repo/HEAD"));
        assert!(p.is_banned("b/anything"), "alternation stays anchored");
        assert!(!p.is_banned("xb"));
    }

    #[test]
    fn patterns_match_the_raw_percent_encoded_spec() {
        let p = policy(json!({"banned_specs": ["https%3A%2F%2Fevil\\.example"]}));
        assert!(p.is_banned("https%3A%2F%2Fevil.example%2Frepo/main"));
        assert!(!p.is_banned("https://evil.example/repo/main"));
    }

    #[test]
    fn nothing_configured_bans_nothing() {
        let p = policy(json!({}));
        assert!(!p.is_banned(Z2JH));
        assert!(!p.has_higher_quota(Z2JH));
    }

    #[test]
    fn high_quota_specs() {
        let p = policy(json!({"high_quota_specs": ["^jupyterhub.*"]}));
        assert!(p.has_higher_quota(Z2JH));
        assert!(!p.has_higher_quota("other/repo/HEAD"));
        assert_eq!(
            p.repo_config(Z2JH, Some(100), Some(200))["quota"],
            json!(200)
        );
        assert_eq!(
            p.repo_config("other/repo/HEAD", Some(100), Some(200))["quota"],
            json!(100)
        );
        assert_eq!(
            p.repo_config("other/repo/HEAD", None, Some(200))["quota"],
            Value::Null
        );
    }

    #[test]
    fn spec_config_merges_matching_entries_in_order() {
        let entry = json!([{"pattern": "^jupyterhub.*", "config": {"key1": "val1", "quota": 999}}]);
        let p = policy(json!({"spec_config": entry}));
        assert_eq!(
            Value::Object(p.repo_config(
                "totallynotjupyterhub/zero-to-jupyterhub-k8s/v0.4",
                Some(10),
                None
            )),
            json!({"quota": 10})
        );
        assert_eq!(
            Value::Object(p.repo_config(Z2JH, Some(10), None)),
            json!({"quota": 999, "key1": "val1"})
        );
        let p = policy(json!({"spec_config": [
            {"pattern": "^jupyterhub", "config": {"quota": 300, "a": 1}},
            {"pattern": "^jupyterhub/zero", "config": {"quota": 400}},
            {"pattern": "^nomatch", "config": {"quota": 1}},
        ]}));
        assert_eq!(
            Value::Object(p.repo_config(Z2JH, Some(10), None)),
            json!({"quota": 400, "a": 1})
        );
    }

    #[test]
    fn invalid_spec_config_entries_are_errors_even_when_others_match() {
        let cases = [
            json!([{"pattern": 100, "config": {"key1": "val1", "quota": 999}}]),
            json!([{"pattern": "^jupyterhub.*", "config": "not a dictionary"}]),
            json!([{"pattern": "^jupyterhub.*", "config": {"key1": "val1", "quota": 999}}, {"pattern": "mypattern"}]),
            json!([{"config": {}}]),
            json!(["^jupyterhub"]),
            json!({"pattern": "x", "config": {}}),
            json!([{"pattern": "(", "config": {}}]),
        ];
        for spec_config in cases {
            assert!(
                repo_config_from_value(&spec_config, Z2JH, Some(10), None).is_err(),
                "{spec_config}"
            );
            assert!(
                SpecPolicy::new(&[], &[], &[], spec_config.clone()).is_err(),
                "{spec_config}"
            );
            let config = SpecPolicyConfig {
                spec_config: spec_config.clone(),
                ..Default::default()
            };
            assert!(SpecPolicy::from_config(&config).is_err(), "{spec_config}");
        }
        let two = json!([{"pattern": "a", "config": {}}, {"pattern": 1, "config": {}}]);
        let err = repo_config_from_value(&two, Z2JH, None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `spec_config` entry 1: `pattern` must be a string"
        );
    }

    #[test]
    fn repo_config_from_value_matches_the_method() {
        let spec_config = json!([{"pattern": "^jupyterhub.*", "config": {"key1": "val1"}}]);
        let got = repo_config_from_value(&spec_config, Z2JH, Some(10), None).unwrap();
        assert_eq!(Value::Object(got), json!({"quota": 10, "key1": "val1"}));
        let got = repo_config_from_value(&spec_config, "other/x/HEAD", Some(10), Some(20)).unwrap();
        assert_eq!(Value::Object(got), json!({"quota": 20}));
        let got = repo_config_from_value(&Value::Null, Z2JH, None, None).unwrap();
        assert_eq!(Value::Object(got), json!({"quota": null}));
    }

    #[test]
    fn invalid_patterns_name_the_list_and_pattern() {
        for (key, pattern) in [
            ("banned_specs", "("),
            ("allowed_specs", "a)|(b"),
            ("high_quota_specs", "(?=x)"),
            ("banned_specs", "\\1"),
        ] {
            let config: SpecPolicyConfig =
                serde_json::from_value(json!({ key: [pattern] })).unwrap();
            let err = SpecPolicy::from_config(&config).unwrap_err();
            let PolicyError::InvalidPattern { list, .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(list.setting(), key);
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn quota_from_repo_config_reads_integers() {
        let read = |v: Value| quota_from_repo_config(v.as_object().unwrap());
        assert_eq!(read(json!({"quota": 300})), Ok(Some(300)));
        assert_eq!(read(json!({"quota": 0})), Ok(Some(0)));
        assert_eq!(read(json!({"quota": null})), Ok(None));
        assert_eq!(read(json!({})), Ok(None));
        for bad in [
            json!({"quota": -1}),
            json!({"quota": 1.5}),
            json!({"quota": "3"}),
            json!({"quota": 4_294_967_296_u64}),
        ] {
            assert_eq!(read(bad), Err(PolicyError::InvalidQuota));
        }
    }

    #[test]
    fn banned_message_is_binderhubs() {
        assert_eq!(
            banned_message("a/b/HEAD"),
            "Sorry, a/b/HEAD is not allowed to launch. Please contact admins for more info!"
        );
    }
}

//! The federation's configuration, in the redirector's own JSON shape, so that the
//! `config.json` mybinder's chart renders (`toJson .Values.federationRedirect`) is taken
//! unchanged: keys the redirector does not read (the chart's `enabled`, `image`,
//! `resources`, ...) are ignored, `null` members (how a chart removes a key) are dropped,
//! trailing `/` of member URLs removed, and the defaults are the redirector's.
//!
//! Everything an operator writes is bounded and checked here, with an error that names
//! the field: the size of the text, the number of members, names, URLs (absolute
//! `http(s)`, no credentials, query or fragment, no `..` or encoded bytes in the path),
//! numbers (finite, within ranges), and at least one `prime`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The longest configuration text taken, in bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// The most members a federation may have.
pub const MAX_MEMBERS: usize = 32;
/// The longest member name, in bytes.
pub const MAX_NAME_BYTES: usize = 63;
/// The longest member URL, in bytes.
pub const MAX_URL_BYTES: usize = 512;

/// Why a federation configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FederationConfigError {
    /// The text is over [`MAX_CONFIG_BYTES`].
    #[error("the configuration is {0} bytes, more than the {MAX_CONFIG_BYTES} allowed")]
    TooLarge(usize),
    /// The text is not JSON of the redirector's shape.
    #[error("the configuration is not the redirector's JSON: {0}")]
    Json(String),
    /// A field holds a value that cannot be used.
    #[error("`{field}` is invalid: {reason}")]
    Invalid {
        /// The field, as a JSON path (`hosts.gesis.url`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// More members than [`MAX_MEMBERS`].
    #[error("{0} members, more than the {MAX_MEMBERS} allowed")]
    TooManyMembers(usize),
    /// No member has `prime: true` (the redirector refuses to start without one).
    #[error("no member has `prime: true`: the prime answers every request but /build")]
    NoPrime,
}

/// How a member is chosen for a `/build` request without a usable cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancer {
    /// Weighted rendezvous hashing of the repository: one member per repository.
    Rendezvous,
    /// Weighted random choice (mybinder production's setting).
    Random,
}

/// The `check` settings: when and how members are checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckSettings {
    /// Seconds between two checks of a healthy member.
    pub period: f64,
    /// Relative jitter of the period: each wait is `period * (1 + jitter * (0.5 - r))`.
    pub jitter: f64,
    /// Attempts of a check that raises (no answer, not 200, not JSON) before the member
    /// counts as unhealthy; each further attempt a second after the last.
    pub retries: u32,
    /// Seconds each request of a check may take.
    pub timeout: f64,
    /// Seconds between two checks of an unhealthy member.
    pub failed_period: f64,
}

impl Default for CheckSettings {
    /// The redirector's code defaults.
    fn default() -> Self {
        Self {
            period: 10.0,
            jitter: 0.1,
            retries: 5,
            timeout: 2.0,
            failed_period: 300.0,
        }
    }
}

/// One member BinderHub (a Bindery edge or a Python BinderHub).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its name: the key in `hosts`, the `member` label of the metrics.
    pub name: String,
    /// Its base URL, without a trailing `/`: redirects go to `<url><path and query>`, and
    /// it is the value of the `host` cookie.
    pub url: String,
    /// Its weight (0: never chosen, still checked and listed).
    pub weight: f64,
    /// Its `/health` URL.
    pub health: String,
    /// Its `/versions` URL.
    pub versions: String,
    /// Whether it is a prime: the one everything but `/build` is proxied to (the first
    /// prime by name), and a fallback when no member is healthy.
    pub prime: bool,
    /// The member's entry as written, for `/active_hosts`.
    pub raw: Value,
}

/// A parsed, checked federation configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// `check`.
    pub check: CheckSettings,
    /// `load_balancer`.
    pub load_balancer: LoadBalancer,
    /// `pod_headroom`: free pod slots a member must keep to count as healthy (0: off).
    pub pod_headroom: u64,
    /// `host_cookie_age_hours`: the lifetime of the `host` cookie.
    pub host_cookie_age_hours: f64,
    /// The members, by name.
    pub members: Vec<Member>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    check: Option<RawCheck>,
    #[serde(default)]
    load_balancer: Option<String>,
    #[serde(default)]
    pod_headroom: Option<Value>,
    #[serde(default)]
    host_cookie_age_hours: Option<Value>,
    #[serde(default)]
    hosts: Option<BTreeMap<String, Option<Value>>>,
}

#[derive(Deserialize)]
struct RawCheck {
    period: Option<Value>,
    jitter: Option<Value>,
    retries: Option<Value>,
    timeout: Option<Value>,
    failed_period: Option<Value>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> FederationConfigError {
    FederationConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A number within `min..=max` (JSON `null` or absent: `default`).
fn number(
    field: &str,
    value: Option<&Value>,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, FederationConfigError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    let n = value
        .as_f64()
        .ok_or_else(|| invalid(field, format!("expected a number, found {value}")))?;
    if !n.is_finite() || n < min || n > max {
        return Err(invalid(field, format!("{n} is not within {min}..={max}")));
    }
    Ok(n)
}

/// Checks a member URL: absolute `http(s)`, a host, no credentials, query or fragment,
/// and a path of plain characters without `..`. Returns it without trailing `/`.
pub fn check_url(field: &str, raw: &str) -> Result<String, FederationConfigError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(invalid(field, format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| invalid(field, format!("{e}: {raw:?}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(field, format!("{raw:?} is not an http(s) URL")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("{raw:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, "a member URL carries no credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(field, format!("{raw:?} has a query or fragment")));
    }
    // The parsed path, compared to the written one: `url` resolves `..` and encodes
    // what it must, either of which would send requests somewhere the operator did not
    // write.
    let path = url.path();
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    let written_plainly = !raw.contains("..") && !raw.contains(['%', '\\']) && raw.contains(path);
    if !plain || path.contains("//") || !written_plainly {
        return Err(invalid(
            field,
            format!("the path of {raw:?} must be plain segments (letters, digits, `-._~`)"),
        ));
    }
    let mut text = url.to_string();
    while text.ends_with('/') {
        text.pop();
    }
    Ok(text)
}

fn member(name: &str, raw: &Value) -> Result<Member, FederationConfigError> {
    let field = |key: &str| format!("hosts.{name}.{key}");
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(invalid(
            format!("hosts.{name}"),
            format!("a member name is 1 to {MAX_NAME_BYTES} letters, digits, `-`, `.` or `_`"),
        ));
    }
    let object = raw
        .as_object()
        .ok_or_else(|| invalid(format!("hosts.{name}"), "expected an object or null"))?;
    let text = |key: &str| -> Result<Option<&str>, FederationConfigError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(invalid(
                field(key),
                format!("expected a URL, found {other}"),
            )),
        }
    };
    let url = text("url")?.ok_or_else(|| invalid(field("url"), "every member needs a url"))?;
    let url = check_url(&field("url"), url)?;
    let health = match text("health")? {
        Some(raw) => check_url(&field("health"), raw)?,
        None => format!("{url}/health"),
    };
    let versions = match text("versions")? {
        Some(raw) => check_url(&field("versions"), raw)?,
        None => format!("{url}/versions"),
    };
    let weight = number(&field("weight"), object.get("weight"), 1.0, 0.0, 1e9)?;
    let prime = match object.get("prime") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(
                field("prime"),
                format!("expected true or false, found {other}"),
            ));
        }
    };
    Ok(Member {
        name: name.to_owned(),
        url,
        weight,
        health,
        versions,
        prime,
        raw: raw.clone(),
    })
}

impl FederationConfig {
    /// Parses the `federation` variable: `None` when it is empty (not a federation).
    pub fn parse(text: &str) -> Result<Option<Self>, FederationConfigError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() > MAX_CONFIG_BYTES {
            return Err(FederationConfigError::TooLarge(text.len()));
        }
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| FederationConfigError::Json(e.to_string()))?;
        let defaults = CheckSettings::default();
        let check = match raw.check {
            None => defaults,
            Some(c) => CheckSettings {
                period: number(
                    "check.period",
                    c.period.as_ref(),
                    defaults.period,
                    1.0,
                    86_400.0,
                )?,
                jitter: number("check.jitter", c.jitter.as_ref(), defaults.jitter, 0.0, 1.0)?,
                retries: number("check.retries", c.retries.as_ref(), 5.0, 1.0, 20.0)? as u32,
                timeout: number(
                    "check.timeout",
                    c.timeout.as_ref(),
                    defaults.timeout,
                    0.1,
                    60.0,
                )?,
                failed_period: number(
                    "check.failed_period",
                    c.failed_period.as_ref(),
                    defaults.failed_period,
                    1.0,
                    86_400.0,
                )?,
            },
        };
        let load_balancer = match raw.load_balancer.as_deref() {
            None | Some("rendezvous") => LoadBalancer::Rendezvous,
            Some("random") => LoadBalancer::Random,
            Some(other) => {
                return Err(invalid(
                    "load_balancer",
                    format!("{other:?}: expected \"rendezvous\" or \"random\""),
                ));
            }
        };
        let pod_headroom =
            number("pod_headroom", raw.pod_headroom.as_ref(), 10.0, 0.0, 1e6)? as u64;
        let host_cookie_age_hours = number(
            "host_cookie_age_hours",
            raw.host_cookie_age_hours.as_ref(),
            4.0,
            0.0,
            24.0 * 366.0,
        )?;
        let hosts = raw.hosts.unwrap_or_default();
        let members: Vec<Member> = hosts
            .iter()
            .filter_map(|(name, entry)| entry.as_ref().map(|e| member(name, e)))
            .collect::<Result<_, _>>()?;
        if members.len() > MAX_MEMBERS {
            return Err(FederationConfigError::TooManyMembers(members.len()));
        }
        if !members.iter().any(|m| m.prime) {
            return Err(FederationConfigError::NoPrime);
        }
        Ok(Some(Self {
            check,
            load_balancer,
            pod_headroom,
            host_cookie_age_hours,
            members,
        }))
    }

    /// The prime everything but `/build` is proxied to: the first prime by name (`parse`
    /// refuses a configuration without one).
    pub fn prime(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.prime)
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

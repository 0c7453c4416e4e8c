//! The settings of `/build`'s brakes: build tokens and the per-client rate limit, with
//! BinderHub's defaults.

use bindery_core::Secret;
use bindery_core::build_token::{self, DEFAULT_EXPIRES_SECONDS};
use bindery_core::validate::shown;
use bindery_core::worker_api::MAX_PERIOD_SECONDS;

use super::parse::parse_seconds;
use super::{
    BUILD_RATE_LIMIT, BUILD_RATE_PERIOD_SECONDS, BUILD_TOKEN_CHECK_ORIGIN,
    BUILD_TOKEN_EXPIRES_SECONDS, BUILD_TOKEN_SECRET, ConfigError,
};

/// Build tokens (`build_token_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTokenSettings {
    /// The secret's bytes (`build_token_secret`, hex); `None`: the edge generates one and
    /// keeps it in the key-value store, shared by every host on that store.
    pub secret: Option<Secret>,
    /// Lifetime of a minted token (`build_token_expires_seconds`, default 300).
    pub expires_seconds: u64,
    /// Whether a token's origin must be the request's (`build_token_check_origin`).
    pub check_origin: bool,
}

impl Default for BuildTokenSettings {
    fn default() -> Self {
        Self {
            secret: None,
            expires_seconds: DEFAULT_EXPIRES_SECONDS,
            check_origin: true,
        }
    }
}

/// The per-client limit on `/build` (`build_rate_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildRate {
    /// Requests per client per window; 0 disables the limit (`build_rate_limit`, default 10).
    pub limit: u32,
    /// The window in seconds (`build_rate_period_seconds`, default 3600).
    pub period_seconds: u64,
}

impl Default for BuildRate {
    fn default() -> Self {
        Self {
            limit: 10,
            period_seconds: 3600,
        }
    }
}

/// Reads both from `value` (a trimmed, non-empty value or `None`).
pub(crate) fn parse_limits(
    mut value: impl FnMut(&'static str) -> Result<Option<String>, ConfigError>,
) -> Result<(BuildTokenSettings, BuildRate), ConfigError> {
    let mut token = BuildTokenSettings::default();
    if let Some(hex) = value(BUILD_TOKEN_SECRET)? {
        // The reason never quotes the value: it is a secret.
        build_token::parse_secret(&hex).map_err(|e| ConfigError::Invalid {
            name: BUILD_TOKEN_SECRET,
            reason: e.to_string(),
        })?;
        token.secret = Some(Secret::new(hex));
    }
    if let Some(raw) = value(BUILD_TOKEN_EXPIRES_SECONDS)? {
        token.expires_seconds = parse_seconds(BUILD_TOKEN_EXPIRES_SECONDS, &raw)?;
    }
    if let Some(raw) = value(BUILD_TOKEN_CHECK_ORIGIN)? {
        token.check_origin = parse_bool(BUILD_TOKEN_CHECK_ORIGIN, &raw)?;
    }
    let mut rate = BuildRate::default();
    if let Some(raw) = value(BUILD_RATE_LIMIT)? {
        rate.limit = raw.parse().map_err(|_| ConfigError::Invalid {
            name: BUILD_RATE_LIMIT,
            reason: format!("expected a whole number (0 disables), got {}", shown(&raw)),
        })?;
    }
    if let Some(raw) = value(BUILD_RATE_PERIOD_SECONDS)? {
        rate.period_seconds = parse_seconds(BUILD_RATE_PERIOD_SECONDS, &raw)?;
    }
    if rate.limit > 0 && !(1..=MAX_PERIOD_SECONDS).contains(&rate.period_seconds) {
        return Err(ConfigError::Invalid {
            name: BUILD_RATE_PERIOD_SECONDS,
            reason: format!("expected 1 to {MAX_PERIOD_SECONDS} seconds"),
        });
    }
    Ok((token, rate))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, any case).
pub(super) fn parse_bool(name: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got {}", shown(raw)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        pairs: &[(&'static str, &str)],
    ) -> Result<(BuildTokenSettings, BuildRate), ConfigError> {
        parse_limits(|name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned()))
        })
    }

    #[test]
    fn defaults_are_binderhubs() {
        let (token, rate) = parse(&[]).unwrap_or_default();
        assert_eq!(token, BuildTokenSettings::default());
        assert_eq!((token.expires_seconds, token.check_origin), (300, true));
        assert_eq!((rate.limit, rate.period_seconds), (10, 3600));
    }

    #[test]
    fn values_parse_and_bad_ones_name_their_variable_without_the_secret() {
        let secret = "ab".repeat(32);
        let (token, rate) = parse(&[
            (BUILD_TOKEN_SECRET, &secret),
            (BUILD_TOKEN_EXPIRES_SECONDS, "60"),
            (BUILD_TOKEN_CHECK_ORIGIN, "False"),
            (BUILD_RATE_LIMIT, "0"),
            (BUILD_RATE_PERIOD_SECONDS, "0"),
        ])
        .unwrap_or_default();
        assert_eq!(
            token.secret.as_ref().map(Secret::expose),
            Some(secret.as_str())
        );
        assert_eq!((token.expires_seconds, token.check_origin), (60, false));
        assert_eq!(rate.limit, 0, "0 disables, whatever the period");
        let cases = [
            (BUILD_TOKEN_SECRET, "SECRETSECRET"),
            (BUILD_TOKEN_SECRET, "abcd"),
            (BUILD_TOKEN_EXPIRES_SECONDS, "5m"),
            (BUILD_TOKEN_CHECK_ORIGIN, "maybe"),
            (BUILD_RATE_LIMIT, "-1"),
            (BUILD_RATE_PERIOD_SECONDS, "0"),
            (BUILD_RATE_PERIOD_SECONDS, "99999999"),
        ];
        for (name, raw) in cases {
            let err = parse(&[(name, raw)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(&format!("`{name}`")), "{name}={raw}: {err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }
}

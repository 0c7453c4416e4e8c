//! [`Secret`]: a string that must never reach a log, a message or a page.
//!
//! Tokens, passwords and webhook secrets travel inside configuration structs that are
//! printed with `{:?}` when something goes wrong. Wrapping them here makes the safe output
//! the default: `Debug` and `Display` both show `<redacted>`, and the value comes out only
//! through [`Secret::expose`], at the one place that sends it (a header, an HMAC key).

use std::fmt;

/// What `Debug` and `Display` print instead of the value.
const REDACTED: &str = "<redacted>";

/// A secret value: a token, a password or a webhook secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, to put into a header or an HMAC; never into a log or a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        for shown in [
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{:?}", Some(&secret)),
            format!("{secret:#?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[test]
    fn the_value_comes_out_only_through_expose() {
        let secret = Secret::from("t0ken");
        assert_eq!(secret.expose(), "t0ken");
        assert_eq!(Secret::from(String::from("t0ken")), secret);
        assert_ne!(Secret::new("other"), secret);
    }
}

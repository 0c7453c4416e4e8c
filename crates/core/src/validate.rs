//! Refusal of hostile input before it reaches anything that acts on it.
//!
//! Specs, refs and URLs arrive from strangers and end up on the command line of `git` and
//! `repo2docker`, in Kubernetes object names and in redirects. Every check here names the
//! problem in its message so that a user who mistyped a link can fix it, and every
//! value shown back is truncated and escaped so that an error message cannot itself carry
//! control characters or megabytes of text.

use thiserror::Error;

/// Longest spec accepted, in bytes (the raw, percent-encoded path text).
pub const MAX_SPEC_LEN: usize = 4096;
/// Longest ref accepted, in bytes. Git refuses longer names in practice.
pub const MAX_REF_LEN: usize = 255;
/// Longest repository URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest launch path (`urlpath`, `labpath`, `filepath`) accepted, in bytes.
pub const MAX_PATH_LEN: usize = 2048;

/// Input that Bindery refuses, with the reason in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// A required part is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which part of the input.
        what: &'static str,
    },
    /// Longer than Bindery accepts.
    #[error("{what} is too long: {len} bytes, at most {max} are accepted")]
    TooLong {
        /// Which part of the input.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Would be read as a command-line option by git or repo2docker.
    #[error("{what} must not start with '-' (it would be read as a command-line option): {shown}")]
    LeadingDash {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// Holds a control character (NUL, newline, escape, ...).
    #[error("{what} contains a control character: {shown}")]
    ControlChar {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// Holds whitespace where none is allowed.
    #[error("{what} contains whitespace: {shown}")]
    Whitespace {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// Holds `..`, a path traversal.
    #[error("{what} contains '..': {shown}")]
    Traversal {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// A launch path segment that reads as `.` or `..` once percent-decoded (once or
    /// more), which a browser or a proxy may resolve to leave the user's server.
    #[error("{what} has a path segment that reads as '.' or '..' once decoded: {shown}")]
    DotSegment {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// A launch path that is not a relative path on the user's server.
    #[error("{what} must be a relative path on the server, not {shown}")]
    NotRelative {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// Percent-encoding that does not decode to UTF-8 text.
    #[error("{what} is not valid percent-encoded UTF-8: {shown}")]
    BadEncoding {
        /// Which part of the input.
        what: &'static str,
        /// The value, truncated and escaped.
        shown: String,
    },
    /// A provider prefix that Bindery does not know.
    #[error(
        "No provider found for prefix {shown} (known: {known})",
        known = crate::provider::KnownPrefixes
    )]
    UnknownProvider {
        /// The prefix, truncated and escaped.
        shown: String,
    },
    /// A spec that its provider cannot parse; the message comes from the provider.
    #[error("{message}")]
    BadSpec {
        /// The provider's explanation.
        message: String,
    },
    /// A resolved ref that does not have the shape its provider produces.
    #[error("resolved ref {shown} is not valid for {provider}: expected {expected}")]
    BadResolvedRef {
        /// The provider id.
        provider: &'static str,
        /// The ref, truncated and escaped.
        shown: String,
        /// What the provider's refs look like.
        expected: &'static str,
    },
}

/// Shows a value inside an error message: at most 80 characters, control characters escaped.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    for c in chars.by_ref().take(80) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    format!("\"{out}\"")
}

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), InputError> {
    if value.len() > max {
        return Err(InputError::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn check_chars(what: &'static str, value: &str, allow_space: bool) -> Result<(), InputError> {
    if value.chars().any(char::is_control) {
        return Err(InputError::ControlChar {
            what,
            shown: shown(value),
        });
    }
    if !allow_space && value.chars().any(char::is_whitespace) {
        return Err(InputError::Whitespace {
            what,
            shown: shown(value),
        });
    }
    Ok(())
}

/// Checks the raw spec text of a URL before any provider looks at it.
pub fn validate_spec_text(spec: &str) -> Result<(), InputError> {
    if spec.is_empty() {
        return Err(InputError::Empty { what: "spec" });
    }
    check_len("spec", spec, MAX_SPEC_LEN)?;
    check_chars("spec", spec, false)
}

/// Checks an unresolved or resolved ref that will be handed to git or repo2docker.
///
/// `what` names the part for the message (for example `"ref"`).
pub fn validate_ref(what: &'static str, value: &str) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::Empty { what });
    }
    check_len(what, value, MAX_REF_LEN)?;
    check_chars(what, value, false)?;
    if value.starts_with('-') {
        return Err(InputError::LeadingDash {
            what,
            shown: shown(value),
        });
    }
    if value.contains("..") {
        return Err(InputError::Traversal {
            what,
            shown: shown(value),
        });
    }
    Ok(())
}

/// Checks a repository URL (or DOI) that will be handed to git or repo2docker.
pub fn validate_repo_url(what: &'static str, value: &str) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::Empty { what });
    }
    check_len(what, value, MAX_URL_LEN)?;
    check_chars(what, value, false)?;
    if value.starts_with('-') {
        return Err(InputError::LeadingDash {
            what,
            shown: shown(value),
        });
    }
    // `..` as a path segment walks out of the repository path; inside a name it is harmless
    // but never needed by a real repository link, so refuse it outright.
    if value.contains("..") {
        return Err(InputError::Traversal {
            what,
            shown: shown(value),
        });
    }
    Ok(())
}

/// Percent-decodes `value`, refusing anything that is not UTF-8.
pub fn percent_decode(what: &'static str, value: &str) -> Result<String, InputError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| InputError::BadEncoding {
            what,
            shown: shown(value),
        })
}

/// True when `value` is a full lower-case hexadecimal commit id (SHA-1 or SHA-256).
pub fn is_full_commit(value: &str) -> bool {
    (value.len() == 40 || value.len() == 64)
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a path inside the user's server (`urlpath`, `labpath`, `filepath`).
///
/// The result of a launch redirects the browser to `<server url>/<path>`, so the path must
/// stay on that server: no scheme, no backslashes (browsers
/// read them as slashes) and no `..` segments.
pub fn validate_launch_path(what: &'static str, value: &str) -> Result<(), InputError> {
    check_len(what, value, MAX_PATH_LEN)?;
    check_chars(what, value, true)?;
    let not_relative = || InputError::NotRelative {
        what,
        shown: shown(value),
    };
    if value.contains('\\') {
        return Err(not_relative());
    }
    // Leading slashes are dropped before the path is joined to the server URL, so
    // `//host/x` stays on the server as `host/x`; a scheme would not.
    let trimmed = value.trim_start_matches('/');
    if has_scheme(trimmed) {
        return Err(not_relative());
    }
    let path = trimmed.split(['?', '#']).next().unwrap_or("");
    if path.split('/').any(|seg| seg == "..") {
        return Err(InputError::Traversal {
            what,
            shown: shown(value),
        });
    }
    if crate::launch::has_dot_segment(path) {
        return Err(InputError::DotSegment {
            what,
            shown: shown(value),
        });
    }
    Ok(())
}

fn has_scheme(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_that_could_become_options_or_traversals_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("-uhack", "must not start with '-'"),
            ("--upload-pack=touch /tmp/x", "contains whitespace"),
            ("--upload-pack=x", "must not start with '-'"),
            ("main/../../etc", "contains '..'"),
            ("ma\0in", "control character"),
            ("ma\nin", "control character"),
            ("with space", "whitespace"),
            ("", "is empty"),
        ];
        for (value, expected) in cases {
            let err = validate_ref("ref", value).expect_err(value).to_string();
            assert!(err.contains(expected), "{value:?}: {err}");
        }
        let long = "a".repeat(MAX_REF_LEN + 1);
        assert!(
            validate_ref("ref", &long)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
        for ok in ["main", "HEAD", "v1.0.2", "feature/save_world", "0.9.1"] {
            validate_ref("ref", ok).unwrap();
        }
    }

    #[test]
    fn launch_paths_stay_on_the_server() {
        for ok in [
            "",
            "lab",
            "/lab/tree/a.ipynb",
            "doc/tree/x y.ipynb",
            "tree?x=1",
            "voila/render/a.ipynb",
        ] {
            validate_launch_path("urlpath", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://evil.example",
            "javascript:alert(1)",
            "/\\evil.example",
            "a/../../hub/admin",
            "a/%2e%2e/x",
            "a\u{7}b",
        ] {
            assert!(validate_launch_path("urlpath", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_messages_show_a_short_escaped_value() {
        let value = format!("-{}", "x".repeat(70_000));
        let msg = validate_ref("ref", &value[..200]).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
        assert_eq!(shown("a\u{1b}b"), "\"a\\u{1b}b\"");
    }

    #[test]
    fn full_commits_are_recognised() {
        assert!(is_full_commit("1479e0252b2e648bb755ee913292b79495931717"));
        assert!(!is_full_commit("1479E0252B2E648BB755EE913292B79495931717"));
        assert!(!is_full_commit("1479e02"));
        assert!(is_full_commit(&"a".repeat(64)));
    }
}

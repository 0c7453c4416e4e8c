//! What a provider module implements: the [`Provider`] trait over its parsed spec, and
//! the vocabulary of its half of a resolution.
//!
//! The shared [`crate::resolve::Resolver`] runs the conversation (request headers and
//! credentials, redirects, size limits, the pinned shortcut, the outcome's messages and
//! the resolved ref's checks); a provider only says which request comes next and how to
//! read an answer, as a [`Next`].

use std::fmt;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{ProviderSettings, is_digits};
use crate::resolve::Revalidation;

/// The resolved-ref shape of the git-based providers, in words.
pub const FULL_COMMIT: &str = "a full commit id (40 lower-case hex digits)";

/// What every provider's parsed spec answers. [`super::Spec`] dispatches to it.
pub trait Provider: fmt::Debug {
    /// The spec text as given (trailing slashes removed): what ban lists match against.
    fn raw(&self) -> &str;

    /// The repository URL (or DOI) as users know it; what repo2docker clones or fetches.
    fn repo_url(&self) -> String;

    /// The ref as written in the link; `None` for providers whose links carry no ref.
    fn unresolved_ref(&self) -> Option<&str> {
        None
    }

    /// The build slug, the input of image naming. Providers whose slug depends on the
    /// resolved record need `resolved_ref` and give `None` without it.
    fn build_slug(&self, resolved_ref: Option<&str>) -> Option<String>;

    /// The spec of the same launch pinned to `resolved_ref`.
    fn resolved_spec(&self, resolved_ref: &str) -> String;

    /// A link a person can open to see the resolved ref.
    fn ref_url(&self, resolved_ref: &str) -> String;

    /// The part of the spec that names the repository without its ref: a cache key.
    fn repo_key(&self) -> String {
        self.raw().to_string()
    }

    /// Whether `resolved_ref` has the shape this provider's resolution produces (described
    /// in words by [`super::ProviderInfo::resolved_ref`]).
    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool;

    /// The first step of resolving the unresolved ref.
    fn start(&self, cx: &mut Cx<'_>) -> Next;

    /// Reads the answer to the last [`Next::Fetch`] (redirects already followed).
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next;

    /// Reads the stdout of `git ls-remote` after a [`Next::LsRemote`].
    fn on_ls_remote(&self, _cx: &mut Cx<'_>, _stdout: &str) -> Next {
        Next::Failed("unexpected git ls-remote output".into())
    }
}

/// Which `Accept` header a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// None: a web page or a DOI landing page, read only for where it redirects.
    Any,
    /// `application/json`.
    Json,
    /// `application/json` and GitHub's `application/vnd.github+json`.
    GitHub,
}

/// Which of the resolver's credentials a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// The GitHub token, as a bearer token.
    GitHub,
    /// The GitLab token, as `Private-Token`.
    GitLab,
}

/// A `GET` a provider asks for. Redirects repeat it, without `if_none_match`, at the
/// new location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The URL.
    pub url: String,
    /// The `Accept` header.
    pub accept: Accept,
    /// The credential sent.
    pub auth: Auth,
    /// An ETag for a conditional request.
    pub if_none_match: Option<String>,
}

impl Fetch {
    /// A JSON API request without credentials.
    pub fn json(url: String) -> Fetch {
        Fetch {
            url,
            accept: Accept::Json,
            auth: Auth::None,
            if_none_match: None,
        }
    }

    /// A plain request, read for its status or where it redirects.
    pub fn plain(url: String) -> Fetch {
        Fetch {
            accept: Accept::Any,
            ..Fetch::json(url)
        }
    }
}

/// What a provider's step says comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this request.
    Fetch(Fetch),
    /// Run `git ls-remote -- <url> <git_ref>` (ssh and git:// URLs, which HTTP cannot reach).
    LsRemote {
        /// The repository URL.
        url: String,
        /// The ref to look up.
        git_ref: String,
    },
    /// The ref resolved to `resolved_ref`; `etag` is kept for a later revalidation.
    Resolved {
        /// The immutable ref.
        resolved_ref: String,
        /// GitHub's ETag.
        etag: Option<String>,
    },
    /// The repository or ref does not exist (or is private).
    NotFound,
    /// The provider's rate limit is exhausted.
    RateLimited {
        /// When the limit resets (unix seconds), when the provider said.
        reset_at: Option<u64>,
        /// The message for the user.
        message: String,
    },
    /// Anything else went wrong; the reason is shown to the user.
    Failed(String),
}

impl Next {
    /// Resolved without an ETag.
    pub fn resolved(resolved_ref: String) -> Next {
        Next::Resolved {
            resolved_ref,
            etag: None,
        }
    }
}

/// The mutable state of one resolution that providers read and advance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Which of its requests the provider is waiting for (its own numbering, from 0).
    pub stage: u8,
    /// The ref being looked up; starts as the unresolved ref.
    pub git_ref: String,
    /// True once `master`/`main` was retried as `HEAD`.
    pub fell_back: bool,
    /// The last `x-ratelimit-remaining` GitHub reported.
    pub rate_remaining: Option<i64>,
}

/// What a provider's step sees besides its own spec.
#[derive(Debug)]
pub struct Cx<'a> {
    /// Where the providers live.
    pub settings: &'a ProviderSettings,
    /// A cached GitHub answer to revalidate.
    pub revalidation: Option<&'a Revalidation>,
    /// The URL the last answer came from, after redirects.
    pub url: &'a str,
    /// The state the provider advances.
    pub progress: &'a mut Progress,
}

/// An upstream answer.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body, at most [`crate::resolve::MAX_BODY`] bytes.
    pub body: &'a [u8],
    /// The current unix time.
    pub now: u64,
}

impl Answer<'_> {
    /// A header's value, trimmed, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// The status code as a number.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }
}

/// A base URL without trailing slashes.
pub(crate) fn trim(base: &str) -> &str {
    base.trim_end_matches('/')
}

/// The host of `url` for messages; "the provider" when it has none.
pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "the provider".into())
}

/// "<host> answered <code>" for an unexpected status.
pub(crate) fn answered(cx: &Cx<'_>, answer: &Answer<'_>) -> Next {
    Next::Failed(format!("{} answered {}", host_of(cx.url), answer.code()))
}

/// The string (or digits) at `pointer` of a JSON body.
pub(crate) fn json_str(body: &[u8], pointer: &str) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    match doc.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if is_digits(&n.to_string()) => Some(n.to_string()),
        _ => None,
    }
}

/// The resolved ref is the string at `pointer` of a 200 answer; 401, 403 and 404 mean
/// not found (GitLab hides private projects that way).
pub(crate) fn json_field(cx: &Cx<'_>, answer: &Answer<'_>, pointer: &str) -> Next {
    match answer.code() {
        200 => match json_str(answer.body, pointer) {
            Some(v) => Next::resolved(v),
            None => Next::Failed(format!("{}'s answer has no {pointer}", host_of(cx.url))),
        },
        401 | 403 | 404 => Next::NotFound,
        _ => answered(cx, answer),
    }
}

/// Asks the DOI resolver where `doi` lives; the answer is read for its final URL.
pub(crate) fn doi_lookup(cx: &Cx<'_>, doi: &str) -> Next {
    Next::Fetch(Fetch::plain(format!(
        "{}/{doi}",
        trim(&cx.settings.doi_resolver)
    )))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+00:00]` as UTC into unix seconds, dropping
/// the fraction. Data repositories (HydroShare, CKAN) version records this way.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let (date, time) = text.split_once(['T', ' '])?;
    let time = time.split('.').next()?;
    let num = |s: &str, len: usize| -> Option<u64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut t = time.split(':');
    let (hour, minute, second) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    if year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_utc_dropping_fractions() {
        assert_eq!(
            parse_timestamp("2018-12-27T18:16:46.071815Z"),
            Some(1_545_934_606)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00"), Some(0));
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00+00:00"),
            Some(951_782_400)
        );
        for bad in [
            "",
            "2018-13-01T00:00:00",
            "yesterday",
            "2018-12-27",
            "2018-12-27T18:16",
            "1969-12-31T23:59:59",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}

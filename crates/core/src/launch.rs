//! What a launch carries besides the image: the request strings BinderHub puts in
//! `user_options`, the path the browser opens on the running server, the temporary hub
//! user's name, and the repo2docker command line of a build.

use crate::provider::ProviderId;
use crate::validate::{self, InputError};

/// `v2/<provider>/<spec>`: the request as the user made it.
pub fn binder_request(provider: ProviderId, spec: &str) -> String {
    format!("v2/{provider}/{spec}")
}

/// `v2/<provider>/<resolved spec>`: the same launch pinned to the resolved ref.
pub fn binder_persistent_request(provider: ProviderId, resolved_spec: &str) -> String {
    format!("v2/{provider}/{resolved_spec}")
}

/// The path opened on the user's server once it is ready, from the `/v2` page's query
/// parameters: `labpath` wins over `filepath`, both win over `urlpath` (BinderHub's rules).
/// The result has no leading `/` and is checked to stay on the server.
pub fn launch_path(
    urlpath: Option<&str>,
    labpath: Option<&str>,
    filepath: Option<&str>,
) -> Result<String, InputError> {
    if let Some(lab) = labpath.filter(|p| !p.is_empty()) {
        validate::validate_launch_path("labpath", lab)?;
        return Ok(format!(
            "doc/tree/{}",
            encode_uri(lab.trim_end_matches('/'))
        ));
    }
    if let Some(file) = filepath.filter(|p| !p.is_empty()) {
        validate::validate_launch_path("filepath", file)?;
        return Ok(format!("tree/{}", encode_uri(file.trim_end_matches('/'))));
    }
    let url = urlpath.unwrap_or_default();
    validate::validate_launch_path("urlpath", url)?;
    Ok(url.trim_start_matches('/').to_string())
}

/// How many times a launch path is percent-decoded looking for dot segments; a path
/// still changing after that many rounds is refused (no real path is encoded so deep).
const MAX_DECODES: usize = 8;

/// Whether `path` (a launch path without its query and fragment) has a segment that
/// reads as `.` or `..` once percent-decoded, once or repeatedly.
///
/// Browsers read `%2e` as `.` in a path, and the proxies and servers behind the hub may
/// decode again (`%252e`), split on an encoded `/` (`..%2f`) or on `\`, or stop a segment
/// at `;` or a NUL. So the path is decoded until it stops changing, and after each round
/// every part between `/` and `\` is checked, cut at `;`, `?`, `#` and NUL; the dots of
/// Unicode that normalise to `.` (fullwidth, small, one- and two-dot leaders) count as
/// dots. Issue 12: `urlpath=%2e./%2e./user/x/` sent a fresh server token to another path.
pub fn has_dot_segment(path: &str) -> bool {
    let mut text = path.to_owned();
    for _ in 0..MAX_DECODES {
        if text.split(['/', '\\']).any(is_dot_part) {
            return true;
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            return false;
        }
        text = decoded;
    }
    true
}

/// Whether one decoded part of a path is `.` or `..`.
fn is_dot_part(part: &str) -> bool {
    let part = part.split([';', '?', '#', '\0']).next().unwrap_or_default();
    let dots = part
        .chars()
        .map(|c| match c {
            '.' | '\u{FF0E}' | '\u{FE52}' | '\u{2024}' => Some(1),
            '\u{2025}' => Some(2),
            _ => None,
        })
        .sum::<Option<usize>>();
    matches!(dots, Some(1 | 2))
}

/// JavaScript's `encodeURI`: escapes what cannot appear in a URL, keeps URL syntax.
pub fn encode_uri(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b';')
        .remove(b',')
        .remove(b'/')
        .remove(b'?')
        .remove(b':')
        .remove(b'@')
        .remove(b'&')
        .remove(b'=')
        .remove(b'+')
        .remove(b'$')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'#');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// The temporary JupyterHub user name for a launch of `repo_url` (BinderHub's rule): the
/// URL path with `/` as `-`, lower-cased, `.git` dropped, shortened to 15 + `-` + 15
/// characters when longer than 32, then `-` and `suffix` (8 random `[a-z0-9]` characters
/// chosen by the caller; this crate does no I/O, randomness included).
pub fn hub_username(repo_url: &str, suffix: &str) -> String {
    let path = match repo_url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or_default(),
        None => repo_url
            .rsplit_once(':')
            .map(|(_, p)| p)
            .unwrap_or(repo_url),
    };
    let name = path.trim_matches('/').replace('/', "-").to_lowercase();
    let name = name.strip_suffix(".git").unwrap_or(&name).to_string();
    let chars: Vec<char> = name.chars().collect();
    let name = if chars.len() > 32 {
        let head: String = chars[..15].iter().collect();
        let tail: String = chars[chars.len() - 15..].iter().collect();
        format!("{head}-{tail}")
    } else {
        name
    };
    format!("{name}-{suffix}")
}

/// What a repo2docker build is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo2DockerArgs {
    /// The resolved ref.
    pub git_ref: String,
    /// The image name to build.
    pub image: String,
    /// Whether to push the image after the build.
    pub push: bool,
    /// Dockerfile text appended by repo2docker, if any.
    pub appendix: Option<String>,
    /// Operator-configured extra arguments.
    pub extra_args: Vec<String>,
    /// The repository argument; always last.
    pub repo: String,
}

/// The arguments after `jupyter-repo2docker`, in BinderHub's order with the repository last.
///
/// The ref and image are passed in `--flag=value` form and the repository after `--`-free
/// validation, so none of them can be read as an option.
pub fn repo2docker_args(args: &Repo2DockerArgs) -> Result<Vec<String>, InputError> {
    validate::validate_ref("ref", &args.git_ref)?;
    validate::validate_repo_url("repository", &args.repo)?;
    if args.image.starts_with('-')
        || args
            .image
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(InputError::LeadingDash {
            what: "image name",
            shown: validate::shown(&args.image),
        });
    }
    let mut out = vec![
        format!("--ref={}", args.git_ref),
        format!("--image={}", args.image),
        "--no-clean".into(),
        "--no-run".into(),
        "--json-logs".into(),
        "--user-name=jovyan".into(),
        "--user-id=1000".into(),
    ];
    if let Some(appendix) = args.appendix.as_deref().filter(|a| !a.is_empty()) {
        out.push("--appendix".into());
        out.push(appendix.to_string());
    }
    if args.push {
        out.push("--push".into());
    }
    out.extend(args.extra_args.iter().cloned());
    out.push(args.repo.clone());
    Ok(out)
}

/// Where a Binder 1 link `/repo/<user>/<repo>[/<path>]` goes: `/v2/gh/<user>/<repo>/master`,
/// with `?urlpath=/<path>` when a path follows. `rest` is the path after `/repo/`.
/// Returns `None` when there is no user and repository.
pub fn legacy_redirect(rest: &str) -> Option<String> {
    let mut parts = rest.splitn(3, '/');
    let (user, repo) = (parts.next()?, parts.next()?);
    if user.is_empty() || repo.is_empty() {
        return None;
    }
    let mut target = format!("/v2/gh/{user}/{repo}/master");
    if let Some(path) = parts.next().filter(|p| !p.is_empty()) {
        let encoded = crate::resolve::encode_all(&format!("/{path}"));
        target.push_str(&format!("?urlpath={encoded}"));
    }
    Some(target)
}

/// The repository part of what a user pasted into the home page: a leading
/// `http(s)://<provider host>/` and trailing slashes are removed.
pub fn detect_repo(provider: ProviderId, input: &str) -> String {
    let mut repo = input.trim();
    if let Some(host) = provider.info().paste_host {
        for scheme in ["https://", "http://"] {
            if let Some(rest) = repo.strip_prefix(scheme).and_then(|r| r.strip_prefix(host)) {
                repo = rest;
                break;
            }
        }
    }
    repo.trim_end_matches('/').to_string()
}

/// What the launched server opens, as chosen on the home page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenTarget {
    /// A file, opened in the notebook interface: `urlpath=/doc/tree/<file>`.
    File(String),
    /// A URL path on the server, as typed.
    Url(String),
}

/// The launch link the home page generates: `<base>/v2/<provider>/<repo>/<ref>` with the
/// repository percent-encoded for providers that need it, `HEAD` as the default ref, and a
/// trailing `/` for providers without refs.
pub fn launch_link(
    base: &str,
    provider: ProviderId,
    repo: &str,
    git_ref: &str,
    open: Option<&OpenTarget>,
) -> String {
    let base = base.trim_end_matches('/');
    let repo = if provider.url_encodes_repo() {
        crate::resolve::encode_all(repo)
    } else {
        repo.to_string()
    };
    let mut link = if provider.has_ref() {
        let git_ref = if git_ref.is_empty() { "HEAD" } else { git_ref };
        format!("{base}/v2/{provider}/{repo}/{git_ref}")
    } else {
        format!("{base}/v2/{provider}/{repo}/")
    };
    let urlpath = match open {
        Some(OpenTarget::File(f)) if !f.is_empty() => Some(format!("/doc/tree/{f}")),
        Some(OpenTarget::Url(u)) if !u.is_empty() => Some(u.clone()),
        _ => None,
    };
    if let Some(p) = urlpath {
        link.push_str(&format!("?urlpath={}", crate::resolve::encode_all(&p)));
    }
    link
}

/// Whether an `Accept` header asks for an event stream. Unlike BinderHub (which splits on
/// `;` only, so `*/*, text/event-stream` failed), any listed media type counts.
pub fn accepts_event_stream(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    })
}

/// The failure message for a `/build` request without `Accept: text/event-stream`.
pub const MISSING_ACCEPT: &str = "Missing Accept header: text/event-stream";

/// The `/build` query parameter that asks for a build without a launch (BinderHub's).
pub const BUILD_ONLY_PARAMETER: &str = "build_only";

/// Whether a `build_only` value asks for a build without a launch: `true` in any case,
/// as BinderHub reads it; any other value (or none) is a launch.
pub fn build_only_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The failure message (status 400) for `build_only=true` on an edge that does not allow
/// it: BinderHub's words, naming Bindery's setting.
pub const BUILD_ONLY_NOT_ALLOWED: &str = "Building but not launching is not permitted when the API only mode was not enabled: set the edge variable allow_build_only to true";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_only_is_asked_with_true_in_any_case_only() {
        for (value, asked) in [
            (Some("true"), true),
            (Some("TRUE"), true),
            (Some("True"), true),
            (Some("1"), false),
            (Some("yes"), false),
            (Some(""), false),
            (Some("true "), false),
            (None, false),
        ] {
            assert_eq!(build_only_requested(value), asked, "{value:?}");
        }
    }

    #[test]
    fn labpath_wins_over_filepath_and_urlpath() {
        assert_eq!(
            launch_path(Some("/lab"), Some("a b.ipynb/"), Some("x")).unwrap(),
            "doc/tree/a%20b.ipynb"
        );
        assert_eq!(
            launch_path(Some("/lab"), None, Some("dir/x.py")).unwrap(),
            "tree/dir/x.py"
        );
        assert_eq!(
            launch_path(Some("///lab/tree/x"), None, None).unwrap(),
            "lab/tree/x"
        );
        assert_eq!(launch_path(None, None, None).unwrap(), "");
        assert!(launch_path(Some("https://evil.example/"), None, None).is_err());
        assert!(launch_path(None, Some("../../hub/token"), None).is_err());
    }

    /// Issue 12: every spelling of a dot segment is refused, in each of the three
    /// parameters; look-alikes that are not dot segments are not.
    #[test]
    fn dot_segments_are_refused_however_they_are_spelled() {
        let refused = [
            "..",
            ".",
            "a/../b",
            "a/./b",
            "%2e./%2e./user/x/",
            ".%2E/x",
            "%2E%2e/x",
            "%2e",
            "x/%2E",
            "%252e%252e/hub",
            "%25252e%25252e/hub",
            "a/..%2fhub",
            "a/..%2Fhub",
            "a/%2e%2e%2fhub",
            "a/..%5chub",
            "a/%2e%2e%5C..%5Chub",
            "..%3bx/hub",
            "..;/hub",
            "..%00/hub",
            "a/%2e%2e?x=1",
            "\u{FF0E}\u{FF0E}/hub",
            "%EF%BC%8E%EF%BC%8E/hub",
            "\u{2025}/hub",
            "%25%32%65%25%32%65/hub",
        ];
        for bad in refused {
            let path = bad.split(['?', '#']).next().unwrap_or_default();
            assert!(has_dot_segment(path), "{bad}");
            for (u, l, f) in [
                (Some(bad), None, None),
                (None, Some(bad), None),
                (None, None, Some(bad)),
            ] {
                let err = launch_path(u, l, f).expect_err(bad).to_string();
                assert!(
                    err.contains("'..'") || err.contains("'.' or '..'"),
                    "{bad}: {err}"
                );
            }
        }
        for ok in [
            "lab/tree/x.ipynb",
            "...",
            "a/.../b",
            ".hidden/x",
            "x./y",
            "%2e%2e%2e/x",
            "a%2fb",
            "doc/tree/%E2%80%A6",
            "..x/y",
            "",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
            assert!(launch_path(Some(ok), None, None).is_ok(), "{ok}");
        }
    }

    #[test]
    fn event_stream_accept_headers_are_read_as_lists() {
        assert!(accepts_event_stream(Some("text/event-stream")));
        assert!(accepts_event_stream(Some("*/*, text/event-stream; q=1")));
        assert!(!accepts_event_stream(Some("text/html")));
        assert!(!accepts_event_stream(None));
    }

    #[test]
    fn hub_usernames_follow_binderhub() {
        assert_eq!(
            hub_username("https://github.com/binder-examples/octave", "3ilc7xl2"),
            "binder-examples-octave-3ilc7xl2"
        );
        assert_eq!(
            hub_username(
                "https://github.com/binderhub-ci-repos/cached-minimal-dockerfile",
                "xxxxxxxx"
            ),
            "binderhub-ci-re-imal-dockerfile-xxxxxxxx"
        );
        assert_eq!(
            hub_username("10.5281/zenodo.3242074", "xxxxxxxx"),
            "10.5281-zenodo.3242074-xxxxxxxx"
        );
        assert_eq!(
            hub_username("git@github.com:org/Repo.git", "abcdefgh"),
            "org-repo-abcdefgh"
        );
    }

    #[test]
    fn repo2docker_arguments_keep_the_repository_last_and_refuse_options() {
        let mut args = Repo2DockerArgs {
            git_ref: "main".into(),
            image: "test:test".into(),
            push: true,
            appendix: Some("RUN true".into()),
            extra_args: vec!["--repo-dir=/srv/repo".into()],
            repo: "https://github.com/a/b".into(),
        };
        let out = repo2docker_args(&args).unwrap();
        assert_eq!(out.last().unwrap(), "https://github.com/a/b");
        assert_eq!(&out[7..10], ["--appendix", "RUN true", "--push"]);
        args.repo = "--config=/etc/passwd".into();
        assert!(repo2docker_args(&args).is_err());
        args.repo = "https://github.com/a/b".into();
        args.git_ref = "-x".into();
        assert!(repo2docker_args(&args).is_err());
    }
}

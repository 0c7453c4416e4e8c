//! `git/<percent-encoded URL>/<percent-encoded ref>`: any git repository.

use thiserror::Error;

use super::contract::answered;
use super::{
    Accept, Answer, Cx, FULL_COMMIT, Fetch, Next, Provider, ProviderInfo, ProviderSettings,
    RepoEncoding, UiRoute, bad_spec,
};
use crate::validate::{self, InputError, is_full_commit};

/// The git row of the provider table.
pub const INFO: ProviderInfo = ProviderInfo {
    prefix: "git",
    display_name: "Git",
    menu_label: "Git repository",
    repo_label: "Git repository URL",
    example: "https://git.example.org/group/repository.git",
    has_ref: true,
    repo_encoding: RepoEncoding::Percent,
    paste_host: None,
    ui_route: UiRoute::RepoRef,
    resolved_ref: FULL_COMMIT,
    checks_pinned_commits: false,
};

/// A parsed git spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSpec {
    /// The spec text as given.
    pub raw: String,
    /// The URL exactly as written in the link (percent-encoded).
    pub quoted_url: String,
    /// The decoded clone URL; scp-style `user@host:path` rewritten to `ssh://user@host/path`.
    pub url: String,
    /// The URL scheme (`https`, `ssh`, ...).
    pub scheme: String,
    /// The decoded ref.
    pub unresolved_ref: String,
}

impl GitSpec {
    /// Parses the raw spec: split at the first `/`, decode both parts, check the scheme.
    pub fn parse(raw: &str, settings: &ProviderSettings) -> Result<Self, InputError> {
        let (quoted, quoted_ref) = raw.split_once('/').unwrap_or((raw, ""));
        let decoded = validate::percent_decode("git URL", quoted)?;
        let unresolved_ref = validate::percent_decode("ref", quoted_ref)?;
        if unresolved_ref.is_empty() {
            return Err(bad_spec(format!(
                "Spec is not of the form \"<url-encoded repository URL>/<ref>\", provided: \"{raw}\". Did you mean \"{raw}/HEAD\"?"
            )));
        }
        let url = rewrite_scp(&decoded);
        let parsed = url::Url::parse(&url).map_err(|e| {
            bad_spec(format!(
                "git URL {} is not a URL: {e}",
                validate::shown(&decoded)
            ))
        })?;
        let scheme = parsed.scheme().to_string();
        if !settings.git_protocols.contains(&scheme) {
            return Err(bad_spec(format!(
                "git URL {} uses protocol {scheme:?}; allowed: {}",
                validate::shown(&decoded),
                settings.git_protocols.join(", ")
            )));
        }
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(bad_spec(format!(
                "git URL {} has no host",
                validate::shown(&decoded)
            )));
        }
        validate::validate_repo_url("git URL", &url)?;
        Ok(GitSpec {
            raw: raw.to_string(),
            quoted_url: quoted.to_string(),
            url,
            scheme,
            unresolved_ref,
        })
    }

    /// Whether the ref can be resolved over git's smart HTTP protocol (at the edge).
    pub fn is_http(&self) -> bool {
        matches!(self.scheme.as_str(), "http" | "https")
    }
}

impl Provider for GitSpec {
    fn raw(&self) -> &str {
        &self.raw
    }

    /// The clone URL.
    fn repo_url(&self) -> String {
        self.url.clone()
    }

    fn unresolved_ref(&self) -> Option<&str> {
        Some(&self.unresolved_ref)
    }

    /// The whole URL; escaping happens in image naming.
    fn build_slug(&self, _resolved_ref: Option<&str>) -> Option<String> {
        Some(self.url.clone())
    }

    /// `<URL as written>/<sha>`.
    fn resolved_spec(&self, resolved_ref: &str) -> String {
        format!("{}/{resolved_ref}", self.quoted_url)
    }

    /// Git has no browsable commit page: the repository URL.
    fn ref_url(&self, _resolved_ref: &str) -> String {
        self.url.clone()
    }

    /// The decoded clone URL.
    fn repo_key(&self) -> String {
        self.url.clone()
    }

    fn resolved_ref_ok(&self, resolved_ref: &str) -> bool {
        is_full_commit(resolved_ref)
    }

    /// Over HTTP the ref advertisement (`info/refs`); otherwise `git ls-remote`.
    fn start(&self, _cx: &mut Cx<'_>) -> Next {
        if self.is_http() {
            Next::Fetch(Fetch {
                accept: Accept::Any,
                ..Fetch::json(format!(
                    "{}/info/refs?service=git-upload-pack",
                    self.url.trim_end_matches('/')
                ))
            })
        } else {
            Next::LsRemote {
                url: self.url.clone(),
                git_ref: self.unresolved_ref.clone(),
            }
        }
    }

    /// Finds the ref in the advertisement the way `git ls-remote` would.
    fn on_answer(&self, cx: &mut Cx<'_>, answer: &Answer<'_>) -> Next {
        match answer.code() {
            200 => {}
            401 | 403 | 404 => return Next::NotFound,
            _ => return answered(cx, answer),
        }
        let smart = answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/x-git-upload-pack-advertisement"));
        let refs = match parse_advertisement(answer.body, smart) {
            Ok(refs) => refs,
            Err(why) => return Next::Failed(why.to_string()),
        };
        let wanted = &cx.progress.git_ref;
        match pick_ref(&refs, wanted) {
            Some(sha) => Next::resolved(sha),
            None if (7..40).contains(&wanted.len()) && wanted.bytes().all(|b| b.is_ascii_hexdigit()) => Next::Failed(
                "an abbreviated commit id cannot be resolved without cloning; use the full 40-character id".into(),
            ),
            None => Next::NotFound,
        }
    }

    /// The first word `git ls-remote` printed: the commit, or nothing for an unknown ref.
    fn on_ls_remote(&self, _cx: &mut Cx<'_>, stdout: &str) -> Next {
        match stdout.split_whitespace().next() {
            Some(sha) if is_full_commit(sha) => Next::resolved(sha.to_string()),
            Some(_) => {
                Next::Failed("git ls-remote printed something that is not a commit id".into())
            }
            None => Next::NotFound,
        }
    }
}

/// `user@host:path` (no scheme) becomes `ssh://user@host/path`, as BinderHub does.
fn rewrite_scp(url: &str) -> String {
    if url.contains("://") {
        return url.to_string();
    }
    match url.split_once(':') {
        Some((user_host, path)) if user_host.contains('@') && !user_host.contains('/') => {
            format!("ssh://{user_host}/{}", path.trim_start_matches('/'))
        }
        _ => url.to_string(),
    }
}

/// One advertised ref: commit id and full ref name (`refs/tags/v1^{}` for peeled tags).
pub type AdvertisedRef = (String, String);

/// A ref advertisement that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdvertisementError {
    /// The dumb protocol's list is not UTF-8.
    #[error("the git server's ref list is not text")]
    NotText,
    /// A pkt-line length that is not four hex digits.
    #[error("the git server sent a malformed pkt-line")]
    Malformed,
    /// A pkt-line longer than what is left of the body.
    #[error("the git server sent a truncated pkt-line")]
    Truncated,
}

/// Parses the answer to `GET <repo>/info/refs?service=git-upload-pack`.
///
/// `smart` is true when the content type says smart HTTP (pkt-lines); otherwise the body is
/// the dumb protocol's `<sha>\t<ref>` lines, which carry no `HEAD`.
pub fn parse_advertisement(
    body: &[u8],
    smart: bool,
) -> Result<Vec<AdvertisedRef>, AdvertisementError> {
    if !smart {
        let text = std::str::from_utf8(body).map_err(|_| AdvertisementError::NotText)?;
        return Ok(text
            .lines()
            .filter_map(|line| {
                let (sha, name) = line.split_once('\t')?;
                is_full_commit(sha).then(|| (sha.to_string(), name.trim().to_string()))
            })
            .collect());
    }
    let mut refs = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let len = std::str::from_utf8(&rest[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or(AdvertisementError::Malformed)?;
        if len == 0 {
            rest = &rest[4..];
            continue;
        }
        if len < 4 || len > rest.len() {
            return Err(AdvertisementError::Truncated);
        }
        let line = &rest[4..len];
        rest = &rest[len..];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.starts_with(b"# service=") {
            continue;
        }
        // The first ref carries capabilities after a NUL.
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        if let Some((sha, name)) = text.split_once(' ')
            && is_full_commit(sha)
            && name != "capabilities^{}"
        {
            refs.push((sha.to_string(), name.to_string()));
        }
    }
    Ok(refs)
}

/// Picks the commit for `wanted` the way `git ls-remote` would find it, preferring the
/// commit a tag points at over the tag object.
pub fn pick_ref(refs: &[AdvertisedRef], wanted: &str) -> Option<String> {
    let find = |name: &str| {
        refs.iter()
            .find(|(_, n)| n == name)
            .map(|(sha, _)| sha.clone())
    };
    if wanted == "HEAD" {
        return find("HEAD");
    }
    let tag = format!("refs/tags/{wanted}");
    find(wanted)
        .or_else(|| find(&format!("refs/heads/{wanted}")))
        .or_else(|| find(&format!("{tag}^{{}}")))
        .or_else(|| find(&tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &str) -> String {
        format!("{:04x}{s}", s.len() + 4)
    }

    #[test]
    fn smart_advertisement_yields_heads_tags_and_peeled_tags() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let body = format!(
            "{}0000{}{}{}{}0000",
            pkt("# service=git-upload-pack\n"),
            pkt(&format!(
                "{a} HEAD\0multi_ack symref=HEAD:refs/heads/main\n"
            )),
            pkt(&format!("{a} refs/heads/main\n")),
            pkt(&format!("{b} refs/tags/v1\n")),
            pkt(&format!("{c} refs/tags/v1^{{}}\n")),
        );
        let refs = parse_advertisement(body.as_bytes(), true).unwrap();
        assert_eq!(refs.len(), 4);
        assert_eq!(pick_ref(&refs, "HEAD"), Some(a.clone()));
        assert_eq!(pick_ref(&refs, "main"), Some(a));
        assert_eq!(
            pick_ref(&refs, "v1"),
            Some(c),
            "a tag resolves to the commit it points at"
        );
        assert_eq!(pick_ref(&refs, "nope"), None);
    }

    #[test]
    fn malformed_pkt_lines_are_errors_not_panics() {
        for body in ["zzzz", "00ff short", "0003", "\u{0}\u{0}\u{0}\u{0}"] {
            assert!(
                parse_advertisement(body.as_bytes(), true).is_err(),
                "{body:?}"
            );
        }
        assert_eq!(parse_advertisement(b"", true).unwrap(), vec![]);
    }

    #[test]
    fn dumb_ref_lists_parse_without_head() {
        let body = format!("{}\trefs/heads/main\n", "d".repeat(40));
        let refs = parse_advertisement(body.as_bytes(), false).unwrap();
        assert_eq!(pick_ref(&refs, "main"), Some("d".repeat(40)));
        assert_eq!(pick_ref(&refs, "HEAD"), None);
    }
}

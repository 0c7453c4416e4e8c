//! Resolution of an unresolved ref, as a conversation with upstream services.
//!
//! A [`Resolver`] hands out the next request to make ([`Step::Fetch`]) and is handed back
//! the answer ([`Resolver::on_response`]), until it reaches an [`Outcome`]. It follows
//! redirects itself (wasi-http clients do not), keeps GitHub's ETag so that a revalidation
//! is a free conditional request, and retries GitHub's `master`/`main` as `HEAD` the way
//! BinderHub does for renamed default branches. The edge and the worker each run it with
//! their own HTTP client; the provider modules in [`crate::provider`] own the parsing.
//! [`ref_cache`] decides what a cached ref answers and what is stored after a resolution.

use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;

use crate::Secret;
use crate::provider::{Spec, is_digits, zenodo::ZenodoSpec};
use crate::validate::is_full_commit;

mod parse;
pub mod ref_cache;

pub use parse::{parse_advertisement, parse_timestamp};
pub use ref_cache::ResolveSource;

/// Most redirects followed before giving up.
pub const MAX_REDIRECTS: u8 = 10;
/// Largest upstream body parsed.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The `User-Agent` of every upstream request.
pub const USER_AGENT: &str = concat!("bindery/", env!("CARGO_PKG_VERSION"));

/// Tokens for provider APIs; their `Debug` shows `<redacted>`, never the value.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A GitHub token (raises the rate limit from 60 to 5,000 requests an hour).
    pub github_token: Option<Secret>,
    /// A GitLab private token.
    pub gitlab_token: Option<Secret>,
}

/// A GitHub answer remembered for revalidation: the ETag and the commit it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revalidation {
    /// The `ETag` header of the earlier 200 answer.
    pub etag: String,
    /// The commit that answer named.
    pub resolved_ref: String,
}

/// A resolved ref and everything derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The immutable ref: a commit id or a record version. Also the image tag.
    pub resolved_ref: String,
    /// The spec pinned to the resolved ref.
    pub resolved_spec: String,
    /// A link to the resolved ref.
    pub ref_url: String,
    /// The build slug, input of image naming.
    pub build_slug: String,
    /// GitHub's ETag for a later revalidation.
    pub etag: Option<String>,
    /// True when `master`/`main` was not found and `HEAD` was used instead.
    pub fell_back_to_head: bool,
}

/// How a resolution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The ref resolved.
    Resolved(Resolved),
    /// The repository or ref does not exist (or is private). The message is for the user.
    NotFound(String),
    /// The provider's rate limit is exhausted.
    RateLimited {
        /// When the limit resets (unix seconds), when the provider said.
        reset_at: Option<u64>,
        /// The message for the user.
        message: String,
    },
    /// Anything else went wrong; the message is for the user.
    Failed(String),
}

/// What the caller does next.
#[derive(Debug)]
pub enum Step {
    /// Send this request and pass the answer to [`Resolver::on_response`].
    Fetch(Request<Vec<u8>>),
    /// Run `git ls-remote -- <url> <git_ref>` and pass its stdout to [`Resolver::on_ls_remote`]
    /// (ssh and git:// URLs, which HTTP cannot reach).
    LsRemote {
        /// The repository URL.
        url: String,
        /// The ref to look up.
        git_ref: String,
    },
    /// Finished.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    GitHub,
    Gist,
    GitLab,
    GitRefs,
    LsRemote,
    ZenodoDoi,
    FigshareDoi,
    FigshareVersions,
    Hydroshare,
    DataverseDoi,
    DataverseApi,
    Ckan,
    Finished,
}

/// Resolves one spec. Create one per resolution; it is cheap.
#[derive(Debug)]
pub struct Resolver {
    spec: Spec,
    settings: crate::provider::ProviderSettings,
    credentials: Credentials,
    revalidation: Option<Revalidation>,
    state: State,
    url: String,
    redirects: u8,
    git_ref: String,
    fell_back: bool,
    article_id: String,
    rate_remaining: Option<i64>,
}

impl Resolver {
    /// A resolver for `spec`. `revalidation` is a cached GitHub answer to revalidate.
    pub fn new(
        spec: &Spec,
        settings: &crate::provider::ProviderSettings,
        credentials: &Credentials,
        revalidation: Option<Revalidation>,
    ) -> Resolver {
        Resolver {
            spec: spec.clone(),
            settings: settings.clone(),
            credentials: credentials.clone(),
            revalidation,
            state: State::Start,
            url: String::new(),
            redirects: 0,
            git_ref: spec.unresolved_ref().unwrap_or_default().to_string(),
            fell_back: false,
            article_id: String::new(),
            rate_remaining: None,
        }
    }

    /// The last `x-ratelimit-remaining` GitHub reported, for metrics.
    pub fn github_rate_remaining(&self) -> Option<i64> {
        self.rate_remaining
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        if self.state != State::Start {
            return self.fail("resolver started twice");
        }
        let spec = self.spec.clone();
        if spec.is_pinned() {
            return self.finish_with(self.git_ref.clone(), None);
        }
        match &spec {
            Spec::GitHub(s) => {
                self.state = State::GitHub;
                self.github_request(&s.user, &s.repo)
            }
            Spec::Gist(s) => {
                self.state = State::Gist;
                self.get(format!(
                    "{}/gists/{}",
                    trim(&self.settings.github_api),
                    s.gist_id
                ))
            }
            Spec::GitLab(s) => {
                self.state = State::GitLab;
                let url = format!(
                    "{}/projects/{}/repository/commits/{}",
                    trim(&self.settings.gitlab_api),
                    encode_all(&s.namespace),
                    encode_all(&s.unresolved_ref)
                );
                self.get(url)
            }
            Spec::Git(s) if s.is_http() => {
                self.state = State::GitRefs;
                self.get(format!(
                    "{}/info/refs?service=git-upload-pack",
                    s.url.trim_end_matches('/')
                ))
            }
            Spec::Git(s) => {
                self.state = State::LsRemote;
                Step::LsRemote {
                    url: s.url.clone(),
                    git_ref: s.unresolved_ref.clone(),
                }
            }
            Spec::Zenodo(s) => {
                self.state = State::ZenodoDoi;
                self.get(format!("{}/{}", trim(&self.settings.doi_resolver), s.raw))
            }
            Spec::Figshare(s) => {
                self.state = State::FigshareDoi;
                self.article_id = s.article_id.clone();
                self.get(format!("{}/{}", trim(&self.settings.doi_resolver), s.raw))
            }
            Spec::Hydroshare(s) => {
                self.state = State::Hydroshare;
                self.get(format!(
                    "{}/hsapi/resource/{}/scimeta/elements",
                    s.base, s.resource_id
                ))
            }
            Spec::Dataverse(s) => {
                self.state = State::DataverseDoi;
                self.get(format!("{}/{}", trim(&self.settings.doi_resolver), s.raw))
            }
            Spec::Ckan(s) => {
                self.state = State::Ckan;
                let url = match &s.activity_id {
                    Some(a) => format!(
                        "{}/api/3/action/activity_data_show?id={}&object_type=package",
                        s.portal,
                        encode_all(a)
                    ),
                    None => format!(
                        "{}/api/3/action/package_show?id={}",
                        s.portal,
                        encode_all(&s.dataset)
                    ),
                };
                self.get(url)
            }
        }
    }

    /// Takes the answer to the last [`Step::Fetch`]; `now` is the current unix time.
    pub fn on_response(&mut self, response: &Response<Vec<u8>>, now: u64) -> Step {
        let status = response.status();
        if response.body().len() > MAX_BODY {
            return self.fail(&format!(
                "{} answered with more than {MAX_BODY} bytes",
                host_of(&self.url)
            ));
        }
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return self.follow_redirect(response.headers());
        }
        let body = response.body().as_slice();
        match self.state {
            State::GitHub => self.on_github(status, response.headers(), body, now),
            State::Gist => self.on_gist(status, body),
            State::GitLab => self.on_json_field(status, body, "/id"),
            State::GitRefs => self.on_git_refs(status, response.headers(), body),
            State::ZenodoDoi => self.on_zenodo(status),
            State::FigshareDoi => self.on_figshare_doi(status),
            State::FigshareVersions => self.on_figshare_versions(status, body),
            State::Hydroshare => self.on_hydroshare(status, body),
            State::DataverseDoi => self.on_dataverse_doi(status),
            State::DataverseApi => self.on_dataverse_api(status, body),
            State::Ckan => self.on_ckan(status, body),
            State::Start | State::LsRemote | State::Finished => {
                self.fail("unexpected upstream answer")
            }
        }
    }

    /// Takes the stdout of `git ls-remote` after a [`Step::LsRemote`].
    pub fn on_ls_remote(&mut self, stdout: &str) -> Step {
        if self.state != State::LsRemote {
            return self.fail("unexpected git ls-remote output");
        }
        match stdout.split_whitespace().next() {
            Some(sha) if is_full_commit(sha) => self.finish_with(sha.to_string(), None),
            Some(_) => self.fail("git ls-remote printed something that is not a commit id"),
            None => self.not_found(),
        }
    }

    fn spec_label(&self) -> String {
        format!("{}:{}", self.spec.provider(), self.spec.raw())
    }

    fn not_found(&mut self) -> Step {
        self.state = State::Finished;
        Step::Done(Outcome::NotFound(format!(
            "Could not resolve ref for {}. Double check your URL and that your repo is public.",
            self.spec_label()
        )))
    }

    fn fail(&mut self, why: &str) -> Step {
        self.state = State::Finished;
        Step::Done(Outcome::Failed(format!(
            "Error resolving ref for {}: {why}",
            self.spec_label()
        )))
    }

    fn finish_with(&mut self, resolved_ref: String, etag: Option<String>) -> Step {
        self.state = State::Finished;
        if let Err(e) = self.spec.validate_resolved_ref(&resolved_ref) {
            return self.fail(&format!("the provider answered with an unusable ref: {e}"));
        }
        let Some(build_slug) = self.spec.build_slug(Some(&resolved_ref)) else {
            return self.fail("no build slug");
        };
        Step::Done(Outcome::Resolved(Resolved {
            resolved_spec: self.spec.resolved_spec(&resolved_ref),
            ref_url: self.spec.ref_url(&resolved_ref),
            build_slug,
            resolved_ref,
            etag,
            fell_back_to_head: self.fell_back,
        }))
    }

    fn get(&mut self, url: String) -> Step {
        self.url = url;
        self.request(Vec::new())
    }

    fn request(&mut self, extra: Vec<(&'static str, String)>) -> Step {
        let mut builder = Request::get(self.url.as_str()).header("user-agent", USER_AGENT);
        let json = !matches!(
            self.state,
            State::GitRefs | State::ZenodoDoi | State::FigshareDoi | State::DataverseDoi
        );
        if json {
            builder = builder.header("accept", "application/json");
        }
        match self.state {
            State::GitHub | State::Gist => {
                builder = builder.header("accept", "application/vnd.github+json");
                if let Some(t) = &self.credentials.github_token {
                    builder = builder.header("authorization", format!("Bearer {}", t.expose()));
                }
            }
            State::GitLab => {
                if let Some(t) = &self.credentials.gitlab_token {
                    builder = builder.header("private-token", t.expose());
                }
            }
            _ => {}
        }
        for (name, value) in extra {
            builder = builder.header(name, value);
        }
        match builder.body(Vec::new()) {
            Ok(req) => Step::Fetch(req),
            Err(_) => {
                let url = crate::validate::shown(&self.url);
                self.fail(&format!("cannot make a request to {url}"))
            }
        }
    }

    fn github_request(&mut self, user: &str, repo: &str) -> Step {
        self.url = format!(
            "{}/repos/{user}/{repo}/commits/{}",
            trim(&self.settings.github_api),
            encode_ref(&self.git_ref)
        );
        let extra = match (&self.revalidation, self.fell_back) {
            (Some(r), false) => vec![("if-none-match", r.etag.clone())],
            _ => Vec::new(),
        };
        self.request(extra)
    }

    fn follow_redirect(&mut self, headers: &HeaderMap) -> Step {
        self.redirects += 1;
        if self.redirects > MAX_REDIRECTS {
            return self.fail("too many redirects");
        }
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let next = url::Url::parse(&self.url).and_then(|base| base.join(location));
        match next {
            Ok(u) if matches!(u.scheme(), "http" | "https") && !location.is_empty() => {
                self.url = u.to_string();
                self.request(Vec::new())
            }
            _ => self.fail(&format!(
                "{} redirected to an unusable location",
                host_of(&self.url)
            )),
        }
    }

    fn on_github(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Step {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        self.rate_remaining = header("x-ratelimit-remaining").and_then(|v| v.parse().ok());
        match status.as_u16() {
            200 => {
                let etag = header("etag").map(String::from);
                match json_str(body, "/sha") {
                    Some(sha) => self.finish_with(sha, etag),
                    None => self.fail("GitHub's answer has no commit sha"),
                }
            }
            304 => match self.revalidation.clone() {
                Some(r) => self.finish_with(r.resolved_ref, Some(r.etag)),
                None => self.fail("GitHub answered 304 to an unconditional request"),
            },
            404 | 422 => {
                if !self.fell_back && matches!(self.git_ref.as_str(), "master" | "main") {
                    self.fell_back = true;
                    self.git_ref = "HEAD".into();
                    if let Spec::GitHub(s) = self.spec.clone() {
                        return self.github_request(&s.user, &s.repo);
                    }
                }
                self.not_found()
            }
            403 | 429 if self.rate_remaining == Some(0) || status.as_u16() == 429 => {
                let reset_at = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok());
                let minutes = reset_at.map_or(60, |r| r.saturating_sub(now).div_ceil(60));
                let minutes = (minutes.div_ceil(5) * 5).max(5);
                self.state = State::Finished;
                Step::Done(Outcome::RateLimited {
                    reset_at,
                    message: format!("GitHub rate limit exceeded. Try again in {minutes} minutes."),
                })
            }
            401 | 403 => self.fail(&format!(
                "GitHub refused access ({}); check the GitHub token of this Binder",
                status.as_u16()
            )),
            code => self.fail(&format!("GitHub answered {code}")),
        }
    }

    fn on_gist(&mut self, status: StatusCode, body: &[u8]) -> Step {
        match status.as_u16() {
            200 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("GitHub answered {code}")),
        }
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return self.fail("GitHub's gist answer is not JSON");
        };
        if doc.get("public").and_then(Value::as_bool) != Some(true)
            && !self.settings.allow_secret_gist
        {
            return self
                .fail("Cannot use private gist: secret gists are not allowed on this Binder");
        }
        let versions: Vec<&str> = doc
            .get("history")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter_map(|e| e.get("version").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let wants_latest = matches!(&self.spec, Spec::Gist(s) if s.wants_latest());
        let found = if wants_latest {
            versions.first().copied()
        } else {
            versions.iter().copied().find(|v| *v == self.git_ref)
        };
        match found {
            Some(v) => self.finish_with(v.to_string(), None),
            None => self.not_found(),
        }
    }

    fn on_json_field(&mut self, status: StatusCode, body: &[u8], pointer: &str) -> Step {
        match status.as_u16() {
            200 => match json_str(body, pointer) {
                Some(v) => self.finish_with(v, None),
                None => self.fail(&format!("{}'s answer has no {pointer}", host_of(&self.url))),
            },
            401 | 403 | 404 => self.not_found(),
            code => self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
    }

    fn on_git_refs(&mut self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Step {
        match status.as_u16() {
            200 => {}
            401 | 403 | 404 => return self.not_found(),
            code => return self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
        let smart = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-git-upload-pack-advertisement"));
        let refs = match parse_advertisement(body, smart) {
            Ok(refs) => refs,
            Err(why) => return self.fail(&why),
        };
        match parse::pick_ref(&refs, &self.git_ref) {
            Some(sha) => self.finish_with(sha, None),
            None if (7..40).contains(&self.git_ref.len()) && self.git_ref.bytes().all(|b| b.is_ascii_hexdigit()) => self.fail(
                "an abbreviated commit id cannot be resolved without cloning; use the full 40-character id",
            ),
            None => self.not_found(),
        }
    }

    fn on_zenodo(&mut self, status: StatusCode) -> Step {
        match status.as_u16() {
            200..=299 => match ZenodoSpec::record_id_from_url(&self.url) {
                Ok(id) => self.finish_with(id, None),
                Err(e) => self.fail(&e.to_string()),
            },
            404 => self.not_found(),
            code => self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
    }

    fn on_figshare_doi(&mut self, status: StatusCode) -> Step {
        match status.as_u16() {
            200..=299 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
        let version = match &self.spec {
            Spec::Figshare(s) => s.version.clone(),
            _ => None,
        };
        match version {
            Some(v) => self.finish_with(format!("{}.v{v}", self.article_id), None),
            None => {
                self.state = State::FigshareVersions;
                self.redirects = 0;
                self.get(format!(
                    "{}/articles/{}/versions",
                    trim(&self.settings.figshare_api),
                    self.article_id
                ))
            }
        }
    }

    fn on_figshare_versions(&mut self, status: StatusCode, body: &[u8]) -> Step {
        match status.as_u16() {
            200 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("Figshare answered {code}")),
        }
        let newest = serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
            doc.as_array()?
                .iter()
                .filter_map(|v| v.get("version").and_then(Value::as_u64))
                .max()
        });
        match newest {
            Some(v) => self.finish_with(format!("{}.v{v}", self.article_id), None),
            None => self.fail("Figshare lists no versions for this article"),
        }
    }

    fn on_hydroshare(&mut self, status: StatusCode, body: &[u8]) -> Step {
        match status.as_u16() {
            200 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("HydroShare answered {code}")),
        }
        let modified = serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
            doc.get("dates")?
                .as_array()?
                .iter()
                .find(|d| d.get("type").and_then(Value::as_str) == Some("modified"))?
                .get("start_date")?
                .as_str()
                .and_then(parse_timestamp)
        });
        match (modified, &self.spec) {
            (Some(epoch), Spec::Hydroshare(s)) => {
                let r = format!("{}.v{epoch}", s.resource_id);
                self.finish_with(r, None)
            }
            _ => self.fail("HydroShare's answer has no modification date"),
        }
    }

    fn on_dataverse_doi(&mut self, status: StatusCode) -> Step {
        match status.as_u16() {
            200..=299 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
        let Ok(landing) = url::Url::parse(&self.url) else {
            return self.fail("the DOI resolved to an unusable URL");
        };
        let Spec::Dataverse(s) = &self.spec else {
            return self.fail("not a Dataverse spec");
        };
        let port = landing.port().map(|p| format!(":{p}")).unwrap_or_default();
        let api = format!(
            "{}://{}{port}/api/datasets/:persistentId?persistentId={}",
            landing.scheme(),
            landing.host_str().unwrap_or_default(),
            encode_all(&format!("doi:{}", s.raw))
        );
        self.state = State::DataverseApi;
        self.redirects = 0;
        self.get(api)
    }

    fn on_dataverse_api(&mut self, status: StatusCode, body: &[u8]) -> Step {
        match status.as_u16() {
            200 => {}
            404 => return self.not_found(),
            code => return self.fail(&format!("{} answered {code}", host_of(&self.url))),
        }
        let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
            if doc.get("status").and_then(Value::as_str) != Some("OK") {
                return None;
            }
            let data = doc.get("data")?;
            let version = data.get("latestVersion")?;
            Some(format!(
                "{}.v{}.{}",
                data.get("id")?.as_u64()?,
                version.get("versionNumber")?.as_u64()?,
                version.get("versionMinorNumber")?.as_u64()?
            ))
        });
        match parsed {
            Some(r) => self.finish_with(r, None),
            None => self.fail("Dataverse's answer has no dataset version"),
        }
    }

    fn on_ckan(&mut self, status: StatusCode, body: &[u8]) -> Step {
        if status.as_u16() != 200 {
            return self.not_found();
        }
        let modified = serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
            doc.pointer("/result/metadata_modified")?
                .as_str()
                .and_then(parse_timestamp)
        });
        match (modified, &self.spec) {
            (Some(epoch), Spec::Ckan(s)) => {
                let r = format!("{}.v{epoch}", s.dataset);
                self.finish_with(r, None)
            }
            _ => self.fail("CKAN's answer has no metadata_modified"),
        }
    }
}

fn trim(base: &str) -> &str {
    base.trim_end_matches('/')
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "the provider".into())
}

fn json_str(body: &[u8], pointer: &str) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    match doc.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if is_digits(&n.to_string()) => Some(n.to_string()),
        _ => None,
    }
}

const ALL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const REF: &percent_encoding::AsciiSet = &ALL.remove(b'/');

/// Percent-encodes everything but unreserved characters (so `/` becomes `%2F`).
pub fn encode_all(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ALL).to_string()
}

fn encode_ref(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, REF).to_string()
}

#[cfg(test)]
mod tests;

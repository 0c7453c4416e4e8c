//! Resolution of an unresolved ref, as a conversation with upstream services.
//!
//! A [`Resolver`] hands out the next request to make ([`Step::Fetch`]) and is handed back
//! the answer ([`Resolver::on_response`]), until it reaches an [`Outcome`]. It follows
//! redirects itself (wasi-http clients do not), keeps GitHub's ETag so that a revalidation
//! is a free conditional request, and sends the tokens of [`Credentials`]. What to ask
//! and how to read each answer belongs to the provider: its module in [`crate::provider`]
//! implements [`Provider`]'s steps, and this module runs them. The edge and the worker
//! each run it with their own HTTP client. [`ref_cache`] decides what a cached ref
//! answers and what is stored after a resolution.
//!
//! A link that names a full commit is resolved too, where the provider can check it
//! (GitHub, GitLab, gists: [`crate::provider::ProviderInfo::checks_pinned_commits`]): a
//! commit that does not exist is [`Outcome::NotFound`], so a made-up commit never reaches
//! the registry or a build. Only `git` links take a pinned commit as given.

use http::{HeaderMap, Request, Response, StatusCode};

use crate::Secret;
use crate::provider::{
    Accept, Answer, Auth, Cx, Fetch, Next, Progress, Provider, ProviderSettings, Spec,
};

pub mod ref_cache;

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

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Fetching,
    LsRemote,
    Finished,
}

/// Resolves one spec. Create one per resolution; it is cheap.
#[derive(Debug)]
pub struct Resolver {
    spec: Spec,
    settings: ProviderSettings,
    credentials: Credentials,
    revalidation: Option<Revalidation>,
    state: State,
    /// The request in flight, repeated at a redirect's location.
    fetch: Option<Fetch>,
    /// The URL of the request in flight, after redirects.
    url: String,
    redirects: u8,
    progress: Progress,
}

impl Resolver {
    /// A resolver for `spec`. `revalidation` is a cached GitHub answer to revalidate.
    pub fn new(
        spec: &Spec,
        settings: &ProviderSettings,
        credentials: &Credentials,
        revalidation: Option<Revalidation>,
    ) -> Resolver {
        Resolver {
            spec: spec.clone(),
            settings: settings.clone(),
            credentials: credentials.clone(),
            revalidation,
            state: State::Start,
            fetch: None,
            url: String::new(),
            redirects: 0,
            progress: Progress {
                git_ref: spec.unresolved_ref().unwrap_or_default().to_string(),
                ..Progress::default()
            },
        }
    }

    /// The last `x-ratelimit-remaining` GitHub reported, for metrics.
    pub fn github_rate_remaining(&self) -> Option<i64> {
        self.progress.rate_remaining
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        if self.state != State::Start {
            return self.fail("resolver started twice");
        }
        // A pinned commit is looked up like any ref where the provider can check it (the
        // commits APIs answer 404/422 for a commit that does not exist); elsewhere it is
        // taken as given.
        if self.spec.is_pinned_unchecked() {
            return self.finish_with(self.progress.git_ref.clone(), None);
        }
        self.provider_step(|provider, cx| provider.start(cx))
    }

    /// Takes the answer to the last [`Step::Fetch`]; `now` is the current unix time.
    pub fn on_response(&mut self, response: &Response<Vec<u8>>, now: u64) -> Step {
        if self.state != State::Fetching {
            return self.fail("unexpected upstream answer");
        }
        let status = response.status();
        if response.body().len() > MAX_BODY {
            return self.fail(&format!(
                "{} answered with more than {MAX_BODY} bytes",
                crate::provider::host_of(&self.url)
            ));
        }
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return self.follow_redirect(response.headers());
        }
        let answer = Answer {
            status,
            headers: response.headers(),
            body: response.body(),
            now,
        };
        self.provider_step(|provider, cx| provider.on_answer(cx, &answer))
    }

    /// Takes the stdout of `git ls-remote` after a [`Step::LsRemote`].
    pub fn on_ls_remote(&mut self, stdout: &str) -> Step {
        if self.state != State::LsRemote {
            return self.fail("unexpected git ls-remote output");
        }
        self.provider_step(|provider, cx| provider.on_ls_remote(cx, stdout))
    }

    /// Runs one of the provider's steps and acts on what it says comes next.
    fn provider_step(&mut self, step: impl FnOnce(&dyn Provider, &mut Cx<'_>) -> Next) -> Step {
        let next = step(
            self.spec.as_provider(),
            &mut Cx {
                settings: &self.settings,
                revalidation: self.revalidation.as_ref(),
                url: &self.url,
                progress: &mut self.progress,
            },
        );
        match next {
            Next::Fetch(fetch) => {
                self.state = State::Fetching;
                self.redirects = 0;
                self.url = fetch.url.clone();
                let step = self.request(&fetch, fetch.if_none_match.as_deref());
                self.fetch = Some(fetch);
                step
            }
            Next::LsRemote { url, git_ref } => {
                self.state = State::LsRemote;
                Step::LsRemote { url, git_ref }
            }
            Next::Resolved { resolved_ref, etag } => self.finish_with(resolved_ref, etag),
            Next::NotFound => self.not_found(),
            Next::RateLimited { reset_at, message } => {
                self.state = State::Finished;
                Step::Done(Outcome::RateLimited { reset_at, message })
            }
            Next::Failed(why) => self.fail(&why),
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
        // A checked commit is cached for good under the commit the link names: the
        // answer must be that commit, not one the provider chose instead.
        if self.spec.is_pinned() && self.spec.unresolved_ref() != Some(resolved_ref.as_str()) {
            return self.fail("the provider answered with another commit than the link names");
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
            fell_back_to_head: self.progress.fell_back,
        }))
    }

    /// `fetch` sent to the current URL.
    fn request(&mut self, fetch: &Fetch, if_none_match: Option<&str>) -> Step {
        let mut builder = Request::get(self.url.as_str()).header("user-agent", USER_AGENT);
        if fetch.accept != Accept::Any {
            builder = builder.header("accept", "application/json");
        }
        if fetch.accept == Accept::GitHub {
            builder = builder.header("accept", "application/vnd.github+json");
        }
        match fetch.auth {
            Auth::None => {}
            Auth::GitHub => {
                if let Some(t) = &self.credentials.github_token {
                    builder = builder.header("authorization", format!("Bearer {}", t.expose()));
                }
            }
            Auth::GitLab => {
                if let Some(t) = &self.credentials.gitlab_token {
                    builder = builder.header("private-token", t.expose());
                }
            }
        }
        if let Some(etag) = if_none_match {
            builder = builder.header("if-none-match", etag);
        }
        match builder.body(Vec::new()) {
            Ok(req) => Step::Fetch(req),
            Err(_) => {
                let url = crate::validate::shown(&self.url);
                self.fail(&format!("cannot make a request to {url}"))
            }
        }
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
        match (next, self.fetch.clone()) {
            (Ok(u), Some(fetch))
                if matches!(u.scheme(), "http" | "https") && !location.is_empty() =>
            {
                self.url = u.to_string();
                self.request(&fetch, None)
            }
            _ => self.fail(&format!(
                "{} redirected to an unusable location",
                crate::provider::host_of(&self.url)
            )),
        }
    }
}

const ALL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// What a ref in a URL path keeps unencoded: unreserved characters and `/`.
pub(crate) const REF_SET: &percent_encoding::AsciiSet = &ALL.remove(b'/');

/// Percent-encodes everything but unreserved characters (so `/` becomes `%2F`).
pub fn encode_all(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ALL).to_string()
}

#[cfg(test)]
mod tests;

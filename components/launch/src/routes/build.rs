//! `GET /build/<provider>/<spec>`: BinderHub's event stream. Every error is a `failed`
//! event on a 200 stream, whose headers the entry has already sent.
//!
//! Before the stream's headers, [`open`] checks the build token (`?build_token=`, minted
//! by the `/v2` page) and, without a valid one, counts the request against the
//! per-client limit with the worker; the answer's `x-ratelimit-*` headers go out with the
//! stream's. Then the link is checked and resolved as for the resolve API ([`Prepare`]); the image check
//! answers from the cache when it can; only then is the worker asked for a launch, and
//! its numbered events are relayed ([`super::relay`]). A reconnecting EventSource sends
//! the last relayed id, and follows the same launch again instead of starting another.
//! With `build_only=true` (allowed by `allow_build_only`, as BinderHub's API-only mode)
//! the worker builds and pushes the image and launches nothing; the stream ends with
//! `ready` naming the image. After its last event the stream stays open a few seconds
//! for the client to close it ([`Stream::linger`]).

use bindery_core::build_token::{BuildTokenError, QUERY_PARAMETER};
use bindery_core::cache::LastStatus;
use bindery_core::events::{Event, Phase};
use bindery_core::launch;
use bindery_core::sse::{self, SseEvent};
use bindery_core::worker_api::{
    AdmissionRequest, LAUNCHES_PATH, LaunchRequest, parse_last_event_id,
};
use bindery_edge::config::{EdgeConfig, LAUNCH_VARIABLES};
use bindery_edge::fetch::{Fetch, StreamingFetch};
use bindery_edge::timer::Pause;
use bindery_edge::{respond, worker};
use std::net::IpAddr;

use futures::{Sink, SinkExt};
use http::Request;

use super::query_param;
use super::relay::{Relay, relay};
use crate::client;
use crate::cors;
use crate::env::Env;
use crate::prepare::{Prepare, Refusal};
use crate::tokens;

/// The headers of the event stream (and of a `HEAD` of it).
pub const STREAM_HEADERS: [(&str, &str); 4] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("access-control-allow-headers", "cache-control"),
];

/// Writes events to the client; remembers whether the client is still there.
#[derive(Debug)]
pub struct Stream<S> {
    sink: S,
    open: bool,
}

impl<S: Sink<Vec<u8>> + Unpin> Stream<S> {
    /// A stream writing to `sink`.
    pub fn new(sink: S) -> Self {
        Self { sink, open: true }
    }

    /// Whether the client is still reading.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Writes `text` as it is (an encoded event or comment).
    pub async fn raw(&mut self, text: String) {
        if self.open && self.sink.send(text.into_bytes()).await.is_err() {
            self.open = false;
        }
    }

    /// Writes `event`, with the SSE `id` when given.
    pub async fn event(&mut self, event: &Event, id: Option<String>) {
        let mut sse = SseEvent::new(event.to_json());
        sse.id = id;
        self.raw(sse::encode(&sse)).await;
    }

    /// After the last event: keeps the stream open until the client closes it (a write
    /// fails), with a keepalive every [`sse::LINGER_INTERVAL`], for at most
    /// [`sse::LINGER_KEEPALIVES`] of them. A client that closes only once it has handled
    /// `ready` (`@jupyterhub/binderhub-client`) would otherwise see the end first and
    /// report it as a failure; a client that never closes holds the stream no longer.
    pub async fn linger(&mut self, pause: Pause) {
        for _ in 0..sse::LINGER_KEEPALIVES {
            if !self.open {
                return;
            }
            pause(sse::LINGER_INTERVAL).await;
            self.raw(sse::KEEPALIVE.to_owned()).await;
        }
    }

    /// Writes a `failed` event with `status` and `message`.
    pub async fn fail(&mut self, status: u16, message: &str) {
        self.event(&Event::failed(Some(status), message), None)
            .await;
    }

    /// Writes the `failed` event of a refusal.
    pub async fn refuse(&mut self, refusal: &Refusal) {
        self.fail(refusal.status(), &refusal.to_string()).await;
    }
}

/// What `/build` decided before its stream starts ([`open`]): the `x-ratelimit-*` headers
/// to send with [`STREAM_HEADERS`], and whether the request goes on.
pub struct Opened<'e, 'a, F> {
    /// The `x-ratelimit-*` headers, when the request was counted against the rate limit.
    pub headers: Vec<(&'static str, String)>,
    admitted: Result<Admitted<'e, 'a, F>, Refusal>,
}

impl<F> std::fmt::Debug for Opened<'_, '_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

struct Admitted<'e, 'a, F> {
    prepare: Prepare<'e, 'a, F>,
    client: Option<IpAddr>,
    /// `build_only=true`, allowed: build and push, launch nothing.
    build_only: bool,
}

/// Runs the event stream of `<provider>/<raw spec>` into `stream`: [`open`], then
/// [`proceed`].
pub async fn run<F, S>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
    stream: &mut Stream<S>,
) where
    F: Fetch + StreamingFetch,
    S: Sink<Vec<u8>> + Unpin,
{
    let opened = open(request, provider, raw_spec, env).await;
    proceed(opened, request, provider, raw_spec, env, stream).await;
}

/// The checks before the stream's headers, in BinderHub's order: the configuration, the
/// client's network, `Accept`, the build token, then the per-client rate limit (counted by
/// the worker, skipped for a valid token), all before any provider, registry or launch
/// call.
pub async fn open<'e, 'a, F: Fetch>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &'e Env<'a, F>,
) -> Opened<'e, 'a, F> {
    let mut headers = Vec::new();
    let admitted = admit(request, provider, raw_spec, env, &mut headers).await;
    Opened { headers, admitted }
}

async fn admit<'e, 'a, F: Fetch>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &'e Env<'a, F>,
    headers: &mut Vec<(&'static str, String)>,
) -> Result<Admitted<'e, 'a, F>, Refusal> {
    let prepare = Prepare::load(env, LAUNCH_VARIABLES, None)?;
    // Before any refusal: a page on another origin must be able to read why.
    if let Some(origins) = &prepare.config().cors_allow_origin {
        headers.extend(cors::headers(origins, request));
    }
    // BinderHub's order: the client's network first, then what it asked for.
    let client = prepare.admit(request)?;
    if !launch::accepts_event_stream(respond::header(request, "accept")) {
        return Err(Refusal::NotAnEventStream);
    }
    let cfg = prepare.config();
    let query = request.uri().query().unwrap_or_default();
    let build_only =
        launch::build_only_requested(query_param(query, launch::BUILD_ONLY_PARAMETER).as_deref());
    if build_only && !cfg.allow_build_only {
        return Err(Refusal::BuildOnlyNotAllowed);
    }
    let worker_cfg = cfg.worker()?;
    if !valid_token(request, provider, raw_spec, cfg, env)? && cfg.build_rate.limit > 0 {
        let rate = cfg.build_rate;
        let admission = AdmissionRequest::new(client, rate.limit, rate.period_seconds);
        // Fail closed: without the worker no launch can start, and going on would only
        // spend the provider's and the registry's rate limits for nothing.
        let state = worker::request_admission(worker_cfg, &admission, &env.worker)
            .await
            .map_err(|e| Refusal::Worker(e.to_string()))?;
        headers.extend([
            ("x-ratelimit-limit", state.limit.to_string()),
            ("x-ratelimit-remaining", state.remaining.to_string()),
            ("x-ratelimit-reset", state.reset.to_string()),
        ]);
        if state.exceeded {
            return Err(Refusal::TooManyBuilds(state.retry_after(env.now())));
        }
    }
    Ok(Admitted {
        prepare,
        client,
        build_only,
    })
}

/// Whether the request carries a valid build token; a token that is there and invalid
/// refuses the request. An expired token on a reconnect (`Last-Event-ID`) counts as none:
/// a build outlasts a token, and the EventSource resends the page's URL.
fn valid_token<F>(
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    cfg: &EdgeConfig,
    env: &Env<'_, F>,
) -> Result<bool, Refusal> {
    let query = request.uri().query().unwrap_or_default();
    let Some(token) = query_param(query, QUERY_PARAMETER).filter(|t| !t.is_empty()) else {
        return Ok(false);
    };
    match tokens::check(&token, request, provider, raw_spec, cfg, env) {
        Ok(()) => Ok(true),
        Err(BuildTokenError::Expired) if respond::header(request, "last-event-id").is_some() => {
            Ok(false)
        }
        Err(e) => {
            eprintln!("bindery-launch: /build refused: {e}");
            Err(Refusal::BuildToken(e))
        }
    }
}

/// The stream after [`open`]: a refusal as a `failed` event, else the launch and its
/// events.
pub async fn proceed<F, S>(
    opened: Opened<'_, '_, F>,
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
    stream: &mut Stream<S>,
) where
    F: Fetch + StreamingFetch,
    S: Sink<Vec<u8>> + Unpin,
{
    let result = match opened.admitted {
        Ok(admitted) => launch_and_relay(admitted, request, provider, raw_spec, env, stream).await,
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = result {
        stream.refuse(&refusal).await;
    }
}

async fn launch_and_relay<F, S>(
    admitted: Admitted<'_, '_, F>,
    request: &Request<Vec<u8>>,
    provider: &str,
    raw_spec: &str,
    env: &Env<'_, F>,
    stream: &mut Stream<S>,
) -> Result<(), Refusal>
where
    F: Fetch + StreamingFetch,
    S: Sink<Vec<u8>> + Unpin,
{
    let Admitted {
        mut prepare,
        client,
        build_only,
    } = admitted;
    let cfg = prepare.config();
    let spec = prepare.spec(provider, raw_spec)?;

    // A reconnecting EventSource resumes the launch it was following, once its link has
    // passed the same checks as a new launch: a banned or malformed link resumes nothing.
    if let Some((launch_id, after)) =
        respond::header(request, "last-event-id").and_then(parse_last_event_id)
    {
        let events_url = format!("{LAUNCHES_PATH}/{launch_id}/events");
        let resume = Relay {
            launch_id: &launch_id,
            events_url: &events_url,
            after: Some(&after),
            image: None,
        };
        relay(cfg, env, stream, resume).await;
        return Ok(());
    }

    let prepared = prepare.resolve(&spec).await?;
    let resolved = &prepared.resolved;
    if resolved.fell_back_to_head {
        let notice = format!(
            "Could not find ref {} in {}. Trying again with HEAD instead: the default branch may have been renamed. Please update your links.\n",
            spec.unresolved_ref().unwrap_or_default(),
            spec.repo_url()
        );
        stream
            .event(&Event::new(Phase::Waiting, notice), None)
            .await;
    }
    let image = prepared.image.clone();
    let present = prepare
        .presence(&prepared)
        .await?
        .is_some_and(|p| p.present);
    if present && build_only {
        // BinderHub's API-only answer for an image that is there: nothing to build.
        stream
            .event(&Event::build_only_done(image.clone(), true), None)
            .await;
        stream.linger(env.pause).await;
        return Ok(());
    }
    if present {
        stream.event(&Event::built(image.clone(), true), None).await;
    } else {
        stream
            .event(
                &Event::new(Phase::Waiting, "Waiting for build to start...\n"),
                None,
            )
            .await;
    }
    let cfg = prepare.config();
    // BinderHub's `binder_launch_host`: `badge_base_url` (a federation's URL) when set.
    let launch_host = client::link_base(request, Some(cfg));
    let mut launch_request =
        LaunchRequest::new(&spec, resolved, image.clone(), present, launch_host, client);
    launch_request.build_only = build_only;
    let worker_cfg = cfg.worker()?;
    let accepted = match worker::request_launch(worker_cfg, &launch_request, &env.worker).await {
        Ok(a) => a,
        Err(e) => {
            stream
                .fail(503, &format!("Failed to start the launch: {e}"))
                .await;
            return Ok(());
        }
    };
    if !present {
        env.cache()
            .put_status(&image, LastStatus::Building, env.now(), &cfg.ttl);
    }
    let launch = Relay {
        launch_id: &accepted.id,
        events_url: &accepted.events_url,
        after: None,
        image: Some(&image),
    };
    relay(cfg, env, stream, launch).await;
    Ok(())
}

//! `GET /build/<provider>/<spec>`: BinderHub's event stream. Every error is a `failed`
//! event on a 200 stream, whose headers the entry has already sent.
//!
//! The link is checked and resolved as for the resolve API ([`Prepare`]); the image check
//! answers from the cache when it can; only then is the worker asked for a launch, and
//! its numbered events are relayed ([`super::relay`]). A reconnecting EventSource sends
//! the last relayed id, and follows the same launch again instead of starting another.

use bindery_core::cache::LastStatus;
use bindery_core::events::{Event, Phase};
use bindery_core::launch;
use bindery_core::sse::{self, SseEvent};
use bindery_core::worker_api::{LAUNCHES_PATH, LaunchRequest, parse_last_event_id};
use bindery_edge::config::LAUNCH_VARIABLES;
use bindery_edge::fetch::{Fetch, StreamingFetch};
use bindery_edge::{respond, worker};
use futures::{Sink, SinkExt};
use http::Request;

use super::relay::{Relay, relay};
use crate::client;
use crate::env::Env;
use crate::prepare::{Prepare, Refusal};

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

/// Runs the event stream of `<provider>/<raw spec>` into `stream`.
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
    if let Err(refusal) = launch_and_relay(request, provider, raw_spec, env, stream).await {
        stream.refuse(&refusal).await;
    }
}

async fn launch_and_relay<F, S>(
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
    let mut prepare = Prepare::load(env, LAUNCH_VARIABLES, None)?;
    // BinderHub's order: the client's network first, then what it asked for.
    let client = prepare.admit(request)?;
    if !launch::accepts_event_stream(respond::header(request, "accept")) {
        return Err(Refusal::NotAnEventStream);
    }
    let cfg = prepare.config();
    cfg.worker()?;
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
    let launch_host = client::base_url(request, Some(cfg));
    let launch_request =
        LaunchRequest::new(&spec, resolved, image.clone(), present, launch_host, client);
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

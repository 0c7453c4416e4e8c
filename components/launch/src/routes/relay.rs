//! The relay of a launch's events from the worker to the client, until `ready` or
//! `failed`, after which the stream stays open a few seconds for the client to close it
//! ([`Stream::linger`]). Build results are recorded in the cache on the way, for the badges and the
//! next launch; every event keeps the worker's number in its id ([`relay_id`]), so a
//! reconnect resumes where it stopped.

use bindery_core::cache::LastStatus;
use bindery_core::events::{Event, Phase};
use bindery_core::sse::{self, SseDecoder, SseMessage};
use bindery_core::worker_api::relay_id;
use bindery_edge::config::EdgeConfig;
use bindery_edge::fetch::{StreamingBody, StreamingFetch};
use bindery_edge::{forget_image, mark_built, worker};
use futures::Sink;

use super::build::Stream;
use crate::env::Env;

/// Which events to relay.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'r> {
    /// The launch's id at the worker.
    pub launch_id: &'r str,
    /// Where its events stream, relative to the worker.
    pub events_url: &'r str,
    /// The worker's number of the last event the client saw, on a reconnect.
    pub after: Option<&'r str>,
    /// The image launched, when known before its events name it.
    pub image: Option<&'r str>,
}

/// Relays the events of `launch` into `stream`; a failure is a `failed` event.
pub async fn relay<F, S>(
    cfg: &EdgeConfig,
    env: &Env<'_, F>,
    stream: &mut Stream<S>,
    launch: Relay<'_>,
) where
    F: StreamingFetch,
    S: Sink<Vec<u8>> + Unpin,
{
    let Ok(worker_cfg) = cfg.worker() else { return };
    let request = match worker::events_request(worker_cfg, launch.events_url, launch.after) {
        Ok(r) => r,
        Err(e) => return stream.fail(500, &e.to_string()).await,
    };
    let mut upstream = match env.worker.send_streaming(request).await {
        Ok(r) if r.status() == 200 => r,
        Ok(r) if r.status() == 404 => return stream.fail(404, "This launch is no longer known to the build service; reload the page to start again").await,
        Ok(r) => return stream.fail(502, &format!("The build service answered {} for the launch's events", r.status())).await,
        Err(e) => return stream.fail(503, &format!("Failed to follow the launch: {e}")).await,
    };
    let mut decoder = SseDecoder::new();
    let mut image = launch.image.map(String::from);
    while let Some(chunk) = upstream.next_chunk().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return stream
                    .fail(502, &format!("The build service's stream broke: {e}"))
                    .await;
            }
        };
        for message in decoder.feed(&chunk) {
            match message {
                SseMessage::Comment(text) => stream.raw(sse::comment(&text)).await,
                SseMessage::Overflow => {}
                SseMessage::Event { id, data, .. } => {
                    let Ok(event) = Event::from_json(&data) else {
                        continue;
                    };
                    if let Some(i) = event.image_name.clone().or_else(|| event.image.clone()) {
                        image.get_or_insert(i);
                    }
                    if let Some(i) = image.as_deref() {
                        record(cfg, env, &event, i);
                    }
                    let relayed = id.map(|i| relay_id(launch.launch_id, &i));
                    stream.event(&event, relayed).await;
                    if event.phase.is_terminal() {
                        // The worker's stream is no longer needed.
                        drop(upstream);
                        return stream.linger(env.pause).await;
                    }
                    if !stream.is_open() {
                        return;
                    }
                }
            }
        }
        if !stream.is_open() {
            return;
        }
    }
    stream
        .fail(
            502,
            "The build service closed the event stream unexpectedly",
        )
        .await;
}

/// Records what a build's end means for the cache: `built`, or the `ready` that ends a
/// `build_only` build in its place (it names the image as `built` does).
fn record<F>(cfg: &EdgeConfig, env: &Env<'_, F>, event: &Event, image: &str) {
    let (cache, now) = (env.cache(), env.now());
    match event.phase {
        Phase::Built => mark_built(image, cfg, cache, now),
        Phase::Ready if event.image_name.is_some() => mark_built(image, cfg, cache, now),
        Phase::Failed => {
            // A cached "present" may be why it failed (an image pruned from the registry
            // fails at the pull): the next launch asks the registry again, one manifest
            // check instead of hours of failures until the entry expires.
            forget_image(image, cache);
            if cache.status(image, now).is_some() {
                cache.put_status(image, LastStatus::Failed, now, &cfg.ttl);
            }
        }
        _ => {}
    }
}

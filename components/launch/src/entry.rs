//! The Spin entry: reads the request, answers through [`crate::routes::handle`] with
//! Spin's variables, store and outbound HTTP, and sends the answer or the event stream.

use bindery_edge::cache::Cache;
use bindery_edge::fetch::{Limits, SpinFetch};
use bindery_edge::respond;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

use crate::env::{Env, SpinVariables};
use crate::routes::{self, Answer, build};

/// The request headers any route reads: the event stream's `Accept` and `Last-Event-ID`,
/// the client address Spin passes for the ban rules, the origin build tokens name (and
/// CORS answers), and the federation a proxied page came through.
///
/// Federation mode passes on `Accept-Language`, `User-Agent` and `If-None-Match` to the
/// prime and reads the `host` cookie of `/build`.
const HEADERS: [http::HeaderName; 11] = [
    http::header::ACCEPT,
    http::header::ACCEPT_LANGUAGE,
    http::header::USER_AGENT,
    http::header::IF_NONE_MATCH,
    http::header::COOKIE,
    http::HeaderName::from_static("last-event-id"),
    http::HeaderName::from_static("spin-client-addr"),
    http::HeaderName::from_static("x-forwarded-for"),
    http::header::ORIGIN,
    http::header::HOST,
    http::HeaderName::from_static(crate::client::LAUNCH_HOST_HEADER),
];

#[spin_sdk::http_component]
async fn serve(incoming: IncomingRequest, out: ResponseOutparam) {
    // Every route is a `GET` or `HEAD`: no body, and only the headers named here.
    let request = match bindery_edge::incoming::read_head(&incoming, true, &HEADERS) {
        Ok(r) => r,
        Err(e) => return respond::send(out, respond::text(e.status_code(), &e.to_string())),
    };
    // An event stream lasts minutes; the request resource is not needed for it.
    drop(incoming);
    let mut env = Env::new(
        &SpinVariables,
        &Cache::open_default,
        SpinFetch::default(),
        respond::now,
    );
    env.worker = SpinFetch::within(Limits::WORKER);
    env.quick = SpinFetch::within(Limits::HEALTH);
    env.pause = bindery_edge::timer::pause;
    match routes::handle(&request, &env).await {
        Answer::Whole(response) => respond::send(out, response),
        Answer::ThenRefresh(response) => {
            respond::send(out, response);
            routes::federation::refresh(&env).await;
        }
        Answer::Stream { provider, spec } => {
            // The rate limit is counted before the headers, which carry its state.
            let opened = build::open(&request, &provider, &spec, &env).await;
            let headers: Vec<(String, Vec<u8>)> = build::STREAM_HEADERS
                .iter()
                .map(|(name, value)| (*name, value.to_string()))
                .chain(opened.headers.iter().map(|(n, v)| (*n, v.clone())))
                .map(|(name, value)| (name.to_owned(), value.into_bytes()))
                .collect();
            let Ok(fields) = Fields::from_list(&headers) else {
                return;
            };
            let outgoing = OutgoingResponse::new(fields);
            if outgoing.set_status_code(200).is_err() {
                return;
            }
            let sink = outgoing.take_body();
            out.set(outgoing);
            let mut stream = build::Stream::new(sink);
            build::proceed(opened, &request, &provider, &spec, &env, &mut stream).await;
        }
    }
}

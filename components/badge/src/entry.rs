//! The Spin entry: reads the request's path and `If-None-Match`, answers through
//! [`crate::handle`] with Spin's variables and store, and sends the answer.

use bindery_edge::cache::Cache;
use bindery_edge::config::{BADGE_VARIABLES, EdgeConfig};
use bindery_edge::respond;

use crate::{Route, handle, route};

#[spin_sdk::http_component]
fn serve(incoming: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    // Badges are `GET`s: the path and `If-None-Match` are all a badge depends on.
    let request =
        match bindery_edge::incoming::read_head(&incoming, false, &[http::header::IF_NONE_MATCH]) {
            Ok(request) => request,
            Err(e) => {
                return respond::send(out, respond::text(e.status_code(), &e.to_string()));
            }
        };
    drop(incoming);
    // Only the live badge reads the store; the launch badges need nothing opened.
    let cache = match route(request.uri().path()) {
        Route::Status(_) => Cache::open_default(),
        _ => Cache::disabled(),
    };
    respond::send(
        out,
        handle(
            &request,
            || EdgeConfig::load_declared(BADGE_VARIABLES),
            &cache,
            respond::now(),
        ),
    );
}

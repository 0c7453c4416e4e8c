//! The Spin entry: reads the request and its body (up to [`crate::MAX_BODY`]), answers
//! through [`crate::handle`] with Spin's variables, store and outbound HTTP, and sends the
//! answer.

use bindery_edge::cache::Cache;
use bindery_edge::config::{EdgeConfig, WEBHOOK_VARIABLES};
use bindery_edge::fetch::{Limits, SpinFetch};
use bindery_edge::respond;

use crate::{MAX_BODY, handle};

#[spin_sdk::http_component]
async fn serve(request: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    let request = match bindery_edge::incoming::read_request(request, MAX_BODY).await {
        Ok(request) => request,
        Err(e) => return respond::send(out, respond::json_error(e.status_code(), &e.to_string())),
    };
    let cache = Cache::open_default();
    // The webhook reaches only the worker, and must answer the provider within seconds.
    let fetch = SpinFetch::within(Limits::QUICK);
    respond::send(
        out,
        handle(
            &request,
            || EdgeConfig::load_declared(WEBHOOK_VARIABLES),
            &cache,
            &fetch,
            respond::now(),
        )
        .await,
    );
}

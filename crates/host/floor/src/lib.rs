//! A benchmark component for `bindery-host`: the least work a spin-sdk 5.2 component can
//! do to answer a request. It reads nothing, imports nothing beyond what spin-sdk and std
//! bring, and writes a fixed body of a launch badge's size in one call.
//!
//! `cargo xtask bench` serves it beside the real components: its ratio to a native server
//! is the most any component can reach in this host on the machine at hand (a fresh
//! instance per request, the wasi-http plumbing and the HTTP path), which the badge's and
//! the resolve's ratios are read against.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// The answer's length: that of the launch badge with the logo.
const LENGTH: usize = 1171;

static BODY: [u8; LENGTH] = [b'x'; LENGTH];

#[spin_sdk::http_component]
fn handle(_request: IncomingRequest, out: ResponseOutparam) {
    let headers = [
        ("content-type".to_owned(), b"text/plain".to_vec()),
        ("content-length".to_owned(), LENGTH.to_string().into_bytes()),
    ];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let Ok(body) = response.body() else { return };
    out.set(response);
    let Ok(stream) = body.write() else { return };
    if stream.blocking_write_and_flush(&BODY).is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

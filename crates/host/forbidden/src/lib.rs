//! A test component that reads a directory, so it imports `wasi:filesystem`: an edge
//! component may not, and `bindery-host` must refuse to load it, naming the import.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let entries = std::fs::read_dir("/")?.count();
    Ok(Response::new(200, format!("{entries} entries")))
}

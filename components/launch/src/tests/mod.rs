//! Native tests of the routes: the real route code over in-memory variables, a
//! `MemoryKv` store and a scripted worker and registry.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use bindery_core::cache::{CacheTtl, CachedRef, NEVER, RefSource};
use bindery_core::events::Event;
use bindery_core::image;
use bindery_core::provider::{ProviderId, ProviderSettings, Spec};
use bindery_core::resolve::{Outcome, ref_cache};
use bindery_core::sse::{SseDecoder, SseMessage};
use bindery_edge::ConfigError;
use bindery_edge::cache::{Cache, MemoryKv};
use bindery_edge::config::{
    BUILD_RATE_LIMIT, EdgeConfig, IMAGE_PREFIX, REGISTRY_URL, WORKER_TOKEN, WORKER_URL,
};
use bindery_edge::testing::{ScriptedFetch, block_on};
use http::Request;

use crate::env::{Env, Variables};
use crate::routes::{self, Answer, build};

mod brakes;
mod build_stream;
mod federation;
mod member;
mod other_routes;
mod page_headers;

const NOW: u64 = 1_700_000_000;
const SHA: &str = "1479e0252b2e648bb755ee913292b79495931717";
const WORKER: &str = "http://127.0.0.1:8585";
const REGISTRY: &str = "http://127.0.0.1:5000";
const PREFIX: &str = "127.0.0.1:5000/binder-";
const LAUNCH_ID: &str = "0f3c9a1b2c3d4e5f0f3c9a1b2c3d4e5f";

/// Variables from a table; remembers every list a route asked for.
struct Vars {
    values: Vec<(&'static str, String)>,
    loads: RefCell<Vec<Vec<String>>>,
}

impl Variables for Vars {
    fn load(&self, declared: &[&str]) -> Result<EdgeConfig, ConfigError> {
        self.loads
            .borrow_mut()
            .push(declared.iter().map(|s| (*s).to_owned()).collect());
        EdgeConfig::from_source(|name| {
            Ok(declared
                .contains(&name)
                .then(|| self.values.iter().find(|(k, _)| *k == name))
                .flatten()
                .map(|(_, v)| v.clone()))
        })
    }
}

/// The edge's surroundings: variables, a store, a scripted worker and registry.
struct World {
    vars: Vars,
    kv: MemoryKv,
    fetch: ScriptedFetch,
}

impl World {
    /// A world in which GitHub already confirmed `gh/o/r/<SHA>` (the entry a first launch
    /// of that link leaves behind): the tests of the launch flow start after that check.
    fn new(extra: &[(&'static str, &str)]) -> Self {
        let world = Self::unconfirmed(extra);
        let spec = pinned_spec();
        let resolved = ref_cache::from_cache(
            &spec,
            &CachedRef {
                resolved_ref: SHA.into(),
                resolved_spec: String::new(),
                ref_url: String::new(),
                build_slug: String::new(),
                etag: None,
                source: RefSource::Api,
                stored_at: NOW,
                expires_at: NEVER,
            },
        )
        .unwrap();
        let outcome = Outcome::Resolved(resolved);
        let (_, write) =
            ref_cache::after_upstream(&spec, &outcome, None, NOW, &CacheTtl::default());
        let write = write.unwrap();
        world.cache().put(&write.key, &write.entry);
        world
    }

    /// A world whose store knows nothing yet.
    fn unconfirmed(extra: &[(&'static str, &str)]) -> Self {
        let mut values: Vec<(&'static str, String)> =
            extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        // Extras come first and win. The rate limit is off unless a test is about it: the
        // other tests' scripted worker does not count.
        for (k, v) in [
            (WORKER_URL, WORKER),
            (WORKER_TOKEN, "worker-token"),
            (REGISTRY_URL, REGISTRY),
            (IMAGE_PREFIX, PREFIX),
            (BUILD_RATE_LIMIT, "0"),
        ] {
            values.push((k, v.to_owned()));
        }
        Self {
            vars: Vars {
                values,
                loads: RefCell::new(Vec::new()),
            },
            kv: MemoryKv::default(),
            fetch: ScriptedFetch::new(),
        }
    }

    fn cache(&self) -> Cache<'_> {
        Cache::new(&self.kv)
    }

    /// Runs `f` with the environment of one request.
    fn with_env<T>(&self, f: impl FnOnce(&Env<'_, &ScriptedFetch>) -> T) -> T {
        let open = || Cache::new(&self.kv);
        let env = Env::new(&self.vars, &open, &self.fetch, || NOW);
        f(&env)
    }

    /// The whole answer to `GET path` (not an event stream).
    fn get(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> http::Response<Vec<u8>> {
        let request = request(method, path, headers);
        match self.with_env(|env| block_on(routes::handle(&request, env))) {
            Answer::Whole(response) => response,
            // The checks that follow are `refresh`'s, which a test runs on its own.
            Answer::ThenRefresh(response) => response,
            Answer::Stream { .. } => panic!("{path} answered with an event stream"),
        }
    }

    /// The event stream of `GET path`, as sent to the client.
    fn stream(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let request = request("GET", path, headers);
        let Answer::Stream { provider, spec } =
            self.with_env(|env| block_on(routes::handle(&request, env)))
        else {
            panic!("{path} answered without an event stream");
        };
        let mut sent: Vec<Vec<u8>> = Vec::new();
        self.with_env(|env| {
            let mut stream = build::Stream::new(&mut sent);
            block_on(build::run(&request, &provider, &spec, env, &mut stream));
        });
        String::from_utf8(sent.concat()).unwrap()
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Vec<u8>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://edge.test{path}"))
        .header("spin-client-addr", "198.51.100.7:40000");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Vec::new()).unwrap()
}

/// The events of a stream, with their ids.
fn events(text: &str) -> Vec<(Option<String>, Event)> {
    SseDecoder::new()
        .feed(text.as_bytes())
        .into_iter()
        .filter_map(|m| match m {
            SseMessage::Event { id, data, .. } => Some((id, Event::from_json(&data).unwrap())),
            _ => None,
        })
        .collect()
}

/// `gh/o/r/<SHA>`.
fn pinned_spec() -> Spec {
    Spec::parse(
        ProviderId::GitHub,
        &format!("o/r/{SHA}"),
        &ProviderSettings::default(),
    )
    .unwrap()
}

/// The image of `gh/o/r/<SHA>`.
fn pinned_image() -> String {
    let spec = pinned_spec();
    image::image_name(PREFIX, &spec.build_slug(Some(SHA)).unwrap(), SHA)
}

/// One worker event as the worker sends it: numbered.
fn worker_event(id: u64, event: &Event) -> String {
    format!("id: {id}\ndata: {}\n\n", event.to_json())
}

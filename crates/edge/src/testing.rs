//! Test helpers for code built on this crate, usable natively without a Spin runtime: a
//! scripted HTTP peer and a minimal executor.
//!
//! [`ScriptedFetch`] answers each request with the first scripted answer whose method and
//! URL prefix match, and records every request, so a test asserts both what the edge
//! answered and exactly which upstream calls it made (and with which headers). It also
//! implements [`StreamingFetch`]: an answer scripted with [`ScriptedFetch::stream`]
//! arrives in the chunks given, as the worker's event stream does.
//!
//! Only in this crate's tests and with the `testing` feature, which components enable in
//! their dev-dependencies.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::fetch::{Fetch, FetchError, StreamingBody, StreamingFetch};

/// Runs a future to completion on the current thread.
///
/// Meant for futures that never wait on real I/O (the edge functions driven by
/// [`ScriptedFetch`]): it polls in a loop.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

/// The chunks a streamed body arrives in.
type Chunks = Vec<Vec<u8>>;

/// One scripted answer.
#[derive(Debug)]
struct Rule {
    method: http::Method,
    url_prefix: String,
    answer: Result<http::Response<Vec<u8>>, FetchError>,
    /// The chunks the body arrives in when read as a stream; `None`: all at once.
    chunks: Option<Chunks>,
    /// `None`: answers forever; `Some(n)`: answers `n` more times.
    remaining: Option<usize>,
}

/// A scripted HTTP peer implementing [`Fetch`].
#[derive(Debug, Default)]
pub struct ScriptedFetch {
    rules: RefCell<Vec<Rule>>,
    requests: RefCell<Vec<http::Request<Vec<u8>>>>,
}

impl ScriptedFetch {
    /// An empty script: every request fails with [`FetchError::Unreachable`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers requests with `method` to URLs starting with `url_prefix`, every time.
    pub fn on(&self, method: &str, url_prefix: &str, answer: http::Response<Vec<u8>>) -> &Self {
        self.push(method, url_prefix, Ok(answer), None)
    }

    /// Like [`ScriptedFetch::on`], but only for the next matching request; later rules and
    /// `once` rules are used in the order added.
    pub fn once(&self, method: &str, url_prefix: &str, answer: http::Response<Vec<u8>>) -> &Self {
        self.push(method, url_prefix, Ok(answer), Some(1))
    }

    /// Answers matching requests with `status` and a body that arrives in `chunks` when
    /// read with [`StreamingFetch`] (and whole with [`Fetch`]), every time.
    pub fn stream(&self, method: &str, url_prefix: &str, status: u16, chunks: &[&str]) -> &Self {
        let body: String = chunks.concat();
        self.push(method, url_prefix, Ok(response(status, &[], body)), None);
        if let Some(rule) = self.rules.borrow_mut().last_mut() {
            rule.chunks = Some(chunks.iter().map(|c| c.as_bytes().to_vec()).collect());
        }
        self
    }

    /// Fails matching requests with `error`, every time.
    pub fn fail(&self, method: &str, url_prefix: &str, error: FetchError) -> &Self {
        self.push(method, url_prefix, Err(error), None)
    }

    fn push(
        &self,
        method: &str,
        url_prefix: &str,
        answer: Result<http::Response<Vec<u8>>, FetchError>,
        remaining: Option<usize>,
    ) -> &Self {
        self.rules.borrow_mut().push(Rule {
            method: http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET),
            url_prefix: url_prefix.to_owned(),
            answer,
            chunks: None,
            remaining,
        });
        self
    }

    /// How many requests were sent.
    pub fn calls(&self) -> usize {
        self.requests.borrow().len()
    }

    /// `METHOD url` of every request sent, in order.
    pub fn log(&self) -> Vec<String> {
        self.requests
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method(), r.uri()))
            .collect()
    }

    /// The requests sent, in order.
    pub fn requests(&self) -> std::cell::Ref<'_, Vec<http::Request<Vec<u8>>>> {
        self.requests.borrow()
    }

    fn answer(
        &self,
        request: &http::Request<Vec<u8>>,
    ) -> Result<(http::Response<Vec<u8>>, Option<Chunks>), FetchError> {
        let url = request.uri().to_string();
        let mut rules = self.rules.borrow_mut();
        let found = rules.iter_mut().find(|r| {
            r.method == request.method() && url.starts_with(&r.url_prefix) && r.remaining != Some(0)
        });
        let Some(rule) = found else {
            return Err(FetchError::Unreachable {
                origin: crate::fetch::origin(request.uri()),
                reason: format!("nothing scripted for {} {url}", request.method()),
            });
        };
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
        }
        match &rule.answer {
            Ok(response) => {
                let mut copy = http::Response::new(response.body().clone());
                *copy.status_mut() = response.status();
                *copy.headers_mut() = response.headers().clone();
                Ok((copy, rule.chunks.clone()))
            }
            Err(e) => Err(e.clone()),
        }
    }
}

impl Fetch for ScriptedFetch {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        let answer = self.answer(&request);
        self.requests.borrow_mut().push(request);
        answer.map(|(response, _)| response)
    }
}

impl StreamingFetch for ScriptedFetch {
    type Response = ScriptedStream;

    async fn send_streaming(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<ScriptedStream, FetchError> {
        let answer = self.answer(&request);
        self.requests.borrow_mut().push(request);
        let (response, chunks) = answer?;
        let status = response.status().as_u16();
        let chunks = chunks.unwrap_or_else(|| vec![response.into_body()]);
        Ok(ScriptedStream {
            status,
            chunks: chunks.into(),
        })
    }
}

/// A scripted answer read as a stream: its chunks, one per [`StreamingBody::next_chunk`].
#[derive(Debug)]
pub struct ScriptedStream {
    status: u16,
    chunks: VecDeque<Vec<u8>>,
}

impl StreamingBody for ScriptedStream {
    fn status(&self) -> u16 {
        self.status
    }

    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        self.chunks.pop_front().map(Ok)
    }
}

/// A response with `status`, `headers` and `body`, for scripts.
pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> http::Response<Vec<u8>> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(body.into())
        .unwrap_or_else(|_| http::Response::new(Vec::new()))
}

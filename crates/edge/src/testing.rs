//! Test helpers for code built on this crate, usable natively without a Spin runtime: a
//! scripted HTTP peer and a minimal executor.
//!
//! [`ScriptedFetch`] answers each request with the first scripted answer whose method and
//! URL prefix match, and records every request, so a test asserts both what the edge
//! answered and exactly which upstream calls it made (and with which headers).

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::fetch::{Fetch, FetchError};

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

/// One scripted answer.
#[derive(Debug)]
struct Rule {
    method: http::Method,
    url_prefix: String,
    answer: Result<http::Response<Vec<u8>>, FetchError>,
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
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
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
                Ok(copy)
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
        answer
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

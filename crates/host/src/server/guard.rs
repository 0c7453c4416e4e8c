//! What keeps one client, or one route, from taking the host: a total deadline on every
//! request body, a cap on the requests one client address has in flight, and component
//! instances reserved per component, so that a flood on one route leaves the others theirs.
//!
//! All three are cheap on the hot path: a body that is already complete (every `GET`) costs
//! no timer, and the two counters are a short critical section each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// The host's bounds on what clients can make it hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// The longest a client may take to send a request body, in total; past it the request
    /// is answered `408` and its component instance released. Zero: no bound.
    pub body_deadline: Duration,
    /// Requests one client address may have in flight at once; past it `429`. Zero: no
    /// bound. Behind a reverse proxy every request comes from the proxy's address: raise
    /// this or set it to zero there.
    pub max_requests_per_client: u32,
    /// Instances of the pool each component always has, whatever the others use. Capped at
    /// an equal share of the pool.
    pub reserved_instances: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            body_deadline: Duration::from_secs(10),
            max_requests_per_client: 100,
            reserved_instances: 32,
        }
    }
}

/// Counts the requests in flight per client address.
#[derive(Debug)]
pub(crate) struct ClientLimiter {
    max: u32,
    in_flight: Mutex<HashMap<IpAddr, u32>>,
}

/// One request counted against its client; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct ClientPermit {
    limiter: Arc<ClientLimiter>,
    client: IpAddr,
}

impl ClientLimiter {
    /// A limiter allowing `max` requests per address at once (0: no bound).
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            in_flight: Mutex::default(),
        })
    }

    /// The most requests one address may have in flight (0: no bound).
    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Counts a request from `client`, or `None` when it already has the most allowed.
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Option<ClientPermit> {
        if self.max == 0 {
            return Some(ClientPermit {
                limiter: Arc::clone(self),
                client,
            });
        }
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(client).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientPermit {
            limiter: Arc::clone(self),
            client,
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.in_flight).len()
    }
}

impl Drop for ClientPermit {
    fn drop(&mut self) {
        if self.limiter.max == 0 {
            return;
        }
        let mut in_flight = lock(&self.limiter.in_flight);
        // An address with nothing in flight is forgotten, so the map holds only live clients.
        if let Some(count) = in_flight.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.client);
            }
        }
    }
}

/// The instance pool shared by the components, each with a reserved part.
///
/// A component may take an instance when, after taking it, the pool still has enough free
/// instances for every other component to reach its reservation. So a flood on one route
/// uses at most the pool minus the others' reservations.
#[derive(Debug)]
pub(crate) struct InstancePool {
    total: u32,
    reserved: u32,
    used: Mutex<Vec<u32>>,
}

/// One instance taken from the pool by a component; returned when dropped.
#[derive(Debug)]
pub(crate) struct InstancePermit {
    pool: Arc<InstancePool>,
    component: usize,
}

impl InstancePool {
    /// A pool of `total` instances for `components` components, each with `reserved`
    /// instances of its own (capped at an equal share).
    pub(crate) fn new(total: u32, components: usize, reserved: u32) -> Arc<Self> {
        let share = total / u32::try_from(components.max(1)).unwrap_or(u32::MAX);
        Arc::new(Self {
            total,
            reserved: reserved.min(share),
            used: Mutex::new(vec![0; components]),
        })
    }

    /// Takes an instance for `component`, or `None` when that would eat into what the
    /// other components are owed (or the pool is empty).
    pub(crate) fn take(self: &Arc<Self>, component: usize) -> Option<InstancePermit> {
        let mut used = lock(&self.used);
        let in_use: u32 = used.iter().sum();
        let owed: u32 = used
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != component)
            .map(|(_, n)| self.reserved.saturating_sub(*n))
            .sum();
        if in_use.saturating_add(owed).saturating_add(1) > self.total {
            return None;
        }
        *used.get_mut(component)? += 1;
        Some(InstancePermit {
            pool: Arc::clone(self),
            component,
        })
    }
}

impl Drop for InstancePermit {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.pool.used).get_mut(self.component) {
            *n = n.saturating_sub(1);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request body that must be complete by a deadline: past it, reading fails, and
/// [`BodyDeadline::passed`] resolves for whoever waits on the answer.
pub(crate) struct DeadlineBody {
    inner: Incoming,
    timer: Option<Pin<Box<Sleep>>>,
    complete: Arc<AtomicBool>,
}

/// The watch on a [`DeadlineBody`], kept by the dispatcher.
#[derive(Debug)]
pub(crate) struct BodyDeadline {
    at: Option<Instant>,
    complete: Arc<AtomicBool>,
}

impl DeadlineBody {
    /// Bounds `inner` by `limit` from now (zero: no bound).
    pub(crate) fn new(inner: Incoming, limit: Duration) -> (Self, BodyDeadline) {
        let complete = Arc::new(AtomicBool::new(inner.is_end_stream()));
        // A body that is already complete (every GET) needs no timer.
        let at = (!limit.is_zero() && !inner.is_end_stream()).then(|| Instant::now() + limit);
        let body = Self {
            inner,
            timer: at.map(|at| Box::pin(tokio::time::sleep_until(at))),
            complete: Arc::clone(&complete),
        };
        (body, BodyDeadline { at, complete })
    }
}

impl BodyDeadline {
    /// Resolves when the deadline passes with the body still incomplete; never otherwise.
    pub(crate) async fn passed(&self) {
        match self.at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                if self.complete.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.complete.store(true, Ordering::Release);
                    this.timer = None;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let passed = this
                    .timer
                    .as_mut()
                    .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                if passed {
                    this.timer = None;
                    return Poll::Ready(Some(Err(
                        wasmtime_wasi_http::Error::ConnectionReadTimeout,
                    )));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_may_hold_only_its_share_and_is_forgotten_when_done() {
        let limiter = ClientLimiter::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = limiter.admit(a).expect("first");
        let second = limiter.admit(a).expect("second");
        assert!(
            limiter.admit(a).is_none(),
            "a third request from a is refused"
        );
        assert!(limiter.admit(b).is_some(), "b is counted apart");
        drop(first);
        let third = limiter.admit(a).expect("a slot came back");
        drop((second, third));
        assert_eq!(limiter.tracked(), 0, "idle addresses are forgotten");
        let unbounded = ClientLimiter::new(0);
        let held: Vec<_> = (0..1000).filter_map(|_| unbounded.admit(a)).collect();
        assert_eq!(held.len(), 1000);
    }

    #[test]
    fn a_flooded_component_leaves_the_others_their_reservation() {
        // (pool, components, reserved, what component 0 can take alone, then component 1)
        let cases = [
            (10, 3, 2, 6, 2),
            (10, 3, 0, 10, 0),
            (10, 2, 100, 5, 5), // the reservation is capped at an equal share
            (1000, 3, 32, 936, 32),
        ];
        for (total, components, reserved, flood, other) in cases {
            let pool = InstancePool::new(total, components, reserved);
            let held: Vec<_> = std::iter::from_fn(|| pool.take(0)).collect();
            assert_eq!(held.len(), flood, "{total}/{components}/{reserved}: flood");
            let others: Vec<_> = std::iter::from_fn(|| pool.take(1)).collect();
            assert_eq!(
                others.len(),
                other,
                "{total}/{components}/{reserved}: other"
            );
            drop(held);
            drop(others);
            assert!(pool.take(0).is_some(), "instances come back");
        }
        assert!(
            InstancePool::new(4, 2, 1).take(7).is_none(),
            "unknown component"
        );
    }
}

//! Waiting: [`Pause`], the seam a component waits through, and on wasm [`pause`], a wait
//! on WASI's monotonic clock inside spin-sdk's executor.
//!
//! A component waits only where it must hold a stream open on purpose (the `/build`
//! stream after its last event, see `bindery_core::sse::LINGER_KEEPALIVES`); native tests
//! pass [`no_pause`], so the same code runs at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A wait of the given length.
pub type Pause = fn(Duration) -> Pin<Box<dyn Future<Output = ()>>>;

/// A wait that ends at once (native tests).
pub fn no_pause(_: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::ready(()))
}

/// Waits `length` on the monotonic clock, in spin-sdk's executor.
#[cfg(target_arch = "wasm32")]
pub fn pause(length: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    use std::task::Poll;
    use wasi::clocks::monotonic_clock;

    let nanos = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX);
    let until = monotonic_clock::now().saturating_add(nanos);
    Box::pin(async move {
        // Dropped when the wait ends or is dropped: the registered pollable goes with it.
        let mut registration: Option<spin_executor::CancelOnDropToken> = None;
        futures::future::poll_fn(|context| {
            if monotonic_clock::now() >= until {
                return Poll::Ready(());
            }
            let token = spin_executor::push_waker_and_get_token(
                monotonic_clock::subscribe_instant(until),
                context.waker().clone(),
            );
            // The registration of an earlier poll, if any, is cancelled here.
            drop(registration.replace(token.into()));
            Poll::Pending
        })
        .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pause_ends_at_once() {
        let pause: Pause = no_pause;
        crate::testing::block_on(pause(Duration::from_secs(3600)));
    }
}

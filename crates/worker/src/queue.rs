//! The build queue: at most N builds run at once; the rest wait in order.
//!
//! A waiting build is told its position with a `waiting` event carrying `queue_position`
//! (1 = next) when it joins and again whenever its position changes (and only then). A
//! slot is a [`Slot`] guard: dropping it (the build ended, or its task was cancelled)
//! hands the slot to the next build in line.
//!
//! The queue is bounded (issue 13): [`PendingLimits`] caps the builds waiting or running
//! in the whole worker, and the builds one client (by the address the edge passes on)
//! waits for at once, counted by [`ClientShares`]. Past either, a launch is refused at
//! once with a [`QueueRefusal`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bindery_core::events::{Event, Phase};
use tokio::sync::oneshot;

use crate::events::EventLog;

#[derive(Debug)]
struct Waiter {
    log: Arc<EventLog>,
    grant: oneshot::Sender<()>,
    /// The position this waiter was last told.
    told: usize,
}

#[derive(Debug)]
struct State {
    running: usize,
    waiting: VecDeque<Waiter>,
}

/// The queue of builds.
#[derive(Debug)]
pub struct BuildQueue {
    max: usize,
    state: Mutex<State>,
}

/// A running build's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    queue: Arc<BuildQueue>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.release();
    }
}

fn position_event(position: usize) -> Event {
    let mut event = Event::new(
        Phase::Waiting,
        format!("Waiting for a build slot: position {position} in the queue\n"),
    );
    event.queue_position = Some(u32::try_from(position).unwrap_or(u32::MAX));
    event
}

impl BuildQueue {
    /// A queue running at most `max` builds at once (at least 1).
    pub fn new(max: usize) -> Arc<BuildQueue> {
        Arc::new(BuildQueue {
            max: max.max(1),
            state: Mutex::new(State {
                running: 0,
                waiting: VecDeque::new(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a slot, telling `log` the position while it waits.
    pub async fn acquire(self: &Arc<Self>, log: &Arc<EventLog>) -> Slot {
        let granted = {
            let mut state = self.state();
            if state.running < self.max && state.waiting.is_empty() {
                state.running += 1;
                None
            } else {
                let (grant, granted) = oneshot::channel();
                let position = state.waiting.len() + 1;
                log.append(position_event(position));
                state.waiting.push_back(Waiter {
                    log: Arc::clone(log),
                    grant,
                    told: position,
                });
                Some(granted)
            }
        };
        if let Some(granted) = granted {
            // The sender is only dropped after sending or with the queue itself.
            let _ = granted.await;
        }
        Slot {
            queue: Arc::clone(self),
        }
    }

    /// Takes a slot at once, past the limit if need be: for a build that already runs (one
    /// adopted when the worker starts). It counts like any other running build, so later
    /// builds wait until the running ones, adopted included, are below the limit.
    pub fn occupy(self: &Arc<Self>) -> Slot {
        self.state().running += 1;
        Slot {
            queue: Arc::clone(self),
        }
    }

    fn release(&self) {
        let mut state = self.state();
        state.running = state.running.saturating_sub(1);
        // A waiter whose build task went away (the worker is stopping, a task was
        // cancelled) holds no place: the builds behind it move up.
        state.waiting.retain(|w| !w.grant.is_closed());
        while state.running < self.max {
            let Some(next) = state.waiting.pop_front() else {
                break;
            };
            if next.grant.send(()).is_ok() {
                state.running += 1;
            }
        }
        for (i, waiter) in state.waiting.iter_mut().enumerate() {
            if waiter.told != i + 1 {
                waiter.told = i + 1;
                waiter.log.append(position_event(i + 1));
            }
        }
    }

    /// How many builds wait for a slot.
    pub fn len(&self) -> usize {
        self.state().waiting.len()
    }

    /// Whether no build waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many builds hold a slot.
    pub fn running(&self) -> usize {
        self.state().running
    }
}

/// The bounds of the queue: builds waiting or running in the whole worker, and builds
/// one client waits for at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Builds queued or running in the whole worker (`max_pending_builds`).
    pub total: usize,
    /// Distinct builds one client address waits for (`max_pending_builds_per_client`).
    pub per_client: usize,
}

impl Default for PendingLimits {
    fn default() -> Self {
        PendingLimits {
            total: 100,
            per_client: 5,
        }
    }
}

/// Why a build was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefusal {
    /// The client already waits for as many builds as it may.
    #[error(
        "Too many builds requested from your address: {limit} are already waiting or running. Try again when one of them has finished."
    )]
    ClientFull {
        /// The per-client limit.
        limit: usize,
    },
    /// The worker's queue is full.
    #[error(
        "This BinderHub is building too many images right now ({limit} are waiting or running). Try again in a few minutes."
    )]
    WorkerFull {
        /// The worker's limit.
        limit: usize,
    },
}

impl QueueRefusal {
    /// The HTTP status of the refusal: `429` for one client's excess, `503` for a full
    /// worker.
    pub fn status(&self) -> u16 {
        match self {
            QueueRefusal::ClientFull { .. } => 429,
            QueueRefusal::WorkerFull { .. } => 503,
        }
    }

    /// The launch's status label in the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            QueueRefusal::ClientFull { .. } => "client_queue_full",
            QueueRefusal::WorkerFull { .. } => "queue_full",
        }
    }
}

/// Client address -> image -> how many of that client's launches wait for its build.
type Shares = HashMap<String, HashMap<String, usize>>;

/// The builds each client waits for.
#[derive(Debug, Default)]
pub struct ClientShares {
    shares: Arc<Mutex<Shares>>,
}

/// One launch's share of a client's pending builds; dropping it gives the share back.
#[derive(Debug)]
pub struct ClientShare {
    shares: Arc<Mutex<Shares>>,
    client: String,
    image: String,
}

fn lock_shares(shares: &Mutex<Shares>) -> MutexGuard<'_, Shares> {
    shares
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientShares {
    /// Takes a share of `client` in the build of `image`: refused when the client already
    /// waits for `limit` other images (more launches of an image it waits for cost nothing,
    /// since they follow the same build).
    pub fn take(
        &self,
        client: &str,
        image: &str,
        limit: usize,
    ) -> Result<ClientShare, QueueRefusal> {
        let mut shares = lock_shares(&self.shares);
        let images = shares.entry(client.to_owned()).or_default();
        if !images.contains_key(image) && images.len() >= limit {
            if images.is_empty() {
                shares.remove(client);
            }
            return Err(QueueRefusal::ClientFull { limit });
        }
        *images.entry(image.to_owned()).or_default() += 1;
        Ok(ClientShare {
            shares: Arc::clone(&self.shares),
            client: client.to_owned(),
            image: image.to_owned(),
        })
    }

    /// How many builds `client` waits for.
    pub fn of(&self, client: &str) -> usize {
        lock_shares(&self.shares)
            .get(client)
            .map_or(0, HashMap::len)
    }
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut shares = lock_shares(&self.shares);
        let Some(images) = shares.get_mut(&self.client) else {
            return;
        };
        if let Some(count) = images.get_mut(&self.image) {
            *count -= 1;
            if *count == 0 {
                images.remove(&self.image);
            }
        }
        if images.is_empty() {
            shares.remove(&self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_already_running_take_slots_past_the_limit_and_later_builds_wait_for_them() {
        let queue = BuildQueue::new(1);
        let adopted = [queue.occupy(), queue.occupy()];
        assert_eq!(queue.running(), 2);
        let log = Arc::new(EventLog::new(100));
        let q = Arc::clone(&queue);
        let l = Arc::clone(&log);
        let waiting = tokio::spawn(async move { q.acquire(&l).await });
        while queue.is_empty() {
            tokio::task::yield_now().await;
        }
        let [first, second] = adopted;
        drop(first);
        assert_eq!(
            queue.len(),
            1,
            "one adopted build still holds the only slot"
        );
        drop(second);
        let slot = waiting.await.expect("granted");
        assert_eq!((queue.running(), queue.len()), (1, 0));
        drop(slot);
        assert_eq!(queue.running(), 0);
    }

    #[tokio::test]
    async fn waiting_builds_learn_their_position_and_move_up() {
        let queue = BuildQueue::new(1);
        let logs: Vec<Arc<EventLog>> = (0..3).map(|_| Arc::new(EventLog::new(100))).collect();
        let first = queue.acquire(&logs[0]).await;
        let q = Arc::clone(&queue);
        let l1 = Arc::clone(&logs[1]);
        let second = tokio::spawn(async move { q.acquire(&l1).await });
        while queue.is_empty() {
            tokio::task::yield_now().await;
        }
        let q = Arc::clone(&queue);
        let l2 = Arc::clone(&logs[2]);
        let third = tokio::spawn(async move { q.acquire(&l2).await });
        while queue.len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(first);
        let second = second.await.expect("second");
        assert_eq!(queue.len(), 1);
        drop(second);
        let third = third.await.expect("third");
        drop(third);
        assert_eq!(queue.running(), 0);
        let positions = |log: &EventLog| -> Vec<u32> {
            log.read_after(0)
                .events
                .iter()
                .filter_map(|(_, e)| e.queue_position)
                .collect()
        };
        assert!(positions(&logs[0]).is_empty());
        assert_eq!(positions(&logs[1]), vec![1]);
        assert_eq!(positions(&logs[2]), vec![2, 1]);
    }

    #[test]
    fn a_client_waits_for_a_bounded_number_of_distinct_builds_and_shares_come_back() {
        let shares = ClientShares::default();
        let a1 = shares.take("192.0.2.1", "img-1", 2).expect("first");
        let a1_again = shares
            .take("192.0.2.1", "img-1", 2)
            .expect("same image again");
        let a2 = shares.take("192.0.2.1", "img-2", 2).expect("second");
        let refused = shares
            .take("192.0.2.1", "img-3", 2)
            .expect_err("third image");
        assert_eq!(refused, QueueRefusal::ClientFull { limit: 2 });
        assert_eq!(refused.status(), 429);
        let _other = shares
            .take("192.0.2.2", "img-3", 2)
            .expect("another client");
        drop(a1);
        assert!(
            shares.take("192.0.2.1", "img-3", 2).is_err(),
            "img-1 still waited for"
        );
        drop(a1_again);
        let _a3 = shares
            .take("192.0.2.1", "img-3", 2)
            .expect("a share came back");
        drop(a2);
        assert_eq!(shares.of("192.0.2.1"), 1);
    }

    #[tokio::test]
    async fn a_waiter_is_told_its_position_when_it_changes_and_only_then() {
        // Three adopted builds over a limit of one, then two waiters.
        let queue = BuildQueue::new(1);
        let [first, other, last] = [queue.occupy(), queue.occupy(), queue.occupy()];
        let log = Arc::new(EventLog::new(100));
        let q = Arc::clone(&queue);
        let l = Arc::clone(&log);
        let gone = tokio::spawn(async move { q.acquire(&l).await });
        while queue.is_empty() {
            tokio::task::yield_now().await;
        }
        let second_log = Arc::new(EventLog::new(100));
        let q = Arc::clone(&queue);
        let l = Arc::clone(&second_log);
        let second = tokio::spawn(async move { q.acquire(&l).await });
        while queue.len() < 2 {
            tokio::task::yield_now().await;
        }
        // The first waiter's task goes away; an adopted build ends without freeing a slot
        // under the limit: the second waiter moves up to 1 and is told so, once.
        gone.abort();
        let _ = gone.await;
        drop(first);
        assert_eq!(queue.len(), 1);
        // Another ends: still no slot, the position stays, nothing is said.
        drop(other);
        drop(last);
        drop(second.await.expect("granted"));
        let positions: Vec<u32> = second_log
            .read_after(0)
            .events
            .iter()
            .filter_map(|(_, e)| e.queue_position)
            .collect();
        assert_eq!(positions, vec![2, 1]);
    }
}

//! The build queue: at most N builds run at once; the rest wait in order.
//!
//! A waiting build is told its position with a `waiting` event carrying `queue_position`
//! (1 = next) when it joins and again every time the queue moves. A slot is a [`Slot`]
//! guard: dropping it (the build ended, or its task was cancelled) hands the slot to the
//! next build in line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bindery_core::events::{Event, Phase};
use tokio::sync::oneshot;

use crate::events::EventLog;

#[derive(Debug)]
struct Waiter {
    log: Arc<EventLog>,
    grant: oneshot::Sender<()>,
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
                state.waiting.push_back(Waiter {
                    log: Arc::clone(log),
                    grant,
                });
                log.append(position_event(state.waiting.len()));
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
        let mut moved = false;
        while state.running < self.max {
            let Some(next) = state.waiting.pop_front() else {
                break;
            };
            moved = true;
            if next.grant.send(()).is_ok() {
                state.running += 1;
            }
        }
        if moved {
            for (i, waiter) in state.waiting.iter().enumerate() {
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
}

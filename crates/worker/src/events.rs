//! The in-memory event log of each launch and build, replayable from any offset.
//!
//! Every event gets the next sequence number, starting at 1: that number is the SSE `id`,
//! so a client that reconnects with `Last-Event-ID: n` reads from event `n + 1` on. Any
//! number of readers follow one log; an append wakes them through a `watch` channel.
//! A log is bounded: past its capacity, non-final events are dropped (the final `ready` or
//! `failed` always gets in), and a finished log is forgotten after a configurable time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bindery_core::events::Event;
use tokio::sync::watch;

/// One launch's or build's events.
#[derive(Debug)]
pub struct EventLog {
    state: Mutex<LogState>,
    changed: watch::Sender<()>,
}

#[derive(Debug)]
struct LogState {
    events: Vec<Arc<Event>>,
    capacity: usize,
    dropped: u64,
    finished_at: Option<Instant>,
}

/// What a reader gets: the events from its offset, numbered, and whether the log is done.
#[derive(Debug, Clone)]
pub struct Page {
    /// `(sequence number, event)`, in order.
    pub events: Vec<(u64, Arc<Event>)>,
    /// No event will follow these.
    pub finished: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data consistent (every update is one push),
    // so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventLog {
    /// An empty log keeping at most `capacity` events (at least 2).
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            state: Mutex::new(LogState {
                events: Vec::new(),
                capacity: capacity.max(2),
                dropped: 0,
                finished_at: None,
            }),
            changed: watch::Sender::new(()),
        }
    }

    /// Appends `event` and returns its sequence number; `None` when the log is finished or
    /// full (then the event is dropped). A `ready` or `failed` event finishes the log.
    pub fn append(&self, event: Event) -> Option<u64> {
        let terminal = event.phase.is_terminal();
        self.push(event, terminal)
    }

    /// Appends `event` as the last event, whatever its phase: a build stream ends with
    /// `built` (or `failed`), a launch stream with `ready` (or `failed`).
    pub fn append_final(&self, event: Event) -> Option<u64> {
        self.push(event, true)
    }

    fn push(&self, event: Event, terminal: bool) -> Option<u64> {
        let seq = {
            let mut state = lock(&self.state);
            if state.finished_at.is_some() {
                return None;
            }
            // Keep one slot for the final event, so a full log still ends properly.
            if !terminal && state.events.len() + 1 >= state.capacity {
                state.dropped += 1;
                return None;
            }
            state.events.push(Arc::new(event));
            if terminal {
                state.finished_at = Some(Instant::now());
            }
            state.events.len() as u64
        };
        self.changed.send_replace(());
        Some(seq)
    }

    /// Events after sequence number `after` (0 = from the start).
    pub fn read_after(&self, after: u64) -> Page {
        let state = lock(&self.state);
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.events.len());
        Page {
            events: state.events[start..]
                .iter()
                .enumerate()
                .map(|(i, e)| ((start + i + 1) as u64, Arc::clone(e)))
                .collect(),
            finished: state.finished_at.is_some(),
        }
    }

    /// A wake-up for every later append. Take it *before* reading, so nothing slips between.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Whether the final event is in.
    pub fn is_finished(&self) -> bool {
        lock(&self.state).finished_at.is_some()
    }

    /// How many events were dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.state).dropped
    }

    /// Every event's message, joined: the text of a build log.
    pub fn text(&self) -> String {
        lock(&self.state)
            .events
            .iter()
            .map(|e| e.message.as_str())
            .collect()
    }

    fn finished_before(&self, cutoff: Instant) -> bool {
        lock(&self.state).finished_at.is_some_and(|at| at <= cutoff)
    }
}

/// The logs of one kind (launches or builds), by id.
#[derive(Debug)]
pub struct Logs {
    logs: Mutex<HashMap<String, Arc<EventLog>>>,
    capacity: usize,
    keep_finished: Duration,
}

impl Logs {
    /// Logs of `capacity` events each, kept `keep_finished` after they finish.
    pub fn new(capacity: usize, keep_finished: Duration) -> Logs {
        Logs {
            logs: Mutex::new(HashMap::new()),
            capacity,
            keep_finished,
        }
    }

    /// A new, empty log under `id` (replacing any old one of that id).
    pub fn create(&self, id: &str) -> Arc<EventLog> {
        let log = Arc::new(EventLog::new(self.capacity));
        lock(&self.logs).insert(id.to_owned(), Arc::clone(&log));
        log
    }

    /// The log of `id`, if it is still kept.
    pub fn get(&self, id: &str) -> Option<Arc<EventLog>> {
        lock(&self.logs).get(id).cloned()
    }

    /// Forgets logs that finished more than the keep time before `now`; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let Some(cutoff) = now.checked_sub(self.keep_finished) else {
            return 0;
        };
        let mut logs = lock(&self.logs);
        let before = logs.len();
        logs.retain(|_, log| !log.finished_before(cutoff));
        before - logs.len()
    }

    /// How many logs are kept.
    pub fn len(&self) -> usize {
        lock(&self.logs).len()
    }

    /// Whether no log is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindery_core::events::Phase;

    fn msg(text: &str) -> Event {
        Event::new(Phase::Launching, text)
    }

    #[test]
    fn events_are_numbered_from_one_and_read_after_any_offset() {
        let log = EventLog::new(100);
        assert_eq!(log.append(msg("a")), Some(1));
        assert_eq!(log.append(msg("b")), Some(2));
        let page = log.read_after(1);
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].0, 2);
        assert_eq!(page.events[0].1.message, "b");
        assert!(!page.finished);
        assert!(log.read_after(99).events.is_empty());
    }

    #[test]
    fn the_final_event_finishes_the_log_and_nothing_follows_it() {
        let log = EventLog::new(100);
        log.append(msg("a"));
        assert_eq!(log.append(Event::failed(Some(500), "no")), Some(2));
        assert_eq!(log.append(msg("late")), None);
        let page = log.read_after(0);
        assert!(page.finished);
        assert_eq!(page.events.len(), 2);
    }

    #[test]
    fn a_full_log_drops_progress_but_keeps_room_for_the_final_event() {
        let log = EventLog::new(3);
        assert_eq!(log.append(msg("1")), Some(1));
        assert_eq!(log.append(msg("2")), Some(2));
        assert_eq!(log.append(msg("3")), None);
        assert_eq!(log.dropped(), 1);
        assert_eq!(log.append(Event::failed(None, "end")), Some(3));
        assert!(log.is_finished());
    }

    #[tokio::test]
    async fn an_append_wakes_a_subscriber() {
        let log = Arc::new(EventLog::new(10));
        let mut rx = log.subscribe();
        let writer = Arc::clone(&log);
        tokio::spawn(async move { writer.append(msg("x")) });
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("woken")
            .expect("sender alive");
        assert_eq!(log.read_after(0).events.len(), 1);
    }

    #[test]
    fn finished_logs_are_swept_after_their_keep_time_and_running_ones_stay() {
        let logs = Logs::new(10, Duration::from_secs(60));
        logs.create("running-1").append(msg("a"));
        logs.create("finished").append(Event::failed(None, "x"));
        assert_eq!(logs.sweep(Instant::now()), 0);
        assert_eq!(logs.sweep(Instant::now() + Duration::from_secs(61)), 1);
        assert!(logs.get("finished").is_none());
        assert!(logs.get("running-1").is_some());
    }
}

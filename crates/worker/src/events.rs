//! The in-memory event log of each launch and build, replayable from any offset.
//!
//! Every event gets the next sequence number, starting at 1: that number is the SSE `id`,
//! so a client that reconnects with `Last-Event-ID: n` reads from event `n + 1` on. Any
//! number of readers follow one log; an append wakes them through a `watch` channel.
//!
//! A log is bounded twice, because anything a client can make a build print is held here:
//! - in count: past its capacity, non-final events are dropped (the final `ready` or
//!   `failed` always gets in);
//! - in bytes: once the events' size passes [`EventLog::max_bytes`], the log keeps its
//!   first half (the head: what was fetched and how the build started) and its last half
//!   (the tail: where it failed), and the middle goes; a reader that asks for the cut part
//!   gets one marker event saying how much was cut, numbered as the last cut event, so a
//!   resume after it continues with the tail.
//!
//! Events are `Arc`s: a launch that follows a build's log shares the build's events
//! instead of copying them ([`EventLog::append_shared`]). A finished log is forgotten after
//! a configurable time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bindery_core::events::{Event, Phase};
use tokio::sync::watch;

/// The default byte cap of one log (`max_log_bytes`): 4 MiB.
pub const DEFAULT_MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

/// What one event costs beyond its message, for the cap: the event itself (its optional
/// fields are mostly empty) and the `Arc`'s two counts. With it, the byte cap binds before
/// the count cap for build output of ordinary line lengths.
const EVENT_OVERHEAD: usize = std::mem::size_of::<Event>() + 2 * std::mem::size_of::<usize>();

fn size_of(event: &Event) -> usize {
    event.message.len() + EVENT_OVERHEAD
}

/// One launch's or build's events.
#[derive(Debug)]
pub struct EventLog {
    state: Mutex<LogState>,
    changed: watch::Sender<()>,
}

#[derive(Debug)]
struct LogState {
    /// Events `1..=head.len()`.
    head: Vec<Arc<Event>>,
    head_bytes: usize,
    /// Events from `tail_start` on; empty until the head is full.
    tail: VecDeque<Arc<Event>>,
    tail_bytes: usize,
    /// The sequence number of `tail[0]` (of the next event while the tail is empty).
    tail_start: u64,
    /// How many events and bytes were cut between the head and the tail.
    cut_events: u64,
    cut_bytes: u64,
    capacity: usize,
    max_bytes: usize,
    dropped: u64,
    finished_at: Option<Instant>,
}

impl LogState {
    fn held(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn last_seq(&self) -> u64 {
        if self.tail.is_empty() && self.cut_events == 0 {
            self.head.len() as u64
        } else {
            self.tail_start + self.tail.len() as u64 - 1
        }
    }

    fn push(&mut self, event: Arc<Event>) -> u64 {
        let size = size_of(&event);
        let half = self.max_bytes / 2;
        if self.tail.is_empty() && self.cut_events == 0 && self.head_bytes + size <= half {
            self.head_bytes += size;
            self.head.push(event);
            self.tail_start = self.head.len() as u64 + 1;
            return self.head.len() as u64;
        }
        self.tail_bytes += size;
        self.tail.push_back(event);
        // The newest event always stays, however large: it may be the final one.
        while self.tail_bytes > half && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                let size = size_of(&old);
                self.tail_bytes -= size;
                self.cut_bytes += old.message.len() as u64;
                self.cut_events += 1;
                self.tail_start += 1;
            }
        }
        self.last_seq()
    }

    /// The marker standing for the cut events, numbered as the last of them.
    fn marker(&self) -> Option<(u64, Arc<Event>)> {
        (self.cut_events > 0).then(|| {
            let event = Event::new(
                Phase::Unknown,
                format!(
                    "\n[... {} bytes of log cut here: the log keeps its first and last {} KiB ...]\n",
                    self.cut_bytes,
                    self.max_bytes / 2 / 1024
                ),
            );
            (self.tail_start - 1, Arc::new(event))
        })
    }
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
    /// An empty log keeping at most `capacity` events (at least 2) and
    /// [`DEFAULT_MAX_LOG_BYTES`].
    pub fn new(capacity: usize) -> EventLog {
        EventLog::with_max_bytes(capacity, DEFAULT_MAX_LOG_BYTES)
    }

    /// An empty log keeping at most `capacity` events (at least 2) and about `max_bytes`
    /// of them (head and tail, see the module docs).
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> EventLog {
        EventLog {
            state: Mutex::new(LogState {
                head: Vec::new(),
                head_bytes: 0,
                tail: VecDeque::new(),
                tail_bytes: 0,
                tail_start: 1,
                cut_events: 0,
                cut_bytes: 0,
                capacity: capacity.max(2),
                max_bytes,
                dropped: 0,
                finished_at: None,
            }),
            changed: watch::Sender::new(()),
        }
    }

    /// Appends `event` and returns its sequence number; `None` when the log is finished or
    /// full (then the event is dropped). A `ready` or `failed` event finishes the log.
    pub fn append(&self, event: Event) -> Option<u64> {
        self.append_shared(Arc::new(event))
    }

    /// Appends an event another log holds too, without copying it (see
    /// [`EventLog::append`]).
    pub fn append_shared(&self, event: Arc<Event>) -> Option<u64> {
        let terminal = event.phase.is_terminal();
        self.push(event, terminal)
    }

    /// Appends `event` as the last event, whatever its phase: a build stream ends with
    /// `built` (or `failed`), a launch stream with `ready` (or `failed`).
    pub fn append_final(&self, event: Event) -> Option<u64> {
        self.push(Arc::new(event), true)
    }

    fn push(&self, event: Arc<Event>, terminal: bool) -> Option<u64> {
        let seq = {
            let mut state = lock(&self.state);
            if state.finished_at.is_some() {
                return None;
            }
            // Keep one slot for the final event, so a full log still ends properly.
            if !terminal && state.held() + 1 >= state.capacity {
                state.dropped += 1;
                return None;
            }
            let seq = state.push(event);
            if terminal {
                state.finished_at = Some(Instant::now());
            }
            seq
        };
        self.changed.send_replace(());
        Some(seq)
    }

    /// Events after sequence number `after` (0 = from the start); a reader behind the cut
    /// part gets the marker in its place.
    pub fn read_after(&self, after: u64) -> Page {
        let state = lock(&self.state);
        let mut events = Vec::new();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.head.len());
        events.extend(
            state.head[start..]
                .iter()
                .enumerate()
                .map(|(i, e)| ((start + i + 1) as u64, Arc::clone(e))),
        );
        if let Some((seq, marker)) = state.marker()
            && after < seq
        {
            events.push((seq, marker));
        }
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(state.tail_start))
            .unwrap_or(usize::MAX)
            .min(state.tail.len());
        events.extend(
            state
                .tail
                .iter()
                .enumerate()
                .skip(skip)
                .map(|(i, e)| (state.tail_start + i as u64, Arc::clone(e))),
        );
        Page {
            events,
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

    /// How many message bytes were cut between the head and the tail.
    pub fn cut_bytes(&self) -> u64 {
        lock(&self.state).cut_bytes
    }

    /// The byte cap of this log.
    pub fn max_bytes(&self) -> usize {
        lock(&self.state).max_bytes
    }

    /// Every kept event's message, joined, with the marker where the log was cut: the
    /// text of a build log.
    pub fn text(&self) -> String {
        self.read_after(0)
            .events
            .iter()
            .map(|(_, e)| e.message.as_str())
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
    max_bytes: usize,
    keep_finished: Duration,
}

impl Logs {
    /// Logs of `capacity` events each, kept `keep_finished` after they finish.
    pub fn new(capacity: usize, keep_finished: Duration) -> Logs {
        Logs {
            logs: Mutex::new(HashMap::new()),
            capacity,
            max_bytes: DEFAULT_MAX_LOG_BYTES,
            keep_finished,
        }
    }

    /// The same logs, each capped at about `max_bytes` (see [`EventLog::with_max_bytes`]).
    pub fn with_max_bytes(self, max_bytes: usize) -> Logs {
        Logs { max_bytes, ..self }
    }

    /// A new, empty log under `id` (replacing any old one of that id).
    pub fn create(&self, id: &str) -> Arc<EventLog> {
        let log = Arc::new(EventLog::with_max_bytes(self.capacity, self.max_bytes));
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

    #[test]
    fn a_log_over_its_byte_cap_keeps_its_head_and_tail_with_a_marker_between() {
        // Each event costs 100 bytes plus the overhead: three fit in each half.
        let line = |n: usize| msg(&format!("{n:>99}\n"));
        let cost = 100 + EVENT_OVERHEAD;
        let log = EventLog::with_max_bytes(1_000, 2 * (3 * cost + cost / 2));
        for n in 1..=20 {
            assert_eq!(log.append(line(n)), Some(n as u64), "numbering goes on");
        }
        let page = log.read_after(0);
        let seqs: Vec<u64> = page.events.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            [1, 2, 3, 17, 18, 19, 20],
            "head, marker (as 17), tail"
        );
        let marker = &page.events[3].1;
        assert_eq!(marker.phase, Phase::Unknown);
        assert!(
            marker.message.contains("1400 bytes of log cut"),
            "{}",
            marker.message
        );
        assert_eq!(log.cut_bytes(), 1_400);
        // A reader inside the cut part gets the marker, then the tail; one past it, the tail.
        let seqs = |after| -> Vec<u64> {
            log.read_after(after)
                .events
                .iter()
                .map(|(s, _)| *s)
                .collect()
        };
        assert_eq!(seqs(10), [17, 18, 19, 20]);
        assert_eq!(seqs(17), [18, 19, 20]);
        assert_eq!(seqs(19), [20]);
        // The final event gets in however large, and the text carries the marker.
        assert_eq!(log.append(Event::failed(None, "x".repeat(2_000))), Some(21));
        assert!(log.is_finished());
        let text = log.text();
        assert!(text.starts_with(&format!("{:>99}\n", 1)), "{text}");
        assert!(
            text.contains("bytes of log cut") && text.ends_with("x\n"),
            "{text}"
        );
        assert!(text.len() < 6 * 100 + 2_200, "{}", text.len());
    }

    #[test]
    fn an_appended_shared_event_is_the_same_allocation_in_both_logs() {
        let build = EventLog::new(10);
        let launch = EventLog::new(10);
        build.append(msg("a build line"));
        let (_, event) = build.read_after(0).events.remove(0);
        launch.append_shared(Arc::clone(&event));
        let (_, shared) = launch.read_after(0).events.remove(0);
        assert!(Arc::ptr_eq(&event, &shared));
    }
}

//! The sweep that deletes expired entries, so that the stores stay bounded by what is live.
//!
//! The host does not know each app's entry format; it follows one convention, which
//! `bindery_core::cache`'s encoding satisfies: a value that is a JSON object with a
//! top-level `expires_at` field holding unix seconds expires then. Any other value (not
//! JSON, not an object, no such field, not a whole number) is kept. An entry is deleted
//! `grace` after it expired: an expired ref still serves, within that time, to revalidate
//! with its ETag.
//!
//! The sweep runs on a blocking thread and works in batches: a read transaction finds up to
//! [`BATCH`] expired keys, a short write transaction deletes them, so requests' writes
//! wait for one batch at most.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableHandle};
use serde::Deserialize;

use super::{Backend, KvError, KvStores, definition, lock};

/// Keys deleted per write transaction.
const BATCH: usize = 1000;

/// When the host sweeps its key-value stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSweep {
    /// Time between sweeps; zero turns sweeping off.
    pub interval: Duration,
    /// How long past its `expires_at` an entry is kept; by default an hour, the time the
    /// edge itself keeps an expired entry (`bindery_core::cache::EXPIRED_KEPT_SECONDS`; a
    /// test holds the two equal, the host does not depend on the core).
    pub grace: Duration,
}

impl Default for KvSweep {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10 * 60),
            grace: Duration::from_secs(60 * 60),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries looked at.
    pub scanned: u64,
    /// Entries deleted.
    pub deleted: u64,
}

/// The part of a value the sweep reads; serde skips every other field.
#[derive(Deserialize)]
struct Expiry {
    expires_at: u64,
}

/// When `value` expires under the convention above, if it says.
pub fn expires_at(value: &[u8]) -> Option<u64> {
    // Cheap refusal of what cannot be an object, before parsing.
    if value.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Expiry>(value)
        .ok()
        .map(|e| e.expires_at)
}

/// Whether `value` is due for deletion at `now` (unix seconds), `grace` seconds after expiry.
fn is_due(value: &[u8], now: u64, grace: u64) -> bool {
    expires_at(value).is_some_and(|at| at.saturating_add(grace) <= now)
}

/// The current time in unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl KvStores {
    /// Deletes, in every store, the entries due at `now` (unix seconds): those whose
    /// `expires_at` lies `grace` or more in the past. Runs on a blocking thread.
    pub async fn sweep_expired(&self, now: u64, grace: Duration) -> Result<SweepReport, KvError> {
        let stores = self.clone();
        let grace = grace.as_secs();
        tokio::task::spawn_blocking(move || stores.sweep_blocking(now, grace))
            .await
            .map_err(|_| KvError::Task {
                label: "(sweep)".to_owned(),
            })?
    }

    fn sweep_blocking(&self, now: u64, grace: u64) -> Result<SweepReport, KvError> {
        match &*self.backend {
            Backend::Redb(db) => sweep_redb(db, now, grace),
            Backend::Memory(tables) => {
                let mut report = SweepReport::default();
                for table in lock(tables).values_mut() {
                    let before = table.len();
                    table.retain(|_, value| !is_due(value, now, grace));
                    report.scanned += before as u64;
                    report.deleted += (before - table.len()) as u64;
                }
                Ok(report)
            }
        }
    }

    /// Starts sweeping every `sweep.interval` in a background task (none when zero); the
    /// task ends when the returned handle is dropped.
    pub(crate) fn start_sweeping(&self, sweep: KvSweep) -> Option<Sweeper> {
        if sweep.interval.is_zero() {
            return None;
        }
        let stores = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(sweep.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match stores.sweep_expired(unix_now(), sweep.grace).await {
                    Ok(report) if report.deleted > 0 => {
                        tracing::info!(
                            scanned = report.scanned,
                            deleted = report.deleted,
                            "swept expired key-value entries"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to sweep expired key-value entries");
                    }
                }
            }
        });
        Some(Sweeper { task })
    }
}

/// The background sweep; stops when dropped.
#[derive(Debug)]
pub(crate) struct Sweeper {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sweep_redb(db: &Arc<redb::Database>, now: u64, grace: u64) -> Result<SweepReport, KvError> {
    let storage = |label: &str| {
        let label = label.to_owned();
        move |source: redb::Error| KvError::Storage {
            label,
            source: Box::new(source),
        }
    };
    let labels: Vec<String> = db
        .begin_read()
        .and_then(|txn| Ok(txn.list_tables()?.map(|t| t.name().to_owned()).collect()))
        .map_err(|e| storage("(tables)")(e.into()))?;
    let mut report = SweepReport::default();
    for label in labels {
        sweep_table(db, &label, now, grace, &mut report).map_err(storage(&label))?;
    }
    Ok(report)
}

/// Sweeps one table in batches, each found in a read transaction and deleted in a write one.
fn sweep_table(
    db: &redb::Database,
    label: &str,
    now: u64,
    grace: u64,
    report: &mut SweepReport,
) -> Result<(), redb::Error> {
    // Where the next batch starts looking: keys before it were looked at already.
    let mut from: Option<String> = None;
    loop {
        let mut due = Vec::new();
        let mut next = None;
        {
            let txn = db.begin_read()?;
            let table = match txn.open_table(definition(label)) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(err) => return Err(err.into()),
            };
            let range = match &from {
                Some(from) => table.range(from.as_str()..)?,
                None => table.range::<&str>(..)?,
            };
            for entry in range {
                let (key, value) = entry?;
                if due.len() == BATCH {
                    next = Some(key.value().to_owned());
                    break;
                }
                report.scanned += 1;
                if is_due(value.value(), now, grace) {
                    due.push(key.value().to_owned());
                }
            }
        }
        if !due.is_empty() {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(definition(label))?;
                for key in &due {
                    // Rewritten since it was read: a fresh value is not the sweep's to delete.
                    let rewritten = table
                        .get(key.as_str())?
                        .is_some_and(|v| !is_due(v.value(), now, grace));
                    if !rewritten && table.remove(key.as_str())?.is_some() {
                        report.deleted += 1;
                    }
                }
            }
            txn.commit()?;
        }
        match next {
            Some(key) => from = Some(key),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;

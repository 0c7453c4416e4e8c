//! Finished build logs and build records, kept in an embedded redb database.
//!
//! BinderHub users have asked since 2017 (#155, #1156) to read a build's log after the
//! build is gone. A finished build's full log text and its [`BuildInfo`] are written here,
//! kept for a configurable time and swept after it; with a file path they survive a worker
//! restart, without one they live in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bindery_core::worker_api::BuildInfo;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Build id → [`Record`] (JSON).
const LOGS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("build_logs");
/// Image → build id of its last finished build.
const IMAGES: TableDefinition<'_, &str, &str> = TableDefinition::new("build_images");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or used.
    #[error("failed to use the build log store: {0}")]
    Redb(#[from] Box<redb::Error>),
    /// A blocking task did not finish.
    #[error("failed to use the build log store: the storage task ended unexpectedly")]
    Task,
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(Box::new(e.into()))
}

/// One stored build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The build's state and times.
    pub info: BuildInfo,
    /// The full log text.
    pub log: String,
}

/// The store of finished builds.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<redb::Database>,
    keep: Duration,
}

impl LogStore {
    /// Opens (or creates) the store at `path`, or an in-memory one; keeps records `keep`.
    pub fn open(path: Option<&Path>, keep: Duration) -> Result<LogStore, StoreError> {
        let db = match path {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| redb_err(redb::StorageError::from(e)))?;
                }
                redb::Database::create(path).map_err(redb_err)?
            }
            None => redb::Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(redb_err)?,
        };
        Ok(LogStore {
            db: Arc::new(db),
            keep,
        })
    }

    /// Stores a finished build (committed to disk before this returns).
    pub async fn put(&self, record: Record) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            let txn = db.begin_write().map_err(redb_err)?;
            {
                let mut logs = txn.open_table(LOGS).map_err(redb_err)?;
                logs.insert(record.info.id.as_str(), bytes.as_slice())
                    .map_err(redb_err)?;
                let mut images = txn.open_table(IMAGES).map_err(redb_err)?;
                images
                    .insert(record.info.image.as_str(), record.info.id.as_str())
                    .map_err(redb_err)?;
            }
            txn.commit().map_err(redb_err)
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    /// The stored build `id`.
    pub fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let logs = match txn.open_table(LOGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(redb_err(e)),
        };
        Ok(logs
            .get(id)
            .map_err(redb_err)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// The last stored build of `image`.
    pub fn last_of(&self, image: &str) -> Result<Option<Record>, StoreError> {
        let id = {
            let txn = self.db.begin_read().map_err(redb_err)?;
            let images = match txn.open_table(IMAGES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(redb_err(e)),
            };
            match images.get(image).map_err(redb_err)? {
                Some(id) => id.value().to_owned(),
                None => return Ok(None),
            }
        };
        self.get(&id)
    }

    /// Deletes records that finished more than the keep time before `now` (unix seconds);
    /// returns how many.
    pub fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(self.keep.as_secs());
        let txn = self.db.begin_write().map_err(redb_err)?;
        let mut removed = 0;
        {
            let mut logs = txn.open_table(LOGS).map_err(redb_err)?;
            let mut old = Vec::new();
            for entry in logs.iter().map_err(redb_err)? {
                let (key, value) = entry.map_err(redb_err)?;
                let finished = serde_json::from_slice::<Record>(value.value())
                    .ok()
                    .and_then(|r| r.info.finished);
                if finished.is_none_or(|f| f < cutoff) {
                    old.push((key.value().to_owned(), value.value().to_vec()));
                }
            }
            let mut images = txn.open_table(IMAGES).map_err(redb_err)?;
            for (id, value) in old {
                logs.remove(id.as_str()).map_err(redb_err)?;
                if let Ok(record) = serde_json::from_slice::<Record>(&value) {
                    let current = images
                        .get(record.info.image.as_str())
                        .map_err(redb_err)?
                        .map(|v| v.value().to_owned());
                    if current.as_deref() == Some(id.as_str()) {
                        images
                            .remove(record.info.image.as_str())
                            .map_err(redb_err)?;
                    }
                }
                removed += 1;
            }
        }
        txn.commit().map_err(redb_err)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindery_core::worker_api::BuildState;

    fn record(id: &str, finished: u64) -> Record {
        Record {
            info: BuildInfo {
                id: id.into(),
                image: "reg/a:1".into(),
                state: BuildState::Failed,
                started: Some(finished - 1),
                finished: Some(finished),
            },
            log: format!("log of {id}\n"),
        }
    }

    #[tokio::test]
    async fn records_survive_reopening_and_are_swept_after_their_keep_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs.redb");
        {
            let store = LogStore::open(Some(&path), Duration::from_secs(100)).expect("open");
            store.put(record("old-build", 1_000)).await.expect("put");
            store.put(record("new-build", 2_000)).await.expect("put");
        }
        let store = LogStore::open(Some(&path), Duration::from_secs(100)).expect("reopen");
        assert_eq!(
            store.get("old-build").expect("get").expect("kept").log,
            "log of old-build\n"
        );
        assert_eq!(
            store
                .last_of("reg/a:1")
                .expect("last")
                .expect("some")
                .info
                .id,
            "new-build"
        );
        assert_eq!(store.sweep(1_500).expect("sweep"), 1);
        assert!(store.get("old-build").expect("get").is_none());
        assert!(store.get("new-build").expect("get").is_some());
    }
}

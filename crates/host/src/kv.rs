//! Key-value stores for `fermyon:spin/key-value@2.0.0`.
//!
//! By default the stores live in one embedded `redb` database file in the data directory,
//! one table per store label, so values survive a restart and there is no server to run.
//! An in-memory backend serves tests. A component may open only the labels its manifest
//! entry lists in `key_value_stores`; any other label is `access-denied`. Expired entries
//! are swept in the background (see [`KvSweep`] for the convention that says when an
//! entry expires).
//!
//! The store labelled `metrics` is different: it lives in memory and holds numbers, the
//! edge's counters and gauges ([`MetricsStore`]). Components reach every store through
//! `fermyon:spin/key-value` and `wasi:keyvalue` (`wasi.rs`), whose `increment` is atomic on
//! every label.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bindery_core::metrics::STORE_LABEL as METRICS_LABEL;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

mod atomic;
mod metrics;
mod spin;
mod sweep;
mod wasi;

pub use metrics::{MAX_SERIES, MetricsError, MetricsStore, UNMATCHED_ROUTE};
pub(crate) use sweep::Sweeper;
pub use sweep::{KvSweep, SweepReport, expires_at};

/// Where key-value data lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvBackend {
    /// One `redb` file in the data directory: durable across restarts.
    #[default]
    Redb,
    /// Process memory: gone when the host stops. For tests.
    Memory,
}

/// The name of the database file inside the data directory.
pub const KV_FILE_NAME: &str = "kv.redb";

/// At most this many stores may be open at once in one request (`store-table-full`).
const MAX_OPEN_STORES: usize = 16;

/// Why a key-value operation failed on the host side.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The database file could not be opened or created.
    #[error("failed to open the key-value database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A read or write failed.
    #[error("key-value store `{label}`: {source}")]
    Storage {
        /// The store label.
        label: String,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The metrics store refused an operation.
    #[error("key-value store `metrics`: {0}")]
    Metrics(#[from] MetricsError),
    /// An increment of a value that is not a whole number.
    #[error("key-value store `{label}`: the value under {key} is not a whole number")]
    NotANumber {
        /// The store label.
        label: String,
        /// The key.
        key: String,
    },
    /// A blocking write task did not finish.
    #[error("key-value store `{label}`: the write task failed")]
    Task {
        /// The store label.
        label: String,
    },
}

type MemoryTables = HashMap<String, BTreeMap<String, Vec<u8>>>;

#[derive(Debug)]
enum Backend {
    Redb(Arc<redb::Database>),
    Memory(Mutex<MemoryTables>),
}

/// All stores of one host; cheap to clone.
#[derive(Debug, Clone)]
pub struct KvStores {
    backend: Arc<Backend>,
    metrics: Arc<MetricsStore>,
}

/// The host side of an open `store` (`fermyon:spin`) or `bucket` (`wasi:keyvalue`) resource.
#[derive(Debug)]
pub struct StoreHandle {
    label: String,
}

/// The host side of a `wasi:keyvalue/atomics` `cas` resource: a key and the value it had
/// when the handle was made, which a swap expects to find.
#[derive(Debug)]
pub struct CasHandle {
    label: String,
    key: String,
    seen: Option<Vec<u8>>,
}

impl KvStores {
    /// Opens (or creates) the redb database at `data_dir/kv.redb`.
    pub fn open_redb(data_dir: &Path) -> Result<Self, KvError> {
        let path = data_dir.join(KV_FILE_NAME);
        let open_error = |source: redb::Error| KvError::Open {
            path: path.clone(),
            source: Box::new(source),
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| open_error(redb::StorageError::from(e).into()))?;
        let mut db = redb::Database::create(&path).map_err(|e| open_error(e.into()))?;
        // The sweep frees pages for reuse but cannot shrink the file while requests use it:
        // at open, nothing does, so the space of what was swept goes back to the system.
        if let Err(err) = db.compact() {
            tracing::warn!(path = %path.display(), error = %err, "failed to compact the key-value database");
        }
        Ok(Self {
            backend: Arc::new(Backend::Redb(Arc::new(db))),
            metrics: Arc::new(MetricsStore::new(0)),
        })
    }

    /// Stores that live in memory only.
    pub fn in_memory() -> Self {
        Self {
            backend: Arc::new(Backend::Memory(Mutex::default())),
            metrics: Arc::new(MetricsStore::new(0)),
        }
    }

    /// The same stores with an empty metrics store that counts requests of `routes` routes.
    pub fn with_metrics_for_routes(self, routes: usize) -> Self {
        Self {
            metrics: Arc::new(MetricsStore::new(routes)),
            ..self
        }
    }

    /// The `metrics` store.
    pub fn metrics(&self) -> &MetricsStore {
        &self.metrics
    }

    fn is_metrics(label: &str) -> bool {
        label == METRICS_LABEL
    }

    /// The value under `key` in store `label`.
    pub fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if Self::is_metrics(label) {
            return Ok(self.metrics.get(key));
        }
        match &*self.backend {
            Backend::Redb(db) => redb_read(db, label, |table| {
                Ok(table.get(key)?.map(|v| v.value().to_vec()))
            }),
            Backend::Memory(tables) => {
                Ok(lock(tables).get(label).and_then(|t| t.get(key)).cloned())
            }
        }
    }

    /// Whether `key` is set in store `label`.
    pub fn exists(&self, label: &str, key: &str) -> Result<bool, KvError> {
        if Self::is_metrics(label) {
            return Ok(self.metrics.get(key).is_some());
        }
        match &*self.backend {
            Backend::Redb(db) => redb_read(db, label, |table| Ok(table.get(key)?.is_some())),
            Backend::Memory(tables) => {
                Ok(lock(tables).get(label).is_some_and(|t| t.contains_key(key)))
            }
        }
    }

    /// Every key in store `label`, in order.
    pub fn keys(&self, label: &str) -> Result<Vec<String>, KvError> {
        if Self::is_metrics(label) {
            return Ok(self.metrics.keys());
        }
        match &*self.backend {
            Backend::Redb(db) => redb_read(db, label, |table| {
                table
                    .iter()?
                    .map(|entry| Ok(entry?.0.value().to_owned()))
                    .collect()
            }),
            Backend::Memory(tables) => Ok(lock(tables)
                .get(label)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()),
        }
    }

    /// Sets `key` to `value` in store `label`, durably for the redb backend.
    pub async fn set(&self, label: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        if Self::is_metrics(label) {
            return Ok(self.metrics.set(key, &value)?);
        }
        match &*self.backend {
            Backend::Redb(db) => {
                let key = key.to_owned();
                redb_write(db, label, move |table| {
                    table.insert(key.as_str(), value.as_slice()).map(drop)
                })
                .await
            }
            Backend::Memory(tables) => {
                lock(tables)
                    .entry(label.to_owned())
                    .or_default()
                    .insert(key.to_owned(), value);
                Ok(())
            }
        }
    }

    /// Removes `key` from store `label`; removing a missing key is not an error.
    pub async fn delete(&self, label: &str, key: &str) -> Result<(), KvError> {
        if Self::is_metrics(label) {
            self.metrics.delete(key);
            return Ok(());
        }
        match &*self.backend {
            Backend::Redb(db) => {
                let key = key.to_owned();
                redb_write(db, label, move |table| table.remove(key.as_str()).map(drop)).await
            }
            Backend::Memory(tables) => {
                if let Some(table) = lock(tables).get_mut(label) {
                    table.remove(key);
                }
                Ok(())
            }
        }
    }
}

fn lock(tables: &Mutex<MemoryTables>) -> std::sync::MutexGuard<'_, MemoryTables> {
    tables.lock().unwrap_or_else(PoisonError::into_inner)
}

fn definition(label: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(label)
}

/// Runs `read` on the table for `label`; a table never written to reads as empty.
fn redb_read<T: Default>(
    db: &redb::Database,
    label: &str,
    read: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<T, redb::Error>,
) -> Result<T, KvError> {
    let run = || -> Result<T, redb::Error> {
        let txn = db.begin_read()?;
        match txn.open_table(definition(label)) {
            Ok(table) => read(&table),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(T::default()),
            Err(err) => Err(err.into()),
        }
    };
    run().map_err(|source| KvError::Storage {
        label: label.to_owned(),
        source: Box::new(source),
    })
}

/// Runs `write` in a committed write transaction on a blocking thread: a commit syncs to disk.
async fn redb_write<T: Send + 'static>(
    db: &Arc<redb::Database>,
    label: &str,
    write: impl FnOnce(
        &mut redb::Table<'_, &'static str, &'static [u8]>,
    ) -> Result<T, redb::StorageError>
    + Send
    + 'static,
) -> Result<T, KvError> {
    let db = Arc::clone(db);
    let owned_label = label.to_owned();
    let task = tokio::task::spawn_blocking(move || -> Result<T, redb::Error> {
        let txn = db.begin_write()?;
        let written = {
            let mut table = txn.open_table(definition(&owned_label))?;
            write(&mut table)?
        };
        txn.commit()?;
        Ok(written)
    });
    match task.await {
        Ok(result) => result.map_err(|source| KvError::Storage {
            label: label.to_owned(),
            source: Box::new(source),
        }),
        Err(_) => Err(KvError::Task {
            label: label.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(stores: &KvStores) {
        assert_eq!(stores.get("default", "k").expect("get"), None);
        assert!(stores.keys("default").expect("keys").is_empty());
        stores
            .set("default", "k", b"v1".to_vec())
            .await
            .expect("set");
        stores
            .set("default", "a", b"v0".to_vec())
            .await
            .expect("set");
        stores
            .set("other", "k", b"elsewhere".to_vec())
            .await
            .expect("set");
        assert_eq!(
            stores.get("default", "k").expect("get"),
            Some(b"v1".to_vec())
        );
        assert!(stores.exists("default", "k").expect("exists"));
        assert_eq!(stores.keys("default").expect("keys"), ["a", "k"]);
        stores.delete("default", "k").await.expect("delete");
        stores
            .delete("default", "missing")
            .await
            .expect("deleting a missing key is fine");
        assert!(!stores.exists("default", "k").expect("exists"));
        assert_eq!(
            stores.get("other", "k").expect("get"),
            Some(b"elsewhere".to_vec())
        );
    }

    #[tokio::test]
    async fn the_memory_backend_keeps_labels_apart() {
        round_trip(&KvStores::in_memory()).await;
    }

    #[tokio::test]
    async fn the_redb_backend_keeps_labels_apart_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let stores = KvStores::open_redb(dir.path()).expect("open");
            round_trip(&stores).await;
        }
        let stores = KvStores::open_redb(dir.path()).expect("reopen");
        assert_eq!(
            stores.get("default", "a").expect("get"),
            Some(b"v0".to_vec())
        );
    }
}

//! `increment` and compare-and-swap on every store, each one atomic: the `metrics` store
//! with atomic integers, redb within one write transaction (redb runs one writer at a
//! time), memory under its lock. A value incremented here is decimal text; one that is
//! neither that nor eight big-endian bytes (Spin's SQLite form) is not a number.

use bindery_core::metrics::{decode_value, encode_value};
use redb::ReadableTable;

use super::{Backend, KvError, KvStores, lock, redb_write};

impl KvStores {
    /// Adds `delta` to the number under `key` in store `label` (absent counts as zero)
    /// and returns the sum.
    pub async fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        if Self::is_metrics(label) {
            return Ok(self.metrics.increment(key, delta)?);
        }
        let not_a_number = || KvError::NotANumber {
            label: label.to_owned(),
            key: key.to_owned(),
        };
        let add = move |old: Option<&[u8]>| match old {
            None => Some(delta),
            Some(bytes) => decode_value(bytes).map(|n| n.wrapping_add(delta)),
        };
        match &*self.backend {
            Backend::Redb(db) => {
                let owned = key.to_owned();
                let sum = redb_write(db, label, move |table| {
                    let old = table.get(owned.as_str())?.map(|v| v.value().to_vec());
                    let Some(sum) = add(old.as_deref()) else {
                        return Ok(None);
                    };
                    table.insert(owned.as_str(), encode_value(sum).as_slice())?;
                    Ok(Some(sum))
                })
                .await?;
                sum.ok_or_else(not_a_number)
            }
            Backend::Memory(tables) => {
                let mut tables = lock(tables);
                let table = tables.entry(label.to_owned()).or_default();
                let sum = add(table.get(key).map(Vec::as_slice)).ok_or_else(not_a_number)?;
                table.insert(key.to_owned(), encode_value(sum));
                Ok(sum)
            }
        }
    }

    /// Sets `key` in store `label` to `new` if its value is still `expected` (`None`:
    /// absent); false when it changed.
    pub async fn compare_and_swap(
        &self,
        label: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        if Self::is_metrics(label) {
            return Ok(self
                .metrics
                .compare_and_swap(key, expected.as_deref(), &new)?);
        }
        match &*self.backend {
            Backend::Redb(db) => {
                let owned = key.to_owned();
                redb_write(db, label, move |table| {
                    let current = table.get(owned.as_str())?.map(|v| v.value().to_vec());
                    if current != expected {
                        return Ok(false);
                    }
                    table.insert(owned.as_str(), new.as_slice())?;
                    Ok(true)
                })
                .await
            }
            Backend::Memory(tables) => {
                let mut tables = lock(tables);
                let table = tables.entry(label.to_owned()).or_default();
                if table.get(key) != expected.as_ref() {
                    return Ok(false);
                }
                table.insert(key.to_owned(), new);
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn increments_and_swaps(stores: &KvStores) {
        assert_eq!(stores.increment("default", "n", 2).await.unwrap(), 2);
        assert_eq!(stores.increment("default", "n", 3).await.unwrap(), 5);
        assert_eq!(stores.get("default", "n").unwrap(), Some(b"5".to_vec()));
        stores
            .set("default", "word", b"hello".to_vec())
            .await
            .unwrap();
        assert!(matches!(
            stores.increment("default", "word", 1).await,
            Err(KvError::NotANumber { .. })
        ));
        assert!(
            stores
                .compare_and_swap("default", "n", Some(b"5".to_vec()), b"7".to_vec())
                .await
                .unwrap()
        );
        assert!(
            !stores
                .compare_and_swap("default", "n", Some(b"5".to_vec()), b"9".to_vec())
                .await
                .unwrap()
        );
        assert!(
            stores
                .compare_and_swap("default", "new", None, b"x".to_vec())
                .await
                .unwrap()
        );
        assert_eq!(stores.get("default", "n").unwrap(), Some(b"7".to_vec()));
        assert_eq!(stores.increment("metrics", "m", 4).await.unwrap(), 4);
        assert_eq!(stores.get("metrics", "m").unwrap(), Some(b"4".to_vec()));
        assert_eq!(stores.get("default", "m").unwrap(), None);
    }

    #[tokio::test]
    async fn memory_stores_increment_and_swap() {
        increments_and_swaps(&KvStores::in_memory()).await;
    }

    #[tokio::test]
    async fn redb_stores_increment_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        increments_and_swaps(&KvStores::open_redb(dir.path()).unwrap()).await;
    }
}

//! The host side of `fermyon:spin/key-value@2.0.0` (Spin's own interface): open a store of
//! the component's `key_value_stores`, then get, set, delete, list. `wasi.rs` serves the
//! same stores through `wasi:keyvalue`.

use wasmtime::component::Resource;

use super::{KvError, MAX_OPEN_STORES, StoreHandle};
use crate::state::RequestState;
use crate::world::spin::fermyon::spin::key_value::{self as wit, Error as WitError};

impl RequestState {
    /// Opens store `label` for the guest: only a label of the component's
    /// `key_value_stores`, and at most [`MAX_OPEN_STORES`] at once.
    pub(super) fn open_store(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, WitError>> {
        if !self.component.key_value_stores.contains(&label) {
            tracing::warn!(component = %self.component.id, label, "key-value store not in the component's key_value_stores");
            return Ok(Err(WitError::AccessDenied));
        }
        if self.open_stores >= MAX_OPEN_STORES {
            return Ok(Err(WitError::StoreTableFull));
        }
        self.open_stores += 1;
        Ok(Ok(self.table.push(StoreHandle { label })?))
    }

    /// Closes a store the guest dropped.
    pub(super) fn close_store(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open_stores = self.open_stores.saturating_sub(1);
        Ok(())
    }

    pub(super) fn store_label(&self, handle: &Resource<StoreHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.label.clone())
    }

    pub(super) fn kv_failed(&self, err: KvError) -> WitError {
        tracing::warn!(component = %self.component.id, error = %err, "key-value operation failed");
        WitError::Other(err.to_string())
    }
}

impl wit::Host for RequestState {}

impl wit::HostStore for RequestState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, WitError>> {
        self.open_store(label)
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        let label = self.store_label(&store)?;
        Ok(self.kv.get(&label, &key).map_err(|e| self.kv_failed(e)))
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let label = self.store_label(&store)?;
        let result = self.kv.set(&label, &key, value).await;
        Ok(result.map_err(|e| self.kv_failed(e)))
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let label = self.store_label(&store)?;
        let result = self.kv.delete(&label, &key).await;
        Ok(result.map_err(|e| self.kv_failed(e)))
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        let label = self.store_label(&store)?;
        Ok(self.kv.exists(&label, &key).map_err(|e| self.kv_failed(e)))
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        let label = self.store_label(&store)?;
        Ok(self.kv.keys(&label).map_err(|e| self.kv_failed(e)))
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.close_store(store)
    }
}

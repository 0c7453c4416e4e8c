//! The host side of `wasi:keyvalue/store` and `wasi:keyvalue/atomics` (0.2.0-draft2, as
//! Spin 3 and later provide them) over the same stores as `fermyon:spin/key-value`: the
//! same labels, the same allow-list, the same limit on open stores. Components use it for
//! `increment`, which `fermyon:spin/key-value` lacks; the edge counts its metrics with it.

use wasmtime::component::Resource;

use super::{CasHandle, KvError, StoreHandle};
use crate::state::RequestState;
use crate::world::keyvalue::wasi::keyvalue::{atomics, store};
use crate::world::spin::fermyon::spin::key_value::Error as SpinError;

fn wasi_error(error: SpinError) -> store::Error {
    match error {
        SpinError::AccessDenied => store::Error::AccessDenied,
        SpinError::NoSuchStore => store::Error::NoSuchStore,
        SpinError::StoreTableFull => store::Error::Other("too many stores open".to_owned()),
        SpinError::Other(message) => store::Error::Other(message),
    }
}

impl RequestState {
    fn wasi_failed(&self, err: KvError) -> store::Error {
        wasi_error(self.kv_failed(err))
    }
}

impl store::Host for RequestState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, store::Error>> {
        Ok(self.open_store(identifier)?.map_err(wasi_error))
    }
}

impl store::HostBucket for RequestState {
    async fn get(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let label = self.store_label(&bucket)?;
        Ok(self.kv.get(&label, &key).map_err(|e| self.wasi_failed(e)))
    }

    async fn set(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.store_label(&bucket)?;
        let result = self.kv.set(&label, &key, value).await;
        Ok(result.map_err(|e| self.wasi_failed(e)))
    }

    async fn delete(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.store_label(&bucket)?;
        let result = self.kv.delete(&label, &key).await;
        Ok(result.map_err(|e| self.wasi_failed(e)))
    }

    async fn exists(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = self.store_label(&bucket)?;
        Ok(self
            .kv
            .exists(&label, &key)
            .map_err(|e| self.wasi_failed(e)))
    }

    /// Every key in one answer, as Spin does: a cursor is refused.
    async fn list_keys(
        &mut self,
        bucket: Resource<StoreHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        if cursor.is_some() {
            return Ok(Err(store::Error::Other(
                "list-keys answers every key at once: call it without a cursor".to_owned(),
            )));
        }
        let label = self.store_label(&bucket)?;
        Ok(self
            .kv
            .keys(&label)
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(|e| self.wasi_failed(e)))
    }

    fn drop(&mut self, bucket: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.close_store(bucket)
    }
}

impl atomics::Host for RequestState {
    async fn increment(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let label = self.store_label(&bucket)?;
        let result = self.kv.increment(&label, &key, delta).await;
        Ok(result.map_err(|e| self.wasi_failed(e)))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let CasHandle { label, key, seen } = self.table.delete(cas)?;
        let swapped = self.kv.compare_and_swap(&label, &key, seen, value).await;
        Ok(match swapped {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Changed since it was read: a fresh handle with the current value.
                let seen = match self.kv.get(&label, &key) {
                    Ok(seen) => seen,
                    Err(err) => {
                        return Ok(Err(atomics::CasError::StoreError(self.wasi_failed(err))));
                    }
                };
                let handle = self.table.push(CasHandle { label, key, seen })?;
                Err(atomics::CasError::CasFailed(handle))
            }
            Err(err) => Err(atomics::CasError::StoreError(self.wasi_failed(err))),
        })
    }
}

impl atomics::HostCas for RequestState {
    async fn new(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, store::Error>> {
        let label = self.store_label(&bucket)?;
        let seen = match self.kv.get(&label, &key) {
            Ok(seen) => seen,
            Err(err) => return Ok(Err(self.wasi_failed(err))),
        };
        Ok(Ok(self.table.push(CasHandle { label, key, seen })?))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

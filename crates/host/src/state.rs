//! What one request's `Store` holds, and the host side of `fermyon:spin/variables`.
//!
//! Everything per component (variables, allowed hosts, store labels) is resolved once at
//! load and shared through an `Arc`; a request only allocates its resource table, its WASI
//! contexts and a few handles.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::client::OutboundClient;
use crate::kv::KvStores;
use crate::manifest::is_variable_name;
use crate::outbound::{AllowedHosts, OutboundHooks};
use crate::variables::Variables;
use crate::world::spin::fermyon::spin::variables as wit_vars;

/// A component's settings, resolved from the manifest at load.
#[derive(Debug)]
pub(crate) struct ComponentContext {
    pub(crate) id: Arc<str>,
    pub(crate) variables: Variables,
    pub(crate) key_value_stores: Vec<String>,
    pub(crate) allowed_hosts: Arc<AllowedHosts>,
}

/// The data of one request's `Store`.
pub(crate) struct RequestState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub(crate) component: Arc<ComponentContext>,
    pub(crate) kv: KvStores,
    pub(crate) open_stores: usize,
    limits: StoreLimits,
}

impl RequestState {
    /// Fresh state: no files, no environment, no arguments; the guest's stderr goes to ours.
    pub(crate) fn new(
        component: Arc<ComponentContext>,
        kv: KvStores,
        client: OutboundClient,
        max_memory: usize,
    ) -> Self {
        let hooks = OutboundHooks {
            component: Arc::clone(&component.id),
            allowed: Arc::clone(&component.allowed_hosts),
            client,
        };
        Self {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks,
            component,
            kv,
            open_stores: 0,
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .instances(16)
                .trap_on_grow_failure(false)
                .build(),
        }
    }

    /// The per-store resource limiter, for `Store::limiter`.
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl wit_vars::Host for RequestState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, wit_vars::Error>> {
        if !is_variable_name(&name) {
            return Ok(Err(wit_vars::Error::InvalidName(format!(
                "`{name}` is not a valid variable name"
            ))));
        }
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.expose().to_owned()),
            None => Err(wit_vars::Error::Undefined(format!(
                "no variable `{name}` for component `{}`",
                self.component.id
            ))),
        })
    }
}

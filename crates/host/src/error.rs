//! The host's error type: one variant per thing a user fixes differently.

use std::net::SocketAddr;

use crate::engine::{BoxError, ComponentError};
use crate::kv::KvError;
use crate::manifest::ManifestError;
use crate::outbound::OutboundError;
use crate::routes::RouteError;
use crate::variables::VariableError;

/// Why the host could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The manifest could not be read or is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A route in the manifest is malformed.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A variable is missing or a template is wrong.
    #[error(transparent)]
    Variable(#[from] VariableError),
    /// An `allowed_outbound_hosts` entry is malformed.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// A component could not be loaded, or imports what it may not.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// The key-value database could not be opened.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The wasm engine could not be configured.
    #[error("failed to configure the wasm engine")]
    Engine {
        /// wasmtime's error.
        #[source]
        source: BoxError,
    },
    /// The outbound TLS client could not be configured.
    #[error("failed to set up the outbound TLS client")]
    Tls(#[source] rustls::Error),
    /// The threads that serve connections could not be started.
    #[error("failed to start the threads that serve connections")]
    Threads(#[source] std::io::Error),
    /// The epoch thread could not be started.
    #[error("failed to start the epoch thread")]
    Ticker(#[source] std::io::Error),
    /// The listener could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

//! Where the worker finds a built image: in its registry when it has one, else in the
//! container engine its builds run in (the local executor without a registry: `bindery up`
//! with `registry_url = "none"`, where images are never pushed). One lookup serves the
//! re-check before a build ([`crate::builds`]) and `GET /api/v1/images?image=<image>`, which
//! an edge without a registry (`use_registry = false`) asks instead of a registry.

use std::sync::Arc;

use bindery_core::worker_api::{ImageAnswer, validate_image_query};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::api::{Body, error, image_parameter, json_response};
use crate::error_chain;
use crate::executor::{Executor, ExecutorError};
use crate::registry::{CheckError, RegistryClient};
use crate::server::AppState;

/// Why the worker could not say whether an image exists.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The registry did not say.
    #[error("the registry did not say whether the image exists")]
    Registry(#[source] CheckError),
    /// The container engine did not say.
    #[error("the container engine did not say whether the image exists")]
    Engine(#[source] ExecutorError),
    /// No registry, and an executor whose images are only ever found in one.
    #[error(
        "this worker has no registry and its executor keeps no images: set registry_url \
         (BINDERY_REGISTRY_URL), or use_registry = true at the edge with a registry"
    )]
    Nowhere,
}

/// Whether `image` exists: in `registry` when there is one, else in `executor`'s engine.
pub async fn image_present(
    registry: Option<&RegistryClient>,
    executor: &dyn Executor,
    image: &str,
) -> Result<bool, LookupError> {
    if let Some(registry) = registry {
        return registry
            .image_present(image)
            .await
            .map_err(LookupError::Registry);
    }
    match executor.image_present(image) {
        Some(lookup) => lookup.await.map_err(LookupError::Engine),
        None => Err(LookupError::Nowhere),
    }
}

/// `GET /api/v1/images?image=<image>`: `200` with an [`ImageAnswer`]; `400` for a name
/// that is not one of this worker's image names; `503` when the registry or the engine
/// does not say (the reason is logged, the answer names which); `501` when this worker
/// cannot look images up at all.
pub(crate) async fn get_image(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<Body> {
    let Some(image) = image_parameter(req) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the image query parameter is required",
        );
    };
    if let Err(refused) = validate_image_query(&state.config.image_prefix, &image) {
        return error(StatusCode::BAD_REQUEST, &refused.to_string());
    }
    let builds = &state.builds;
    match image_present(builds.registry(), builds.executor(), &image).await {
        Ok(present) => json_response(StatusCode::OK, &json!(ImageAnswer { image, present })),
        Err(LookupError::Nowhere) => error(
            StatusCode::NOT_IMPLEMENTED,
            &LookupError::Nowhere.to_string(),
        ),
        Err(failed) => {
            let reason = error_chain(&failed);
            tracing::warn!(%image, %reason, "image lookup failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &failed.to_string())
        }
    }
}

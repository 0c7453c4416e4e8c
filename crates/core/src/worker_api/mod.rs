//! The internal API between the edge and the worker, as types both sides share.
//!
//! The edge calls the worker only on a miss: a launch (which builds first when the image
//! is missing) or a prebuild from a webhook. Every call carries the worker's bearer token.
//! Events come back as Server-Sent Events whose `id` is the event's sequence number, so a
//! client that reconnects with `Last-Event-ID` receives only what it missed.
//!
//! The contract lives here once: the request types with their constructor and checks
//! (`request`: [`LaunchRequest::new`], [`LaunchRequest::validate`]), the shape of ids and
//! of the event ids the edge relays ([`is_valid_id`], [`relay_id`],
//! [`parse_last_event_id`]), the `/health` answer both sides give ([`Health`]),
//! `/versions` ([`WorkerVersions`], [`versions_answer`]), and the image lookup an edge
//! without a registry asks instead (`images`: [`ImageAnswer`], [`validate_image_query`]).

use serde::{Deserialize, Serialize};

/// `POST /api/v1/launches`: start a server for an image, building it first if needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// Provider id (`gh`, `gl`, ...).
    pub provider: String,
    /// The spec as the user wrote it.
    pub spec: String,
    /// The repository URL repo2docker fetches.
    pub repo_url: String,
    /// The resolved ref (image tag, repo2docker `--ref`).
    pub resolved_ref: String,
    /// The resolved spec.
    pub resolved_spec: String,
    /// The full image name.
    pub image: String,
    /// Whether the edge saw the image in the registry (the worker re-checks when false).
    pub image_present: bool,
    /// The build slug (for the build name).
    pub build_slug: String,
    /// `binder_ref_url` for `user_options`.
    pub ref_url: String,
    /// `binder_launch_host`: the public base URL of this Binder.
    pub launch_host: String,
    /// `binder_request`.
    pub binder_request: String,
    /// `binder_persistent_request`.
    pub binder_persistent_request: String,
    /// The path opened on the server when it is ready (validated, relative).
    #[serde(default)]
    pub launch_path: String,
    /// The client's address, for quotas and `binder_client_ip`.
    #[serde(default)]
    pub client_ip: String,
    /// Build (and push) the image, launch nothing: `/build?build_only=true` (BinderHub's
    /// API-only mode). The launch ends with `ready` naming the image
    /// ([`crate::events::Event::build_only_done`]); no server, so no `launch_path`.
    #[serde(default)]
    pub build_only: bool,
}

/// `POST /api/v1/builds`: build an image without launching it (a prebuild).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// Provider id.
    pub provider: String,
    /// The spec (for logs and labels).
    pub spec: String,
    /// The repository URL repo2docker fetches.
    pub repo_url: String,
    /// The resolved ref.
    pub resolved_ref: String,
    /// The full image name.
    pub image: String,
    /// The build slug.
    pub build_slug: String,
}

/// The `202 Accepted` answer to both POSTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The launch or build id.
    pub id: String,
    /// Where its events stream, relative to the worker's base URL.
    pub events_url: String,
}

/// The state of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    /// Waiting for a free build slot.
    Queued,
    /// repo2docker is running.
    Running,
    /// The image was built and pushed.
    Succeeded,
    /// The build failed.
    Failed,
}

/// `GET /api/v1/builds?image=<image>`: the current or last build of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The build id.
    pub id: String,
    /// The image.
    pub image: String,
    /// Its state.
    pub state: BuildState,
    /// Unix seconds when it started, if it has.
    pub started: Option<u64>,
    /// Unix seconds when it finished, if it has.
    pub finished: Option<u64>,
}

/// The path of the launch API.
pub const LAUNCHES_PATH: &str = "/api/v1/launches";
/// The path of the build API.
pub const BUILDS_PATH: &str = "/api/v1/builds";

mod admission;
mod health;
mod ids;
mod images;
mod request;
mod versions;

pub use admission::{
    ADMISSIONS_PATH, AdmissionError, AdmissionRequest, MAX_CLIENT_LEN, MAX_PERIOD_SECONDS,
    UNKNOWN_CLIENT,
};

pub use health::{Health, HealthCheck, REGISTRY_SERVICE, WORKER_SERVICE};
pub use ids::{ID_MAX_LEN, ID_MIN_LEN, is_valid_id, parse_last_event_id, relay_id};
pub use images::{IMAGES_PATH, ImageAnswer, ImageQueryError, MAX_TAG_LEN, validate_image_query};
pub use request::RequestError;
pub use versions::{
    BINDERY_VERSION, BUILD_IMAGE, REPO2DOCKER_VERSION, VERSIONS_PATH, WorkerVersions,
    versions_answer,
};

//! `/versions` in BinderHub's shape: `{"binderhub": <version>, "builder_info": {...}}`,
//! with `builder` beside it when `builder_info` names a `build_image` (kept by BinderHub for
//! older clients). A federation's redirector compares each member's answer with its prime's
//! and takes out of rotation a member whose answer differs, so the shape must be exact.
//!
//! The worker knows what builds images, so it answers `GET /versions` with
//! [`WorkerVersions`]: `build_image` on Kubernetes (the repo2docker image of the build
//! Jobs), `repo2docker-version` locally (asked once from the repo2docker it runs). The edge
//! adds its own version ([`versions_answer`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The worker's `/versions` route, public like `/health`.
pub const VERSIONS_PATH: &str = "/versions";

/// BinderHub's `builder_info` key on Kubernetes: the image of the build pods.
pub const BUILD_IMAGE: &str = "build_image";

/// BinderHub's `builder_info` key for local builds: `repo2docker --version`.
pub const REPO2DOCKER_VERSION: &str = "repo2docker-version";

/// The worker's answer to `GET /versions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerVersions {
    /// What builds images: [`BUILD_IMAGE`] or [`REPO2DOCKER_VERSION`].
    pub builder_info: Map<String, Value>,
}

/// The version Bindery reports as `binderhub`.
pub const BINDERY_VERSION: &str = concat!("bindery-", env!("CARGO_PKG_VERSION"));

/// The public `/versions` answer: `binderhub` (this version), the worker's `builder_info`
/// (empty when the worker could not be asked), and `builder` when a `build_image` is named.
pub fn versions_answer(builder_info: &Map<String, Value>) -> Value {
    let mut answer = Map::new();
    answer.insert("binderhub".into(), BINDERY_VERSION.into());
    answer.insert("builder_info".into(), Value::Object(builder_info.clone()));
    if let Some(image) = builder_info.get(BUILD_IMAGE) {
        answer.insert("builder".into(), image.clone());
    }
    Value::Object(answer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_answer_has_binderhubs_keys_for_kubernetes_and_for_local_builds() {
        let kubernetes: WorkerVersions =
            serde_json::from_value(json!({"builder_info": {"build_image": "r2d:2024.07.0"}}))
                .unwrap();
        assert_eq!(
            versions_answer(&kubernetes.builder_info),
            json!({"binderhub": BINDERY_VERSION, "builder": "r2d:2024.07.0",
                   "builder_info": {"build_image": "r2d:2024.07.0"}})
        );
        let local = WorkerVersions {
            builder_info: Map::from_iter([(REPO2DOCKER_VERSION.to_owned(), json!("2025.1.0"))]),
        };
        assert_eq!(
            versions_answer(&local.builder_info),
            json!({"binderhub": BINDERY_VERSION, "builder_info": {"repo2docker-version": "2025.1.0"}})
        );
        assert_eq!(
            versions_answer(&Map::new()),
            json!({"binderhub": BINDERY_VERSION, "builder_info": {}})
        );
    }
}

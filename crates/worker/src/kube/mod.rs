//! The Kubernetes build executor: one `batch/v1` Job per build.
//!
//! - [`job`]: the Job manifest of a build (pure), BinderHub's arguments, labels, volumes,
//!   tolerations and sticky-build affinity.
//! - [`executor`]: [`KubeExecutor`]: create or attach, follow the pod's log as events, end on
//!   the Job's conditions; adopt unfinished Jobs after a restart.

pub mod executor;
pub mod job;

pub use executor::{BuildRun, BuildUpdate, ExecutorSettings, KubeError, KubeExecutor, Outcome};
pub use job::{BuildSpec, JobSettings, build_job, sticky_node};

//! How the executor comes to follow a Job: it creates the build's Job, or takes over the
//! one of that name another creator made (the `409` of a second replica or of a retry), or
//! finds, by label, the Jobs a previous worker left running.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};

use super::Cluster;
use super::job::{self, build_job_on, build_of};
use super::placement::Placement;
use crate::executor::{BuildOutcome, BuildSpec, ExecutorError};

impl Cluster {
    /// Creates the build's Job; `Ok(false)` when one of that name exists and is not a
    /// failed one. A failed Job of that name is deleted and created again. With a builder
    /// DaemonSet the pod is placed on the nodes its pods run on, listed now.
    pub(super) async fn create_or_attach(&self, build: &BuildSpec) -> Result<bool, ExecutorError> {
        let builders = match self.builder_nodes().await {
            Ok(builders) => builders,
            // A build already running needs no builder to be found now: attach to it.
            Err(error @ ExecutorError::NoBuilders { .. }) => {
                return match self.jobs.get_opt(&build.build_name).await {
                    Ok(Some(existing)) if job::outcome_of(&existing).is_none() => Ok(false),
                    _ => Err(error),
                };
            }
            Err(error) => return Err(error),
        };
        let placement = builders
            .as_deref()
            .map_or(Placement::Anywhere, Placement::Builders);
        let manifest = build_job_on(&self.settings.job, build, placement)?;
        if self.create(build, &manifest).await? {
            return Ok(true);
        }
        let existing = self.jobs.get_opt(&build.build_name).await;
        if let Ok(Some(existing)) = existing
            && matches!(job::outcome_of(&existing), Some(BuildOutcome::Failed(_)))
        {
            self.delete(&build.build_name).await;
            return self.create(build, &manifest).await;
        }
        Ok(false)
    }

    /// Creates the Job; `Ok(false)` when one of that name exists.
    async fn create(&self, build: &BuildSpec, manifest: &Job) -> Result<bool, ExecutorError> {
        match self.jobs.create(&PostParams::default(), manifest).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => {
                Ok(false)
            }
            Err(source) => Err(ExecutorError::CreateJob {
                name: build.build_name.clone(),
                source,
            }),
        }
    }

    /// The builds of the Jobs labelled as Bindery's that have not finished.
    pub(super) async fn unfinished_builds(&self) -> Result<Vec<BuildSpec>, ExecutorError> {
        let selector = format!("{}={}", job::MANAGED_BY_LABEL, job::MANAGED_BY);
        let list = self
            .jobs
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ExecutorError::ListJobs)?;
        Ok(list
            .items
            .iter()
            .filter(|job| job::outcome_of(job).is_none())
            .filter_map(build_of)
            .collect())
    }
}

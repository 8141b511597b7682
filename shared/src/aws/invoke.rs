//! Ingestion workers on Lambda, started one of two ways, both asynchronous invocations of the
//! embed function that Lambda queues, runs in parallel and retries twice:
//! - [`S3JobDispatcher`] (the stack's default): a job object in the jobs bucket, whose S3
//!   notification invokes the function. From private subnets it needs only the free S3 gateway
//!   endpoint. A function writing to a bucket that triggers it is what Lambda's recursive loop
//!   detection stops after 16 hops, so the stack sets the embed function's `RecursiveLoop: Allow`;
//!   a job's chain ends when the job does (and a stalled job is restarted by an operator).
//! - [`LambdaDispatcher`]: `{"action": "ingest_job", "tenant": …, "job_id": …}` through the Lambda
//!   API (an interface endpoint in private subnets, ≈ USD 14.60/month).

use serde_json::json;

use super::S3Objects;
use crate::{
    ports::{JobDispatcher, JobRef, ObjectStore, PortError},
    BoxFuture,
};

/// The `action` of a worker invocation.
pub const INGEST_JOB_ACTION: &str = "ingest_job";
/// Where job objects go in the jobs bucket: `jobs/<tenant>/<job id>/<uuid>.json`.
pub const JOB_OBJECT_PREFIX: &str = "jobs/";

/// Starts workers by putting one job object per worker into the jobs bucket.
pub struct S3JobDispatcher {
    objects: S3Objects,
    bucket: String,
}

impl S3JobDispatcher {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3JobDispatcher {
            objects: S3Objects::from_client(s3),
            bucket: bucket.into(),
        }
    }
}

impl JobDispatcher for S3JobDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a JobRef,
        workers: usize,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let body = job_event(job).to_string().into_bytes();
            for _ in 0..workers {
                let key = format!(
                    "{JOB_OBJECT_PREFIX}{}/{}/{}.json",
                    job.tenant,
                    job.job_id,
                    uuid::Uuid::new_v4()
                );
                self.objects
                    .put(&self.bucket, &key, body.clone(), "application/json")
                    .await
                    .map_err(|e| PortError::workers(e.message))?;
            }
            tracing::info!(job = %job.job_id, workers, bucket = %self.bucket, "ingestion workers started (job objects)");
            Ok(())
        })
    }
}

/// Reads a job object (what [`S3JobDispatcher`] wrote): the worker event it holds; `None` when
/// it is gone (its worker already ran).
pub async fn read_job_object(
    objects: &S3Objects,
    bucket: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, PortError> {
    Ok(objects
        .get(bucket, key)
        .await?
        .and_then(|o| serde_json::from_slice(&o.bytes).ok()))
}

/// The `action` of a direct invocation that starts a worker again for every stalled job.
pub const RESTART_STALLED_ACTION: &str = "restart_stalled";

/// The event a worker receives.
pub fn job_event(job: &JobRef) -> serde_json::Value {
    json!({
        "action": INGEST_JOB_ACTION,
        "tenant": job.tenant.as_str(),
        "job_id": job.job_id,
    })
}

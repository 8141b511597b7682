//! Ingestion workers on Lambda: asynchronous invocations (`InvocationType::Event`) of the embed
//! function itself with `{"action": "ingest_job", "tenant": …, "job_id": …}`. Lambda queues them,
//! runs them in parallel, and retries a failed one twice. Not S3 or SQS round trips: a function
//! writing to the bucket that triggers it is the loop Lambda's recursion detection stops.

use aws_sdk_lambda::{primitives::Blob, types::InvocationType};
use serde_json::json;

use super::AwsError;
use crate::{
    ingest::ports::{JobDispatcher, JobRef, PortError},
    BoxFuture,
};

/// The `action` of a worker invocation.
pub const INGEST_JOB_ACTION: &str = "ingest_job";

pub struct LambdaDispatcher {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaDispatcher {
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> Self {
        LambdaDispatcher { client, function }
    }
}

/// The event a worker receives.
pub fn job_event(job: &JobRef) -> serde_json::Value {
    json!({
        "action": INGEST_JOB_ACTION,
        "tenant": job.tenant.as_str(),
        "job_id": job.job_id,
    })
}

impl JobDispatcher for LambdaDispatcher {
    fn dispatch<'a>(
        &'a self,
        job: &'a JobRef,
        workers: usize,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let payload = job_event(job).to_string().into_bytes();
            for _ in 0..workers {
                self.client
                    .invoke()
                    .function_name(&self.function)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload.clone()))
                    .send()
                    .await
                    .map_err(|e| PortError(AwsError::sdk("lambda", "Invoke", e).to_string()))?;
            }
            tracing::info!(job = %job.job_id, workers, function = %self.function, "ingestion workers invoked");
            Ok(())
        })
    }
}

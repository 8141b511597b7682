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
/// The `action` of a direct invocation that starts a worker again for every stalled job.
pub const RESTART_STALLED_ACTION: &str = "restart_stalled";

/// Invokes `function` with `payload`: asynchronously (`wait: false`; Lambda queues, retries and
/// keeps failures) or synchronously, returning its response. Operator commands use it.
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &serde_json::Value,
    wait: bool,
) -> Result<serde_json::Value, AwsError> {
    let out = client
        .invoke()
        .function_name(function)
        .invocation_type(if wait {
            InvocationType::RequestResponse
        } else {
            InvocationType::Event
        })
        .payload(Blob::new(payload.to_string().into_bytes()))
        .send()
        .await
        .map_err(|e| AwsError::sdk("lambda", "Invoke", e))?;
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    let response: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(error) = out.function_error() {
        return Err(AwsError {
            service: "lambda",
            operation: "Invoke",
            message: format!("{function} failed ({error}): {response}"),
        });
    }
    Ok(response)
}

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
                    .map_err(|e| {
                        PortError::workers(AwsError::sdk("lambda", "Invoke", e).to_string())
                    })?;
            }
            tracing::info!(job = %job.job_id, workers, function = %self.function, "ingestion workers invoked");
            Ok(())
        })
    }
}

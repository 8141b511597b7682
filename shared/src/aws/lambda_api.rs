//! The Lambda API (feature `lambda-api`: operator commands, and workers where no jobs bucket is
//! configured): asynchronous and synchronous invocations, and a dispatcher of ingestion workers.

use aws_sdk_lambda::{primitives::Blob, types::InvocationType};

use super::{job_event, AwsError};
use crate::{
    future::BoxFuture,
    ports::{JobDispatcher, JobRef, PortError},
};

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

//! Lambda entry points for functions that take more than API Gateway requests: the embed function
//! receives HTTP API events and S3 notifications on one handler. The event's shape decides.

use std::sync::Arc;

use lambda_http::{request::LambdaRequest, Adapter, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

use crate::ingest::document::Ingestor;

pub type Error = lambda_runtime::Error;

/// Whether `event` is an S3 notification (`Records[].eventSource == "aws:s3"`).
pub fn is_s3_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:s3")
}

/// Handles one invocation: S3 events go to ingestion, anything else is parsed as an API Gateway
/// request and served by `router` (the same router the dev server serves).
pub async fn dispatch(
    router: axum::Router,
    ingestor: Arc<Ingestor>,
    event: Value,
    context: Context,
) -> Result<Value, Error> {
    if is_s3_event(&event) {
        return dispatch_s3(&ingestor, event).await;
    }
    let request: LambdaRequest = serde_json::from_value(event)?;
    let mut adapter = Adapter::from(router);
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}

/// The S3 half of [`dispatch`] (the dev server's emulated notifications call it directly).
pub async fn dispatch_s3(ingestor: &Ingestor, event: Value) -> Result<Value, Error> {
    let s3: aws_lambda_events::s3::S3Event = serde_json::from_value(event)?;
    let reports = ingestor.handle_s3_event(&s3).await.map_err(|e| {
        tracing::error!(error = %e, "S3 event failed; Lambda will retry it");
        Box::new(e) as Error
    })?;
    Ok(json!({ "records": reports }))
}

/// Runs the Lambda runtime loop with [`dispatch`].
pub async fn run_http_and_s3(router: axum::Router, ingestor: Arc<Ingestor>) -> Result<(), Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let (router, ingestor) = (router.clone(), ingestor.clone());
            async move { dispatch(router, ingestor, event.payload, event.context).await }
        },
    ))
    .await
}

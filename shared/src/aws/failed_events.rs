//! Failed asynchronous invocations of the embed function (S3 notifications, ingestion workers),
//! kept in the failed-events bucket once Lambda has retried them twice.
//!
//! In AWS the function's `EventInvokeConfig` names the bucket as its on-failure destination, and
//! Lambda writes one JSON invocation record per failed event. Locally the dev server, which
//! delivers the emulated S3 notifications, retries the same way and writes the same record. An
//! operator replays what is there with `ragbot replay-failed` once the cause is fixed.

use serde_json::{json, Value};

use super::S3Objects;
use crate::ports::{ObjectStore, PortError};

/// Where the records are put (Lambda's own layout for S3 destinations starts the same way).
pub const PREFIX: &str = "aws/lambda/async/";

/// A record in the shape of Lambda's asynchronous invocation records.
pub fn record(function: &str, payload: &Value, error: &str, attempts: u32) -> Value {
    json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": format!("arn:aws:lambda:local:000000000000:function:{function}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": error, "errorType": "Error"},
    })
}

/// The event a record holds (its `requestPayload`).
pub fn payload(record: &Value) -> Option<&Value> {
    record.get("requestPayload").filter(|p| !p.is_null())
}

/// One kept record and where it is.
#[derive(Debug, Clone)]
pub struct Kept {
    pub key: String,
    pub record: Value,
}

pub struct FailedEvents {
    objects: S3Objects,
    bucket: String,
}

impl FailedEvents {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        FailedEvents {
            objects: S3Objects::from_client(s3),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Keeps `record` (as Lambda would) under `aws/lambda/async/<function>/YYYY/MM/DD/…`.
    pub async fn put(&self, function: &str, record: &Value) -> Result<String, PortError> {
        let now = chrono::Utc::now();
        let key = format!(
            "{PREFIX}{function}/{}/{}-{}",
            now.format("%Y/%m/%d"),
            now.format("%Y-%m-%dT%H.%M.%S"),
            uuid::Uuid::new_v4()
        );
        let body =
            serde_json::to_vec(record).map_err(|e| PortError::object_store(e.to_string()))?;
        self.objects
            .put(&self.bucket, &key, body, "application/json")
            .await?;
        Ok(key)
    }

    /// Every kept record, oldest key first. A record that is not JSON is returned as a string
    /// value, so that it is reported rather than skipped.
    pub async fn list(&self) -> Result<Vec<Kept>, PortError> {
        let mut out = Vec::new();
        for key in self.objects.list(&self.bucket, "").await? {
            // Deleted since the listing (another replay): nothing to report.
            let Some(object) = self.objects.get(&self.bucket, &key).await? else {
                continue;
            };
            let record = serde_json::from_slice(&object.bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&object.bytes).into_owned())
            });
            out.push(Kept { key, record });
        }
        Ok(out)
    }

    /// Forgets a record (after it was replayed).
    pub async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.objects.delete(&self.bucket, key).await
    }
}

impl super::AwsClients {
    /// The failed-events bucket, when one is configured.
    pub fn failed_events(&self) -> Option<FailedEvents> {
        self.failed_events_bucket
            .as_ref()
            .map(|b| FailedEvents::new(self.s3.clone(), b.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_event_as_lambda_does() {
        let event = json!({"Records": [{"eventSource": "aws:s3"}]});
        let r = record("embed", &event, "database unavailable", 3);
        assert_eq!(payload(&r), Some(&event));
        assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["responsePayload"]["errorMessage"], "database unavailable");
        assert_eq!(payload(&json!({"requestPayload": null})), None);
    }
}

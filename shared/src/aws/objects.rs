//! S3 as the documents object store; DynamoDB as the ingestion ledger.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::{error::DisplayErrorContext, primitives::ByteStream};

use super::{AwsClients, TTL_ATTRIBUTE};
use crate::{
    ports::{Claim, Ledger, Object, ObjectStore, PortError, PresignedPut},
    BoxFuture,
};

/// How long a completed entry is remembered (S3 redelivers within hours, not weeks).
pub const LEDGER_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(aws: &AwsClients) -> Self {
        Self::from_client(aws.s3.clone())
    }

    pub fn from_client(client: aws_sdk_s3::Client) -> Self {
        S3Objects { client }
    }
}

/// A failed ledger call, as the port reports it.
fn ledger_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &str,
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> PortError {
    PortError::ledger(format!(
        "ingestion ledger {operation}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

impl ObjectStore for S3Objects {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Object>, PortError>> {
        Box::pin(async move {
            let out = match self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None)
                }
                Err(e) => {
                    return Err(PortError::object_store(format!(
                        "S3 GetObject {bucket}/{key}: {}",
                        DisplayErrorContext(&e)
                    )))
                }
            };
            let content_type = out.content_type().map(str::to_string);
            let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
            let version = out.version_id().map(str::to_string);
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| {
                    PortError::object_store(format!(
                        "S3 GetObject {bucket}/{key}: reading the body: {e}"
                    ))
                })?
                .into_bytes()
                .to_vec();
            Ok(Some(Object {
                bytes,
                content_type,
                etag,
                version,
            }))
        })
    }

    fn put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        bytes: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| {
                    PortError::object_store(format!(
                        "S3 PutObject {bucket}/{key}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            Ok(())
        })
    }

    fn presign_put<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        content_type: &'a str,
        content_length: u64,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<PresignedPut, PortError>> {
        Box::pin(async move {
            let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
                .map_err(|e| PortError::object_store(format!("presigning {bucket}/{key}: {e}")))?;
            let length = i64::try_from(content_length)
                .map_err(|_| PortError::object_store("content length out of range"))?;
            let request = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .content_length(length)
                .presigned(config)
                .await
                .map_err(|e| {
                    PortError::object_store(format!(
                        "presigning S3 PutObject {bucket}/{key}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            let mut headers: std::collections::BTreeMap<String, String> = request
                .headers()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            headers
                .entry("content-type".into())
                .or_insert_with(|| content_type.to_string());
            headers
                .entry("content-length".into())
                .or_insert_with(|| content_length.to_string());
            Ok(PresignedPut {
                method: "PUT",
                url: request.uri().to_string(),
                headers,
                expires_at: chrono::Utc::now()
                    + chrono::Duration::from_std(expires_in).unwrap_or_default(),
            })
        })
    }

    fn exists<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move {
            match self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
                Err(e) => Err(PortError::object_store(format!(
                    "S3 HeadObject {bucket}/{key}: {}",
                    DisplayErrorContext(&e)
                ))),
            }
        })
    }

    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, PortError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    PortError::object_store(format!(
                        "S3 ListObjectsV2 {bucket}/{prefix}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
            }
            Ok(keys)
        })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    PortError::object_store(format!(
                        "S3 DeleteObject {bucket}/{key}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            Ok(())
        })
    }
}

#[derive(Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    lease: Duration,
}

impl DynamoLedger {
    /// `lease`: see [`crate::ports::LEDGER_LEASE`] (tests shorten it).
    pub fn new(aws: &AwsClients, lease: Duration) -> Self {
        DynamoLedger {
            client: aws.dynamodb.clone(),
            table: aws.state_table.clone(),
            lease,
        }
    }

    fn key(id: &str) -> [(String, AttributeValue); 2] {
        [
            ("pk".to_string(), AttributeValue::S(format!("ingest#{id}"))),
            ("sk".to_string(), AttributeValue::S("ledger".to_string())),
        ]
    }
}

impl Ledger for DynamoLedger {
    fn claim<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Claim, PortError>> {
        Box::pin(async move {
            let now = now();
            let [pk, sk] = Self::key(id);
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(pk.0, pk.1)
                .item(sk.0, sk.1)
                .item("state", AttributeValue::S("processing".into()))
                .item(
                    "lease_until",
                    AttributeValue::N((now + self.lease.as_secs().max(1)).to_string()),
                )
                .item(
                    TTL_ATTRIBUTE,
                    AttributeValue::N((now + LEDGER_RETENTION.as_secs()).to_string()),
                )
                // New, or a processing claim whose holder died (lease expired).
                .condition_expression(
                    "attribute_not_exists(pk) OR (#state = :processing AND lease_until < :now)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":processing", AttributeValue::S("processing".into()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match put {
                Ok(_) => Ok(Claim::Acquired),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        let state = c
                            .item()
                            .and_then(|i| i.get("state"))
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str);
                        Ok(if state == Some("processing") {
                            Claim::InProgress
                        } else {
                            Claim::Done
                        })
                    }
                    _ => Err(ledger_error("PutItem", e)),
                },
            }
        })
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    fn renew<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let [pk, sk] = Self::key(id);
            self.client
                .update_item()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .update_expression("SET lease_until = :until")
                .condition_expression("#state = :processing")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":processing", AttributeValue::S("processing".into()))
                .expression_attribute_values(
                    ":until",
                    AttributeValue::N((now() + self.lease.as_secs().max(1)).to_string()),
                )
                .send()
                .await
                .map_err(|e| ledger_error("UpdateItem (renew)", e))?;
            Ok(())
        })
    }

    fn complete<'a>(
        &'a self,
        id: &'a str,
        outcome: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let [pk, sk] = Self::key(id);
            self.client
                .update_item()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .update_expression("SET #state = :done, outcome = :outcome REMOVE lease_until")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":done", AttributeValue::S("done".into()))
                .expression_attribute_values(":outcome", AttributeValue::S(outcome.to_string()))
                .send()
                .await
                .map_err(|e| ledger_error("UpdateItem", e))?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let [pk, sk] = Self::key(id);
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .send()
                .await
                .map_err(|e| ledger_error("DeleteItem", e))?;
            Ok(())
        })
    }
}

//! AWS adapters: S3 (documents, backups) and DynamoDB (request-path state).
//!
//! Clients are built once per process from aws-config (credentials from the environment / the
//! Lambda role), with endpoint overrides for the local stack.

mod bedrock;
mod chat_state;
mod converse;
pub mod failed_events;
mod invoke;
pub mod notify_local;
mod objects;
mod ratelimit;

pub use bedrock::{BedrockEmbedder, BedrockSettings, TITAN_V2_DIMENSIONS};
pub use chat_state::{DynamoAnswerCache, DynamoTokenBudget};
pub use converse::BedrockChat;
pub use invoke::{
    invoke, job_event, read_job_object, LambdaDispatcher, S3JobDispatcher, INGEST_JOB_ACTION,
    JOB_OBJECT_PREFIX, RESTART_STALLED_ACTION,
};
pub use objects::{DynamoLedger, S3Objects, LEDGER_LEASE};
pub use ratelimit::DynamoRateLimiter;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use aws_sdk_s3::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::AwsSettings;

/// The TTL attribute of the state table (epoch seconds). DynamoDB Local never expires items, and
/// DynamoDB deletes them lazily, so readers must also compare it to now.
pub const TTL_ATTRIBUTE: &str = "expires_at";

#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed: {message}")]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub message: String,
}

impl AwsError {
    /// A service error as `Code: message`; a transport error with its whole source chain.
    fn sdk<E, R>(service: &'static str, operation: &'static str, e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = match (e.code(), e.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_string(),
            _ => DisplayErrorContext(&e).to_string(),
        };
        AwsError {
            service,
            operation,
            message,
        }
    }

    fn build(service: &'static str, operation: &'static str, e: BuildError) -> Self {
        AwsError {
            service,
            operation,
            message: e.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Invokes ingestion workers (the embed function itself).
    pub lambda: aws_sdk_lambda::Client,
    pub documents_bucket: String,
    pub backups_bucket: String,
    pub state_table: String,
    pub failed_events_bucket: Option<String>,
    pub job_bucket: Option<String>,
}

impl AwsClients {
    pub async fn new(cfg: &AwsSettings) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .load()
            .await;
        // The whole operation (its retries included) within the bound, each attempt within half.
        let bound = |d: std::time::Duration| {
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(d)
                .operation_attempt_timeout(d / 2)
                .connect_timeout(d.min(std::time::Duration::from_secs(3)))
                .build()
        };
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk).timeout_config(bound(cfg.s3_timeout));
        if let Some(ep) = &cfg.s3_endpoint {
            s3 = s3.endpoint_url(ep).force_path_style(true);
        }
        let mut ddb = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .timeout_config(bound(cfg.dynamodb_timeout));
        if let Some(ep) = &cfg.dynamodb_endpoint {
            ddb = ddb.endpoint_url(ep);
        }
        let mut lambda =
            aws_sdk_lambda::config::Builder::from(&sdk).timeout_config(bound(cfg.lambda_timeout));
        if let Some(ep) = &cfg.lambda_endpoint {
            lambda = lambda.endpoint_url(ep);
        }
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(ddb.build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            documents_bucket: cfg.documents_bucket.clone(),
            backups_bucket: cfg.backups_bucket.clone(),
            state_table: cfg.state_table.clone(),
            failed_events_bucket: cfg.failed_events_bucket.clone(),
            job_bucket: cfg.job_bucket.clone(),
        }
    }

    /// The failed-events bucket, when one is configured.
    pub fn failed_events(&self) -> Option<failed_events::FailedEvents> {
        self.failed_events_bucket
            .as_ref()
            .map(|b| failed_events::FailedEvents::new(self.s3.clone(), b.clone()))
    }

    /// Both buckets exist and are reachable with our credentials.
    pub async fn ping_s3(&self) -> Result<(), AwsError> {
        for bucket in [&self.documents_bucket, &self.backups_bucket] {
            self.s3
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| AwsError::sdk("s3", "HeadBucket", e))?;
        }
        Ok(())
    }

    /// The state table exists and is reachable.
    pub async fn ping_dynamodb(&self) -> Result<(), AwsError> {
        self.dynamodb
            .describe_table()
            .table_name(&self.state_table)
            .send()
            .await
            .map_err(|e| AwsError::sdk("dynamodb", "DescribeTable", e))?;
        Ok(())
    }

    /// Creates the buckets and the state table when missing (local stack only; in AWS the SAM
    /// template owns them).
    pub async fn ensure_local_resources(&self) -> Result<(), AwsError> {
        let buckets = [&self.documents_bucket, &self.backups_bucket]
            .into_iter()
            .chain(self.failed_events_bucket.as_ref())
            .chain(self.job_bucket.as_ref());
        for bucket in buckets {
            if self.s3.head_bucket().bucket(bucket).send().await.is_ok() {
                continue;
            }
            match self.s3.create_bucket().bucket(bucket).send().await {
                Ok(_) => tracing::info!(bucket = %bucket, "created bucket"),
                Err(e) => {
                    let already = e.as_service_error().is_some_and(|s| {
                        s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                    });
                    if !already {
                        return Err(AwsError::sdk("s3", "CreateBucket", e));
                    }
                }
            }
        }

        let created = self
            .dynamodb
            .create_table()
            .table_name(&self.state_table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(table = %self.state_table, "created state table");
                let ttl = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(|e| AwsError::build("dynamodb", "UpdateTimeToLive", e))?;
                self.dynamodb
                    .update_time_to_live()
                    .table_name(&self.state_table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("dynamodb", "UpdateTimeToLive", e))?;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(AwsError::sdk("dynamodb", "CreateTable", e)),
        }
        Ok(())
    }
}

fn attr(name: &str) -> Result<AttributeDefinition, AwsError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| AwsError::build("dynamodb", "CreateTable", e))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, AwsError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| AwsError::build("dynamodb", "CreateTable", e))
}

//! The AWS clients of a process, built once from aws-config (credentials from the environment /
//! the Lambda role) with endpoint overrides for the local stack, and their settings.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use super::{AwsError, TTL_ATTRIBUTE};
use crate::env::{ConfigError, Env};
use crate::{future::BoxFuture, ports::Probe};

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub region: String,
    /// Endpoint override for S3 (local S3 server); path-style addressing is used with it.
    pub s3_endpoint: Option<String>,
    /// Endpoint override for DynamoDB (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// Endpoint override for the Lambda API (ingestion workers' invocations).
    pub lambda_endpoint: Option<String>,
    pub documents_bucket: String,
    pub backups_bucket: String,
    pub state_table: String,
    /// Where failed asynchronous invocations of the embed function are kept
    /// (`FAILED_EVENTS_BUCKET`; the stack's on-failure destination). Read by `ragbot
    /// replay-failed`, written by the dev server; `None` in AWS functions, where Lambda writes it.
    pub failed_events_bucket: Option<String>,
    /// The jobs bucket (`INGEST_JOB_BUCKET`): workers of large documents are started by a job
    /// object put there, whose notification invokes the embed function (no Lambda API endpoint).
    pub job_bucket: Option<String>,
    /// Create the buckets and the state table when missing (local stack only).
    pub create_local_resources: bool,
    /// Bounds on each AWS call, retries included (`AWS_S3_TIMEOUT_MS` 30 s, `AWS_DYNAMODB_TIMEOUT_MS`
    /// 3 s, `AWS_LAMBDA_TIMEOUT_MS` 10 s): an endpoint that accepts and never answers fails the
    /// call instead of hanging the request.
    pub s3_timeout: Duration,
    pub dynamodb_timeout: Duration,
    pub lambda_timeout: Duration,
}

impl AwsSettings {
    /// Outside local, the names of real resources (buckets, table) must be given.
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
        local: bool,
    ) -> Result<Self, ConfigError> {
        let infra = |name: &'static str, default: &'static str, hint: &'static str| match (
            env.string(name),
            local,
        ) {
            (Some(v), _) => Ok(v),
            (None, true) => Ok(default.to_string()),
            (None, false) => Err(ConfigError::Missing { name, hint }),
        };
        let common_endpoint = env.string("AWS_ENDPOINT_URL");
        let aws = AwsSettings {
            region: env
                .string("AWS_REGION")
                .or_else(|| env.string("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            s3_endpoint: env
                .string("AWS_ENDPOINT_URL_S3")
                .or_else(|| common_endpoint.clone()),
            dynamodb_endpoint: env
                .string("AWS_ENDPOINT_URL_DYNAMODB")
                .or_else(|| common_endpoint.clone()),
            lambda_endpoint: env.string("AWS_ENDPOINT_URL_LAMBDA").or(common_endpoint),
            documents_bucket: infra(
                "DOCUMENTS_BUCKET",
                "ragbot-documents",
                "the S3 bucket holding source documents",
            )?,
            backups_bucket: infra(
                "BACKUPS_BUCKET",
                "ragbot-backups",
                "the S3 bucket receiving backups",
            )?,
            state_table: infra(
                "STATE_TABLE",
                "ragbot-state",
                "the DynamoDB table for request-path state",
            )?,
            failed_events_bucket: env
                .string("FAILED_EVENTS_BUCKET")
                .or_else(|| local.then(|| "ragbot-failed-events".to_string())),
            job_bucket: env.string("INGEST_JOB_BUCKET"),
            create_local_resources: env.parse_or("RAGBOT_CREATE_LOCAL_RESOURCES", false)?,
            s3_timeout: env.millis_or("AWS_S3_TIMEOUT_MS", 30_000)?,
            dynamodb_timeout: env.millis_or("AWS_DYNAMODB_TIMEOUT_MS", 3_000)?,
            lambda_timeout: env.millis_or("AWS_LAMBDA_TIMEOUT_MS", 10_000)?,
        };
        if aws.create_local_resources && !local {
            return Err(ConfigError::Invalid {
                name: "RAGBOT_CREATE_LOCAL_RESOURCES",
                reason: "may only be set with RAGBOT_ENV=local or test".into(),
            });
        }
        Ok(aws)
    }
}

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Invokes functions (operator commands; workers where no jobs bucket is configured).
    #[cfg(feature = "lambda-api")]
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
        #[cfg(feature = "lambda-api")]
        let lambda = {
            let mut lambda = aws_sdk_lambda::config::Builder::from(&sdk)
                .timeout_config(bound(cfg.lambda_timeout));
            if let Some(ep) = &cfg.lambda_endpoint {
                lambda = lambda.endpoint_url(ep);
            }
            lambda
        };
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(ddb.build()),
            #[cfg(feature = "lambda-api")]
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            documents_bucket: cfg.documents_bucket.clone(),
            backups_bucket: cfg.backups_bucket.clone(),
            state_table: cfg.state_table.clone(),
            failed_events_bucket: cfg.failed_events_bucket.clone(),
            job_bucket: cfg.job_bucket.clone(),
        }
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

impl AwsClients {
    /// What readiness pings: S3 (both buckets) and DynamoDB (the state table).
    pub fn probes(&self) -> Vec<Box<dyn Probe>> {
        vec![
            Box::new(S3Probe(self.clone())),
            Box::new(DynamoDbProbe(self.clone())),
        ]
    }
}

struct S3Probe(AwsClients);

impl Probe for S3Probe {
    fn name(&self) -> &'static str {
        "s3"
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping_s3().await.map_err(|e| e.to_string()) })
    }
}

struct DynamoDbProbe(AwsClients);

impl Probe for DynamoDbProbe {
    fn name(&self) -> &'static str {
        "dynamodb"
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping_dynamodb().await.map_err(|e| e.to_string()) })
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

//! AWS adapters: S3 (documents, backups) and DynamoDB (request-path state).
//!
//! Clients are built once per process from aws-config (credentials from the environment / the
//! Lambda role), with endpoint overrides for the local stack.

#[cfg(feature = "bedrock")]
mod bedrock;
mod chat_state;
mod clients;
#[cfg(feature = "bedrock")]
mod converse;
mod error;
pub mod failed_events;
mod invoke;
#[cfg(feature = "lambda-api")]
mod lambda_api;
#[cfg(feature = "operator")]
pub mod notify_local;
mod objects;
mod ratelimit;
mod s3_events;

pub use crate::ports::LEDGER_LEASE;
#[cfg(feature = "bedrock")]
pub use bedrock::{BedrockEmbedder, TITAN_V2_DIMENSIONS};
pub use chat_state::{DynamoAnswerCache, DynamoTokenBudget};
pub use clients::{AwsClients, AwsSettings};
#[cfg(feature = "bedrock")]
pub use converse::BedrockChat;
pub use error::{AwsError, TTL_ATTRIBUTE};
pub use invoke::{
    job_event, read_job_object, S3JobDispatcher, INGEST_JOB_ACTION, JOB_OBJECT_PREFIX,
    RESTART_STALLED_ACTION,
};
#[cfg(feature = "lambda-api")]
pub use lambda_api::{invoke, LambdaDispatcher};
pub use objects::{DynamoLedger, S3Objects};
pub use ratelimit::DynamoRateLimiter;
pub use s3_events::{decode_s3_key, object_events};

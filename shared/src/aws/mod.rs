//! AWS adapters: S3 (documents, backups) and DynamoDB (request-path state).
//!
//! Clients are built once per process from aws-config (credentials from the environment / the
//! Lambda role), with endpoint overrides for the local stack.

mod bedrock;
mod chat_state;
mod clients;
mod converse;
mod error;
pub mod failed_events;
mod invoke;
pub mod notify_local;
mod objects;
mod ratelimit;
mod s3_events;

pub use crate::ports::LEDGER_LEASE;
pub use bedrock::{BedrockEmbedder, TITAN_V2_DIMENSIONS};
pub use chat_state::{DynamoAnswerCache, DynamoTokenBudget};
pub use clients::{AwsClients, AwsSettings};
pub use converse::BedrockChat;
pub use error::{AwsError, TTL_ATTRIBUTE};
pub use invoke::{
    invoke, job_event, read_job_object, LambdaDispatcher, S3JobDispatcher, INGEST_JOB_ACTION,
    JOB_OBJECT_PREFIX, RESTART_STALLED_ACTION,
};
pub use objects::{DynamoLedger, S3Objects};
pub use ratelimit::DynamoRateLimiter;
pub use s3_events::{decode_s3_key, object_events};

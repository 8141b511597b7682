//! The AWS adapters' one error type, and the state table's TTL attribute.

use aws_sdk_s3::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

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
    pub(crate) fn sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        e: SdkError<E, R>,
    ) -> Self
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

    pub(crate) fn build(service: &'static str, operation: &'static str, e: BuildError) -> Self {
        AwsError {
            service,
            operation,
            message: e.to_string(),
        }
    }
}

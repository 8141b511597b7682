//! A dependency the readiness check pings (S3, DynamoDB).

use crate::future::BoxFuture;

pub trait Probe: Send + Sync {
    /// The name readiness reports it under (`s3`, `dynamodb`).
    fn name(&self) -> &'static str;
    /// Reachable with our credentials; the error says why not.
    fn ping(&self) -> BoxFuture<'_, Result<(), String>>;
}

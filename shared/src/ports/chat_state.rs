//! Request-path state of the chat: the answer cache and the per-tenant daily token budget
//! (DynamoDB in AWS). The entries are the chat's own JSON; the store only keeps them.

use crate::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// Answers by key, for a time (DynamoDB items with a TTL in AWS).
pub trait AnswerCache: Send + Sync {
    /// The entry stored under `key` (JSON written by [`Self::put`]), unless it expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StateError>>;
    fn put<'a>(
        &'a self,
        key: &'a str,
        entry_json: &'a str,
        ttl_secs: u64,
    ) -> BoxFuture<'a, Result<(), StateError>>;
}

/// Tokens spent per tenant per UTC day.
pub trait TokenBudget: Send + Sync {
    fn used<'a>(&'a self, tenant: &'a str, day: &'a str) -> BoxFuture<'a, Result<u64, StateError>>;
    fn add<'a>(
        &'a self,
        tenant: &'a str,
        day: &'a str,
        tokens: u64,
    ) -> BoxFuture<'a, Result<(), StateError>>;
}

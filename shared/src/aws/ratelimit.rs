//! Rate-limit counters in the state table: one item per (key, window), incremented atomically with
//! `UpdateItem ADD` under the condition that the count is below the limit, so concurrent requests
//! from any number of Lambda environments never overshoot. Items expire (TTL) after their window.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{AwsClients, AwsError, TTL_ATTRIBUTE};
use crate::{
    ratelimit::{Decision, RateLimitError, RateLimiter, Window},
    BoxFuture,
};

#[derive(Clone)]
pub struct DynamoRateLimiter {
    aws: AwsClients,
}

impl DynamoRateLimiter {
    pub fn new(aws: AwsClients) -> Self {
        DynamoRateLimiter { aws }
    }

    async fn count(
        &self,
        key: &str,
        limit: u32,
        window: Window,
    ) -> Result<Decision, RateLimitError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(window.start);
        let result = self
            .aws
            .dynamodb
            .update_item()
            .table_name(&self.aws.state_table)
            .key("pk", AttributeValue::S(format!("ratelimit#{key}")))
            .key("sk", AttributeValue::S(format!("window#{}", window.start)))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :expires)")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            // Kept an hour past the window so late readers still see it.
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window.end + 3600).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let count = out
                    .attributes()
                    .and_then(|a| a.get("count"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(limit);
                Ok(Decision::Allowed {
                    limit,
                    remaining: limit.saturating_sub(count),
                })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Decision::Limited {
                    limit,
                    retry_after: std::time::Duration::from_secs(
                        window.end.saturating_sub(now).max(1),
                    ),
                })
            }
            Err(e) => Err(RateLimitError(
                AwsError::sdk("dynamodb", "UpdateItem", e).to_string(),
            )),
        }
    }
}

impl RateLimiter for DynamoRateLimiter {
    fn hit<'a>(
        &'a self,
        key: &'a str,
        limit: u32,
        window: Window,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        Box::pin(self.count(key, limit, window))
    }
}

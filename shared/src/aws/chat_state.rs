//! Chat state in the state table: the answer cache (items with a TTL) and the per-tenant daily
//! LLM token counters (atomic `ADD`).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{AwsClients, AwsError, TTL_ATTRIBUTE};
use crate::{
    future::BoxFuture,
    ports::{AnswerCache, StateError, TokenBudget},
};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `pk = answer#<tenant>`, `sk = <key>`, the answer as JSON, `expires_at`.
#[derive(Clone)]
pub struct DynamoAnswerCache {
    aws: AwsClients,
}

impl DynamoAnswerCache {
    pub fn new(aws: &AwsClients) -> Self {
        DynamoAnswerCache { aws: aws.clone() }
    }

    /// The key's tenant part (`<tenant>#<hash>`) is the partition.
    fn keys(key: &str) -> (AttributeValue, AttributeValue) {
        let tenant = key.split('#').next().unwrap_or("");
        (
            AttributeValue::S(format!("answer#{tenant}")),
            AttributeValue::S(key.to_string()),
        )
    }

    async fn read(&self, key: &str) -> Result<Option<String>, StateError> {
        let (pk, sk) = Self::keys(key);
        let out = self
            .aws
            .dynamodb
            .get_item()
            .table_name(&self.aws.state_table)
            .key("pk", pk)
            .key("sk", sk)
            .send()
            .await
            .map_err(|e| StateError(AwsError::sdk("dynamodb", "GetItem", e).to_string()))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        // DynamoDB deletes expired items lazily (DynamoDB Local never): check the TTL ourselves.
        let expires = item
            .get(TTL_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if expires <= now_secs() {
            return Ok(None);
        }
        let Some(body) = item.get("answer").and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        Ok(Some(body.to_string()))
    }

    async fn write(&self, key: &str, body: &str, ttl: u64) -> Result<(), StateError> {
        let (pk, sk) = Self::keys(key);
        self.aws
            .dynamodb
            .put_item()
            .table_name(&self.aws.state_table)
            .item("pk", pk)
            .item("sk", sk)
            .item("answer", AttributeValue::S(body.to_string()))
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N((now_secs() + ttl).to_string()),
            )
            .send()
            .await
            .map_err(|e| StateError(AwsError::sdk("dynamodb", "PutItem", e).to_string()))?;
        Ok(())
    }
}

impl AnswerCache for DynamoAnswerCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StateError>> {
        Box::pin(self.read(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        entry_json: &'a str,
        ttl_secs: u64,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.write(key, entry_json, ttl_secs))
    }
}

/// `pk = llmtokens#<tenant>`, `sk = day#<YYYY-MM-DD>`, `tokens` (kept two days).
#[derive(Clone)]
pub struct DynamoTokenBudget {
    aws: AwsClients,
}

impl DynamoTokenBudget {
    pub fn new(aws: &AwsClients) -> Self {
        DynamoTokenBudget { aws: aws.clone() }
    }

    async fn read(&self, tenant: &str, day: &str) -> Result<u64, StateError> {
        let out = self
            .aws
            .dynamodb
            .get_item()
            .table_name(&self.aws.state_table)
            .key("pk", AttributeValue::S(format!("llmtokens#{tenant}")))
            .key("sk", AttributeValue::S(format!("day#{day}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError(AwsError::sdk("dynamodb", "GetItem", e).to_string()))?;
        Ok(out
            .item()
            .and_then(|i| i.get("tokens"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    async fn count(&self, tenant: &str, day: &str, tokens: u64) -> Result<(), StateError> {
        self.aws
            .dynamodb
            .update_item()
            .table_name(&self.aws.state_table)
            .key("pk", AttributeValue::S(format!("llmtokens#{tenant}")))
            .key("sk", AttributeValue::S(format!("day#{day}")))
            .update_expression("ADD #tokens :n SET #ttl = if_not_exists(#ttl, :expires)")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":n", AttributeValue::N(tokens.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((now_secs() + 2 * 86_400).to_string()),
            )
            .send()
            .await
            .map_err(|e| StateError(AwsError::sdk("dynamodb", "UpdateItem", e).to_string()))?;
        Ok(())
    }
}

impl TokenBudget for DynamoTokenBudget {
    fn used<'a>(&'a self, tenant: &'a str, day: &'a str) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(self.read(tenant, day))
    }

    fn add<'a>(
        &'a self,
        tenant: &'a str,
        day: &'a str,
        tokens: u64,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.count(tenant, day, tokens))
    }
}

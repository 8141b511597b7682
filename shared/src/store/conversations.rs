//! Conversations and their messages, always scoped by tenant (row-level security) and owner (the
//! caller's subject): another caller's conversation looks exactly like a missing one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{types::Type, Row};
use uuid::Uuid;

use super::{StoreError, TenantTx};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    /// The first question, shortened (or the title given at creation).
    pub title: Option<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Feedback {
    /// `up` or `down`.
    pub rating: String,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredMessage {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// As in the chat answer.
    #[schema(value_type = Vec<Object>)]
    pub citations: Value,
    /// `ok`, or `failed` for a user message whose answer could not be produced.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i32>,
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grounded: Option<bool>,
    /// The question as retrieval used it (a follow-up made standalone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standalone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fallback: Option<Value>,
    #[schema(value_type = Vec<String>)]
    pub warnings: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
    pub created_at: DateTime<Utc>,
}

const CONVERSATION_COLUMNS: &str = "c.id, c.title, c.created_at, c.updated_at,
    (SELECT count(*) FROM messages m WHERE m.tenant = c.tenant AND m.conversation_id = c.id)";

fn conversation(r: &Row) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        created_at: r.try_get(2)?,
        updated_at: r.try_get(3)?,
        message_count: r.try_get(4)?,
    })
}

const MESSAGE_COLUMNS: &str = "id, role, content, citations, status, error, provider, model,
    latency_ms, prompt_tokens, completion_tokens, cached, grounded, standalone, fallback, warnings,
    feedback_rating, feedback_comment, feedback_at, created_at";

fn message(r: &Row) -> Result<StoredMessage, StoreError> {
    let rating: Option<String> = r.try_get(16)?;
    let at: Option<DateTime<Utc>> = r.try_get(18)?;
    let feedback = match (rating, at) {
        (Some(rating), Some(at)) => Some(Feedback {
            rating,
            comment: r.try_get(17)?,
            at,
        }),
        _ => None,
    };
    Ok(StoredMessage {
        id: r.try_get(0)?,
        role: r.try_get(1)?,
        content: r.try_get(2)?,
        citations: r.try_get(3)?,
        status: r.try_get(4)?,
        error: r.try_get(5)?,
        provider: r.try_get(6)?,
        model: r.try_get(7)?,
        latency_ms: r.try_get(8)?,
        prompt_tokens: r.try_get(9)?,
        completion_tokens: r.try_get(10)?,
        cached: r.try_get(11)?,
        grounded: r.try_get(12)?,
        standalone: r.try_get(13)?,
        fallback: r.try_get(14)?,
        warnings: r.try_get(15)?,
        feedback,
        created_at: r.try_get(19)?,
    })
}

/// The conversation, if it exists and belongs to `owner`.
pub async fn get(tx: &TenantTx, id: Uuid, owner: &str) -> Result<Option<Conversation>, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations c
                 WHERE c.tenant = $1 AND c.id = $2 AND c.subject = $3"
            ),
            &[tx.tenant_param(), (&id, Type::UUID), (&owner, Type::TEXT)],
        )
        .await?;
    row.as_ref().map(conversation).transpose()
}

/// Whether the conversation exists and belongs to `owner` (a check, without its counts).
pub async fn owned(tx: &TenantTx, id: Uuid, owner: &str) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM conversations WHERE tenant = $1 AND id = $2 AND subject = $3",
            &[tx.tenant_param(), (&id, Type::UUID), (&owner, Type::TEXT)],
        )
        .await?;
    Ok(row.is_some())
}

/// A new conversation of `owner`; `id` when the caller chose it ahead (a streamed answer tells
/// its ids before it is stored), else a random one.
pub async fn create(
    tx: &TenantTx,
    id: Option<Uuid>,
    owner: &str,
    title: Option<&str>,
) -> Result<Conversation, StoreError> {
    let row = tx
        .query_opt(
            "INSERT INTO conversations (id, tenant, subject, title)
             VALUES (coalesce($4, gen_random_uuid()), $1, $2, $3)
             RETURNING id, title, created_at, updated_at, 0::int8",
            &[
                tx.tenant_param(),
                (&owner, Type::TEXT),
                (&title, Type::TEXT),
                (&id, Type::UUID),
            ],
        )
        .await?;
    let row = row.ok_or_else(|| StoreError::Unavailable("INSERT returned no row".into()))?;
    conversation(&row)
}

/// The owner's conversations, most recently active first, keyset-paginated.
pub async fn list(
    tx: &TenantTx,
    owner: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Conversation>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations c
                 WHERE c.tenant = $1 AND c.subject = $2
                   AND ($3::uuid IS NULL OR (c.updated_at, c.id) <
                        (SELECT updated_at, id FROM conversations
                         WHERE tenant = $1 AND subject = $2 AND id = $3))
                 ORDER BY c.updated_at DESC, c.id DESC
                 LIMIT $4"
            ),
            &[
                tx.tenant_param(),
                (&owner, Type::TEXT),
                (&after, Type::UUID),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(conversation).collect()
}

/// Deletes the conversation and (by cascade) its messages; whether it existed for `owner`.
pub async fn delete(tx: &TenantTx, id: Uuid, owner: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "DELETE FROM conversations WHERE tenant = $1 AND id = $2 AND subject = $3",
            &[tx.tenant_param(), (&id, Type::UUID), (&owner, Type::TEXT)],
        )
        .await?;
    Ok(n > 0)
}

/// Every message of a conversation, oldest first (the caller checked the owner).
pub async fn messages(tx: &TenantTx, id: Uuid) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE tenant = $1 AND conversation_id = $2
                 ORDER BY created_at, CASE role WHEN 'user' THEN 0 ELSE 1 END, id"
            ),
            &[tx.tenant_param(), (&id, Type::UUID)],
        )
        .await?;
    rows.iter().map(message).collect()
}

/// The last `turns` answered question/answer pairs, oldest first (failed questions left out).
pub async fn history(
    tx: &TenantTx,
    id: Uuid,
    turns: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    if turns == 0 {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT role, content FROM (
                 SELECT role, content, created_at, CASE role WHEN 'user' THEN 0 ELSE 1 END AS o
                 FROM messages
                 WHERE tenant = $1 AND conversation_id = $2 AND status = 'ok'
                 ORDER BY created_at DESC, o DESC LIMIT $3) last
             ORDER BY created_at, o",
            &[
                tx.tenant_param(),
                (&id, Type::UUID),
                (&((turns * 2) as i64), Type::INT8),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The tenant's knowledge version: bumped by every change of its documents or chunks (V9).
pub async fn knowledge_version(tx: &TenantTx) -> Result<i64, StoreError> {
    let row = tx
        .query_opt(
            "SELECT version FROM knowledge_versions WHERE tenant = $1",
            &[tx.tenant_param()],
        )
        .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => 0,
    })
}

/// One message to insert.
pub struct NewMessage<'a> {
    /// Chosen ahead (a streamed answer tells its id before it is stored); else a random one.
    pub id: Option<Uuid>,
    pub role: &'a str,
    pub content: &'a str,
    pub citations: Value,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub latency_ms: Option<i32>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cached: bool,
    pub grounded: Option<bool>,
    pub standalone: Option<&'a str>,
    pub fallback: Option<Value>,
    pub warnings: Value,
}

/// Inserts a message into the conversation (the user's a microsecond before the answer, so the
/// order of a turn never depends on the clock). [`touch`] marks the conversation active.
pub async fn insert_message(
    tx: &TenantTx,
    conversation_id: Uuid,
    m: &NewMessage<'_>,
) -> Result<Uuid, StoreError> {
    let offset = if m.role == "user" { "0" } else { "1" };
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO messages (id, tenant, conversation_id, role, content, citations, status,
                     error, provider, model, latency_ms, prompt_tokens, completion_tokens, cached,
                     grounded, standalone, fallback, warnings, created_at)
                 VALUES (coalesce($18, gen_random_uuid()), $1, $2, $3, $4, $5, $6, $7, $8, $9,
                         $10, $11, $12, $13, $14, $15, $16, $17,
                         now() + interval '{offset} microsecond')
                 RETURNING id"
            ),
            &[
                tx.tenant_param(),
                (&conversation_id, Type::UUID),
                (&m.role, Type::TEXT),
                (&m.content, Type::TEXT),
                (&m.citations, Type::JSONB),
                (&m.status, Type::TEXT),
                (&m.error, Type::TEXT),
                (&m.provider, Type::TEXT),
                (&m.model, Type::TEXT),
                (&m.latency_ms, Type::INT4),
                (&m.prompt_tokens, Type::INT4),
                (&m.completion_tokens, Type::INT4),
                (&m.cached, Type::BOOL),
                (&m.grounded, Type::BOOL),
                (&m.standalone, Type::TEXT),
                (&m.fallback, Type::JSONB),
                (&m.warnings, Type::JSONB),
                (&m.id, Type::UUID),
            ],
        )
        .await?;
    let row = row.ok_or_else(|| StoreError::Unavailable("INSERT returned no row".into()))?;
    Ok(row.try_get(0)?)
}

/// Marks the conversation active; a conversation without a title takes the first question's.
pub async fn touch(tx: &TenantTx, conversation_id: Uuid, question: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE conversations SET updated_at = now(), title = coalesce(title, left($3, 80))
         WHERE tenant = $1 AND id = $2",
        &[
            tx.tenant_param(),
            (&conversation_id, Type::UUID),
            (&question, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

/// Records feedback on an assistant message of the owner's conversation; the message as stored,
/// or `None` when there is no such assistant message.
pub async fn set_feedback(
    tx: &TenantTx,
    conversation_id: Uuid,
    message_id: Uuid,
    rating: &str,
    comment: Option<&str>,
) -> Result<Option<StoredMessage>, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "UPDATE messages SET feedback_rating = $4, feedback_comment = $5, feedback_at = now()
                 WHERE tenant = $1 AND conversation_id = $2 AND id = $3 AND role = 'assistant'
                 RETURNING {MESSAGE_COLUMNS}"
            ),
            &[
                tx.tenant_param(),
                (&conversation_id, Type::UUID),
                (&message_id, Type::UUID),
                (&rating, Type::TEXT),
                (&comment, Type::TEXT),
            ],
        )
        .await?;
    row.as_ref().map(message).transpose()
}

//! The chat API's requests, answers and errors; the conversation owner.

use crate::{
    llm::{LlmError, Usage},
    retrieval::{Fallback, Filters, Mode, RetrieveError},
    store::StoreError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /chat` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "How do I reset my password?", "top_k": 5, "mode": "hybrid"}))]
pub struct ChatRequest {
    /// The user's question (1–4,000 characters).
    pub message: String,
    /// Continue this conversation; without it a new one is created.
    pub conversation_id: Option<Uuid>,
    /// Passages retrieved for the answer, 1–50 (default `CHAT_TOP_K`).
    pub top_k: Option<usize>,
    /// `hybrid` (default) or `vector`.
    pub mode: Option<Mode>,
    /// As on `/retrieve`.
    pub filters: Option<Filters>,
}

/// `POST /conversations/{id}/messages` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "And if I forgot my username?"}))]
pub struct MessageRequest {
    pub message: String,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub filters: Option<Filters>,
}

/// A passage the answer cites.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Citation {
    /// The `[n]` the answer text uses for this passage.
    pub index: usize,
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub title: String,
    /// The start of the passage.
    pub snippet: String,
    /// The retrieval score (cosine similarity in vector mode, RRF in hybrid mode).
    pub score: f64,
    /// The Q&A pair's question, when the passage is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub question: Option<String>,
    /// Character ranges `[start, end)` of `answer` (Unicode scalar values) this passage supports.
    #[schema(value_type = Vec<Vec<usize>>)]
    pub spans: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl From<Usage> for TokenUsage {
    fn from(u: Usage) -> Self {
        TokenUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

/// The answer to one message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    pub conversation_id: Uuid,
    /// The assistant message's id (for feedback).
    pub message_id: Uuid,
    pub answer: String,
    pub citations: Vec<Citation>,
    /// Whether the answer rests on the knowledge base (false: the fallback).
    pub grounded: bool,
    /// When nothing in the knowledge base is relevant enough: sample questions and a disclaimer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    pub provider: String,
    pub model: String,
    /// Served from the answer cache.
    pub cached: bool,
    pub usage: TokenUsage,
    pub latency_ms: u64,
    /// Flags about the message, e.g. `possible_prompt_injection`, `answer_cache_unavailable`.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Bad input (400), nothing written.
    #[error("{0}")]
    Invalid(String),
    /// Unknown conversation, or another caller's (404, the same answer for both).
    #[error("no conversation {0}")]
    ConversationNotFound(Uuid),
    #[error("no message {0} in this conversation")]
    MessageNotFound(Uuid),
    /// The tenant's daily LLM token budget is spent (429).
    #[error("the daily LLM token budget of {limit} tokens is spent; it renews at 00:00 UTC")]
    BudgetSpent { limit: u64, retry_after_secs: u64 },
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Retrieve(RetrieveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RetrieveError> for ChatError {
    fn from(e: RetrieveError) -> Self {
        match e {
            RetrieveError::Invalid(m) => ChatError::Invalid(m),
            RetrieveError::Store(s) => ChatError::Store(s),
            other => ChatError::Retrieve(other),
        }
    }
}

/// What the answer cache keeps of an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub answer: String,
    pub citations: Vec<Citation>,
    pub model: String,
    pub usage: TokenUsage,
}

/// Who owns a conversation: the token's subject, or for anonymous callers their source address
/// (so that two anonymous people never share conversations).
pub fn owner_of(principal: &crate::auth::Principal) -> String {
    match &principal.identity {
        crate::auth::Identity::Subject(s) => s.clone(),
        crate::auth::Identity::Anonymous { source_ip } => match source_ip {
            Some(ip) => format!("anonymous:{ip}"),
            None => "anonymous".to_string(),
        },
    }
}

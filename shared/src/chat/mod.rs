//! Chat: grounded answers with citations over the tenant's knowledge, with conversation memory.
//!
//! The pipeline ([`Chat::answer`]), each step a small function: check the message → the tenant's
//! daily LLM token budget → the conversation's last turns → the follow-up made standalone →
//! retrieval (the library, no HTTP hop) → when nothing is relevant enough, the fallback without any
//! model call → the answer cache → generation → `[n]` markers parsed into citations → both
//! messages persisted in one transaction → metrics.
//!
//! Ports: [`AnswerCache`] and [`TokenBudget`] (DynamoDB in [`crate::aws`]), the LLM provider
//! ([`crate::llm::LlmProvider`]), the store ([`crate::store::conversations`]).

pub mod citations;
pub mod conversations;
#[cfg(feature = "operator")]
pub mod eval;
mod pipeline;
mod settings;
pub mod standalone;
mod types;

pub use crate::ports::{AnswerCache, StateError, TokenBudget};
pub use pipeline::{Chat, ChatDeps, ProgressSender, Question, Retrieved};
pub use settings::ChatSettings;
pub use types::{
    owner_of, CachedAnswer, ChatError, ChatRequest, ChatResponse, Citation, MessageRequest,
    TokenUsage,
};

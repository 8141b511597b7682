//! The answer-generation port: the prompt a provider gets, what it returns, how it fails.

use std::{sync::Arc, time::Instant};

use crate::future::BoxFuture;

/// A retrieved passage as the provider sees it; `index` is the `[n]` that cites it.
#[derive(Debug, Clone)]
pub struct Passage {
    pub index: usize,
    pub title: String,
    pub text: String,
    pub question: Option<String>,
    pub answer: Option<String>,
    /// Cosine similarity between the (standalone) question and the passage.
    pub similarity: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One earlier message of the conversation.
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// What an answer is generated from.
pub struct AnswerPrompt<'a> {
    pub system: &'a str,
    pub history: &'a [Turn],
    /// The question, made standalone.
    pub question: &'a str,
    pub passages: &'a [Passage],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.completion_tokens)
    }
}

/// Character ranges (`[start, end)`, in Unicode scalar values) of the answer that passage
/// `index` supports.
pub type CitedSpans = Vec<(usize, Vec<(usize, usize)>)>;

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// The model that answered (as the provider reports it).
    pub model: String,
    /// Citations the provider determined itself (the extractive one); others cite with `[n]`
    /// markers in `text`, which the chat pipeline parses.
    pub citations: Option<CitedSpans>,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Unreachable, 5xx or throttling after the retries: the user may retry shortly (503).
    #[error("LLM provider unavailable: {0}")]
    Unavailable(String),
    /// No answer within the deadline (504).
    #[error("LLM provider did not answer within {0} ms")]
    Timeout(u64),
    /// The provider refused the request or answered something unusable (502).
    #[error("LLM provider error: {0}")]
    Provider(String),
    #[error("LLM configuration: {0}")]
    Config(String),
    /// The streamed answer's receiver went away (the client disconnected); generation stopped.
    #[error("the answer's stream was closed by its reader")]
    Cancelled,
}

/// Where a streamed answer's text pieces go, in order, as they are generated.
pub type DeltaSender = tokio::sync::mpsc::Sender<String>;

pub trait LlmProvider: Send + Sync {
    /// `extractive`, `openai` or `bedrock`.
    fn name(&self) -> &'static str;
    /// The configured model id.
    fn model(&self) -> &str;
    /// Whether answers cost tokens (counted against the tenant's daily budget).
    fn is_remote(&self) -> bool {
        true
    }
    /// An answer to `prompt`, by `deadline` (retries included).
    fn answer<'a>(
        &'a self,
        prompt: &'a AnswerPrompt<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;
    /// [`Self::answer`], streamed: each piece of the text goes to `deltas` as it is generated,
    /// and the returned completion is the whole answer. A closed `deltas` stops the provider
    /// call ([`LlmError::Cancelled`]). Providers that do not stream send their answer as one piece.
    fn answer_stream<'a>(
        &'a self,
        prompt: &'a AnswerPrompt<'a>,
        deadline: Instant,
        deltas: &'a DeltaSender,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let c = self.answer(prompt, deadline).await?;
            deltas
                .send(c.text.clone())
                .await
                .map_err(|_| LlmError::Cancelled)?;
            Ok(c)
        })
    }
    /// The last question rewritten to stand on its own given the history; `None` when this
    /// provider does not rewrite (the pipeline then uses its own heuristic).
    fn rewrite<'a>(
        &'a self,
        history: &'a [Turn],
        question: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Option<Completion>, LlmError>>;
    /// A cheap reachability check for `/health/ai-services`.
    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>>;
}

pub type SharedLlm = Arc<dyn LlmProvider>;

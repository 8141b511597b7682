//! Answer generation: the port ([`LlmProvider`]) and its adapters, chosen by `LLM_PROVIDER`.
//!
//! - [`extractive::Extractive`]: no model, no key, deterministic (the default): a Q&A pair's
//!   approved answer verbatim, else the passages' sentences closest to the question.
//! - [`openai::OpenAiChat`]: any OpenAI-compatible `/chat/completions` (OpenAI, OpenRouter, Groq,
//!   Ollama, vLLM, llama.cpp).
//! - `crate::aws::BedrockChat`: Amazon Bedrock's Converse API.
//!
//! The provider gets the structured prompt (system text, history, question, numbered passages);
//! remote providers render it with [`prompt`], the extractive one reads the passages directly.

pub mod extractive;
pub mod openai;
pub mod prompt;
mod provider;
mod settings;

pub use provider::{
    AnswerPrompt, CitedSpans, Completion, DeltaSender, LlmError, LlmProvider, Passage, Role,
    SharedLlm, Turn, Usage,
};
pub use settings::{LlmKind, LlmSettings};

//! The chat pipeline's settings, read with the rest of the configuration at cold start.

use crate::env::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// `CHAT_SYSTEM_PROMPT`.
    pub system_prompt: String,
    /// Earlier question/answer turns given to the provider (`CHAT_HISTORY_TURNS`).
    pub history_turns: usize,
    /// Passages retrieved for an answer (`CHAT_TOP_K`).
    pub top_k: usize,
    /// The knowledge base answers only when a passage is at least this similar to the question
    /// (`CHAT_MIN_SIMILARITY`); below it: the fallback, and no model call.
    pub min_similarity: f32,
    /// Weight of a Q&A pair's answer beside its question in the relevance (`CHAT_ANSWER_WEIGHT`;
    /// 0: the question alone).
    pub answer_weight: f32,
    pub max_message_chars: usize,
    /// `ANSWER_CACHE_TTL_SECONDS`; 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// `LLM_TENANT_DAILY_TOKENS`; 0 means unlimited.
    pub tenant_daily_tokens: u64,
    /// Let a configured LLM rewrite follow-ups (`CHAT_LLM_REWRITE`); else the heuristic.
    pub llm_rewrite: bool,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            system_prompt: crate::llm::prompt::DEFAULT_SYSTEM_PROMPT.to_string(),
            history_turns: 3,
            top_k: 5,
            min_similarity: 0.48,
            answer_weight: 0.2,
            max_message_chars: 4000,
            cache_ttl_secs: 86_400,
            tenant_daily_tokens: 1_000_000,
            llm_rewrite: true,
        }
    }
}

impl ChatSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let d = ChatSettings::default();
        let s = ChatSettings {
            system_prompt: env.string("CHAT_SYSTEM_PROMPT").unwrap_or(d.system_prompt),
            history_turns: env.parse_or("CHAT_HISTORY_TURNS", d.history_turns)?,
            top_k: env.parse_or("CHAT_TOP_K", d.top_k)?,
            min_similarity: env.parse_or("CHAT_MIN_SIMILARITY", d.min_similarity)?,
            answer_weight: env.parse_or("CHAT_ANSWER_WEIGHT", d.answer_weight)?,
            max_message_chars: env.parse_or("CHAT_MAX_MESSAGE_CHARS", d.max_message_chars)?,
            cache_ttl_secs: env.parse_or("ANSWER_CACHE_TTL_SECONDS", d.cache_ttl_secs)?,
            tenant_daily_tokens: env.parse_or("LLM_TENANT_DAILY_TOKENS", d.tenant_daily_tokens)?,
            llm_rewrite: env.parse_or("CHAT_LLM_REWRITE", d.llm_rewrite)?,
        };
        if !(1..=50).contains(&s.top_k) {
            return Err(ConfigError::Invalid {
                name: "CHAT_TOP_K",
                reason: "must be between 1 and 50".into(),
            });
        }
        if !(-1.0..=1.0).contains(&s.min_similarity) {
            return Err(ConfigError::Invalid {
                name: "CHAT_MIN_SIMILARITY",
                reason: "a cosine similarity between -1 and 1".into(),
            });
        }
        if !(0.0..=5.0).contains(&s.answer_weight) {
            return Err(ConfigError::Invalid {
                name: "CHAT_ANSWER_WEIGHT",
                reason: "must be between 0 and 5".into(),
            });
        }
        if s.history_turns > 20 {
            return Err(ConfigError::Invalid {
                name: "CHAT_HISTORY_TURNS",
                reason: "at most 20".into(),
            });
        }
        if s.max_message_chars == 0 {
            return Err(ConfigError::Invalid {
                name: "CHAT_MAX_MESSAGE_CHARS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(s)
    }
}

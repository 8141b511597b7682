//! The LLM provider's settings, read with the rest of the configuration at cold start.

use std::{str::FromStr, time::Duration};

use crate::env::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmKind {
    /// No model: stored answers and extracted sentences (default).
    Extractive,
    /// An OpenAI-compatible `/chat/completions` endpoint.
    OpenAi,
    /// Amazon Bedrock's Converse API.
    Bedrock,
}

impl FromStr for LlmKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "extractive" | "none" => Ok(LlmKind::Extractive),
            "openai" => Ok(LlmKind::OpenAi),
            "bedrock" => Ok(LlmKind::Bedrock),
            other => Err(format!(
                "'{other}' is not one of extractive, openai, bedrock"
            )),
        }
    }
}

#[derive(Clone)]
pub struct LlmSettings {
    pub kind: LlmKind,
    /// Model id (`LLM_MODEL`): e.g. `gpt-4o-mini`, `llama3.2`, or a Bedrock model / inference
    /// profile id.
    pub model: String,
    /// `LLM_BASE_URL`, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// `LLM_API_KEY` (a secret: never logged).
    pub api_key: Option<String>,
    pub temperature: f32,
    pub max_tokens: u32,
    /// Everything one answer may take, retries included (`LLM_DEADLINE_MS`): keeps a request
    /// under API Gateway's 30 s.
    pub deadline: Duration,
    pub max_retries: u32,
    /// `LLM_MAX_CONCURRENCY`: at most this many requests in flight to the `openai` provider from
    /// one process (0: no limit). For single-slot self-hosted servers; `make dev` sets 1.
    pub max_concurrency: usize,
    /// Extractive: a Q&A pair at least this similar is answered with its stored answer.
    pub qa_direct_threshold: f32,
    /// Extractive: at most this many sentences in an answer.
    pub extractive_sentences: usize,
    pub region: String,
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (a local stand-in in tests).
    pub bedrock_endpoint: Option<String>,
    pub guardrail: Option<(String, String)>,
}

impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("kind", &self.kind)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("deadline", &self.deadline)
            .field("max_retries", &self.max_retries)
            .field("max_concurrency", &self.max_concurrency)
            .field("qa_direct_threshold", &self.qa_direct_threshold)
            .field("guardrail", &self.guardrail)
            .finish()
    }
}

impl LlmSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let kind = env.parse_or("LLM_PROVIDER", LlmKind::Extractive)?;
        let model = match (kind, env.string("LLM_MODEL")) {
            (_, Some(m)) => m,
            (LlmKind::Extractive, None) => "extractive".to_string(),
            (LlmKind::Bedrock, None) => "amazon.nova-lite-v1:0".to_string(),
            (LlmKind::OpenAi, None) => {
                return Err(ConfigError::Missing {
                    name: "LLM_MODEL",
                    hint: "the provider's chat model, e.g. gpt-4o-mini or llama3.2",
                })
            }
        };
        let base_url = env
            .string("LLM_BASE_URL")
            .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        if kind == LlmKind::OpenAi && !base_url.starts_with("http") {
            return Err(ConfigError::Invalid {
                name: "LLM_BASE_URL",
                reason: format!("'{base_url}' is not an http(s) URL"),
            });
        }
        let temperature: f32 = env.parse_or("LLM_TEMPERATURE", 0.2)?;
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ConfigError::Invalid {
                name: "LLM_TEMPERATURE",
                reason: "must be between 0 and 2".into(),
            });
        }
        let max_tokens: u32 = env.parse_or("LLM_MAX_TOKENS", 512)?;
        if max_tokens == 0 {
            return Err(ConfigError::Invalid {
                name: "LLM_MAX_TOKENS",
                reason: "must be at least 1".into(),
            });
        }
        let deadline = env.millis_or("LLM_DEADLINE_MS", 20_000)?;
        if deadline < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                name: "LLM_DEADLINE_MS",
                reason: "must be at least 100".into(),
            });
        }
        let qa_direct_threshold: f32 = env.parse_or("CHAT_QA_DIRECT_THRESHOLD", 0.48)?;
        if !(-1.0..=1.0).contains(&qa_direct_threshold) {
            return Err(ConfigError::Invalid {
                name: "CHAT_QA_DIRECT_THRESHOLD",
                reason: "a cosine similarity between -1 and 1".into(),
            });
        }
        let guardrail = match (
            env.string("BEDROCK_GUARDRAIL_ID"),
            env.string("BEDROCK_GUARDRAIL_VERSION"),
        ) {
            (Some(id), Some(v)) => Some((id, v)),
            (Some(id), None) => Some((id, "DRAFT".to_string())),
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "BEDROCK_GUARDRAIL_ID",
                    hint: "BEDROCK_GUARDRAIL_VERSION is set without the guardrail it versions",
                })
            }
            (None, None) => None,
        };
        Ok(LlmSettings {
            kind,
            model,
            base_url,
            api_key: env.string("LLM_API_KEY"),
            temperature,
            max_tokens,
            deadline,
            max_retries: env.parse_or("LLM_MAX_RETRIES", 3)?,
            max_concurrency: env.parse_or("LLM_MAX_CONCURRENCY", 0)?,
            qa_direct_threshold,
            extractive_sentences: env.parse_or("CHAT_EXTRACTIVE_SENTENCES", 3)?.max(1),
            region: env
                .string("AWS_REGION")
                .or_else(|| env.string("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            bedrock_endpoint: env.string("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
            guardrail,
        })
    }
}

//! Which embedding provider a deployment uses, and its settings (`EMBEDDING_*`).

use std::{path::PathBuf, str::FromStr, time::Duration};

use crate::env::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingProviderKind {
    /// all-MiniLM-L6-v2 in-process (default).
    Local,
    /// An OpenAI-compatible `/embeddings` endpoint (OpenAI, OpenRouter, Ollama, …).
    OpenAi,
    /// Amazon Bedrock (Titan Text Embeddings v2).
    Bedrock,
    /// No embedder in this process (the health function).
    None,
}

impl FromStr for EmbeddingProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(EmbeddingProviderKind::Local),
            "openai" => Ok(EmbeddingProviderKind::OpenAi),
            "bedrock" => Ok(EmbeddingProviderKind::Bedrock),
            "none" => Ok(EmbeddingProviderKind::None),
            other => Err(format!(
                "'{other}' is not one of local, openai, bedrock, none"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// The provider this process builds (`None` in processes that embed nothing).
    pub provider: EmbeddingProviderKind,
    /// The deployment's provider (`EMBEDDING_PROVIDER`), also where this process builds none:
    /// `/health/ai-services` reports on it.
    pub configured: EmbeddingProviderKind,
    /// Directory with model.safetensors, tokenizer.json, config.json (the Lambda layer in AWS).
    pub model_dir: PathBuf,
    /// Model id recorded on every chunk.
    pub model: String,
    /// Settings of the OpenAI-compatible provider (when selected).
    pub openai: Option<super::openai::OpenAiSettings>,
    /// Settings of the Bedrock provider (when selected).
    pub bedrock: Option<BedrockSettings>,
    /// How many query embeddings the process remembers (`EMBEDDING_QUERY_CACHE`, 1024, about
    /// 1.6 MB for 384 dimensions; 0: none). Only single-text calls (queries) are cached.
    pub query_cache: usize,
}

impl EmbeddingSettings {
    /// Only the embedding settings (for tools that need no database, e.g. `ragbot embed`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        Self::read(&Env { get: &get })
    }

    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let provider = env.parse_or("EMBEDDING_PROVIDER", EmbeddingProviderKind::Local)?;
        let openai = if provider == EmbeddingProviderKind::OpenAi {
            let model = env.string("EMBEDDING_MODEL").ok_or(ConfigError::Missing {
                name: "EMBEDDING_MODEL",
                hint: "the provider's model name, e.g. text-embedding-3-small or nomic-embed-text",
            })?;
            Some(super::openai::OpenAiSettings {
                base_url: env
                    .string("EMBEDDING_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".to_string()),
                api_key: env.string("EMBEDDING_API_KEY"),
                model,
                dimension: env.parse_or("EMBEDDING_DIMENSION", 384)?,
                send_dimensions: env.parse_or("EMBEDDING_SEND_DIMENSIONS", true)?,
                batch: env.parse_or("EMBEDDING_REMOTE_BATCH", 96)?,
                timeout: env.millis_or("EMBEDDING_TIMEOUT_MS", 10_000)?,
                max_retries: env.parse_or("EMBEDDING_MAX_RETRIES", 4)?,
            })
        } else {
            None
        };
        let bedrock = if provider == EmbeddingProviderKind::Bedrock {
            Some(BedrockSettings {
                region: env
                    .string("AWS_REGION")
                    .or_else(|| env.string("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".to_string()),
                endpoint: env.string("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
                model: env
                    .string("EMBEDDING_MODEL")
                    .unwrap_or_else(|| "amazon.titan-embed-text-v2:0".to_string()),
                dimension: env.parse_or("EMBEDDING_DIMENSION", 1024)?,
                concurrency: env.parse_or("EMBEDDING_CONCURRENCY", 8)?,
                timeout: env.millis_or("EMBEDDING_TIMEOUT_MS", 10_000)?,
                max_retries: env.parse_or("EMBEDDING_MAX_RETRIES", 4)?,
            })
        } else {
            None
        };
        Ok(EmbeddingSettings {
            provider,
            configured: provider,
            openai,
            bedrock,
            model_dir: env
                .string("EMBEDDING_MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/opt/model/all-MiniLM-L6-v2")),
            model: env
                .string("EMBEDDING_MODEL")
                .unwrap_or_else(|| "sentence-transformers/all-MiniLM-L6-v2".to_string()),
            query_cache: env.parse_or("EMBEDDING_QUERY_CACHE", 1024)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BedrockSettings {
    pub region: String,
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (a local stand-in in tests).
    pub endpoint: Option<String>,
    pub model: String,
    pub dimension: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_retries: u32,
}

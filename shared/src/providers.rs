//! The configured providers, built once per process (cold start): the embedding model and the
//! answer generator. Composition: the only place that knows every adapter of the two ports.

use std::sync::Arc;

use crate::embedding::{
    openai::OpenAiEmbedder, EmbeddingError, EmbeddingProviderKind, EmbeddingSettings,
    LocalEmbedder, SharedEmbedder,
};
use crate::llm::{
    extractive::Extractive, openai::OpenAiChat, LlmError, LlmKind, LlmSettings, SharedLlm,
};

/// The configured embedding provider (`None` when the process embeds nothing).
pub async fn embedder(cfg: &EmbeddingSettings) -> Result<Option<SharedEmbedder>, EmbeddingError> {
    match cfg.provider {
        EmbeddingProviderKind::None => Ok(None),
        EmbeddingProviderKind::Local => Ok(Some(Arc::new(LocalEmbedder::load(
            &cfg.model_dir,
            &cfg.model,
        )?))),
        EmbeddingProviderKind::OpenAi => {
            let s = cfg.openai.clone().ok_or_else(|| {
                EmbeddingError::Config("EMBEDDING_PROVIDER=openai needs its settings".into())
            })?;
            Ok(Some(Arc::new(OpenAiEmbedder::new(s)?)))
        }
        EmbeddingProviderKind::Bedrock => {
            let s = cfg.bedrock.clone().ok_or_else(|| {
                EmbeddingError::Config("EMBEDDING_PROVIDER=bedrock needs its settings".into())
            })?;
            Ok(Some(Arc::new(crate::aws::BedrockEmbedder::new(s).await?)))
        }
    }
}

/// The configured answer generator.
pub async fn llm(s: &LlmSettings, embedder: Option<SharedEmbedder>) -> Result<SharedLlm, LlmError> {
    Ok(match s.kind {
        LlmKind::Extractive => Arc::new(Extractive::new(
            embedder,
            s.qa_direct_threshold,
            s.extractive_sentences,
        )),
        LlmKind::OpenAi => Arc::new(OpenAiChat::new(s)?),
        LlmKind::Bedrock => Arc::new(crate::aws::BedrockChat::new(s).await?),
    })
}

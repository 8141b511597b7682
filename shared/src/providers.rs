//! The configured providers, built once per process (cold start): the embedding model and the
//! answer generator. Composition: the only place that knows every adapter of the two ports.

use std::sync::Arc;

use crate::embedding::{
    openai::OpenAiEmbedder, CachedEmbedder, EmbeddingError, EmbeddingProviderKind,
    EmbeddingSettings, SharedEmbedder,
};
use crate::llm::{
    extractive::Extractive, openai::OpenAiChat, LlmError, LlmKind, LlmSettings, SharedLlm,
};

/// The configured embedding provider (`None` when the process embeds nothing), with the query
/// cache in front of it unless `EMBEDDING_QUERY_CACHE=0`.
pub async fn embedder(cfg: &EmbeddingSettings) -> Result<Option<SharedEmbedder>, EmbeddingError> {
    let provider = uncached(cfg).await?;
    Ok(
        match (provider, std::num::NonZeroUsize::new(cfg.query_cache)) {
            (Some(p), Some(entries)) => Some(Arc::new(CachedEmbedder::new(p, entries))),
            (provider, _) => provider,
        },
    )
}

async fn uncached(cfg: &EmbeddingSettings) -> Result<Option<SharedEmbedder>, EmbeddingError> {
    match cfg.provider {
        EmbeddingProviderKind::None => Ok(None),
        #[cfg(feature = "model")]
        EmbeddingProviderKind::Local => Ok(Some(Arc::new(crate::embedding::LocalEmbedder::load(
            &cfg.model_dir,
            &cfg.model,
        )?))),
        #[cfg(not(feature = "model"))]
        EmbeddingProviderKind::Local => Err(not_built("the local model", "model")),
        EmbeddingProviderKind::OpenAi => {
            let s = cfg.openai.clone().ok_or_else(|| {
                EmbeddingError::Config("EMBEDDING_PROVIDER=openai needs its settings".into())
            })?;
            Ok(Some(Arc::new(OpenAiEmbedder::new(s)?)))
        }
        #[cfg(feature = "bedrock")]
        EmbeddingProviderKind::Bedrock => {
            let s = cfg.bedrock.clone().ok_or_else(|| {
                EmbeddingError::Config("EMBEDDING_PROVIDER=bedrock needs its settings".into())
            })?;
            Ok(Some(Arc::new(crate::aws::BedrockEmbedder::new(s).await?)))
        }
        #[cfg(not(feature = "bedrock"))]
        EmbeddingProviderKind::Bedrock => Err(not_built("Amazon Bedrock", "bedrock")),
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
        #[cfg(feature = "bedrock")]
        LlmKind::Bedrock => Arc::new(crate::aws::BedrockChat::new(s).await?),
        #[cfg(not(feature = "bedrock"))]
        LlmKind::Bedrock => Arc::new(Unbuilt {
            model: s.model.clone(),
        }),
    })
}

/// A provider this binary was built without: start-up fails with one line saying which feature
/// the function needs (`functions/<name>/Cargo.toml`).
#[cfg(any(not(feature = "model"), not(feature = "bedrock")))]
fn not_built(what: &str, feature: &str) -> EmbeddingError {
    EmbeddingError::Config(format!(
        "this function is built without {what} (the ragbot feature \"{feature}\")"
    ))
}

/// The Bedrock LLM in a function built without Bedrock (health: it only reports on providers).
/// Its probe says so; it never answers.
#[cfg(not(feature = "bedrock"))]
struct Unbuilt {
    model: String,
}

#[cfg(not(feature = "bedrock"))]
impl crate::llm::LlmProvider for Unbuilt {
    fn name(&self) -> &'static str {
        "bedrock"
    }
    fn model(&self) -> &str {
        &self.model
    }
    fn answer<'a>(
        &'a self,
        _prompt: &'a crate::llm::AnswerPrompt<'a>,
        _deadline: std::time::Instant,
    ) -> crate::future::BoxFuture<'a, Result<crate::llm::Completion, LlmError>> {
        Box::pin(async { Err(Self::absent()) })
    }
    fn rewrite<'a>(
        &'a self,
        _history: &'a [crate::llm::Turn],
        _question: &'a str,
        _deadline: std::time::Instant,
    ) -> crate::future::BoxFuture<'a, Result<Option<crate::llm::Completion>, LlmError>> {
        Box::pin(async { Err(Self::absent()) })
    }
    fn probe(&self) -> crate::future::BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async { Err(Self::absent()) })
    }
}

#[cfg(not(feature = "bedrock"))]
impl Unbuilt {
    fn absent() -> LlmError {
        LlmError::Config(
            "this function is built without Amazon Bedrock; the chat function's /health/ai-services probes it".into(),
        )
    }
}

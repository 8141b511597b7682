//! Embedding providers: the port ([`EmbeddingProvider`]) and its adapters.
//!
//! - [`local::LocalEmbedder`]: all-MiniLM-L6-v2 in-process (tokenizers + [`bert`], on candle's
//!   safetensors loader and gemm kernel), the default.
//! - [`openai::OpenAiEmbedder`]: any OpenAI-compatible `/embeddings` endpoint.
//! - [`crate::aws::BedrockEmbedder`]: Amazon Bedrock, Titan Text Embeddings v2.
//!
//! The provider is built once per process (cold start) and shared by every invocation.

pub mod bert;
pub mod local;
pub mod openai;

use std::{future::Future, pin::Pin, sync::Arc};

pub use local::LocalEmbedder;

use crate::config::{EmbeddingProviderKind, EmbeddingSettings};

/// A boxed future, so the trait stays object-safe (`Arc<dyn EmbeddingProvider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    /// Misconfiguration found at start-up (one line, naming what is wrong).
    #[error("embedding model: {0}")]
    Config(String),
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
}

pub trait EmbeddingProvider: Send + Sync {
    /// Identifies the model; stored on every chunk so a model change is detected.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One L2-normalised vector per text, in order.
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbeddingError>>;
    /// The model's tokenizer, when it runs in-process (token-aware chunking uses it).
    fn tokenizer(&self) -> Option<&tokenizers::Tokenizer> {
        None
    }
}

pub type SharedEmbedder = Arc<dyn EmbeddingProvider>;

/// The configured provider, built once at cold start (`None` when the process embeds nothing).
pub async fn from_config(
    cfg: &EmbeddingSettings,
) -> Result<Option<SharedEmbedder>, EmbeddingError> {
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
            Ok(Some(Arc::new(openai::OpenAiEmbedder::new(s)?)))
        }
        EmbeddingProviderKind::Bedrock => {
            let s = cfg.bedrock.clone().ok_or_else(|| {
                EmbeddingError::Config("EMBEDDING_PROVIDER=bedrock needs its settings".into())
            })?;
            Ok(Some(Arc::new(crate::aws::BedrockEmbedder::new(s).await?)))
        }
    }
}

/// A provider must give one vector per text; anything else is an inference failure.
pub fn check_count(texts: usize, vectors: usize) -> Result<(), EmbeddingError> {
    if texts == vectors {
        Ok(())
    } else {
        Err(EmbeddingError::Inference(format!(
            "{texts} texts gave {vectors} vectors"
        )))
    }
}

/// Scales `v` to unit length (left as is when it is all zeros): remote providers' vectors are
/// normalised again so cosine and inner product agree whatever the provider does.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors (1.0 for identical directions).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}

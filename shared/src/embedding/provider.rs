//! The embedding port: what every provider implements, and the vector helpers they share.

use std::sync::Arc;

use crate::future::BoxFuture;

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
    /// One real embedding, for readiness: never answered from a cache.
    fn probe(&self) -> BoxFuture<'_, Result<(), EmbeddingError>> {
        Box::pin(async move { self.embed(&["ready"]).await.map(|_| ()) })
    }
    /// Hits and misses of the query cache, when the provider has one (`CachedEmbedder`).
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
}

/// Hits and misses of a query cache since start (single-text calls only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

pub type SharedEmbedder = Arc<dyn EmbeddingProvider>;

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

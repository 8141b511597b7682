//! Query embeddings remembered in process: people ask a knowledge base the same questions, and a
//! repeated question need not run the model again. Only single-text calls (queries) go through
//! the cache; batches (ingestion) go straight to the provider. Bounded (least recently used out),
//! keyed by the exact text; the vectors are the provider's own, so answers do not change.

use std::{
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use lru::LruCache;

use super::{CacheStats, EmbeddingError, EmbeddingProvider, SharedEmbedder};
use crate::future::BoxFuture;

pub struct CachedEmbedder {
    inner: SharedEmbedder,
    cache: Mutex<LruCache<String, Vec<f32>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CachedEmbedder {
    /// `inner` with the last `entries` query embeddings remembered.
    pub fn new(inner: SharedEmbedder, entries: NonZeroUsize) -> Self {
        CachedEmbedder {
            inner,
            cache: Mutex::new(LruCache::new(entries)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn cached(&self, text: &str) -> Option<Vec<f32>> {
        // A poisoned lock (a panic while holding it) only loses the cache, never the answer.
        self.cache.lock().ok()?.get(text).cloned()
    }

    fn remember(&self, text: &str, v: &[f32]) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(text.to_string(), v.to_vec());
        }
    }
}

impl EmbeddingProvider for CachedEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbeddingError>> {
        let [text] = texts else {
            return self.inner.embed(texts);
        };
        Box::pin(async move {
            if let Some(v) = self.cached(text) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(vec![v]);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
            let vectors = self.inner.embed(texts).await?;
            if let [v] = vectors.as_slice() {
                self.remember(text, v);
            }
            Ok(vectors)
        })
    }

    fn tokenizer(&self) -> Option<&tokenizers::Tokenizer> {
        self.inner.tokenizer()
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), EmbeddingError>> {
        self.inner.probe()
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{atomic::AtomicUsize, Arc};

    use super::*;

    /// Counts the calls that reach it; the vector is the text's length.
    struct Counting(AtomicUsize);

    impl EmbeddingProvider for Counting {
        fn model_id(&self) -> &str {
            "counting"
        }
        fn dimension(&self) -> usize {
            1
        }
        fn embed<'a>(
            &'a self,
            texts: &'a [&'a str],
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbeddingError>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(texts.iter().map(|t| vec![t.len() as f32]).collect()) })
        }
    }

    #[tokio::test]
    async fn repeated_queries_skip_the_model_and_batches_are_not_cached() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cached = CachedEmbedder::new(inner.clone(), NonZeroUsize::new(2).unwrap());
        assert_eq!(cached.embed(&["abc"]).await.unwrap(), vec![vec![3.0]]);
        assert_eq!(cached.embed(&["abc"]).await.unwrap(), vec![vec![3.0]]);
        assert_eq!(inner.0.load(Ordering::Relaxed), 1);
        assert_eq!(cached.stats(), CacheStats { hits: 1, misses: 1 });
        // Batches go through every time.
        cached.embed(&["abc", "de"]).await.unwrap();
        cached.embed(&["abc", "de"]).await.unwrap();
        assert_eq!(inner.0.load(Ordering::Relaxed), 3);
        // Bounded: the least recently used entry goes.
        cached.embed(&["de"]).await.unwrap();
        cached.embed(&["f"]).await.unwrap();
        cached.embed(&["abc"]).await.unwrap();
        assert_eq!(inner.0.load(Ordering::Relaxed), 6);
        assert!((cached.stats().hit_rate() - 0.2).abs() < 1e-9);
        // Readiness probes always reach the model.
        cached.probe().await.unwrap();
        cached.probe().await.unwrap();
        assert_eq!(inner.0.load(Ordering::Relaxed), 8);
    }
}

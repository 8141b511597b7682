//! An OpenAI-compatible `/embeddings` client (OpenAI, OpenRouter, Ollama, vLLM, LiteLLM, … any
//! base URL + key). Batches to the provider's limit, retries 429/5xx/timeouts with exponential
//! backoff and jitter (honouring `Retry-After`), L2-normalises what comes back.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{EmbeddingError, EmbeddingProvider};
use crate::BoxFuture;

#[derive(Clone)]
pub struct OpenAiSettings {
    /// e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Vector size; sent as `dimensions` (text-embedding-3-* can shorten to 384).
    pub dimension: usize,
    pub send_dimensions: bool,
    pub batch: usize,
    pub timeout: Duration,
    pub max_retries: u32,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("batch", &self.batch)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

pub struct OpenAiEmbedder {
    http: reqwest::Client,
    s: OpenAiSettings,
    url: String,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    pub fn new(s: OpenAiSettings) -> Result<Self, EmbeddingError> {
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .build()
            .map_err(|e| EmbeddingError::Config(format!("HTTP client: {e}")))?;
        let url = format!("{}/embeddings", s.base_url.trim_end_matches('/'));
        Ok(OpenAiEmbedder { http, s, url })
    }

    async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let mut body = json!({"model": self.s.model, "input": texts});
        if self.s.send_dimensions {
            body["dimensions"] = json!(self.s.dimension);
        }
        let mut attempt = 0u32;
        loop {
            let mut req = self.http.post(&self.url).json(&body);
            if let Some(key) = &self.s.api_key {
                req = req.bearer_auth(key);
            }
            let outcome = req.send().await;
            let retry_after = match outcome {
                Ok(resp) if resp.status().is_success() => {
                    let parsed: Response = resp.json().await.map_err(|e| {
                        EmbeddingError::Inference(format!("{}: unexpected response: {e}", self.url))
                    })?;
                    return self.collect(parsed, texts.len());
                }
                Ok(resp) => {
                    let crate::retry::Failure {
                        status,
                        retry_after,
                        detail,
                        retryable,
                    } = crate::retry::Failure::read(resp).await;
                    if !retryable {
                        return Err(EmbeddingError::Inference(format!(
                            "{} answered {status}: {detail}",
                            self.url
                        )));
                    }
                    if attempt >= self.s.max_retries {
                        return Err(EmbeddingError::Unavailable(format!(
                            "{} answered {status} after {} attempts: {detail}",
                            self.url,
                            attempt + 1
                        )));
                    }
                    retry_after
                }
                Err(e) => {
                    if attempt >= self.s.max_retries {
                        return Err(EmbeddingError::Unavailable(format!(
                            "{}: {e} (after {} attempts)",
                            self.url,
                            attempt + 1
                        )));
                    }
                    None
                }
            };
            let delay = retry_after
                .unwrap_or_else(|| crate::retry::backoff(attempt))
                .min(Duration::from_secs(20));
            tracing::warn!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, url = %self.url, "embedding request retried");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn collect(&self, parsed: Response, n: usize) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for item in parsed.data {
            if item.embedding.len() != self.s.dimension {
                return Err(EmbeddingError::Inference(format!(
                    "{} returned {} dimensions; EMBEDDING_DIMENSION is {}",
                    self.s.model,
                    item.embedding.len(),
                    self.s.dimension
                )));
            }
            if let Some(slot) = out.get_mut(item.index) {
                let mut v = item.embedding;
                super::l2_normalize(&mut v);
                *slot = Some(v);
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    EmbeddingError::Inference(format!(
                        "the response has no embedding for input {i}"
                    ))
                })
            })
            .collect()
    }
}

impl EmbeddingProvider for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.s.model
    }

    fn dimension(&self) -> usize {
        self.s.dimension
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbeddingError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for batch in texts.chunks(self.s.batch.max(1)) {
                out.extend(self.embed_batch(batch).await?);
            }
            Ok(out)
        })
    }
}

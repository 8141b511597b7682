//! Amazon Bedrock embeddings: Titan Text Embeddings v2 (`amazon.titan-embed-text-v2:0`) through
//! `InvokeModel`. Titan takes one text per call, so a batch becomes parallel calls (at most
//! `concurrency` in flight). Throttling (429) and 5xx are retried by the SDK's standard retry mode
//! (exponential backoff with jitter); each attempt has a timeout.

use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
use aws_sdk_bedrockruntime::{error::DisplayErrorContext, primitives::Blob};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::{
    embedding::{BedrockSettings, EmbeddingError, EmbeddingProvider},
    BoxFuture,
};

/// Titan Text Embeddings v2 returns vectors of these sizes.
pub const TITAN_V2_DIMENSIONS: [usize; 3] = [256, 512, 1024];

pub struct BedrockEmbedder {
    client: aws_sdk_bedrockruntime::Client,
    s: BedrockSettings,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
}

/// A Bedrock runtime client: SDK standard retries (exponential backoff with jitter, 200 ms
/// initial), an optional per-attempt timeout, an optional endpoint (a local stand-in in tests).
pub(super) async fn runtime_client(
    region: &str,
    endpoint: Option<&str>,
    max_retries: u32,
    attempt_timeout: Option<Duration>,
) -> aws_sdk_bedrockruntime::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_retries + 1)
                .with_initial_backoff(Duration::from_millis(200)),
        );
    if let Some(t) = attempt_timeout {
        loader = loader.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(t)
                .build(),
        );
    }
    let sdk = loader.load().await;
    let mut conf = aws_sdk_bedrockruntime::config::Builder::from(&sdk);
    if let Some(ep) = endpoint {
        conf = conf.endpoint_url(ep);
    }
    aws_sdk_bedrockruntime::Client::from_conf(conf.build())
}

impl BedrockEmbedder {
    pub async fn new(s: BedrockSettings) -> Result<Self, EmbeddingError> {
        if s.model.starts_with("amazon.titan-embed-text-v2")
            && !TITAN_V2_DIMENSIONS.contains(&s.dimension)
        {
            return Err(EmbeddingError::Config(format!(
                "EMBEDDING_DIMENSION={} but {} returns 256, 512 or 1024 dimensions",
                s.dimension, s.model
            )));
        }
        let client = runtime_client(
            &s.region,
            s.endpoint.as_deref(),
            s.max_retries,
            Some(s.timeout),
        )
        .await;
        Ok(BedrockEmbedder { client, s })
    }

    async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbeddingError> {
        let body = json!({"inputText": text, "dimensions": self.s.dimension, "normalize": true});
        let out =
            self.client
                .invoke_model()
                .model_id(&self.s.model)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body.to_string()))
                .send()
                .await
                .map_err(|e| {
                    let throttled_or_down = e.raw_response().is_some_and(|r| {
                        r.status().as_u16() == 429 || r.status().is_server_error()
                    }) || e.as_service_error().is_none();
                    let msg = format!("bedrock {}: {}", self.s.model, DisplayErrorContext(&e));
                    if throttled_or_down {
                        EmbeddingError::Unavailable(msg)
                    } else {
                        EmbeddingError::Inference(msg)
                    }
                })?;
        let parsed: TitanResponse = serde_json::from_slice(out.body().as_ref()).map_err(|e| {
            EmbeddingError::Inference(format!(
                "bedrock {}: unexpected response: {e}",
                self.s.model
            ))
        })?;
        if parsed.embedding.len() != self.s.dimension {
            return Err(EmbeddingError::Inference(format!(
                "bedrock {} returned {} dimensions, expected {}",
                self.s.model,
                parsed.embedding.len(),
                self.s.dimension
            )));
        }
        let mut v = parsed.embedding;
        crate::embedding::l2_normalize(&mut v);
        Ok(v)
    }
}

impl EmbeddingProvider for BedrockEmbedder {
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
            // Built up front: a lazily mapped iterator here trips the compiler's higher-ranked
            // lifetime check on the boxed Send future.
            let calls: Vec<_> = texts.iter().map(|t| self.embed_one(t)).collect();
            stream::iter(calls)
                .buffered(self.s.concurrency.max(1))
                .try_collect()
                .await
        })
    }
}

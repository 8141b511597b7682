//! Embedding providers: the port ([`EmbeddingProvider`]) and its in-process adapters.
//!
//! - [`local::LocalEmbedder`]: all-MiniLM-L6-v2 in-process (tokenizers + the `ragbot-bert` encoder), the default.
//! - [`openai::OpenAiEmbedder`]: any OpenAI-compatible `/embeddings` endpoint.
//! - `crate::aws::BedrockEmbedder`: Amazon Bedrock, Titan Text Embeddings v2.
//!
//! `settings` reads which one a deployment uses; `crate::providers` builds it once per process
//! (cold start) and every invocation shares it.

mod cache;
#[cfg(feature = "model")]
pub mod local;
pub mod openai;
mod provider;
mod settings;

pub use crate::future::BoxFuture;
pub use cache::CachedEmbedder;
#[cfg(feature = "model")]
pub use local::{Kernel, LocalEmbedder};
pub use provider::{
    check_count, cosine, l2_normalize, CacheStats, EmbeddingError, EmbeddingProvider,
    SharedEmbedder,
};
pub use settings::{BedrockSettings, EmbeddingProviderKind, EmbeddingSettings};

//! The read path's requests, results, errors and settings.

use crate::{embedding::EmbeddingError, store::StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cosine similarity on the HNSW index.
    #[default]
    Vector,
    /// Vector and full-text ranks fused with reciprocal rank fusion.
    Hybrid,
}

/// `POST /retrieve` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"query": "how do I reset my password", "top_k": 5, "mode": "hybrid",
    "filters": {"metadata": {"department": "it"}}}))]
pub struct RetrieveRequest {
    pub query: String,
    /// 1–50, default 5.
    pub top_k: Option<usize>,
    /// Minimum cosine similarity (−1..1); default `RETRIEVE_THRESHOLD`.
    pub threshold: Option<f32>,
    pub mode: Option<Mode>,
    pub filters: Option<Filters>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    pub document_ids: Option<Vec<Uuid>>,
    /// `api`, `s3` or `qa`.
    pub source: Option<String>,
    /// Case-insensitive substring of the document title.
    pub title: Option<String>,
    /// JSON object the chunk's metadata must contain (jsonb `@>`), e.g. `{"department": "hr"}`.
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub title: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Vector mode: cosine similarity. Hybrid mode: the reciprocal-rank-fusion score.
    pub score: f64,
    /// Cosine similarity between the query and the chunk (both modes).
    pub similarity: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Fallback {
    pub sample_questions: Vec<String>,
    pub disclaimer: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RetrieveResponse {
    pub results: Vec<Hit>,
    pub mode: Mode,
    pub threshold: f32,
    /// Present when no result passed the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Flags about the query, e.g. `possible_prompt_injection` (the query is still answered).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    /// The request breaks a rule (400), with a message naming it.
    #[error("{0}")]
    Invalid(String),
    #[error("no embedding provider is configured in this function")]
    NoEmbedder,
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of the read path.
#[derive(Debug, Clone)]
pub struct RetrieveSettings {
    pub default_top_k: usize,
    pub max_top_k: usize,
    pub default_threshold: f32,
    pub max_query_chars: usize,
    pub ef_search: u32,
    pub fallback_questions: usize,
    pub disclaimer: String,
}

impl Default for RetrieveSettings {
    fn default() -> Self {
        RetrieveSettings {
            default_top_k: 5,
            max_top_k: 50,
            default_threshold: 0.3,
            max_query_chars: 1000,
            ef_search: 200,
            fallback_questions: 3,
            disclaimer: "I could not find an answer to that in the knowledge base. You can ask one of these questions instead, or rephrase yours.".into(),
        }
    }
}

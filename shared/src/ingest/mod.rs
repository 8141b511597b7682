//! Knowledge ingestion: the write path. Validates input, embeds outside any transaction, then
//! writes the document and all of its chunks in ONE tenant-scoped transaction, so a failure leaves
//! the previous version intact. Identical content (same sha256) is a no-op.

pub mod chunking;
pub mod document;
pub mod ports;
pub mod qa;
pub mod reembed;
pub mod seed;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{embedding::EmbeddingError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input breaks a rule a person can fix (names the field).
    #[error("{0}")]
    Invalid(String),
    /// The format is not supported or the file is corrupt.
    #[error("{0}")]
    Unsupported(String),
    #[error("no embedding provider is configured in this function")]
    NoEmbedder,
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    /// Same content as stored: nothing was written.
    Unchanged,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub document_id: Uuid,
    pub title: String,
    pub status: &'static str,
    pub chunks: usize,
    pub change: Change,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

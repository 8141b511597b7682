//! The write path's one error type.

use crate::{embedding::EmbeddingError, parsing::ParseError, ports::PortError, store::StoreError};

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
    /// The file is larger than the ingestion limit (413 on the API).
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// S3, the DynamoDB ledger or the Lambda API failed (transient: the event is retried).
    #[error("{} failed: {}", .0.dependency, .0.message)]
    Dependency(PortError),
    /// The file could not be stored in (or deleted from) the documents bucket: nothing was
    /// changed. The message says so, for a person.
    #[error("{message}")]
    FileStore { message: String, source: PortError },
}

impl IngestError {
    /// The documents bucket refused `action` (`store the file`): nothing was `undone`
    /// (`ingested`), retry shortly.
    pub(crate) fn file_store(action: &str, undone: &str, source: PortError) -> Self {
        IngestError::FileStore {
            message: format!(
                "could not {action}: {} is unavailable; nothing was {undone}, retry shortly",
                source.dependency
            ),
            source,
        }
    }
}

impl From<ParseError> for IngestError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Unsupported(m) => IngestError::Unsupported(m),
            ParseError::Corrupt(m) => IngestError::Invalid(m),
        }
    }
}

impl From<PortError> for IngestError {
    fn from(e: PortError) -> Self {
        IngestError::Dependency(e)
    }
}

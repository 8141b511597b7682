//! Start-up check: the embedder must fit the stored vectors.

use super::{Store, StoreError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Incompatible {
    #[error("the embedder gives {provider} dimensions but chunks.embedding is vector({column}); use a {column}-dimension model, or on an empty knowledge base run `ragbot migrate --dimension {provider}`")]
    Dimension { provider: usize, column: usize },
    #[error("chunks are embedded with '{stored}' but the configured model is '{configured}'; run `ragbot reembed` or configure '{stored}'")]
    Model { stored: String, configured: String },
}

/// `Ok(Err(..))` when the embedder does not fit the stored data; `Err` when the check itself
/// could not run (database down: callers log and go on).
pub async fn check_embedding_compat(
    store: &Store,
    dimension: usize,
    model: &str,
) -> Result<Result<(), Incompatible>, StoreError> {
    let client = store.client_once().await?;
    let column: i32 = client
        .query_typed(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'",
            &[],
        )
        .await?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(-1);
    if column > 0 && column as usize != dimension {
        return Ok(Err(Incompatible::Dimension {
            provider: dimension,
            column: column as usize,
        }));
    }
    // Through a SECURITY DEFINER function: row-level security hides every tenant's chunks from
    // a connection that has no tenant set.
    let other = client
        .query_typed(
            "SELECT ragbot_other_embedding_model($1)",
            &[(&model, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    if let Some(stored) = other.first().and_then(|r| r.get::<_, Option<String>>(0)) {
        return Ok(Err(Incompatible::Model {
            stored,
            configured: model.to_string(),
        }));
    }
    Ok(Ok(()))
}

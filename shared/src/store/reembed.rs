//! The queries of re-embedding (`ingest::reembed`): which tenants hold chunks of another model,
//! a batch of them to embed again, and their new vectors.

use pgvector::Vector;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{documents, Store, StoreError, TenantTx};

/// Every tenant that has chunks embedded with a model other than `model` (through the schema's
/// `ragbot_tenants_with_other_model`, since the app role sees one tenant at a time).
pub async fn tenants_with_other_model(
    store: &Store,
    model: &str,
) -> Result<Vec<String>, StoreError> {
    let client = store.client().await?;
    Ok(client
        .query_typed(
            "SELECT ragbot_tenants_with_other_model($1)",
            &[(&model, Type::TEXT)],
        )
        .await?
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(0))
        .collect())
}

/// Up to `limit` of the transaction's tenant's chunks of another model than `model`, locked for
/// this transaction (others skip them): (id, the text to embed: the question of a Q&A pair).
pub async fn claim_other_model(
    tx: &TenantTx,
    model: &str,
    limit: usize,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, coalesce(question, text) FROM chunks
             WHERE tenant = $1 AND embedding_model <> $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
            &[
                tx.tenant_param(),
                (&model, Type::TEXT),
                (&(limit.max(1) as i64), Type::INT8),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Stores a chunk's new vector and the model that made it.
pub async fn store_vector(
    tx: &TenantTx,
    id: Uuid,
    embedding: Vec<f32>,
    model: &str,
) -> Result<(), StoreError> {
    let vector = documents::vector_type(tx).await?;
    let v = Vector::from(embedding);
    tx.execute(
        "UPDATE chunks SET embedding = $2, embedding_model = $3 WHERE id = $1",
        &[(&id, Type::UUID), (&v, vector), (&model, Type::TEXT)],
    )
    .await?;
    Ok(())
}

//! Re-embedding: every chunk whose model id differs from the configured embedder's is embedded
//! again, tenant by tenant, in batches committed one at a time, so an interrupted run resumes where
//! it stopped (the model id is the progress marker).

use pgvector::Vector;
use tokio_postgres::types::Type;

use super::IngestError;
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    store::{documents, Store},
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub tenants: usize,
    pub chunks: usize,
}

/// Re-embeds up to everything; calls `on_batch(tenant, done_in_tenant)` after each commit.
pub async fn run(
    store: &Store,
    embedder: &dyn EmbeddingProvider,
    batch: usize,
    mut on_batch: impl FnMut(&Tenant, usize),
) -> Result<Progress, IngestError> {
    let model = embedder.model_id().to_string();
    let tenants: Vec<String> = {
        let client = store.client().await?;
        client
            .query_typed(
                "SELECT ragbot_tenants_with_other_model($1)",
                &[(&model, Type::TEXT)],
            )
            .await
            .map_err(crate::store::StoreError::from)?
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect()
    };
    let mut progress = Progress::default();
    for code in tenants {
        let tenant = Tenant::parse(&code).map_err(IngestError::Invalid)?;
        progress.tenants += 1;
        let mut done = 0;
        loop {
            let tx = store.begin(&tenant).await?;
            let rows = tx
                .query(
                    "SELECT id, coalesce(question, text) FROM chunks
                     WHERE tenant = $1 AND embedding_model <> $2
                     ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                    &[
                        tx.tenant_param(),
                        (&model, Type::TEXT),
                        (&(batch.max(1) as i64), Type::INT8),
                    ],
                )
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
            let texts: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs).await?;
            let vector = documents::vector_type(&tx).await?;
            for (id, v) in ids.iter().zip(vectors) {
                let v = Vector::from(v);
                tx.execute(
                    "UPDATE chunks SET embedding = $2, embedding_model = $3 WHERE id = $1",
                    &[(id, Type::UUID), (&v, vector.clone()), (&model, Type::TEXT)],
                )
                .await?;
            }
            tx.commit().await?;
            done += ids.len();
            progress.chunks += ids.len();
            on_batch(&tenant, done);
        }
    }
    Ok(progress)
}

//! Re-embedding: every chunk whose model id differs from the configured embedder's is embedded
//! again, tenant by tenant, in batches committed one at a time, so an interrupted run resumes where
//! it stopped (the model id is the progress marker).

use super::IngestError;
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    store::{reembed as sql, Store},
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
    let tenants = sql::tenants_with_other_model(store, &model).await?;
    let mut progress = Progress::default();
    for code in tenants {
        let tenant = Tenant::parse(&code).map_err(IngestError::Invalid)?;
        progress.tenants += 1;
        let mut done = 0;
        loop {
            let tx = store.begin(&tenant).await?;
            let rows = sql::claim_other_model(&tx, &model, batch).await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            let refs: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = embedder.embed(&refs).await?;
            crate::embedding::check_count(rows.len(), vectors.len())?;
            let ids: Vec<uuid::Uuid> = rows.iter().map(|(id, _)| *id).collect();
            for (id, v) in ids.iter().zip(vectors) {
                sql::store_vector(&tx, *id, v, &model).await?;
            }
            tx.commit().await?;
            done += ids.len();
            progress.chunks += ids.len();
            on_batch(&tenant, done);
        }
    }
    Ok(progress)
}

//! Ingestion jobs (migration V7): a large document's chunks wait in `ingest_job_chunks` without
//! embeddings; workers claim them in batches, store their embeddings, and the last one swaps the
//! document's chunks for them in one transaction. Always through a tenant-scoped transaction.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

pub use super::documents::JobProgress;
use super::{
    documents::{self, NewChunk},
    StoreError, TenantTx,
};

/// What a worker's claim found.
#[derive(Debug)]
pub enum Claimed {
    /// Chunks to embed now: (ordinal, text to embed), in ordinal order.
    Batch(Vec<(i32, String)>),
    /// Every chunk left is leased by another worker.
    Waiting { remaining: i64 },
    /// Every chunk has its embedding: the job can be finished.
    Complete,
    /// The job no longer runs (finished, failed, superseded by a newer version, or its document
    /// was deleted).
    Gone,
}

/// What finishing found.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// The document now has the job's chunks.
    Swapped { document_id: Uuid, chunks: i32 },
    /// Chunks are still waiting for embeddings.
    NotYet,
    /// Another worker finished it, or it is gone.
    Gone,
}

/// Creates the job for a new version of `document_id` and stages its chunks (no embeddings yet),
/// replacing any job of an older version. Part of the caller's transaction.
pub async fn create(
    tx: &TenantTx,
    document_id: Uuid,
    content_sha256: &str,
    model: &str,
    chunks: &[NewChunk],
) -> Result<Uuid, StoreError> {
    tx.execute(
        "DELETE FROM ingest_jobs WHERE document_id = $1",
        &[(&document_id, Type::UUID)],
    )
    .await?;
    let total = i32::try_from(chunks.len())
        .map_err(|_| StoreError::Config("too many chunks in one document".into()))?;
    let job: Uuid = tx
        .query_opt(
            "INSERT INTO ingest_jobs (tenant, document_id, content_sha256, embedding_model, total)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                tx.tenant_param(),
                (&document_id, Type::UUID),
                (&content_sha256, Type::TEXT),
                (&model, Type::TEXT),
                (&total, Type::INT4),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Unavailable("job insert returned no row".into()))?
        .try_get(0)?;
    let batch = documents::copy_to_staging(tx, document_id, chunks, model).await?;
    tx.execute(
        "INSERT INTO ingest_job_chunks (job_id, tenant, ordinal, text, question, answer, metadata, \
             token_count)
         SELECT $1, tenant, ordinal, text, question, answer, metadata, token_count
         FROM chunk_staging WHERE batch = $2",
        &[(&job, Type::UUID), (&batch, Type::UUID)],
    )
    .await?;
    tx.execute(
        "DELETE FROM chunk_staging WHERE batch = $1",
        &[(&batch, Type::UUID)],
    )
    .await?;
    Ok(job)
}

/// The newest job of a document, if any.
pub async fn latest_for_document(
    tx: &TenantTx,
    document_id: Uuid,
) -> Result<Option<JobProgress>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, status, embedded, total, failure_reason, content_sha256, updated_at
             FROM ingest_jobs WHERE tenant = $1 AND document_id = $2
             ORDER BY created_at DESC LIMIT 1",
            &[tx.tenant_param(), (&document_id, Type::UUID)],
        )
        .await?;
    row.map(|r| {
        Ok(JobProgress {
            id: r.try_get(0)?,
            status: super::kinds::column(&r, 1)?,
            embedded: r.try_get(2)?,
            total: r.try_get(3)?,
            failure_reason: r.try_get(4)?,
            content_sha256: r.try_get(5)?,
            updated_at: r.try_get(6)?,
        })
    })
    .transpose()
}

/// A running job that has made no progress for a while (its workers died or gave up).
#[derive(Debug, Clone, Serialize)]
pub struct Stalled {
    pub job_id: Uuid,
    pub document_id: Uuid,
    pub title: String,
    pub embedded: i32,
    pub total: i32,
    pub idle_seconds: i64,
}

/// The tenant's running jobs without progress for longer than `idle`.
pub async fn stalled(tx: &TenantTx, idle: Duration) -> Result<Vec<Stalled>, StoreError> {
    let idle_seconds = idle.as_secs_f64();
    let rows = tx
        .query(
            "SELECT j.id, j.document_id, d.title, j.embedded, j.total,
                    extract(epoch FROM now() - j.updated_at)::int8
             FROM ingest_jobs j JOIN documents d ON d.id = j.document_id
             WHERE j.tenant = $1 AND j.status = 'running'
               AND j.updated_at < now() - make_interval(secs => $2)
             ORDER BY j.updated_at",
            &[tx.tenant_param(), (&idle_seconds, Type::FLOAT8)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Stalled {
                job_id: r.try_get(0)?,
                document_id: r.try_get(1)?,
                title: r.try_get(2)?,
                embedded: r.try_get(3)?,
                total: r.try_get(4)?,
                idle_seconds: r.try_get(5)?,
            })
        })
        .collect()
}

/// The job's embedding model and chunk count, while it runs.
pub async fn running(tx: &TenantTx, job: Uuid) -> Result<Option<(String, i32)>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT embedding_model, total FROM ingest_jobs WHERE id = $1 AND status = 'running'",
            &[(&job, Type::UUID)],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Leases up to `limit` chunks that have no embedding and no live lease (another worker's rows
/// are skipped, not waited for). A lease that ran out (its worker died) is taken over.
pub async fn claim(
    tx: &TenantTx,
    job: Uuid,
    limit: i64,
    lease: Duration,
) -> Result<Claimed, StoreError> {
    let lease_seconds = lease.as_secs_f64();
    let rows = tx
        .query(
            "UPDATE ingest_job_chunks c SET lease_until = now() + make_interval(secs => $3)
             FROM (SELECT ordinal FROM ingest_job_chunks
                   WHERE job_id = $1 AND embedding IS NULL
                     AND (lease_until IS NULL OR lease_until < now())
                   ORDER BY ordinal LIMIT $2 FOR UPDATE SKIP LOCKED) todo
             WHERE c.job_id = $1 AND c.ordinal = todo.ordinal
               AND EXISTS (SELECT 1 FROM ingest_jobs WHERE id = $1 AND status = 'running')
             RETURNING c.ordinal, coalesce(c.question, c.text)",
            &[
                (&job, Type::UUID),
                (&limit, Type::INT8),
                (&lease_seconds, Type::FLOAT8),
            ],
        )
        .await?;
    if !rows.is_empty() {
        let mut batch = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(i32, String)>, StoreError>>()?;
        batch.sort_by_key(|(ordinal, _)| *ordinal);
        return Ok(Claimed::Batch(batch));
    }
    // Nothing claimable: the job ended, or the rest is leased or done (one round trip).
    let Some(row) = tx
        .query_opt(
            "SELECT (SELECT count(*) FROM ingest_job_chunks WHERE job_id = $1 AND embedding IS NULL)
             FROM ingest_jobs WHERE id = $1 AND status = 'running'",
            &[(&job, Type::UUID)],
        )
        .await?
    else {
        return Ok(Claimed::Gone);
    };
    let remaining: i64 = row.try_get(0)?;
    Ok(if remaining == 0 {
        Claimed::Complete
    } else {
        Claimed::Waiting { remaining }
    })
}

/// Stores the embeddings of claimed chunks (pgvector text form, exact for f32) and counts them on
/// the job. Rows another worker already embedded are left as they are.
pub async fn store_embeddings(
    tx: &TenantTx,
    job: Uuid,
    embedded: &[(i32, Vec<f32>)],
) -> Result<u64, StoreError> {
    let ordinals: Vec<i32> = embedded.iter().map(|(o, _)| *o).collect();
    let vectors: Vec<String> = embedded.iter().map(|(_, v)| vector_text(v)).collect();
    let n = tx
        .execute(
            "UPDATE ingest_job_chunks c SET embedding = v.e::vector, lease_until = NULL
             FROM unnest($2::int4[], $3::text[]) AS v(ordinal, e)
             WHERE c.job_id = $1 AND c.ordinal = v.ordinal AND c.embedding IS NULL",
            &[
                (&job, Type::UUID),
                (&ordinals, Type::INT4_ARRAY),
                (&vectors, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    tx.execute(
        "UPDATE ingest_jobs SET embedded = embedded + $2, updated_at = now() WHERE id = $1",
        &[(&job, Type::UUID), (&(n as i32), Type::INT4)],
    )
    .await?;
    Ok(n)
}

/// Gives claimed chunks back (the worker could not embed them), for another worker or a retry.
pub async fn release(tx: &TenantTx, job: Uuid, ordinals: &[i32]) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE ingest_job_chunks SET lease_until = NULL
         WHERE job_id = $1 AND ordinal = ANY($2) AND embedding IS NULL",
        &[(&job, Type::UUID), (&ordinals, Type::INT4_ARRAY)],
    )
    .await?;
    Ok(())
}

/// When every chunk has its embedding: replaces the document's chunks with the job's, makes the
/// job's version the document's (`ready`), and drops the staged rows — in the caller's
/// transaction, with the job row locked so only one worker does it.
pub async fn finish(tx: &TenantTx, job: Uuid) -> Result<Finished, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT document_id, content_sha256, embedding_model, total FROM ingest_jobs
             WHERE id = $1 AND status = 'running' FOR UPDATE",
            &[(&job, Type::UUID)],
        )
        .await?
    else {
        return Ok(Finished::Gone);
    };
    let document_id: Uuid = row.try_get(0)?;
    let sha: String = row.try_get(1)?;
    let model: String = row.try_get(2)?;
    let left = tx
        .query_opt(
            "SELECT 1 FROM ingest_job_chunks WHERE job_id = $1 AND embedding IS NULL LIMIT 1",
            &[(&job, Type::UUID)],
        )
        .await?;
    if left.is_some() {
        return Ok(Finished::NotYet);
    }
    tx.execute(
        "DELETE FROM chunks WHERE document_id = $1",
        &[(&document_id, Type::UUID)],
    )
    .await?;
    let moved = tx
        .execute(
            "INSERT INTO chunks (document_id, tenant, ordinal, text, question, answer, metadata, \
                 embedding, embedding_model, token_count)
             SELECT $2, tenant, ordinal, text, question, answer, metadata, embedding, $3, \
                 token_count
             FROM ingest_job_chunks WHERE job_id = $1 ORDER BY ordinal",
            &[
                (&job, Type::UUID),
                (&document_id, Type::UUID),
                (&model, Type::TEXT),
            ],
        )
        .await?;
    let chunks = i32::try_from(moved)
        .map_err(|_| StoreError::Config("too many chunks in one document".into()))?;
    tx.execute(
        "UPDATE documents SET chunk_count = $2, content_sha256 = $3, status = 'ready', \
             failure_reason = NULL, updated_at = now() WHERE id = $1",
        &[
            (&document_id, Type::UUID),
            (&chunks, Type::INT4),
            (&sha, Type::TEXT),
        ],
    )
    .await?;
    tx.execute(
        "UPDATE ingest_jobs SET status = 'done', updated_at = now() WHERE id = $1",
        &[(&job, Type::UUID)],
    )
    .await?;
    tx.execute(
        "DELETE FROM ingest_job_chunks WHERE job_id = $1",
        &[(&job, Type::UUID)],
    )
    .await?;
    Ok(Finished::Swapped {
        document_id,
        chunks,
    })
}

/// Ends a job that cannot complete (e.g. the configured model is not the job's): the job and its
/// document record why; the document's previous chunks stay.
pub async fn fail(tx: &TenantTx, job: Uuid, reason: &str) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "UPDATE ingest_jobs SET status = 'failed', failure_reason = $2, updated_at = now()
             WHERE id = $1 AND status = 'running' RETURNING document_id",
            &[(&job, Type::UUID), (&reason, Type::TEXT)],
        )
        .await?;
    if let Some(r) = row {
        let document_id: Uuid = r.try_get(0)?;
        tx.execute(
            "UPDATE documents SET status = 'failed', failure_reason = $2, updated_at = now()
             WHERE id = $1",
            &[(&document_id, Type::UUID), (&reason, Type::TEXT)],
        )
        .await?;
        tx.execute(
            "DELETE FROM ingest_job_chunks WHERE job_id = $1",
            &[(&job, Type::UUID)],
        )
        .await?;
    }
    Ok(())
}

/// pgvector's text form: `[x,y,…]`, each f32 written so that it parses back exactly.
fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::vector_text;

    #[test]
    fn vector_text_round_trips_f32() {
        let v = [0.1f32, -1.0e-7, 3.4028235e38, 0.0];
        let text = vector_text(&v);
        assert_eq!(
            text,
            "[0.1,-0.0000001,340282350000000000000000000000000000000,0]"
        );
        let back: Vec<f32> = text
            .trim_matches(['[', ']'])
            .split(',')
            .map(|x| x.parse().unwrap()) // allow-unwrap: test of a literal it just wrote
            .collect();
        assert_eq!(back, v);
    }
}

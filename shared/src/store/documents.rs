//! Documents and their chunks, always through a tenant-scoped transaction ([`TenantTx`]).

use chrono::{DateTime, Utc};
use pgvector::Vector;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{
    binary_copy::BinaryCopyInWriter,
    types::{Kind, Type},
    Row,
};
use uuid::Uuid;

use super::{kinds::column, DocumentStatus, JobStatus, Source, StoreError, TenantTx};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    pub id: Uuid,
    pub title: String,
    pub source: Source,
    pub source_key: String,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub content_sha256: String,
    pub mime: String,
    pub status: DocumentStatus,
    pub failure_reason: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The newest background ingestion job of a large document (`GET /documents/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProgress>,
}

const DOCUMENT_COLUMNS: &str = "id, title, source, source_key, s3_bucket, s3_key, content_sha256, \
     mime, status, failure_reason, metadata, chunk_count, created_at, updated_at";

impl Document {
    fn from_row(r: &Row) -> Result<Self, StoreError> {
        Ok(Document {
            id: r.try_get(0)?,
            title: r.try_get(1)?,
            source: column(r, 2)?,
            source_key: r.try_get(3)?,
            s3_bucket: r.try_get(4)?,
            s3_key: r.try_get(5)?,
            content_sha256: r.try_get(6)?,
            mime: r.try_get(7)?,
            status: column(r, 8)?,
            failure_reason: r.try_get(9)?,
            metadata: r.try_get(10)?,
            chunk_count: r.try_get(11)?,
            created_at: r.try_get(12)?,
            updated_at: r.try_get(13)?,
            job: None,
        })
    }
}

/// A document about to be (re)written.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub title: String,
    pub source: Source,
    pub source_key: String,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_version: Option<String>,
    pub content_sha256: String,
    pub mime: String,
    pub metadata: Value,
}

/// A chunk with its embedding, ready to store.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub text: String,
    pub question: Option<String>,
    pub answer: Option<String>,
    pub metadata: Value,
    /// `None` until embedded (a large document's chunks wait for their workers).
    pub embedding: Option<Vec<f32>>,
    pub token_count: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub source: Option<Source>,
    pub status: Option<DocumentStatus>,
    /// Keyset pagination: documents created before this one (the previous page's last id).
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// What is stored for a source key.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: Uuid,
    pub content_sha256: String,
    pub status: DocumentStatus,
    pub chunk_count: i32,
}

/// The stored version of a document identified by its source key.
pub async fn find_by_source_key(
    tx: &TenantTx,
    source_key: &str,
) -> Result<Option<Stored>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, content_sha256, status, chunk_count FROM documents WHERE tenant = $1 AND source_key = $2",
            &[tx.tenant_param(), (&source_key, Type::TEXT)],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(Stored {
            id: r.try_get(0)?,
            content_sha256: r.try_get(1)?,
            status: column(&r, 2)?,
            chunk_count: r.try_get(3)?,
        }),
        None => None,
    })
}

/// Inserts or updates the document row for its source key; returns its id.
pub async fn upsert_document(
    tx: &TenantTx,
    doc: &NewDocument,
    status: DocumentStatus,
) -> Result<Uuid, StoreError> {
    let row = tx
        .query_opt(
            "INSERT INTO documents (tenant, title, source, source_key, s3_bucket, s3_key, s3_version, \
                 content_sha256, mime, metadata, status, failure_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)
             ON CONFLICT (tenant, source_key) DO UPDATE SET
                 title = EXCLUDED.title, source = EXCLUDED.source, s3_bucket = EXCLUDED.s3_bucket,
                 s3_key = EXCLUDED.s3_key, s3_version = EXCLUDED.s3_version,
                 content_sha256 = EXCLUDED.content_sha256, mime = EXCLUDED.mime,
                 metadata = EXCLUDED.metadata, status = EXCLUDED.status, failure_reason = NULL,
                 updated_at = now()
             RETURNING id",
            &[
                tx.tenant_param(),
                (&doc.title, Type::TEXT),
                (&doc.source.as_str(), Type::TEXT),
                (&doc.source_key, Type::TEXT),
                (&doc.s3_bucket, Type::TEXT),
                (&doc.s3_key, Type::TEXT),
                (&doc.s3_version, Type::TEXT),
                (&doc.content_sha256, Type::TEXT),
                (&doc.mime, Type::TEXT),
                (&doc.metadata, Type::JSONB),
                (&status.as_str(), Type::TEXT),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Unavailable("upsert returned no row".into()))?;
    Ok(row.try_get(0)?)
}

/// Records a failed ingestion on the document (creating the row if needed). Chunks of a previous
/// good version are kept, so retrieval goes on working with what was last ingested.
pub async fn mark_failed(
    tx: &TenantTx,
    doc: &NewDocument,
    reason: &str,
) -> Result<Uuid, StoreError> {
    let id = upsert_document(tx, doc, DocumentStatus::Failed).await?;
    tx.execute(
        "UPDATE documents SET failure_reason = $2 WHERE id = $1",
        &[(&id, Type::UUID), (&reason, Type::TEXT)],
    )
    .await?;
    Ok(id)
}

/// Replaces every chunk of `document_id` with `chunks`: binary COPY into the staging table, then
/// one INSERT .. SELECT (row-level security forbids COPY into `chunks` itself). Part of the
/// caller's transaction, so readers see the old chunks or the new ones, never a mix.
pub async fn replace_chunks(
    tx: &TenantTx,
    document_id: Uuid,
    chunks: &[NewChunk],
    model: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM chunks WHERE document_id = $1",
        &[(&document_id, Type::UUID)],
    )
    .await?;
    let batch = copy_to_staging(tx, document_id, chunks, model).await?;
    tx.execute(
        "INSERT INTO chunks (document_id, tenant, ordinal, text, question, answer, metadata, \
             embedding, embedding_model, token_count)
         SELECT document_id, tenant, ordinal, text, question, answer, metadata, embedding, \
             embedding_model, token_count
         FROM chunk_staging WHERE batch = $1",
        &[(&batch, Type::UUID)],
    )
    .await?;
    tx.execute(
        "DELETE FROM chunk_staging WHERE batch = $1",
        &[(&batch, Type::UUID)],
    )
    .await?;
    tx.execute(
        "UPDATE documents SET chunk_count = $2, status = 'ready', failure_reason = NULL, \
             updated_at = now() WHERE id = $1",
        &[
            (&document_id, Type::UUID),
            (&(chunks.len() as i32), Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// Streams `chunks` (ordinals 0..) by binary COPY into `chunk_staging` under a new batch id, which
/// is returned; the caller moves the rows on and deletes the batch in the same transaction. A
/// chunk with an empty embedding is staged without one (a large document's chunks before its
/// workers embed them).
pub(crate) async fn copy_to_staging(
    tx: &TenantTx,
    document_id: Uuid,
    chunks: &[NewChunk],
    model: &str,
) -> Result<Uuid, StoreError> {
    let client = tx.client()?;
    let vector = vector_type(tx).await?;
    let batch = Uuid::new_v4();
    let sink = client
        .copy_in(
            "COPY chunk_staging (batch, document_id, tenant, ordinal, text, question, answer, \
             metadata, embedding, embedding_model, token_count) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        vector,
        Type::TEXT,
        Type::INT4,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let tenant = tx.tenant().as_str();
    for (ordinal, c) in chunks.iter().enumerate() {
        let ordinal = i32::try_from(ordinal)
            .map_err(|_| StoreError::Config("too many chunks in one document".into()))?;
        let embedding = c.embedding.clone().map(Vector::from);
        writer
            .as_mut()
            .write(&[
                &batch,
                &document_id,
                &tenant,
                &ordinal,
                &c.text,
                &c.question,
                &c.answer,
                &c.metadata,
                &embedding,
                &model,
                &c.token_count,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(batch)
}

/// pgvector's `vector` type (its OID differs per database), for typed parameters and COPY.
/// Looked up once per store, then cached: not a round trip per request.
pub async fn vector_type(tx: &TenantTx) -> Result<Type, StoreError> {
    let oid = match tx.vector_oid.get() {
        Some(oid) => *oid,
        None => {
            let oid: u32 = tx
                .client()?
                .query_typed_one("SELECT 'vector'::regtype::oid", &[])
                .await?
                .try_get(0)?;
            *tx.vector_oid.get_or_init(|| oid)
        }
    };
    Ok(Type::new(
        "vector".into(),
        oid,
        Kind::Simple,
        "public".into(),
    ))
}

pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Option<Document>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant = $1 AND id = $2"),
            &[tx.tenant_param(), (&id, Type::UUID)],
        )
        .await?;
    row.as_ref().map(Document::from_row).transpose()
}

/// Newest first, keyset-paginated.
pub async fn list(tx: &TenantTx, f: &ListFilter) -> Result<Vec<Document>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents
                 WHERE tenant = $1
                   AND ($2::text IS NULL OR source = $2)
                   AND ($3::text IS NULL OR status = $3)
                   AND ($4::uuid IS NULL OR (created_at, id) <
                        (SELECT created_at, id FROM documents WHERE tenant = $1 AND id = $4))
                 ORDER BY created_at DESC, id DESC
                 LIMIT $5"
            ),
            &[
                tx.tenant_param(),
                (&f.source.map(Source::as_str), Type::TEXT),
                (&f.status.map(DocumentStatus::as_str), Type::TEXT),
                (&f.after, Type::UUID),
                (&f.limit, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(Document::from_row).collect()
}

/// Deletes the document and (by cascade) its chunks; returns what was deleted.
pub async fn delete(tx: &TenantTx, id: Uuid) -> Result<Option<Document>, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "DELETE FROM documents WHERE tenant = $1 AND id = $2 RETURNING {DOCUMENT_COLUMNS}"
            ),
            &[tx.tenant_param(), (&id, Type::UUID)],
        )
        .await?;
    row.as_ref().map(Document::from_row).transpose()
}

/// Deletes the document with this source key (S3 ObjectRemoved); returns its id.
pub async fn delete_by_source_key(
    tx: &TenantTx,
    source_key: &str,
) -> Result<Option<Uuid>, StoreError> {
    let row = tx
        .query_opt(
            "DELETE FROM documents WHERE tenant = $1 AND source_key = $2 RETURNING id",
            &[tx.tenant_param(), (&source_key, Type::TEXT)],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Where a job stands, as `GET /documents/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub id: Uuid,
    pub status: JobStatus,
    pub embedded: i32,
    pub total: i32,
    pub failure_reason: Option<String>,
    pub content_sha256: String,
    pub updated_at: DateTime<Utc>,
}

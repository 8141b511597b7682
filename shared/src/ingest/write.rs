//! Writing one version of a document with all of its chunks, in one tenant-scoped transaction;
//! identical content (same sha256) is a no-op.

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::IngestError;
use crate::store::DocumentStatus;
use crate::{
    auth::Tenant,
    store::{
        documents::{self, NewChunk, NewDocument},
        Store,
    },
};

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
    pub status: DocumentStatus,
    pub chunks: usize,
    pub change: Change,
    /// Set when the document is large enough to be embedded by background workers: `status` is
    /// then `processing`, and `GET /documents/{id}` shows the job's progress until it is `ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
}

/// Above this many chunks a document's write gets the long statement timeout.
const LONG_WRITE_CHUNKS: usize = 1000;

/// Writes a new version of a document: the row and all of its chunks in ONE transaction (a failure
/// leaves the previous version intact). `existed` picks Created or Updated.
pub(crate) async fn write_version(
    store: &Store,
    tenant: &Tenant,
    doc: &NewDocument,
    chunks: &[NewChunk],
    model: &str,
    existed: bool,
) -> Result<Outcome, IngestError> {
    // A deadlock with a concurrent write of the same document is resolved by running the
    // transaction again (twice at most).
    let mut attempt = 1;
    let id = loop {
        match write_once(store, tenant, doc, chunks, model).await {
            Err(e) if e.is_conflict() && attempt < 3 => {
                tracing::warn!(error = %e, attempt, "document write lost a race; running it again");
                attempt += 1;
            }
            other => break other?,
        }
    };
    tracing::info!(document_id = %id, chunks = chunks.len(), source_key = %doc.source_key, "document ingested");
    Ok(Outcome {
        document_id: id,
        title: doc.title.clone(),
        status: DocumentStatus::Ready,
        chunks: chunks.len(),
        change: if existed {
            Change::Updated
        } else {
            Change::Created
        },
        job_id: None,
    })
}

async fn write_once(
    store: &Store,
    tenant: &Tenant,
    doc: &NewDocument,
    chunks: &[NewChunk],
    model: &str,
) -> Result<uuid::Uuid, crate::store::StoreError> {
    // A document embedded inline is small (the job threshold), unless workers are switched off:
    // then one transaction writes every chunk and the HNSW inserts take minutes.
    let tx = if chunks.len() > LONG_WRITE_CHUNKS {
        store.begin_long(tenant).await?
    } else {
        store.begin(tenant).await?
    };
    let id = documents::upsert_document(&tx, doc, DocumentStatus::Processing).await?;
    documents::replace_chunks(&tx, id, chunks, model).await?;
    tx.commit().await?;
    Ok(id)
}

/// What is stored under `source_key` (a short read transaction, before any embedding work).
pub(crate) async fn stored_version(
    store: &Store,
    tenant: &Tenant,
    source_key: &str,
) -> Result<Option<documents::Stored>, IngestError> {
    let tx = store.begin(tenant).await?;
    let existing = documents::find_by_source_key(&tx, source_key).await?;
    tx.commit().await?;
    Ok(existing)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

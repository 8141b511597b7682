//! Files (API uploads and S3 objects): parse → chunk → embed → one transaction.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{chunking::Chunker, sha256_hex, Change, IngestError, Outcome};
use crate::store::{DocumentStatus, JobStatus, RecordResult, Source};
use crate::{
    auth::Tenant,
    embedding::SharedEmbedder,
    ingest::qa::{QaBody, QaPair},
    parsing::{self, Format},
    ports::{Claim, JobRef, Ledger, ObjectEvent, ObjectEventKind, ObjectStore, SharedDispatcher},
    store::{
        documents::{self, NewChunk, NewDocument},
        jobs, Store,
    },
};

/// Where a file comes from and what is known about it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub tenant: Tenant,
    /// `api` (uploaded through `POST /documents`) or `s3` (put into the bucket directly).
    pub source: Source,
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
    pub content_type: Option<String>,
    /// Title from `<key>.metadata.json`; else the content's own title; else the file name.
    pub title: Option<String>,
    /// User metadata (from `<key>.metadata.json`), copied onto every chunk.
    pub metadata: Value,
}

impl SourceFile {
    /// The document's identity inside its tenant.
    pub fn source_key(&self) -> String {
        format!("s3:{}", self.key)
    }
    fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// A parsed and chunked file, not yet embedded.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub format: Format,
    pub title: Option<String>,
    pub drafts: Vec<super::chunking::Draft>,
    pub qa_pairs: Vec<QaPair>,
}

impl Prepared {
    pub fn chunk_count(&self) -> usize {
        self.drafts.len() + self.qa_pairs.len()
    }
}

/// The ingestion service: built once per process, shared by the API routes and the S3 handler.
#[derive(Clone)]
pub struct Ingestor {
    pub store: Store,
    pub embedder: Option<SharedEmbedder>,
    pub chunker: Option<Chunker>,
    pub objects: Arc<dyn ObjectStore>,
    pub ledger: Arc<dyn Ledger>,
    pub documents_bucket: String,
    pub default_tenant: Tenant,
    pub embed_batch: usize,
    /// The largest file ingested (see `INGEST_MAX_FILE_BYTES`).
    pub max_file_bytes: u64,
    /// When a document is large enough to be embedded by workers, and how many.
    pub jobs: super::JobSettings,
    /// Where workers run: `None` for tasks of this process.
    pub dispatcher: Option<SharedDispatcher>,
}

/// How long a presigned upload URL stays valid.
pub const UPLOAD_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Where an uploaded file named `name` is kept: `tenants/<tenant>/uploads/<name>` (the same key
/// a direct `POST /documents` upload of that name uses, so either way replaces the other).
pub fn upload_key(tenant: &Tenant, name: &str) -> String {
    format!("tenants/{tenant}/uploads/{name}")
}

/// A file sent to `POST /documents` (multipart or raw body).
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's name as sent (multipart file name or `?name=`); [`sanitize_name`]d here.
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub title: Option<String>,
    pub bytes: Vec<u8>,
}

/// A file name safe as the last part of an S3 key: no directories, no control characters, no
/// leading dots, at most 200 characters (`upload` when nothing is left).
pub fn sanitize_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if clean.is_empty() {
        "upload".to_string()
    } else {
        clean.chars().take(200).collect()
    }
}

/// What `POST /documents/uploads` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UploadTicket {
    /// Send the file this way; the signature covers the headers and the exact size.
    pub upload: crate::ports::PresignedPut,
    /// Where the file goes in the documents bucket.
    pub key: String,
    /// The document's source key once ingested.
    pub source_key: String,
}

/// What happened to one S3 event record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    pub event: String,
    pub bucket: String,
    pub key: String,
    pub tenant: String,
    pub result: RecordResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ingestion job of a large document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
}

impl Ingestor {
    /// Detects the format, parses and chunks (CPU work, on a blocking thread). Errors here are
    /// the caller's: unsupported type (415) or unreadable content (422).
    pub async fn prepare(
        &self,
        content_type: Option<&str>,
        key: &str,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Prepared, IngestError> {
        let format = Format::detect(content_type, key)?;
        let chunker = self.chunker.clone().ok_or(IngestError::NoEmbedder)?;
        tokio::task::spawn_blocking(move || {
            let parsed = parsing::parse(format, &bytes)?;
            let drafts = chunker.chunk(&parsed).map_err(IngestError::Invalid)?;
            Ok(Prepared {
                format,
                title: parsed.title,
                drafts,
                qa_pairs: parsed.qa_pairs,
            })
        })
        .await
        .map_err(|e| IngestError::Invalid(format!("parsing failed: {e}")))?
    }

    /// Ingests a file: unchanged content (same sha256, ready) is a no-op; otherwise the document
    /// and all of its chunks are written in one transaction, replacing the previous version. A
    /// document of more than `jobs.threshold_chunks` chunks is staged for workers instead
    /// (status `processing`, see [`super::jobs`]); its previous version is served until they finish.
    pub async fn ingest_file(
        &self,
        src: &SourceFile,
        bytes: Vec<u8>,
        prepared: Option<Prepared>,
    ) -> Result<Outcome, IngestError> {
        let embedder = self.embedder.clone().ok_or(IngestError::NoEmbedder)?;
        let sha = sha256_hex(&bytes);
        let source_key = src.source_key();

        let existing = super::stored_version(&self.store, &src.tenant, &source_key).await?;
        let name = || {
            src.title
                .clone()
                .unwrap_or_else(|| src.file_name().to_string())
        };
        if let Some(stored) = &existing {
            if stored.content_sha256 == sha && stored.status == DocumentStatus::Ready {
                return Ok(Outcome {
                    document_id: stored.id,
                    title: name(),
                    status: DocumentStatus::Ready,
                    chunks: stored.chunk_count.max(0) as usize,
                    change: Change::Unchanged,
                    job_id: None,
                });
            }
            if stored.content_sha256 == sha && stored.status == DocumentStatus::Processing {
                if let Some(outcome) = self.resume_job(src, stored.id, &sha, name()).await? {
                    return Ok(outcome);
                }
            }
        }

        let prepared = match prepared {
            Some(p) => p,
            None => {
                self.prepare(src.content_type.as_deref(), &src.key, Arc::new(bytes))
                    .await?
            }
        };
        let title = src
            .title
            .clone()
            .or_else(|| prepared.title.clone())
            .unwrap_or_else(|| src.file_name().to_string());

        let with_doc_metadata = |mut m: Value| {
            if let (Some(target), Some(user)) = (m.as_object_mut(), src.metadata.as_object()) {
                for (k, v) in user {
                    target.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            m
        };
        // The chunks without their embeddings yet; a Q&A pair embeds its question.
        let mut chunks = Vec::with_capacity(prepared.chunk_count());
        for d in prepared.drafts {
            chunks.push(NewChunk {
                metadata: with_doc_metadata(d.metadata),
                text: d.text,
                question: None,
                answer: None,
                embedding: None,
                token_count: i32::try_from(d.token_count).ok(),
            });
        }
        for p in &prepared.qa_pairs {
            chunks.push(NewChunk {
                text: p.answer.trim().to_string(),
                question: Some(p.question.trim().to_string()),
                answer: Some(p.answer.trim().to_string()),
                metadata: with_doc_metadata(json!({})),
                embedding: None,
                token_count: None,
            });
        }
        if chunks.is_empty() {
            return Err(IngestError::Invalid("the document contains no text".into()));
        }

        let doc = NewDocument {
            title: title.clone(),
            source: src.source,
            source_key,
            s3_bucket: Some(src.bucket.clone()),
            s3_key: Some(src.key.clone()),
            s3_version: src.version.clone(),
            content_sha256: sha,
            mime: prepared.format.mime().to_string(),
            metadata: src.metadata.clone(),
        };
        if chunks.len() > self.jobs.threshold_chunks {
            return self
                .stage_job(
                    &src.tenant,
                    &doc,
                    &chunks,
                    embedder.model_id(),
                    existing.is_some(),
                )
                .await;
        }

        // Embed outside any transaction, batch by batch.
        for batch in chunks.chunks_mut(self.embed_batch.max(1)) {
            let texts: Vec<&str> = batch
                .iter()
                .map(|c| c.question.as_deref().unwrap_or(&c.text))
                .collect();
            let vectors = embedder.embed(&texts).await?;
            crate::embedding::check_count(batch.len(), vectors.len())?;
            for (c, v) in batch.iter_mut().zip(vectors) {
                c.embedding = Some(v);
            }
        }
        super::write_version(
            &self.store,
            &src.tenant,
            &doc,
            &chunks,
            embedder.model_id(),
            existing.is_some(),
        )
        .await
    }

    /// A page of the tenant's documents.
    pub async fn list_documents(
        &self,
        tenant: &Tenant,
        filter: &documents::ListFilter,
    ) -> Result<Vec<documents::Document>, IngestError> {
        let tx = self.store.begin(tenant).await?;
        let docs = documents::list(&tx, filter).await?;
        tx.commit().await?;
        Ok(docs)
    }

    /// One of the tenant's documents, with its latest ingestion job (a large document's
    /// progress).
    pub async fn document(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Option<documents::Document>, IngestError> {
        let tx = self.store.begin(tenant).await?;
        let mut doc = documents::get(&tx, id).await?;
        if let Some(doc) = doc.as_mut() {
            doc.job = jobs::latest_for_document(&tx, id).await?;
        }
        tx.commit().await?;
        Ok(doc)
    }

    /// A file uploaded through the API: checked (type, parse, chunk) before anything is stored,
    /// then kept in the documents bucket under `tenants/<tenant>/uploads/<name>` and ingested
    /// from there. A file that cannot be stored is not ingested.
    pub async fn upload(&self, tenant: &Tenant, upload: Upload) -> Result<Outcome, IngestError> {
        if upload.bytes.is_empty() {
            return Err(IngestError::Invalid("the uploaded file is empty".into()));
        }
        let name = sanitize_name(upload.name.as_deref().unwrap_or("upload"));
        let key = upload_key(tenant, &name);
        let bytes = Arc::new(upload.bytes);
        let prepared = self
            .prepare(upload.content_type.as_deref(), &name, bytes.clone())
            .await?;
        let mime = prepared.format.mime();
        self.objects
            .put(&self.documents_bucket, &key, bytes.to_vec(), mime)
            .await
            .map_err(|e| IngestError::file_store("store the file", "ingested", e))?;
        let src = SourceFile {
            tenant: tenant.clone(),
            source: Source::Api,
            bucket: self.documents_bucket.clone(),
            key,
            version: None,
            content_type: Some(mime.to_string()),
            title: upload.title.filter(|t| !t.trim().is_empty()),
            metadata: json!({}),
        };
        self.ingest_file(&src, bytes.to_vec(), Some(prepared)).await
    }

    /// Deletes the tenant's document `id`, its chunks and its stored file; `false` when the
    /// tenant has no such document. The file goes before the commit: if S3 fails, the document
    /// stays (rolled back) and the call can be retried; if the commit then fails, S3's
    /// ObjectRemoved event removes the document.
    pub async fn delete_document(&self, tenant: &Tenant, id: Uuid) -> Result<bool, IngestError> {
        let tx = self.store.begin(tenant).await?;
        let Some(doc) = documents::delete(&tx, id).await? else {
            return Ok(false);
        };
        if let (Some(bucket), Some(key)) = (&doc.s3_bucket, &doc.s3_key) {
            self.objects
                .delete(bucket, key)
                .await
                .map_err(|e| IngestError::file_store("delete the stored file", "deleted", e))?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A presigned upload (`POST /documents/uploads`): checks the name's format and the declared
    /// size against the ingestion limit, then signs a PUT of exactly that many bytes to
    /// `tenants/<tenant>/uploads/<name>`, valid for [`UPLOAD_URL_LIFETIME`]. Nothing is stored
    /// now; the bucket's S3 notification ingests the file once it is put there.
    pub async fn presign_upload(
        &self,
        tenant: &Tenant,
        name: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<UploadTicket, IngestError> {
        let format = Format::detect(content_type, name)?;
        if size == 0 {
            return Err(IngestError::Invalid("size must be at least 1 byte".into()));
        }
        if size > self.max_file_bytes {
            return Err(IngestError::TooLarge(format!(
                "the file is {size} bytes; the ingestion limit is {} bytes",
                self.max_file_bytes
            )));
        }
        let key = upload_key(tenant, name);
        let mime = content_type.unwrap_or(format.mime());
        let upload = self
            .objects
            .presign_put(
                &self.documents_bucket,
                &key,
                mime,
                size,
                UPLOAD_URL_LIFETIME,
            )
            .await?;
        Ok(UploadTicket {
            upload,
            source_key: format!("s3:{key}"),
            key,
        })
    }

    /// The document a presigned upload of `name` became, once its file has arrived.
    pub async fn uploaded(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Option<documents::Document>, IngestError> {
        let key = upload_key(tenant, name);
        let tx = self.store.begin(tenant).await?;
        let found = documents::find_by_source_key(&tx, &format!("s3:{key}")).await?;
        let doc = match found {
            Some(stored) => {
                let mut doc = documents::get(&tx, stored.id).await?;
                if let Some(d) = doc.as_mut() {
                    d.job = jobs::latest_for_document(&tx, stored.id).await?;
                }
                doc
            }
            None => None,
        };
        tx.commit().await?;
        Ok(doc)
    }

    /// Question/answer pairs (`POST /embed/qa`). Up to `jobs.threshold_chunks` pairs are embedded
    /// within the request; more go the way of a large document (202, status `processing`, embedded
    /// by workers), so that no request embeds for longer than API Gateway's 30 s allow.
    pub async fn ingest_qa(&self, tenant: &Tenant, body: &QaBody) -> Result<Outcome, IngestError> {
        if body.question_answer_data.len() <= self.jobs.threshold_chunks {
            return super::qa::ingest(&self.store, self.embedder.as_deref(), tenant, body).await;
        }
        body.validate()?;
        let embedder = self.embedder.clone().ok_or(IngestError::NoEmbedder)?;
        let (doc, chunks) = super::qa::unembedded(body);
        let existing = super::stored_version(&self.store, tenant, &doc.source_key).await?;
        if let Some(stored) = &existing {
            if stored.content_sha256 == doc.content_sha256 && stored.status == DocumentStatus::Ready
            {
                return Ok(Outcome {
                    document_id: stored.id,
                    title: doc.title.clone(),
                    status: DocumentStatus::Ready,
                    chunks: chunks.len(),
                    change: Change::Unchanged,
                    job_id: None,
                });
            }
        }
        self.stage_job(
            tenant,
            &doc,
            &chunks,
            embedder.model_id(),
            existing.is_some(),
        )
        .await
    }

    /// A large document: the document row (`processing`) and its chunks without embeddings are
    /// written in one transaction, then workers are started. Its previous chunks stay searchable
    /// until the workers swap the new ones in.
    async fn stage_job(
        &self,
        tenant: &Tenant,
        doc: &NewDocument,
        chunks: &[NewChunk],
        model: &str,
        existed: bool,
    ) -> Result<Outcome, IngestError> {
        let tx = self.store.begin_long(tenant).await?;
        let document_id = documents::upsert_document(&tx, doc, DocumentStatus::Processing).await?;
        let job_id = jobs::create(&tx, document_id, &doc.content_sha256, model, chunks).await?;
        tx.commit().await?;
        tracing::info!(%document_id, job = %job_id, chunks = chunks.len(), workers = self.jobs.workers_for(chunks.len()), "large document staged for its workers");
        let job = JobRef {
            tenant: tenant.clone(),
            job_id,
        };
        self.start_job(&job, chunks.len()).await?;
        Ok(Outcome {
            document_id,
            title: doc.title.clone(),
            status: DocumentStatus::Processing,
            chunks: chunks.len(),
            change: if existed {
                Change::Updated
            } else {
                Change::Created
            },
            job_id: Some(job_id),
        })
    }

    /// The same content is being embedded by a job: report it, and start a worker again if the
    /// job has made no progress for longer than a lease (its workers died or gave up). `None`
    /// when there is no running job for this content (it is staged again).
    async fn resume_job(
        &self,
        src: &SourceFile,
        document_id: Uuid,
        sha: &str,
        title: String,
    ) -> Result<Option<Outcome>, IngestError> {
        let tx = self.store.begin(&src.tenant).await?;
        let job = jobs::latest_for_document(&tx, document_id).await?;
        tx.commit().await?;
        let Some(job) = job.filter(|j| j.status == JobStatus::Running && j.content_sha256 == sha)
        else {
            return Ok(None);
        };
        let idle = chrono::Utc::now() - job.updated_at;
        if idle.to_std().unwrap_or_default() > self.jobs.lease {
            tracing::warn!(job = %job.id, idle_seconds = idle.num_seconds(), "ingestion job stalled; starting a worker again");
            let r = JobRef {
                tenant: src.tenant.clone(),
                job_id: job.id,
            };
            self.start_job(&r, (job.total - job.embedded).max(1) as usize)
                .await?;
        }
        Ok(Some(Outcome {
            document_id,
            title,
            status: DocumentStatus::Processing,
            chunks: job.total.max(0) as usize,
            change: Change::Unchanged,
            job_id: Some(job.id),
        }))
    }

    /// Marks the document failed with `reason` (previous chunks, if any, are kept).
    pub async fn record_failure(
        &self,
        src: &SourceFile,
        bytes: &[u8],
        reason: &str,
    ) -> Result<Uuid, IngestError> {
        let doc = NewDocument {
            title: src
                .title
                .clone()
                .unwrap_or_else(|| src.file_name().to_string()),
            source: src.source,
            source_key: src.source_key(),
            s3_bucket: Some(src.bucket.clone()),
            s3_key: Some(src.key.clone()),
            s3_version: src.version.clone(),
            content_sha256: sha256_hex(bytes),
            mime: src
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            metadata: src.metadata.clone(),
        };
        let tx = self.store.begin(&src.tenant).await?;
        let id = documents::mark_failed(&tx, &doc, reason).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The tenant a key belongs to: `tenants/<tenant>/…`, else the default tenant.
    pub fn tenant_of(&self, key: &str) -> Result<Tenant, IngestError> {
        match key
            .strip_prefix("tenants/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((t, _)) => Tenant::parse(t).map_err(IngestError::Invalid),
            None => Ok(self.default_tenant.clone()),
        }
    }

    /// Handles the records of an object notification (ObjectCreated / ObjectRemoved), in order;
    /// a transient failure stops and returns `Err`, so the notification is delivered again
    /// (records already done are then skipped by the ledger or the sha256 check).
    pub async fn handle_object_events(
        &self,
        events: &[ObjectEvent],
    ) -> Result<Vec<RecordReport>, IngestError> {
        let mut reports = Vec::with_capacity(events.len());
        for event in events {
            let report = self.handle_object_event(event).await?;
            tracing::info!(event = %report.event, key = %report.key, tenant = %report.tenant, result = %report.result, "S3 record handled");
            reports.push(report);
        }
        Ok(reports)
    }

    /// Handles one record of an object notification. `Err` only for transient failures (the event should be
    /// retried); bad files are recorded on the document and reported.
    ///
    /// `write` identifies the S3 write the record reports (its sequencer, else its version id or
    /// ETag): a redelivery repeats it, a new write of the same key changes it, so the ledger
    /// processes each write once and never mistakes a new one for a redelivery. Without one the
    /// record is processed (re-ingesting unchanged content is a no-op by its sha256). The object
    /// is read as it is now, so a late event never brings back older content.
    pub async fn handle_object_event(
        &self,
        event: &ObjectEvent,
    ) -> Result<RecordReport, IngestError> {
        let (bucket, key) = (event.bucket.as_str(), event.key.clone());
        let mut report = RecordReport {
            event: event.name.clone(),
            bucket: bucket.to_string(),
            key: key.clone(),
            tenant: String::new(),
            result: RecordResult::Skipped,
            document_id: None,
            chunks: None,
            reason: None,
            job_id: None,
        };
        if key.ends_with(".metadata.json") || key.ends_with('/') {
            report.reason = Some("metadata sidecars and folders are not documents".into());
            return Ok(report);
        }
        let tenant = match self.tenant_of(&key) {
            Ok(t) => t,
            Err(e) => {
                report.result = RecordResult::Failed;
                report.reason = Some(e.to_string());
                return Ok(report);
            }
        };
        report.tenant = tenant.to_string();

        if event.kind == ObjectEventKind::Removed {
            // Events may arrive out of order: a removal reported after the key was written
            // again must not delete the new document (that write's own event ingests it).
            if self.objects.exists(bucket, &key).await? {
                report.reason = Some("the object was written again after this removal".into());
                return Ok(report);
            }
            let tx = self.store.begin(&tenant).await?;
            let removed = documents::delete_by_source_key(&tx, &format!("s3:{key}")).await?;
            tx.commit().await?;
            report.result = if removed.is_some() {
                RecordResult::Removed
            } else {
                RecordResult::NotFound
            };
            report.document_id = removed;
            return Ok(report);
        }
        if event.kind != ObjectEventKind::Created {
            report.reason = Some(format!("event {} is not handled", event.name));
            return Ok(report);
        }

        let Some(write) = event.write.as_deref().filter(|w| !w.is_empty()) else {
            self.ingest_object(&tenant, bucket, &key, &mut report)
                .await?;
            return Ok(report);
        };
        let ledger_id = format!("{bucket}/{key}#{write}");
        match self.ledger.claim(&ledger_id).await? {
            Claim::Acquired => {}
            Claim::Done | Claim::InProgress => {
                report.result = RecordResult::Duplicate;
                return Ok(report);
            }
        }
        // Renew the claim while working, so that it runs out soon after this invocation dies.
        let result = tokio::select! {
            r = self.ingest_object(&tenant, bucket, &key, &mut report) => r,
            never = renew_forever(self.ledger.as_ref(), &ledger_id) => match never {},
        };
        match result {
            Ok(()) => {
                self.ledger
                    .complete(&ledger_id, report.result.as_str())
                    .await?;
                Ok(report)
            }
            Err(e) => {
                // Transient: give the claim back so Lambda's retry processes the object.
                if let Err(release) = self.ledger.release(&ledger_id).await {
                    tracing::warn!(error = %release, "could not release the ingestion claim");
                }
                Err(e)
            }
        }
    }

    /// Ingests the object at `bucket/key` now, without the ledger (operator commands: a re-run
    /// reports `unchanged` or the failure again instead of `duplicate`).
    pub async fn process_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<RecordReport, IngestError> {
        let mut report = RecordReport {
            event: "ObjectCreated:Put".into(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            tenant: String::new(),
            result: RecordResult::Skipped,
            document_id: None,
            chunks: None,
            reason: None,
            job_id: None,
        };
        if key.ends_with(".metadata.json") {
            report.reason = Some("metadata sidecars are not documents".into());
            return Ok(report);
        }
        let tenant = self.tenant_of(key)?;
        report.tenant = tenant.to_string();
        self.ingest_object(&tenant, bucket, key, &mut report)
            .await?;
        Ok(report)
    }

    async fn ingest_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        report: &mut RecordReport,
    ) -> Result<(), IngestError> {
        let Some(object) = self.objects.get(bucket, key).await? else {
            report.result = RecordResult::NotFound;
            report.reason = Some("the object no longer exists".into());
            return Ok(());
        };
        let too_large = (object.bytes.len() as u64 > self.max_file_bytes).then(|| {
            format!(
                "the file is {} bytes; the ingestion limit is {} bytes (INGEST_MAX_FILE_BYTES)",
                object.bytes.len(),
                self.max_file_bytes
            )
        });
        let sidecar = self
            .objects
            .get(bucket, &format!("{key}.metadata.json"))
            .await?;
        let (title, metadata) = sidecar_metadata(sidecar.as_ref().map(|o| o.bytes.as_slice()));
        let src = SourceFile {
            tenant: tenant.clone(),
            source: Source::S3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            version: object.version.clone().or(object.etag.clone()),
            content_type: object.content_type.clone(),
            title,
            metadata,
        };
        let outcome = match too_large {
            Some(reason) => Err(IngestError::TooLarge(reason)),
            None => self.ingest_file(&src, object.bytes.clone(), None).await,
        };
        match outcome {
            Ok(outcome) => {
                report.result = if outcome.job_id.is_some() {
                    RecordResult::Processing
                } else if outcome.change == Change::Unchanged {
                    RecordResult::Unchanged
                } else {
                    RecordResult::Ingested
                };
                report.job_id = outcome.job_id;
                report.document_id = Some(outcome.document_id);
                report.chunks = Some(outcome.chunks);
                Ok(())
            }
            Err(
                IngestError::Invalid(reason)
                | IngestError::Unsupported(reason)
                | IngestError::TooLarge(reason),
            ) => {
                tracing::warn!(key = %key, reason = %reason, "document rejected");
                let id = self.record_failure(&src, &object.bytes, &reason).await?;
                report.result = RecordResult::Failed;
                report.document_id = Some(id);
                report.reason = Some(reason);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Renews a ledger claim every third of its lease, until dropped.
async fn renew_forever(ledger: &dyn Ledger, id: &str) -> std::convert::Infallible {
    let every = (ledger.lease() / 3).max(std::time::Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = ledger.renew(id).await {
            tracing::warn!(error = %e, "could not renew the ingestion claim");
        }
    }
}

/// `<key>.metadata.json`, as Bedrock Knowledge Bases reads it: `{"metadataAttributes": {...}}` or a
/// plain object. A `title` attribute names the document.
fn sidecar_metadata(bytes: Option<&[u8]>) -> (Option<String>, Value) {
    let Some(bytes) = bytes else {
        return (None, json!({}));
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a metadata sidecar that is not JSON");
            return (None, json!({}));
        }
    };
    let attrs = value.get("metadataAttributes").cloned().unwrap_or(value);
    if !attrs.is_object() {
        return (None, json!({}));
    }
    let title = attrs
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string);
    (title, attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bedrock_style_sidecars() {
        let (title, meta) = sidecar_metadata(Some(
            br#"{"metadataAttributes":{"title":"Guide","team":"ops"}}"#,
        ));
        assert_eq!(title.as_deref(), Some("Guide"));
        assert_eq!(meta["team"], "ops");
        let (title, meta) = sidecar_metadata(Some(b"not json"));
        assert_eq!((title, meta), (None, json!({})));
    }
}

//! Question/answer pairs entered by business users (`POST /embed/qa`): each pair is exactly one
//! chunk; the question is embedded, the answer kept beside it.

use serde_json::json;

pub use crate::parsing::{QaBody, QaPair};

use super::{sha256_hex, Change, IngestError, Outcome};
use crate::store::{DocumentStatus, Source};
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    store::{documents::NewChunk, documents::NewDocument, Store},
};

pub const MAX_PAIRS: usize = 2_000;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_FIELD_CHARS: usize = 20_000;

impl QaBody {
    /// Checks every rule before any work; the message names the offending field.
    pub fn validate(&self) -> Result<(), IngestError> {
        let title = self.document_title.trim();
        if title.is_empty() {
            return Err(IngestError::Invalid(
                "document_title must not be empty".into(),
            ));
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(IngestError::Invalid(format!(
                "document_title is longer than {MAX_TITLE_CHARS} characters"
            )));
        }
        if self.question_answer_data.is_empty() {
            return Err(IngestError::Invalid(
                "question_answer_data must hold at least one {\"question\", \"answer\"} pair"
                    .into(),
            ));
        }
        if self.question_answer_data.len() > MAX_PAIRS {
            return Err(IngestError::Invalid(format!(
                "question_answer_data holds {} pairs; the limit is {MAX_PAIRS} per request",
                self.question_answer_data.len()
            )));
        }
        for (i, p) in self.question_answer_data.iter().enumerate() {
            for (name, value) in [("question", &p.question), ("answer", &p.answer)] {
                if value.trim().is_empty() {
                    return Err(IngestError::Invalid(format!(
                        "question_answer_data[{i}].{name} must not be empty"
                    )));
                }
                if value.chars().count() > MAX_FIELD_CHARS {
                    return Err(IngestError::Invalid(format!(
                        "question_answer_data[{i}].{name} is longer than {MAX_FIELD_CHARS} characters"
                    )));
                }
                if value.chars().any(|c| c.is_control() && !c.is_whitespace()) {
                    return Err(IngestError::Invalid(format!(
                        "question_answer_data[{i}].{name} contains control characters"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Documents are identified inside a tenant by their title.
    pub fn source_key(&self) -> String {
        format!("qa:{}", self.document_title.trim())
    }

    fn content_sha256(&self) -> String {
        let canonical = json!({
            "title": self.document_title.trim(),
            "pairs": self.question_answer_data.iter()
                .map(|p| [p.question.trim(), p.answer.trim()])
                .collect::<Vec<_>>(),
        });
        sha256_hex(canonical.to_string().as_bytes())
    }
}

/// The document and its chunks (one per pair, no embeddings yet) for a Q&A body.
pub(crate) fn unembedded(body: &QaBody) -> (NewDocument, Vec<NewChunk>) {
    let chunks = body
        .question_answer_data
        .iter()
        .map(|p| NewChunk {
            text: p.answer.trim().to_string(),
            question: Some(p.question.trim().to_string()),
            answer: Some(p.answer.trim().to_string()),
            metadata: json!({}),
            embedding: None,
            token_count: None,
        })
        .collect();
    let doc = NewDocument {
        title: body.document_title.trim().to_string(),
        source: Source::Qa,
        source_key: body.source_key(),
        s3_bucket: None,
        s3_key: None,
        s3_version: None,
        content_sha256: body.content_sha256(),
        mime: "application/json".into(),
        metadata: json!({}),
    };
    (doc, chunks)
}

pub async fn ingest(
    store: &Store,
    embedder: Option<&dyn EmbeddingProvider>,
    tenant: &Tenant,
    body: &QaBody,
) -> Result<Outcome, IngestError> {
    body.validate()?;
    let embedder = embedder.ok_or(IngestError::NoEmbedder)?;
    let title = body.document_title.trim().to_string();
    let source_key = body.source_key();
    let sha = body.content_sha256();

    // Cheap check first: resubmitting the same pairs embeds nothing.
    let existing = super::stored_version(store, tenant, &source_key).await?;
    if let Some(stored) = &existing {
        if stored.content_sha256 == sha && stored.status == DocumentStatus::Ready {
            return Ok(Outcome {
                document_id: stored.id,
                title,
                status: DocumentStatus::Ready,
                chunks: body.question_answer_data.len(),
                change: Change::Unchanged,
                job_id: None,
            });
        }
    }

    // Embed outside any transaction (no connection held while computing).
    let questions: Vec<&str> = body
        .question_answer_data
        .iter()
        .map(|p| p.question.trim())
        .collect();
    let mut vectors = Vec::with_capacity(questions.len());
    for batch in questions.chunks(32) {
        vectors.extend(embedder.embed(batch).await?);
    }
    let (doc, mut chunks) = unembedded(body);
    crate::embedding::check_count(chunks.len(), vectors.len())?;
    for (c, v) in chunks.iter_mut().zip(vectors) {
        c.embedding = Some(v);
    }
    super::write_version(
        store,
        tenant,
        &doc,
        &chunks,
        embedder.model_id(),
        existing.is_some(),
    )
    .await
}

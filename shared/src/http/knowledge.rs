//! Knowledge routes (admin): Q&A pairs, documents.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Admin, ApiError, ApiJson, ApiQuery, Authorized, ErrorEnvelope, Routes};
use crate::{
    ingest::{self, qa::QaBody, Change, IngestError, Outcome},
    store::documents::{self, Document, ListFilter},
    AppState,
};

/// Routes that write knowledge (the embed function).
pub fn write_routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(embed_qa))
        .routes(routes!(embed_qa_legacy))
        .routes(routes!(delete_document))
}

/// Routes that read the document catalogue (the retrieve function).
pub fn read_routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(list_documents))
        .routes(routes!(get_document))
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(m) => ApiError::unprocessable(m),
            IngestError::Unsupported(m) => ApiError::unsupported_media_type(m),
            IngestError::NoEmbedder => {
                ApiError::unavailable("this function has no embedding provider configured")
            }
            IngestError::Embedding(e) => {
                tracing::error!(error = %e, "embedding failed");
                ApiError::unavailable("the embedding provider failed; retry shortly")
            }
            IngestError::Store(e) => e.into(),
        }
    }
}

fn outcome_response(outcome: Outcome) -> Response {
    let status = match outcome.change {
        Change::Created => StatusCode::CREATED,
        Change::Updated | Change::Unchanged => StatusCode::OK,
    };
    (status, Json(outcome)).into_response()
}

/// Stores question/answer pairs as one document (one chunk per pair; the question is embedded).
/// Re-sending identical pairs changes nothing; changed pairs replace the old ones atomically.
#[utoipa::path(post, path = "/embed/qa", tag = "knowledge", request_body = QaBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Document created", body = Outcome),
        (status = 200, description = "Document updated or unchanged", body = Outcome),
        (status = 401, description = "Missing or invalid token", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 415, description = "Not JSON", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or invalid", body = ErrorEnvelope),
        (status = 429, description = "Rate limit reached", body = ErrorEnvelope)))]
async fn embed_qa(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    ApiJson(body): ApiJson<QaBody>,
) -> Result<Response, ApiError> {
    let outcome =
        ingest::qa::ingest(&state.store, state.embedder.as_deref(), &who.tenant, &body).await?;
    Ok(outcome_response(outcome))
}

/// Legacy path of `POST /embed/qa` (the original system's), same body and behaviour.
#[utoipa::path(post, path = "/agents/embed-data/", tag = "knowledge", request_body = QaBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Document created", body = Outcome),
              (status = 200, description = "Document updated or unchanged", body = Outcome)))]
async fn embed_qa_legacy(
    state: State<AppState>,
    who: Authorized<Admin>,
    body: ApiJson<QaBody>,
) -> Result<Response, ApiError> {
    embed_qa(state, who, body).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `api`, `s3` or `qa`.
    source: Option<String>,
    /// `pending`, `processing`, `ready` or `failed`.
    status: Option<String>,
    /// The `next` value of the previous page.
    after: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DocumentPage {
    documents: Vec<Document>,
    /// Pass as `after` to get the next page; absent on the last page.
    next: Option<Uuid>,
}

/// The tenant's documents, newest first.
#[utoipa::path(get, path = "/documents", tag = "knowledge", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "One page of documents", body = DocumentPage),
              (status = 400, description = "Bad query parameter", body = ErrorEnvelope)))]
async fn list_documents(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit must be between 1 and 200"));
    }
    if let Some(s) = q
        .source
        .as_deref()
        .filter(|s| !["api", "s3", "qa"].contains(s))
    {
        return Err(ApiError::validation(format!(
            "source '{s}' is not one of api, s3, qa"
        )));
    }
    if let Some(s) = q
        .status
        .as_deref()
        .filter(|s| !["pending", "processing", "ready", "failed"].contains(s))
    {
        return Err(ApiError::validation(format!(
            "status '{s}' is not one of pending, processing, ready, failed"
        )));
    }
    let tx = state.store.begin(&who.tenant).await?;
    let docs = documents::list(
        &tx,
        &ListFilter {
            source: q.source,
            status: q.status,
            after: q.after,
            limit,
        },
    )
    .await?;
    tx.commit().await?;
    let next = (docs.len() as i64 == limit)
        .then(|| docs.last().map(|d| d.id))
        .flatten();
    Ok(Json(DocumentPage {
        documents: docs,
        next,
    }))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::validation(format!("'{id}' is not a document id (a UUID)")))
}

/// One document with its status, chunk count and failure reason.
#[utoipa::path(get, path = "/documents/{id}", tag = "knowledge",
    params(("id" = Uuid, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The document", body = Document),
              (status = 404, description = "No such document in your tenant", body = ErrorEnvelope)))]
async fn get_document(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Document>, ApiError> {
    let id = parse_id(&id)?;
    let tx = state.store.begin(&who.tenant).await?;
    let doc = documents::get(&tx, id).await?;
    tx.commit().await?;
    doc.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))
}

/// Deletes a document, its chunks and its stored file.
#[utoipa::path(delete, path = "/documents/{id}", tag = "knowledge",
    params(("id" = Uuid, Path, description = "Document id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such document in your tenant", body = ErrorEnvelope)))]
async fn delete_document(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let tx = state.store.begin(&who.tenant).await?;
    let Some(doc) = documents::delete(&tx, id).await? else {
        return Err(ApiError::not_found(format!("no document {id}")));
    };
    // The file goes before the commit: if S3 fails, the document stays (rolled back) and the call
    // can be retried. If the commit then fails, S3's ObjectRemoved event removes the document.
    if let (Some(bucket), Some(key)) = (&doc.s3_bucket, &doc.s3_key) {
        state
            .aws
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "deleting the document's object failed");
                ApiError::unavailable("could not delete the stored file; nothing was deleted, retry shortly")
            })?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

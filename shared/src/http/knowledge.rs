//! Knowledge routes (admin): Q&A pairs, documents.

use axum::{
    extract::{FromRequest, Multipart, Path, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Admin, ApiError, ApiJson, ApiQuery, Authorized, ErrorEnvelope, Routes};
use crate::{
    ingest::{
        document::{self, Upload, UploadTicket},
        qa::QaBody,
        Change, IngestError, Outcome,
    },
    store::{
        documents::{Document, ListFilter},
        DocumentStatus, Source,
    },
    AppState,
};

/// Routes that write knowledge (the embed function).
pub fn write_routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(embed_qa))
        .routes(routes!(embed_qa_legacy))
        .routes(routes!(upload_document))
        .routes(routes!(create_upload))
        .routes(routes!(delete_document))
}

/// Routes that read the document catalogue (the retrieve function).
pub fn read_routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(list_documents))
        .routes(routes!(get_document))
        .routes(routes!(upload_status))
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(m) => ApiError::unprocessable(m),
            IngestError::Unsupported(m) => ApiError::unsupported_media_type(m),
            IngestError::TooLarge(m) => ApiError::payload_too_large(m),
            IngestError::NoEmbedder => {
                ApiError::unavailable("this function has no embedding provider configured")
            }
            IngestError::Embedding(e) => {
                ApiError::unavailable("the embedding provider failed; retry shortly").caused_by(e)
            }
            IngestError::Dependency(e) => {
                ApiError::unavailable(format!("{} is unavailable; retry shortly", e.dependency))
                    .caused_by(e)
            }
            IngestError::FileStore { message, source } => {
                ApiError::unavailable(message).caused_by(source)
            }
            IngestError::Store(e) => e.into(),
        }
    }
}

fn outcome_response(outcome: Outcome) -> Response {
    let status = match outcome.change {
        // A large document: accepted, embedded by workers (poll GET /documents/{id}).
        _ if outcome.job_id.is_some() => StatusCode::ACCEPTED,
        Change::Created => StatusCode::CREATED,
        Change::Updated | Change::Unchanged => StatusCode::OK,
    };
    (status, Json(outcome)).into_response()
}

/// Stores question/answer pairs as one document (one chunk per pair; the question is embedded).
/// Re-sending identical pairs changes nothing; changed pairs replace the old ones atomically.
/// More pairs than `INGEST_JOB_THRESHOLD_CHUNKS` are accepted with 202 and embedded by workers.
#[utoipa::path(post, path = "/embed/qa", tag = "knowledge", request_body = QaBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Document created", body = Outcome),
        (status = 200, description = "Document updated or unchanged", body = Outcome),
        (status = 202, description = "Many pairs: accepted, status `processing`, embedded by background workers; poll GET /documents/{id}", body = Outcome),
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
    let outcome = state.ingestor.ingest_qa(&who.tenant, &body).await?;
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// File name for a raw body (its extension picks the format when the content type does not).
    name: Option<String>,
    /// Document title (default: the content's own title, else the file name).
    title: Option<String>,
}

/// Uploads a document (raw body with its content type, or `multipart/form-data` with a file):
/// stores it in the documents bucket under `tenants/<tenant>/uploads/<name>` and ingests it.
/// Unsupported types get 415 and unreadable files 422, before anything is stored.
#[utoipa::path(post, path = "/documents", tag = "knowledge", params(UploadQuery),
    request_body(content = Vec<u8>, description = "The file: txt, md, html, csv, json or pdf, raw or as multipart field `file`", content_type = "application/octet-stream"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Document created", body = Outcome),
        (status = 200, description = "Document updated or unchanged", body = Outcome),
        (status = 202, description = "Large document accepted: status `processing`, embedded by background workers; poll GET /documents/{id}", body = Outcome),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorEnvelope),
        (status = 415, description = "Unsupported type", body = ErrorEnvelope),
        (status = 422, description = "Unreadable or empty file", body = ErrorEnvelope)))]
async fn upload_document(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let header_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (name, content_type, bytes) = if header_type
        .as_deref()
        .is_some_and(|t| t.starts_with("multipart/form-data"))
    {
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
            ApiError::validation(format!("malformed multipart body: {}", e.body_text()))
        })?;
        let mut found = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?
        {
            if field.file_name().is_some() || field.name() == Some("file") {
                let name = field.file_name().map(str::to_string);
                let ct = field.content_type().map(str::to_string);
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e.status(), e.body_text()))?;
                found = Some((name, ct, data));
                break;
            }
        }
        let (name, ct, data) = found.ok_or_else(|| {
            ApiError::unprocessable("the multipart body has no file field (name it 'file')")
        })?;
        (name.or(q.name), ct, data)
    } else {
        let data = axum::body::Bytes::from_request(req, &())
            .await
            .map_err(super::body_rejection)?;
        (q.name, header_type, data)
    };
    let outcome = state
        .ingestor
        .upload(
            &who.tenant,
            Upload {
                name,
                content_type,
                title: q.title,
                bytes: bytes.to_vec(),
            },
        )
        .await?;
    Ok(outcome_response(outcome))
}

fn multipart_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("the request body is larger than the limit (MAX_BODY_BYTES)")
    } else {
        ApiError::validation(format!("malformed multipart body: {text}"))
    }
}

/// A file name safe as the last segment of an S3 key.
/// What a presigned upload will send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "handbook.pdf", "size": 18874368, "content_type": "application/pdf"}))]
pub struct UploadRequest {
    /// File name (its extension picks the format when `content_type` does not).
    pub name: String,
    /// Exact size in bytes (the URL is signed for it); at most INGEST_MAX_FILE_BYTES.
    pub size: u64,
    pub content_type: Option<String>,
}

/// A presigned upload, for files larger than a request body may be (up to the ingestion limit,
/// 50 MiB by default): answers a URL to PUT the file to (directly to S3, valid 15 minutes, signed
/// for exactly `size` bytes). The bucket's notification ingests the file once it is there; poll
/// `GET /documents/uploads/{name}` for the document. Nothing is stored by this call.
#[utoipa::path(post, path = "/documents/uploads", tag = "knowledge", request_body = UploadRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "PUT the file to `upload.url` with `upload.headers`", body = UploadTicket),
        (status = 413, description = "Larger than the ingestion limit", body = ErrorEnvelope),
        (status = 415, description = "Unsupported type", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or invalid", body = ErrorEnvelope)))]
async fn create_upload(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    ApiJson(body): ApiJson<UploadRequest>,
) -> Result<Response, ApiError> {
    let name = document::sanitize_name(&body.name);
    let ticket = state
        .ingestor
        .presign_upload(&who.tenant, &name, body.size, body.content_type.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

/// The document a presigned upload became: 404 until its file has arrived and ingestion began;
/// then the document as `GET /documents/{id}` shows it (`processing`, `ready` or `failed`).
#[utoipa::path(get, path = "/documents/uploads/{name}", tag = "knowledge",
    params(("name" = String, Path, description = "The upload's file name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The document", body = Document),
              (status = 404, description = "Not arrived (or not ingested) yet", body = ErrorEnvelope)))]
async fn upload_status(
    State(state): State<AppState>,
    who: Authorized<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Document>, ApiError> {
    let name = document::sanitize_name(&name);
    state
        .ingestor
        .uploaded(&who.tenant, &name)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no document from the upload {name} yet: PUT the file to its upload URL; ingestion starts once it is stored"
            ))
        })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    let source = q
        .source
        .as_deref()
        .map(str::parse::<Source>)
        .transpose()
        .map_err(|e| ApiError::validation(format!("source {e}")))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DocumentStatus>)
        .transpose()
        .map_err(|e| ApiError::validation(format!("status {e}")))?;
    let docs = state
        .ingestor
        .list_documents(
            &who.tenant,
            &ListFilter {
                source,
                status,
                after: q.after,
                limit,
            },
        )
        .await?;
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

/// One document with its status, chunk count and failure reason, and for a large document the
/// progress of its background ingestion job.
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
    let doc = state.ingestor.document(&who.tenant, id).await?;
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
    if !state.ingestor.delete_document(&who.tenant, id).await? {
        return Err(ApiError::not_found(format!("no document {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

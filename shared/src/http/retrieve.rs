//! `POST /retrieve` (the retrieve function).

use axum::{extract::State, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, Authorized, ErrorEnvelope, Reader, Routes};
use crate::{
    retrieval::{self, RetrieveError, RetrieveRequest, RetrieveResponse},
    AppState,
};

pub fn routes() -> Routes {
    OpenApiRouter::new().routes(routes!(retrieve))
}

impl From<RetrieveError> for ApiError {
    fn from(e: RetrieveError) -> Self {
        match e {
            RetrieveError::Invalid(m) => ApiError::validation(m),
            RetrieveError::NoEmbedder => {
                ApiError::unavailable("this function has no embedding provider configured")
            }
            RetrieveError::Embedding(e) => {
                ApiError::unavailable("the embedding provider failed; retry shortly").caused_by(e)
            }
            RetrieveError::Store(e) => e.into(),
        }
    }
}

/// Ranked chunks of the caller's tenant for a query. When none passes the threshold: no results
/// and a `fallback` with sample questions from the knowledge base and a disclaimer.
#[utoipa::path(post, path = "/retrieve", tag = "retrieval", request_body = RetrieveRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Results (possibly empty, with a fallback)", body = RetrieveResponse),
        (status = 400, description = "Empty, too long or malformed query; bad top_k/threshold/filters", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = ErrorEnvelope),
        (status = 429, description = "Rate limit reached", body = ErrorEnvelope)))]
async fn retrieve(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    ApiJson(req): ApiJson<RetrieveRequest>,
) -> Result<Json<RetrieveResponse>, ApiError> {
    let started = std::time::Instant::now();
    let response = retrieval::search(
        &state.store,
        state.embedder.as_deref(),
        &who.tenant,
        &req,
        &state.config.retrieve,
    )
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::telemetry::metric("RetrieveLatency", ms, crate::telemetry::Unit::Milliseconds);
    tracing::info!(
        results = response.results.len(),
        fallback = response.fallback.is_some(),
        mode = ?response.mode,
        latency_ms = ms,
        "retrieved"
    );
    Ok(Json(response))
}

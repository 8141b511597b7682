//! Routes of the health function.

use axum::{
    extract::State,
    http::{header, request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Routes;
use crate::{health, AppState};

/// Public routes (no token): monitoring must reach them.
pub fn routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(liveness))
        .routes(routes!(database))
        .routes(routes!(readiness))
        .routes(routes!(ai_services))
}

/// Each configured AI provider (LLM, embeddings): `available`, `unavailable` or `not configured`,
/// with the probe's latency. Always 200 when the report could be made; `status` says `degraded`
/// when a configured provider is unavailable. Errors are shown to admins only.
#[utoipa::path(get, path = "/health/ai-services", tag = "health",
    responses((status = 200, description = "Each provider's state; `status` is `degraded` when a configured one is unavailable", body = health::AiServices)))]
async fn ai_services(State(state): State<AppState>, parts: Parts) -> Response {
    let mut remote = state.config.embedding.clone();
    remote.provider = remote.configured;
    let report = health::check_ai_services(
        state.chat.provider().as_ref(),
        &state.config.embedding,
        crate::providers::embedder(&remote),
        state.config.health.dependency_timeout,
    )
    .await;
    let report = if super::auth::is_admin(&parts, &state).await {
        report
    } else {
        report.public()
    };
    no_store(StatusCode::OK, Json(report))
}

/// Liveness: no I/O, the process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is up", body = health::Liveness)))]
async fn liveness() -> Response {
    no_store(StatusCode::OK, Json(health::liveness()))
}

/// Database reachability and latency; the PostgreSQL and pgvector versions and any error for
/// callers with an admin token.
#[utoipa::path(get, path = "/health/db", tag = "health",
    responses((status = 200, description = "Database reachable", body = health::DatabaseHealth),
              (status = 503, description = "Database unreachable or slower than the timeout", body = health::DatabaseHealth)))]
async fn database(State(state): State<AppState>, parts: Parts) -> Response {
    let h = &state.config.health;
    let report = health::check_database(&state.store, h.db_timeout, h.db_warn_latency).await;
    let report = if super::auth::is_admin(&parts, &state).await {
        report
    } else {
        report.public()
    };
    let status = if report.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let starting = report.status == health::ProbeStatus::Starting;
    retry_after_if_starting(no_store(status, Json(report)), starting)
}

/// Every dependency (database, S3, DynamoDB, embedder) with status and latency; errors for
/// callers with an admin token.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Every dependency is ready", body = health::Readiness),
              (status = 503, description = "At least one dependency is not ready (`not_ready`), or the database is still starting (`starting`, with `Retry-After`)", body = health::Readiness)))]
async fn readiness(State(state): State<AppState>, parts: Parts) -> Response {
    let report = health::check_readiness(
        &state.store,
        &state.probes,
        state.embedder.as_deref(),
        state.config.health.dependency_timeout,
    )
    .await;
    let report = if super::auth::is_admin(&parts, &state).await {
        report
    } else {
        report.public()
    };
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let starting = report.status == "starting";
    retry_after_if_starting(no_store(status, Json(report)), starting)
}

fn no_store(status: StatusCode, body: impl IntoResponse) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// A 503 for a dependency that is still starting says when to ask again.
fn retry_after_if_starting(mut response: Response, starting: bool) -> Response {
    if starting {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            super::error::DATABASE_RETRY_AFTER_SECONDS.into(),
        );
    }
    response
}

//! Routes of the health function.

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};

use crate::{health, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(liveness))
        .route("/health/db", get(database))
        .route("/health/ready", get(readiness))
}

/// No I/O: the process is up.
async fn liveness() -> Response {
    no_store(StatusCode::OK, Json(health::liveness()))
}

async fn database(State(state): State<AppState>) -> Response {
    let h = &state.config.health;
    let report = health::check_database(&state.store, h.db_timeout, h.db_warn_latency).await;
    let status = if report.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store(status, Json(report))
}

async fn readiness(State(state): State<AppState>) -> Response {
    let report = health::check_readiness(
        &state.store,
        &state.aws,
        state.embedder.as_deref(),
        state.config.health.dependency_timeout,
    )
    .await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store(status, Json(report))
}

fn no_store(status: StatusCode, body: impl IntoResponse) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

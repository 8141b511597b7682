use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::current_request_id;
use crate::{auth::AuthError, store::StoreError};

/// The one error type of the HTTP layer, rendered as
/// `{"error":{"code","message","request_id"}}` with its status.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 (`Retry-After`).
    pub retry_after: Option<u64>,
    /// What went wrong underneath, for the log line only (never sent to the caller).
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }
    /// Keeps `cause` for the one log line of the failed request.
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn rate_limited(limit: u32, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs().max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("rate limit of {limit} requests per window reached; retry in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; quote the request id when reporting it",
        )
    }
}

/// What a client is told to wait when the database did not answer in time: Aurora Serverless
/// resuming from 0 ACU takes about 15 s, part of which the request already spent retrying.
pub const DATABASE_RETRY_AFTER_SECONDS: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            let mut api = ApiError::unavailable(
                "the database is unavailable or still starting (a paused database takes about 15 s to resume); retry shortly",
            )
            .caused_by(e);
            api.retry_after = Some(DATABASE_RETRY_AFTER_SECONDS);
            api
        } else {
            ApiError::internal().caused_by(e)
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_forbidden() {
            ApiError::forbidden(e.to_string())
        } else {
            ApiError::unauthorized(e.to_string())
        }
    }
}

impl ApiError {
    /// The error envelope, `{"error":{"code","message","request_id"}}` (also the `error` event of
    /// a stream, which outlives the request's task-local id).
    pub fn envelope(&self, request_id: &str) -> serde_json::Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": request_id,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The one log line of a failed request, with its cause.
        let cause = self.cause.as_deref().unwrap_or("");
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, cause, "request failed");
        } else if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, cause, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code, message = %self.message, "request rejected");
        }
        let body = self.envelope(&current_request_id());
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The error envelope every route answers errors with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `validation_failed`, `unauthorized`, `rate_limited`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request id (also in the `x-request-id` response header and every log line).
    pub request_id: String,
}

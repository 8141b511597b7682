//! Request body extraction with errors in the envelope: 415 without a JSON content type, 400 for
//! malformed JSON, 422 naming the field whose value does not fit, 413 over the body limit.

use axum::{
    extract::{
        rejection::{BytesRejection, JsonRejection},
        FromRequest, Request,
    },
    http::StatusCode,
    Json,
};
use serde::de::DeserializeOwned;

use super::ApiError;

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(
            "expected a JSON body: send 'Content-Type: application/json'",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {}", inner_message(&e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(format!(
            "the JSON body does not fit: {}",
            inner_message(&e.body_text())
        )),
        JsonRejection::BytesRejection(e) => body_rejection(e),
        other => ApiError::validation(other.body_text()),
    }
}

/// A body that could not be read: over the limit (413) or broken (400).
pub fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("the request body is larger than the limit (MAX_BODY_BYTES)")
    } else {
        ApiError::validation(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

/// axum prefixes serde's message with a generic sentence; keep serde's part (field path + reason).
fn inner_message(text: &str) -> &str {
    text.split_once(": ").map(|(_, rest)| rest).unwrap_or(text)
}

/// `Query<T>` whose rejections are [`ApiError`]s (400 naming the parameter).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| {
                ApiError::validation(format!(
                    "invalid query string: {}",
                    inner_message(&e.body_text())
                ))
            })
    }
}

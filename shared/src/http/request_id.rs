use std::time::Instant;

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served (empty outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Request id from API Gateway's context, else a sane `x-request-id` header, else a new UUID. It is
/// put on the tracing span (so every log line of the request carries it), in the task-local read by
/// the error envelope, and echoed in the `x-request-id` response header.
pub(crate) async fn request_context(req: Request, next: Next) -> Response {
    let id = request_id_of(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        subject = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    let start = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = start.elapsed().as_secs_f64() * 1000.0,
            "request completed"
        )
    });
    response
}

fn request_id_of(req: &Request) -> String {
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        req.extensions()
            .get::<lambda_http::request::RequestContext>()
    {
        if let Some(id) = ctx.request_id.as_deref().filter(|id| valid(id)) {
            return id.to_string();
        }
    }
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid(id))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Accept caller-supplied ids only when they are short and printable (they end up in logs).
fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn rejects_ids_that_would_pollute_logs() {
        assert!(valid("abc-123"));
        assert!(!valid(""));
        assert!(!valid("has space"));
        assert!(!valid("line\nbreak"));
        assert!(!valid(&"x".repeat(129)));
    }
}

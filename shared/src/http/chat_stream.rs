//! `POST /chat/stream`: `/chat`'s answer as server-sent events, so the first words show while
//! the model is still writing.
//!
//! Events, in order: `meta` (`{"conversation_id", "message_id"}`: retrieval is done), `citations`
//! (`{"citations": […]}`: the passages the answer rests on, before any text), `delta`
//! (`{"text"}`, the answer's pieces as the model writes them; one piece for the extractive
//! provider, a cache hit or the fallback), then `done` (exactly `/chat`'s response, which is what
//! was stored) or `error` (the error envelope). An error before any event (bad message, unknown
//! conversation, budget spent) is a plain JSON error with its status. A client that disconnects
//! stops the provider call; its question is kept, marked failed.
//!
//! In AWS, API Gateway's HTTP API buffers responses: the chat function's Function URL
//! (`InvokeMode: RESPONSE_STREAM`) serves this route as a stream.

use std::convert::Infallible;

use axum::{
    extract::State,
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{receiver_stream, ApiError, ApiJson, Authorized, ErrorEnvelope, Reader};
use crate::{
    chat::{self, ChatError, ChatRequest, ChatResponse, Question, Retrieved},
    AppState,
};

/// Streams the answer to a question from the caller's knowledge base (see the module docs for
/// the events).
#[utoipa::path(post, path = "/chat/stream", tag = "chat", request_body = ChatRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `meta`, `citations`, `delta`…, then `done` (the `/chat` response) or `error` (the error envelope)", body = ChatResponse, content_type = "text/event-stream"),
        (status = 400, description = "Empty, too long or malformed message; bad top_k/filters", body = ErrorEnvelope),
        (status = 404, description = "No such conversation of yours", body = ErrorEnvelope),
        (status = 429, description = "Rate limit or the daily LLM token budget reached", body = ErrorEnvelope)))]
pub(super) async fn chat_stream(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let owner = chat::owner_of(&who);
    let tenant = who.tenant.clone();
    let request_id = super::current_request_id();
    let (progress_tx, mut progress) = mpsc::channel::<Retrieved>(4);
    let (delta_tx, deltas) = mpsc::channel::<String>(64);
    let (done_tx, done) = oneshot::channel::<Result<ChatResponse, ChatError>>();
    tokio::spawn(async move {
        let result = state
            .chat
            .answer(Question {
                conversation_id: req.conversation_id,
                top_k: req.top_k,
                mode: req.mode,
                filters: req.filters.as_ref(),
                deltas: Some(&delta_tx),
                progress: Some(&progress_tx),
                ..Question::new(&tenant, &owner, &req.message)
            })
            .await;
        drop((delta_tx, progress_tx));
        done_tx.send(result).ok();
    });
    // Retrieval first: until it is done, an error is a plain response with its status.
    let Some(retrieved) = progress.recv().await else {
        return Err(match done.await {
            Ok(Err(e)) => e.into(),
            Ok(Ok(_)) | Err(_) => ApiError::unavailable("the answer stopped before it began"),
        });
    };
    let head = [
        event(
            "meta",
            json!({"conversation_id": retrieved.conversation_id, "message_id": retrieved.message_id}),
        ),
        event("citations", json!({"citations": retrieved.passages})),
    ];
    let pieces = receiver_stream(deltas).map(|text| event("delta", json!({ "text": text })));
    let end = futures_util::stream::once(async move {
        match done.await {
            Ok(Ok(r)) => event("done", json!(r)),
            Ok(Err(e)) => error_event(e.into(), &request_id),
            Err(_) => error_event(
                ApiError::unavailable("the answer stopped before it ended"),
                &request_id,
            ),
        }
    });
    let all = futures_util::stream::iter(head)
        .chain(pieces)
        .chain(end)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(all).into_response())
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn error_event(e: ApiError, request_id: &str) -> Event {
    let cause = e.cause.as_deref().unwrap_or("");
    tracing::warn!(status = e.status.as_u16(), code = e.code, message = %e.message, cause, "streamed answer failed");
    event("error", e.envelope(request_id))
}

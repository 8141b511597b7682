//! Chat routes (the chat function): `POST /chat`, conversations and their messages, feedback, and
//! the original system's paths as aliases. Every route is scoped to the caller's tenant and
//! subject: another caller's conversation answers 404 exactly like a missing one.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{ApiError, ApiJson, ApiQuery, Authorized, ErrorEnvelope, Reader, Routes};
use crate::{
    chat::{self, ChatError, ChatRequest, ChatResponse, MessageRequest, Question},
    llm::LlmError,
    store::conversations::{Conversation, StoredMessage},
    AppState,
};

pub fn routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(chat_route))
        .routes(routes!(super::chat_stream::chat_stream))
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(feedback))
        .routes(routes!(legacy_list, legacy_create))
        .routes(routes!(legacy_post_message))
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(m) => ApiError::validation(m),
            ChatError::ConversationNotFound(id) => {
                ApiError::not_found(format!("no conversation {id}"))
            }
            ChatError::MessageNotFound(id) => {
                ApiError::not_found(format!("no assistant message {id} in this conversation"))
            }
            ChatError::BudgetSpent {
                limit,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "llm_budget_exhausted",
                    format!(
                        "your organisation's daily budget of {limit} LLM tokens is spent; it renews at 00:00 UTC"
                    ),
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            ChatError::Llm(LlmError::Timeout(ms)) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "llm_timeout",
                format!("the language model did not answer within {ms} ms; your message was kept, retry shortly"),
            ),
            ChatError::Llm(LlmError::Unavailable(m)) => {
                let mut e = ApiError::unavailable(
                    "the language model is unavailable; your message was kept, retry shortly",
                )
                .caused_by(m);
                e.retry_after = Some(5);
                e
            }
            ChatError::Llm(LlmError::Cancelled) => {
                tracing::info!("the client closed the answer's stream");
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "stream_closed",
                    "the answer's stream was closed before it ended",
                )
            }
            ChatError::Llm(other) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "llm_error",
                "the language model answered with an error; your message was kept",
            )
            .caused_by(other),
            ChatError::Retrieve(e) => e.into(),
            ChatError::Store(e) => e.into(),
        }
    }
}

fn ask<'a>(
    who: &'a Authorized<Reader>,
    owner: &'a str,
    conversation_id: Option<Uuid>,
    req: &'a MessageRequest,
) -> Question<'a> {
    Question {
        conversation_id,
        top_k: req.top_k,
        mode: req.mode,
        filters: req.filters.as_ref(),
        ..Question::new(&who.tenant, owner, &req.message)
    }
}

fn log_answer(r: &ChatResponse) {
    tracing::info!(
        conversation = %r.conversation_id,
        citations = r.citations.len(),
        grounded = r.grounded,
        cached = r.cached,
        provider = %r.provider,
        latency_ms = r.latency_ms,
        prompt_tokens = r.usage.prompt_tokens,
        completion_tokens = r.usage.completion_tokens,
        "answered"
    );
}

/// Answers a question from the caller's knowledge base, with citations. Without
/// `conversation_id` a conversation is created; with it the answer takes the earlier turns into
/// account. When nothing in the knowledge base is relevant enough: `grounded: false`, a
/// disclaimer and sample questions, and no model call.
#[utoipa::path(post, path = "/chat", tag = "chat", request_body = ChatRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer", body = ChatResponse),
        (status = 400, description = "Empty, too long or malformed message; bad top_k/filters", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = ErrorEnvelope),
        (status = 404, description = "No such conversation of yours", body = ErrorEnvelope),
        (status = 429, description = "Rate limit or the daily LLM token budget reached", body = ErrorEnvelope),
        (status = 503, description = "The language model is unavailable (the message is kept)", body = ErrorEnvelope),
        (status = 504, description = "The language model was too slow (the message is kept)", body = ErrorEnvelope)))]
async fn chat_route(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    let owner = chat::owner_of(&who);
    let body = MessageRequest {
        message: req.message,
        top_k: req.top_k,
        mode: req.mode,
        filters: req.filters,
    };
    let answer = state
        .chat
        .answer(ask(&who, &owner, req.conversation_id, &body))
        .await?;
    log_answer(&answer);
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The `next` value of the previous page.
    after: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationPage {
    conversations: Vec<Conversation>,
    /// Pass as `after` to get the next page; absent on the last page.
    next: Option<Uuid>,
}

/// The caller's conversations, most recently active first.
#[utoipa::path(get, path = "/conversations", tag = "chat", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "One page of conversations", body = ConversationPage),
              (status = 400, description = "Bad query parameter", body = ErrorEnvelope),
              (status = 401, description = "Missing or invalid token", body = ErrorEnvelope)))]
async fn list_conversations(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let page = chat::conversations::list(&state.store, &who, q.after, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|c| c.id))
        .flatten();
    Ok(Json(ConversationPage {
        conversations: page,
        next,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConversation {
    /// Optional; by default the first question.
    title: Option<String>,
}

/// Starts an empty conversation.
#[utoipa::path(post, path = "/conversations", tag = "chat", request_body = NewConversation,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Conversation),
              (status = 400, description = "Title too long", body = ErrorEnvelope),
              (status = 401, description = "Missing or invalid token", body = ErrorEnvelope)))]
async fn create_conversation(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: none, or `{"title": …}`.
    let body: NewConversation = if body.iter().all(u8::is_ascii_whitespace) {
        NewConversation::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::unprocessable(format!("the JSON body does not fit: {e}")))?
    };
    let title = body
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::validation("title is longer than 200 characters"));
    }
    let c = chat::conversations::create(&state.store, &who, title.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

fn parse_id(id: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::validation(format!("'{id}' is not a {what} id (a UUID)")))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationWithMessages {
    #[serde(flatten)]
    conversation: Conversation,
    messages: Vec<StoredMessage>,
}

async fn load(
    state: &AppState,
    who: &Authorized<Reader>,
    id: Uuid,
) -> Result<(Conversation, Vec<StoredMessage>), ApiError> {
    Ok(chat::conversations::get(&state.store, who, id).await?)
}

/// One of the caller's conversations with its messages and their citations, oldest first.
#[utoipa::path(get, path = "/conversations/{id}", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The conversation", body = ConversationWithMessages),
              (status = 404, description = "No such conversation of yours", body = ErrorEnvelope)))]
async fn get_conversation(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    Path(id): Path<String>,
) -> Result<Json<ConversationWithMessages>, ApiError> {
    let (conversation, messages) = load(&state, &who, parse_id(&id, "conversation")?).await?;
    Ok(Json(ConversationWithMessages {
        conversation,
        messages,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct MessageList {
    messages: Vec<StoredMessage>,
}

/// The messages of one of the caller's conversations, oldest first.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The messages", body = MessageList),
              (status = 404, description = "No such conversation of yours", body = ErrorEnvelope)))]
async fn list_messages(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    Path(id): Path<String>,
) -> Result<Json<MessageList>, ApiError> {
    let (_, messages) = load(&state, &who, parse_id(&id, "conversation")?).await?;
    Ok(Json(MessageList { messages }))
}

/// Deletes one of the caller's conversations and its messages.
#[utoipa::path(delete, path = "/conversations/{id}", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such conversation of yours", body = ErrorEnvelope)))]
async fn delete_conversation(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "conversation")?;
    chat::conversations::delete(&state.store, &who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks a question in one of the caller's conversations (the same answer as `POST /chat`).
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = MessageRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer", body = ChatResponse),
        (status = 400, description = "Empty, too long or malformed message", body = ErrorEnvelope),
        (status = 404, description = "No such conversation of yours", body = ErrorEnvelope),
        (status = 429, description = "Rate limit or the daily LLM token budget reached", body = ErrorEnvelope),
        (status = 503, description = "The language model is unavailable", body = ErrorEnvelope),
        (status = 504, description = "The language model was too slow", body = ErrorEnvelope)))]
async fn post_message(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    let id = parse_id(&id, "conversation")?;
    let owner = chat::owner_of(&who);
    let answer = state.chat.answer(ask(&who, &owner, Some(id), &req)).await?;
    log_answer(&answer);
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": "down", "comment": "The link in the answer is outdated."}))]
struct FeedbackRequest {
    /// `up` or `down`.
    rating: String,
    /// Up to 2,000 characters.
    comment: Option<String>,
}

/// Thumbs up or down (and a comment) on an answer.
#[utoipa::path(post, path = "/conversations/{id}/messages/{message_id}/feedback", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("message_id" = Uuid, Path, description = "The assistant message's id")),
    request_body = FeedbackRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Stored; the message with its feedback", body = StoredMessage),
              (status = 400, description = "Rating not up/down, comment too long", body = ErrorEnvelope),
              (status = 404, description = "No such conversation or assistant message", body = ErrorEnvelope)))]
async fn feedback(
    State(state): State<AppState>,
    who: Authorized<Reader>,
    Path((id, message_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> Result<Json<StoredMessage>, ApiError> {
    let id = parse_id(&id, "conversation")?;
    let message_id = parse_id(&message_id, "message")?;
    if !matches!(req.rating.as_str(), "up" | "down") {
        return Err(ApiError::validation(format!(
            "rating '{}' is not one of up, down",
            req.rating
        )));
    }
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let stored =
        chat::conversations::set_feedback(&state.store, &who, id, message_id, &req.rating, comment)
            .await?;
    Ok(Json(stored))
}

/// The original system's path of `GET /conversations`.
#[utoipa::path(get, path = "/api/chat/conversations/", tag = "chat", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "One page of conversations", body = ConversationPage)))]
async fn legacy_list(
    state: State<AppState>,
    who: Authorized<Reader>,
    q: ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    list_conversations(state, who, q).await
}

/// The original system's path of `POST /conversations`.
#[utoipa::path(post, path = "/api/chat/conversations/", tag = "chat", request_body = NewConversation,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Conversation)))]
async fn legacy_create(
    state: State<AppState>,
    who: Authorized<Reader>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    create_conversation(state, who, body).await
}

/// The original system's path of `POST /conversations/{id}/messages`.
#[utoipa::path(post, path = "/api/chat/conversations/{id}/messages/", tag = "chat",
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = MessageRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The answer", body = ChatResponse)))]
async fn legacy_post_message(
    state: State<AppState>,
    who: Authorized<Reader>,
    id: Path<String>,
    req: ApiJson<MessageRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    post_message(state, who, id, req).await
}

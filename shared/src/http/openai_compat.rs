//! The OpenAI-compatible chat endpoint (the chat function): `POST /v1/chat/completions` and
//! `GET /v1/models`, so OpenAI clients and chat front ends (the official SDKs, LangChain, Open
//! WebUI, LibreChat) talk to the knowledge base by changing a base URL and a key.
//!
//! - The "API key" is the caller's JWT (`Authorization: Bearer`); roles, tenants, rate limits and
//!   the LLM budget apply as on `/chat`. Errors come in OpenAI's shape.
//! - The last user message is the question, the earlier user/assistant messages its history;
//!   nothing is stored. With an `X-Conversation-Id` header the conversation is the server's
//!   instead (its stored turns are the history, both messages are stored), as on
//!   `POST /conversations/{id}/messages`.
//! - Citations travel as `[n]` markers in the text and, fully, in the extra `citations` field
//!   (OpenAI clients ignore it; the Python SDK exposes it as `completion.citations`).
//! - `stream: true` answers `chat.completion.chunk` events as the model writes, then a last chunk
//!   with `usage` and `citations`, then `data: [DONE]`.

use std::convert::Infallible;

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use futures_util::StreamExt;

use super::{receiver_stream, ApiError, Authorized, Reader, Routes};
use crate::{
    chat::{self, ChatResponse, Citation, Question},
    llm::{Role, Turn},
    AppState,
};

/// The header that names a stored conversation to continue.
pub const CONVERSATION_HEADER: &str = "x-conversation-id";

/// The model id every caller may use (`GET /v1/models`).
pub const MODEL: &str = "ragbot";

pub fn routes() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(completions))
        .routes(routes!(models))
}

/// OpenAI's error body: `{"error": {"message", "type", "code", "param"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorBody,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `rate_limit_error`,
    /// `not_found_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The same stable code `/chat` answers with, e.g. `llm_budget_exhausted`.
    pub code: &'static str,
    pub param: Option<String>,
}

/// An [`ApiError`] answered in OpenAI's shape (same status, `Retry-After` and request id).
struct Oai(ApiError);

impl From<ApiError> for Oai {
    fn from(e: ApiError) -> Self {
        Oai(e)
    }
}

impl From<chat::ChatError> for Oai {
    fn from(e: chat::ChatError) -> Self {
        Oai(e.into())
    }
}

fn error_body(e: &ApiError) -> OpenAiError {
    let kind = match e.status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    OpenAiError {
        error: OpenAiErrorBody {
            message: e.message.clone(),
            kind,
            code: e.code,
            param: None,
        },
    }
}

impl IntoResponse for Oai {
    fn into_response(self) -> Response {
        let mut r = (self.0.status, Json(error_body(&self.0))).into_response();
        if let Some(secs) = self.0.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// `POST /v1/chat/completions` body: OpenAI's request. Unknown fields are ignored, as OpenAI
/// does; `temperature` and `max_tokens` are accepted and the server's `LLM_*` settings apply.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"model": "ragbot", "messages": [
    {"role": "user", "content": "How do I reset my password?"}]}))]
pub struct CompletionRequest {
    /// `ragbot`, or another id from `GET /v1/models`.
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Recorded in the logs only.
    pub user: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InMessage {
    /// `user`, `assistant` or `system` (system messages are ignored: the server's
    /// `CHAT_SYSTEM_PROMPT` keeps answers grounded).
    pub role: String,
    /// A string, or an array of `{"type": "text", "text"}` parts.
    #[schema(value_type = Object)]
    pub content: Value,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The question and its history from the messages.
fn split(messages: &[InMessage]) -> Result<(String, Vec<Turn>), ApiError> {
    let mut turns: Vec<Turn> = messages
        .iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return None,
            };
            Some(Turn {
                role,
                content: text_of(&m.content),
            })
        })
        .collect();
    match turns.pop() {
        Some(Turn {
            role: Role::User,
            content,
        }) => Ok((content, turns)),
        _ => Err(ApiError::validation(
            "messages must end with a user message: the question",
        )),
    }
}

fn model_ids(state: &AppState) -> Vec<String> {
    let provider = state.chat.provider();
    vec![
        MODEL.to_string(),
        format!("{MODEL}/{}/{}", provider.name(), provider.model()),
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// `list`
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelCard {
    pub id: String,
    /// `model`
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

/// The models a caller may name: `ragbot`, and `ragbot/<provider>/<model>` for the provider
/// behind it (both answer the same way).
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAI's model list", body = ModelList),
              (status = 401, description = "Missing or invalid key (the JWT)", body = OpenAiError)))]
async fn models(
    State(state): State<AppState>,
    who: Result<Authorized<Reader>, ApiError>,
) -> Result<Json<ModelList>, Oai> {
    who?;
    let created = chrono::Utc::now().timestamp();
    Ok(Json(ModelList {
        object: "list",
        data: model_ids(&state)
            .into_iter()
            .map(|id| ModelCard {
                id,
                object: "model",
                created,
                owned_by: "ragbot",
            })
            .collect(),
    }))
}

/// OpenAI's `chat.completion`, with the answer's citations beside it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub id: String,
    /// `chat.completion`
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: CompletionUsage,
    /// The passages the answer's `[n]` markers cite (an extra field: OpenAI clients ignore it).
    pub citations: Vec<Citation>,
    /// What `/chat` says beside the answer.
    pub ragbot: Extra,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub message: OutMessage,
    /// `stop`
    pub finish_reason: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OutMessage {
    /// `assistant`
    pub role: &'static str,
    pub content: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Extra {
    pub grounded: bool,
    #[schema(value_type = Option<Object>)]
    pub fallback: Option<Value>,
    pub cached: bool,
    pub provider: String,
    pub provider_model: String,
    /// Only with `X-Conversation-Id`: where the turn was stored.
    pub conversation_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub warnings: Vec<String>,
}

fn usage_of(r: &ChatResponse) -> CompletionUsage {
    CompletionUsage {
        prompt_tokens: r.usage.prompt_tokens,
        completion_tokens: r.usage.completion_tokens,
        total_tokens: r.usage.prompt_tokens + r.usage.completion_tokens,
    }
}

fn extra(r: &ChatResponse, stored: bool) -> Extra {
    Extra {
        grounded: r.grounded,
        fallback: r
            .fallback
            .as_ref()
            .and_then(|f| serde_json::to_value(f).ok()),
        cached: r.cached,
        provider: r.provider.clone(),
        provider_model: r.model.clone(),
        conversation_id: stored.then_some(r.conversation_id),
        message_id: stored.then_some(r.message_id),
        warnings: r.warnings.clone(),
    }
}

/// What one request asks, owned (a streamed answer runs in its own task).
struct Ask {
    state: AppState,
    tenant: crate::auth::Tenant,
    owner: String,
    conversation_id: Option<Uuid>,
    question: String,
    history: Vec<Turn>,
}

impl Ask {
    async fn run(
        &self,
        deltas: Option<&crate::llm::DeltaSender>,
    ) -> Result<ChatResponse, chat::ChatError> {
        let stateless = self.conversation_id.is_none();
        self.state
            .chat
            .answer(Question {
                conversation_id: self.conversation_id,
                history: stateless.then_some(self.history.as_slice()),
                deltas,
                ..Question::new(&self.tenant, &self.owner, &self.question)
            })
            .await
    }
}

/// Answers OpenAI's chat completion request from the caller's knowledge base: a
/// `chat.completion`, or with `stream: true` a `text/event-stream` of `chat.completion.chunk`s
/// ending in `data: [DONE]`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = CompletionRequest,
    params(("x-conversation-id" = Option<Uuid>, Header, description = "Continue (and store) this conversation of yours instead of using the messages' history")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer (a `chat.completion`, or with `stream: true` an event stream of `chat.completion.chunk`s)", body = Completion),
        (status = 400, description = "No question, or a bad message", body = OpenAiError),
        (status = 401, description = "Missing or invalid key (the JWT)", body = OpenAiError),
        (status = 404, description = "Unknown model, or no such conversation of yours", body = OpenAiError),
        (status = 429, description = "Rate limit or the daily LLM token budget reached", body = OpenAiError),
        (status = 503, description = "The language model is unavailable", body = OpenAiError),
        (status = 504, description = "The language model was too slow", body = OpenAiError)))]
async fn completions(
    State(state): State<AppState>,
    who: Result<Authorized<Reader>, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Oai> {
    let who = who?;
    let req: CompletionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(format!("the body is not an OpenAI chat request: {e}"))
    })?;
    if !model_ids(&state).contains(&req.model) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "no model '{}': use one of {} (GET /v1/models)",
                req.model,
                model_ids(&state).join(", ")
            ),
        )
        .into());
    }
    let conversation_id = match headers.get(CONVERSATION_HEADER) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok())
                .ok_or_else(|| {
                    ApiError::validation(format!("{CONVERSATION_HEADER} must be a conversation id"))
                })?,
        ),
        None => None,
    };
    let (question, history) = split(&req.messages)?;
    if let Some(user) = &req.user {
        tracing::info!(openai_user = %user, "OpenAI-compatible request");
    }
    let ask = Ask {
        tenant: who.tenant.clone(),
        owner: chat::owner_of(&who),
        state,
        conversation_id,
        question,
        history,
    };
    let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if !req.stream {
        let r = ask.run(None).await?;
        return Ok(Json(Completion {
            id,
            object: "chat.completion",
            created,
            model: req.model,
            choices: vec![CompletionChoice {
                index: 0,
                message: OutMessage {
                    role: "assistant",
                    content: r.answer.clone(),
                },
                finish_reason: "stop",
            }],
            usage: usage_of(&r),
            citations: r.citations.clone(),
            ragbot: extra(&r, conversation_id.is_some()),
        })
        .into_response());
    }
    stream(ask, id, created, req.model).await
}

/// The `chat.completion.chunk`s of one streamed answer.
#[derive(Clone)]
struct Chunks {
    id: String,
    created: i64,
    model: String,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    fn event(&self, delta: Value, finish: Option<&str>) -> Event {
        Event::default().data(self.chunk(delta, finish).to_string())
    }
}

/// The streamed answer. The answer runs in its own task; the response starts with its first
/// piece of text, so an error before any text (budget, provider down) is still a plain error
/// response with its status. A client that goes away closes the channel, which stops the
/// provider call.
async fn stream(ask: Ask, id: String, created: i64, model: String) -> Result<Response, Oai> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = ask.run(Some(&tx)).await;
        drop(tx);
        done_tx.send(result).ok();
    });
    // The first piece of text, or (no piece: the answer ended without one) its outcome.
    let first = rx.recv().await;
    if first.is_none() {
        match done_rx.await {
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(r)) => {
                // Answered without a piece (every answer sends its text, so not expected):
                // still a well-formed stream, with the answer in its last chunk.
                let (t, again) = tokio::sync::oneshot::channel();
                t.send(Ok(r)).ok();
                done_rx = again;
            }
            Err(_) => {
                return Err(ApiError::unavailable("the answer stopped before it began").into())
            }
        }
    }
    let chunks = Chunks { id, created, model };
    let mut head = vec![chunks.event(json!({"role": "assistant", "content": ""}), None)];
    head.extend(first.map(|p| chunks.event(json!({ "content": p }), None)));
    let pieces = {
        let chunks = chunks.clone();
        receiver_stream(rx).map(move |p| chunks.event(json!({ "content": p }), None))
    };
    let end = futures_util::stream::once(async move {
        let last = match done_rx.await {
            Ok(Ok(r)) => {
                let mut c = chunks.chunk(json!({}), Some("stop"));
                c["usage"] = json!(usage_of(&r));
                c["citations"] = json!(r.citations);
                c["ragbot"] = json!(extra(&r, r.conversation_id != Uuid::nil()));
                c
            }
            Ok(Err(e)) => json!(error_body(&ApiError::from(e))),
            Err(_) => json!(error_body(&ApiError::unavailable(
                "the answer stopped before it ended"
            ))),
        };
        Event::default().data(last.to_string())
    });
    let done = futures_util::stream::once(async { Event::default().data("[DONE]") });
    let all = futures_util::stream::iter(head)
        .chain(pieces)
        .chain(end)
        .chain(done)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(all).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(role: &str, content: Value) -> InMessage {
        InMessage {
            role: role.into(),
            content,
        }
    }

    #[test]
    fn the_last_user_message_is_the_question_and_the_rest_its_history() {
        let (q, h) = split(&[
            m("system", json!("be brief")),
            m("user", json!("first?")),
            m("assistant", json!("first.")),
            m(
                "user",
                json!([{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]),
            ),
        ])
        .unwrap();
        assert_eq!(q, "second\npart");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].role, Role::User);
        assert_eq!(h[1].content, "first.");
        assert!(split(&[m("user", json!("q")), m("assistant", json!("a"))]).is_err());
        assert!(split(&[]).is_err());
    }

    #[test]
    fn errors_take_openai_types() {
        let e = error_body(&ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no",
        ));
        assert_eq!(e.error.kind, "authentication_error");
        let e = error_body(&ApiError::validation("bad"));
        assert_eq!(e.error.kind, "invalid_request_error");
        let e = error_body(&ApiError::unavailable("down"));
        assert_eq!(e.error.kind, "api_error");
    }
}

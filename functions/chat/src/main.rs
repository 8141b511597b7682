//! chat Lambda: `POST /chat`, `/chat/stream`, `/conversations…`, the original system's `/api/chat/…`
//! paths and the OpenAI-compatible `/v1/…`. Cold start loads config, pool, clients, the model and
//! the LLM provider once; warm invocations reuse them.
//!
//! Behind the HTTP API the responses are buffered; with `RAGBOT_RESPONSE_STREAM=true` (the
//! template's ChatStreamFunction, a Function URL with `InvokeMode: RESPONSE_STREAM`) they stream,
//! so `/chat/stream`'s events reach the client as they are written.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (router, state) = ragbot::lambda::cold_start(ragbot::Function::Chat).await;
    if state.config.http.response_stream {
        lambda_http::run_with_streaming_response(router).await
    } else {
        lambda_http::run(router).await
    }
}

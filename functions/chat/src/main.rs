//! chat Lambda: `POST /chat`, `/conversations…` (and the original system's `/api/chat/…` paths).
//! Cold start loads config, pool, clients, the model and the LLM provider once; warm invocations
//! reuse them.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (router, _) = ragbot::lambda::cold_start("chat").await;
    lambda_http::run(router).await
}

//! health Lambda: `GET /health`, `/health/db`, `/health/ready`.
//! Cold start wires config, pool and clients once (never the model); every invocation reuses them.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (router, _) = ragbot::lambda::cold_start(ragbot::Function::Health).await;
    lambda_http::run(router).await
}

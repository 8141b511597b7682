//! retrieve Lambda: `POST /retrieve`, `GET /documents`, `GET /documents/{id}`.
//! Cold start loads config, pool, clients and the model once; warm invocations reuse them.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (router, _) = ragbot::lambda::cold_start(ragbot::Function::Retrieve).await;
    lambda_http::run(router).await
}

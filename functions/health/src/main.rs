//! health Lambda: `GET /health`, `/health/db`, `/health/ready`.
//! Cold start wires config, pool and clients once; every invocation reuses them.

use lambda_http::Error;
use ragbot::{config::EmbeddingProviderKind, http, telemetry, AppState, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("health: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init(config.log_format);
    // Health must not need the model: it answers even when the model layer is broken.
    config.embedding.provider = EmbeddingProviderKind::None;
    let Some(routes) = http::function_routes("health") else {
        eprintln!("health: no routes registered for this function");
        std::process::exit(2);
    };
    let state = match AppState::init(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("health: {e}");
            std::process::exit(2);
        }
    };
    lambda_http::run(http::app(routes, state)).await
}

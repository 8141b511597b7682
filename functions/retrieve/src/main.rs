//! retrieve Lambda: `POST /retrieve`, `GET /documents`, `GET /documents/{id}`.
//! Cold start loads config, pool, clients and the model once; warm invocations reuse them.

use lambda_http::Error;
use ragbot::{http, telemetry, AppState, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("retrieve: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init(config.log_format);
    let Some(routes) = http::function_routes("retrieve") else {
        eprintln!("retrieve: no routes registered for this function");
        std::process::exit(2);
    };
    let state = match AppState::init(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("retrieve: {e}");
            std::process::exit(2);
        }
    };
    lambda_http::run(http::app(routes, state)).await
}

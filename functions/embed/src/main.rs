//! embed Lambda: `POST /embed/qa` (+ legacy `/agents/embed-data/`), `POST /documents`,
//! `DELETE /documents/{id}`, and S3 `ObjectCreated` / `ObjectRemoved` notifications of the
//! documents bucket. Cold start loads config, pool, clients and the model once.

use ragbot::{
    http,
    lambda::{self, Triggers},
    telemetry, AppState, Config,
};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init(config.log_format);
    let Some(routes) = http::function_routes("embed") else {
        eprintln!("embed: no routes registered for this function");
        std::process::exit(2);
    };
    let state = match AppState::init(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::exit(2);
        }
    };
    let router = http::app(routes, state.clone());
    lambda::run(router, state, Triggers::S3).await
}

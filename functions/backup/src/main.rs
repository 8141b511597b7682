//! backup Lambda: `GET /backups`, `POST /backups` (admin), the EventBridge schedule that backs
//! up every tenant, and `{"action": "restore", "key": "…"}` direct invocations. It embeds nothing,
//! so it loads no model. Cold start builds config, pool and clients once.

use ragbot::{
    config::EmbeddingProviderKind,
    http,
    lambda::{self, Triggers},
    telemetry, AppState, Config,
};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("backup: {e}");
            std::process::exit(2);
        }
    };
    config.embedding.provider = EmbeddingProviderKind::None;
    telemetry::init(config.log_format);
    let Some(routes) = http::function_routes("backup") else {
        eprintln!("backup: no routes registered for this function");
        std::process::exit(2);
    };
    let state = match AppState::init(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backup: {e}");
            std::process::exit(2);
        }
    };
    let router = http::app(routes, state.clone());
    lambda::run(router, state, Triggers::Backup).await
}

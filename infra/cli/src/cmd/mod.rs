//! The subcommands, one file per group; `main.rs` holds the command line and dispatches to them.
//! Helpers that several groups use are here.

pub(crate) mod backup;
pub(crate) mod db;
pub(crate) mod dev;
pub(crate) mod eval;
pub(crate) mod invoke;
pub(crate) mod knowledge;
pub(crate) mod token;

pub(crate) use std::net::SocketAddr;

pub(crate) use ragbot::{
    auth::{mint_token, Role, Tenant},
    config::{AuthSettings, DatabaseConfig, EmbeddingSettings, TlsMode},
    embedding::EmbeddingProvider,
    http, providers, store, telemetry, AppState, Config,
};
pub(crate) use ragbot_cli::{docs, web};

/// Full app state for operator commands (logs as text on stderr unless LOG_FORMAT says otherwise).
pub(crate) async fn operator_state(check_model: bool) -> Result<AppState, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    if std::env::var("LOG_FORMAT").is_err() {
        telemetry::init(ragbot::config::LogFormat::Text);
    } else {
        telemetry::init(config.log_format);
    }
    AppState::init_with(config, check_model)
        .await
        .map_err(|e| e.to_string())
}

pub(crate) fn tenant_or_default(state: &AppState, tenant: Option<&str>) -> Result<Tenant, String> {
    match tenant {
        Some(t) => Tenant::parse(t),
        None => Ok(state.default_tenant.clone()),
    }
}

pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

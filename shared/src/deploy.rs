//! Deploy-time database set-up, run by the `migrate` function as a CloudFormation custom resource:
//! roles, database, extension and privileges (`store::bootstrap`), then the migrations as the
//! migrator role. Passwords come from Secrets Manager through the function's environment.

use serde_json::{json, Value};

use crate::{
    config::{DatabaseConfig, TlsMode},
    store,
};

#[derive(Clone)]
pub struct MigrateSettings {
    pub admin_url: String,
    pub admin_password: Option<String>,
    pub database: String,
    pub migrator_url: String,
    pub migrator_password: String,
    pub app_password: String,
    pub tls: TlsMode,
}

impl MigrateSettings {
    pub fn from_env() -> Result<Self, String> {
        let need = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("missing required environment variable {k}"))
        };
        Ok(MigrateSettings {
            admin_url: need("RAGBOT_PG_ADMIN_URL")?,
            admin_password: std::env::var("RAGBOT_PG_ADMIN_PASSWORD").ok(),
            database: std::env::var("RAGBOT_DB_NAME").unwrap_or_else(|_| "ragbot".into()),
            migrator_url: need("MIGRATOR_DATABASE_URL")?,
            migrator_password: need("RAGBOT_MIGRATOR_PASSWORD")?,
            app_password: need("RAGBOT_APP_PASSWORD")?,
            tls: std::env::var("DATABASE_TLS")
                .unwrap_or_else(|_| "require".into())
                .parse()
                .map_err(|e| format!("DATABASE_TLS: {e}"))?,
        })
    }
}

/// Bootstrap + migrate; returns the migration versions applied now.
pub async fn bootstrap_and_migrate(s: &MigrateSettings) -> Result<Vec<i32>, String> {
    store::bootstrap(&store::BootstrapSpec {
        admin_url: s.admin_url.clone(),
        admin_password: s.admin_password.clone(),
        database: s.database.clone(),
        migrator_password: s.migrator_password.clone(),
        app_password: s.app_password.clone(),
        tls: s.tls,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut migrator = DatabaseConfig::for_url(&s.migrator_url, s.tls);
    migrator.password = Some(s.migrator_password.clone());
    store::migrate(&migrator).await.map_err(|e| e.to_string())
}

/// The response CloudFormation expects at the event's `ResponseURL`.
pub fn custom_resource_response(event: &Value, outcome: &Result<Vec<i32>, String>) -> Value {
    let field = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
    let physical = event
        .get("PhysicalResourceId")
        .and_then(Value::as_str)
        .unwrap_or("ragbot-database-schema")
        .to_string();
    match outcome {
        Ok(applied) => json!({
            "Status": "SUCCESS",
            "Reason": format!("migrations applied: {applied:?}"),
            "PhysicalResourceId": physical,
            "StackId": field("StackId"), "RequestId": field("RequestId"), "LogicalResourceId": field("LogicalResourceId"),
            "Data": {"Applied": applied.len()},
        }),
        Err(e) => json!({
            "Status": "FAILED",
            "Reason": e.chars().take(500).collect::<String>(),
            "PhysicalResourceId": physical,
            "StackId": field("StackId"), "RequestId": field("RequestId"), "LogicalResourceId": field("LogicalResourceId"),
        }),
    }
}

/// Handles one custom-resource event: Create/Update run the set-up, Delete keeps the data.
pub async fn handle_custom_resource(event: &Value) -> Result<Value, String> {
    handle_custom_resource_with(event, MigrateSettings::from_env()).await
}

/// [`handle_custom_resource`] with the settings given.
pub async fn handle_custom_resource_with(
    event: &Value,
    settings: Result<MigrateSettings, String>,
) -> Result<Value, String> {
    let outcome = match event.get("RequestType").and_then(Value::as_str) {
        Some("Delete") => Ok(Vec::new()),
        _ => match settings {
            Ok(s) => bootstrap_and_migrate(&s).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "database set-up failed");
    }
    let response = custom_resource_response(event, &outcome);
    if let Some(url) = event.get("ResponseURL").and_then(Value::as_str) {
        reqwest::Client::new()
            .put(url)
            .body(response.to_string())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("answering CloudFormation: {e}"))?;
    }
    Ok(response)
}

//! Deploy-time database set-up, run by the `migrate` function as a CloudFormation custom resource:
//! roles, database, extension and privileges (`store::bootstrap`), then the migrations as the
//! migrator role. Passwords are read from Secrets Manager at run time and passed in the event
//! (see [`MigrateSettings::for_event`]).

use std::time::{Duration, Instant};

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
    /// How long to keep trying to reach the database (`RAGBOT_CONNECT_RETRY_MS`, 5 min): Aurora
    /// may be resuming from 0 ACU, or still starting on a first deploy.
    pub connect_retry_budget: Duration,
}

impl MigrateSettings {
    pub fn from_env() -> Result<Self, String> {
        Self::for_event(&Value::Null)
    }

    /// The settings for one custom-resource event. In AWS the passwords arrive in the event's
    /// `Passwords` (`admin`, `migrator`, `app`), read from Secrets Manager at run time by the
    /// stack's `SchemaSecrets` function (this function's subnets reach no Secrets Manager
    /// endpoint), so a rotated master password is never stale; else from
    /// `RAGBOT_PG_ADMIN_PASSWORD`, `RAGBOT_MIGRATOR_PASSWORD`, `RAGBOT_APP_PASSWORD`.
    pub fn for_event(event: &Value) -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let need =
            |k: &str| var(k).ok_or_else(|| format!("missing required environment variable {k}"));
        let given = |name: &str| {
            event
                .pointer(&format!("/Passwords/{name}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let password = |name: &str, env: &str| {
            given(name).or_else(|| var(env)).ok_or_else(|| {
                format!("missing the {name} password: the event's Passwords.{name}, or {env}")
            })
        };
        Ok(MigrateSettings {
            admin_url: need("RAGBOT_PG_ADMIN_URL")?,
            admin_password: given("admin").or_else(|| var("RAGBOT_PG_ADMIN_PASSWORD")),
            database: std::env::var("RAGBOT_DB_NAME").unwrap_or_else(|_| "ragbot".into()),
            migrator_url: need("MIGRATOR_DATABASE_URL")?,
            migrator_password: password("migrator", "RAGBOT_MIGRATOR_PASSWORD")?,
            app_password: password("app", "RAGBOT_APP_PASSWORD")?,
            tls: std::env::var("DATABASE_TLS")
                .unwrap_or_else(|_| "require".into())
                .parse()
                .map_err(|e| format!("DATABASE_TLS: {e}"))?,
            connect_retry_budget: Duration::from_millis(
                std::env::var("RAGBOT_CONNECT_RETRY_MS")
                    .ok()
                    .map(|v| {
                        v.trim()
                            .parse()
                            .map_err(|e| format!("RAGBOT_CONNECT_RETRY_MS: {e}"))
                    })
                    .transpose()?
                    .unwrap_or(300_000),
            ),
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
        connect_retry_budget: s.connect_retry_budget,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut migrator = DatabaseConfig::for_url(&s.migrator_url, s.tls);
    migrator.password = Some(s.migrator_password.clone());
    migrator.connect_retry_budget = s.connect_retry_budget;
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

/// Time kept back from the invocation's deadline to answer CloudFormation. An unanswered custom
/// resource holds the stack in progress for up to an hour.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(15);

/// Handles one custom-resource event: Create/Update run the set-up, Delete keeps the data.
/// `deadline` is the invocation's (none locally). Set-up still running [`ANSWER_MARGIN`] before it
/// is abandoned (its open transaction rolls back) and answered FAILED.
pub async fn handle_custom_resource(
    event: &Value,
    deadline: Option<Instant>,
) -> Result<Value, String> {
    handle_custom_resource_with(event, MigrateSettings::for_event(event), deadline).await
}

/// [`handle_custom_resource`] with the settings given.
pub async fn handle_custom_resource_with(
    event: &Value,
    settings: Result<MigrateSettings, String>,
    deadline: Option<Instant>,
) -> Result<Value, String> {
    let outcome = match event.get("RequestType").and_then(Value::as_str) {
        Some("Delete") => Ok(Vec::new()),
        _ => match settings {
            Ok(s) => within(deadline, bootstrap_and_migrate(&s)).await,
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
            .timeout(Duration::from_secs(10))
            .body(response.to_string())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("answering CloudFormation: {e}"))?;
    }
    Ok(response)
}

/// Runs the set-up until [`ANSWER_MARGIN`] before `deadline`.
async fn within(
    deadline: Option<Instant>,
    setup: impl std::future::Future<Output = Result<Vec<i32>, String>>,
) -> Result<Vec<i32>, String> {
    let Some(deadline) = deadline else {
        return setup.await;
    };
    let stop = deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline);
    tokio::time::timeout_at(stop.into(), setup)
        .await
        .unwrap_or_else(|_| {
            Err(
                "the database set-up did not finish within the migrate function's time limit; the \
                 migration in progress is rolled back, those before it are kept (a migration that \
                 rebuilds an index takes longer on a large knowledge base). Run `ragbot migrate` \
                 with MIGRATOR_DATABASE_URL from a machine that reaches the database (no time \
                 limit there), then deploy again"
                    .to_string(),
            )
        })
}

//! Dependency probes: the domain logic of the health function.
//!
//! Probes never fail: they report. Each carries its latency and, when down, the reason.

use std::{
    collections::BTreeMap,
    future::Future,
    time::{Duration, Instant},
};

use serde::Serialize;

mod settings;

pub use settings::HealthSettings;

use crate::{
    embedding::{EmbeddingError, EmbeddingProvider, EmbeddingProviderKind, EmbeddingSettings},
    llm::LlmProvider,
    ports::Probe,
    store::Store,
    telemetry,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ProbeStatus {
    #[serde(rename = "ok")]
    Ok,
    /// Not answering yet for a reason that passes (a database resuming from 0 ACU refuses
    /// connections for about 15 s): retry.
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "unavailable")]
    Unavailable,
    #[serde(rename = "not configured")]
    NotConfigured,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub status: &'static str,
    pub version: &'static str,
    pub timestamp: String,
}

pub fn liveness() -> Liveness {
    Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatabaseHealth {
    pub status: ProbeStatus,
    pub latency_ms: f64,
    /// Server product and version, e.g. "PostgreSQL 18.3".
    pub database: Option<String>,
    pub database_name: Option<String>,
    /// Installed pgvector version, e.g. "0.8.2" (None when the extension is missing).
    pub pgvector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DatabaseHealth {
    pub fn is_ok(&self) -> bool {
        self.status == ProbeStatus::Ok
    }
}

/// One round trip to PostgreSQL within `timeout`: version, database and pgvector version.
/// Logs a warning when the round trip is slower than `warn_after`.
pub async fn check_database(
    store: &Store,
    timeout: Duration,
    warn_after: Duration,
) -> DatabaseHealth {
    let start = Instant::now();
    let outcome = tokio::time::timeout(timeout, crate::store::server_info(store)).await;
    let latency = start.elapsed();
    let latency_ms = round_ms(latency);
    telemetry::metric("DatabaseLatency", latency_ms, telemetry::Unit::Milliseconds);
    let health = match outcome {
        Ok(Ok(Some(crate::store::ServerInfo {
            version,
            database: name,
            pgvector,
        }))) => DatabaseHealth {
            status: ProbeStatus::Ok,
            latency_ms,
            database: Some(format!(
                "PostgreSQL {}",
                version.split_whitespace().next().unwrap_or(&version)
            )),
            database_name: Some(name),
            pgvector,
            error: None,
        },
        Ok(Ok(None)) => down(latency_ms, "the health query returned no row".into()),
        // PostgreSQL's own "the database system is starting up".
        Ok(Err(e)) if is_starting_up(&e) => DatabaseHealth {
            status: ProbeStatus::Starting,
            ..down(latency_ms, e.to_string())
        },
        Ok(Err(e)) => down(latency_ms, e.to_string()),
        // A database that holds the connection without answering is resuming (Aurora from 0 ACU)
        // or overloaded; either way it is worth retrying.
        Err(_) => DatabaseHealth {
            status: ProbeStatus::Starting,
            ..down(
                latency_ms,
                format!("no answer within {} ms", timeout.as_millis()),
            )
        },
    };
    if !health.is_ok() {
        tracing::warn!(
            latency_ms,
            error = health.error.as_deref().unwrap_or(""),
            "database health check failed"
        );
    } else if latency > warn_after {
        tracing::warn!(
            latency_ms,
            threshold_ms = warn_after.as_millis() as u64,
            "database health check slow"
        );
    }
    health
}

/// What public callers read instead of a dependency's error (which may name hosts, users,
/// versions): the detail is logged, and shown to callers with an admin token.
pub const REDACTED_ERROR: &str =
    "unavailable (the detail is in the function's logs, or send an admin token)";

impl DatabaseHealth {
    /// The report for a public caller: no server versions, no raw error.
    pub fn public(self) -> Self {
        DatabaseHealth {
            database: None,
            database_name: None,
            pgvector: None,
            error: self.error.map(|_| REDACTED_ERROR.to_string()),
            ..self
        }
    }
}

impl Readiness {
    /// The report for a public caller: statuses and latencies, no raw errors.
    pub fn public(mut self) -> Self {
        for check in self.checks.values_mut() {
            if check.error.is_some() {
                check.error = Some(REDACTED_ERROR.to_string());
            }
        }
        self
    }
}

impl AiServices {
    /// The report for a public caller: no raw errors (they may name internal endpoints).
    pub fn public(mut self) -> Self {
        for s in [&mut self.llm, &mut self.embeddings] {
            if s.error.is_some() {
                s.error = Some(REDACTED_ERROR.to_string());
            }
        }
        self
    }
}

/// PostgreSQL's "the database system is starting up" (57P03), or a connection attempt that
/// timed out: the server holds it without answering, as Aurora does while it resumes from 0 ACU.
/// A refused connection or a refused password is `unavailable`.
fn is_starting_up(e: &crate::store::StoreError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    // Connection errors reach here as text (see `StoreError::from`).
    [
        "57p03",
        "starting up",
        "not yet accepting",
        "timed out",
        "timeout",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn down(latency_ms: f64, error: String) -> DatabaseHealth {
    DatabaseHealth {
        status: ProbeStatus::Unavailable,
        latency_ms,
        database: None,
        database_name: None,
        pgvector: None,
        error: Some(error),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub status: ProbeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// "ready" when every configured dependency answers; "starting" when one is still coming up
    /// (the database resuming) and none is down; else "not_ready".
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, Check>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// Every dependency, probed concurrently, each within `timeout`.
pub async fn check_readiness(
    store: &Store,
    probes: &[Box<dyn Probe>],
    embedder: Option<&dyn EmbeddingProvider>,
    timeout: Duration,
) -> Readiness {
    let pings = futures_util::future::join_all(
        probes
            .iter()
            .map(|p| async move { (p.name(), timed(timeout, p.ping()).await) }),
    );
    let (db, pinged, emb) = tokio::join!(
        async {
            let h = check_database(store, timeout, timeout).await;
            Check {
                status: h.status,
                latency_ms: Some(h.latency_ms),
                error: h.error,
            }
        },
        pings,
        async {
            match embedder {
                None => Check {
                    status: ProbeStatus::NotConfigured,
                    latency_ms: None,
                    error: None,
                },
                Some(e) => {
                    timed(timeout, async {
                        e.probe().await.map_err(|e| e.to_string())
                    })
                    .await
                }
            }
        },
    );
    // The database probe logs its own failures.
    let mut checks: BTreeMap<&str, Check> = pinged.into_iter().collect();
    checks.insert("embedder", emb);
    for (name, check) in &checks {
        if let Some(error) = &check.error {
            tracing::warn!(dependency = name, %error, "readiness check failed");
        }
    }
    checks.insert("database", db);
    let down = checks
        .values()
        .any(|c| c.status == ProbeStatus::Unavailable);
    let starting = checks.values().any(|c| c.status == ProbeStatus::Starting);
    Readiness {
        status: match (down, starting) {
            (true, _) => "not_ready",
            (false, true) => "starting",
            (false, false) => "ready",
        },
        checks,
    }
}

async fn timed<F>(timeout: Duration, fut: F) -> Check
where
    F: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let outcome = tokio::time::timeout(timeout, fut).await;
    let latency_ms = Some(round_ms(start.elapsed()));
    match outcome {
        Ok(Ok(())) => Check {
            status: ProbeStatus::Ok,
            latency_ms,
            error: None,
        },
        Ok(Err(e)) => Check {
            status: ProbeStatus::Unavailable,
            latency_ms,
            error: Some(e),
        },
        Err(_) => Check {
            status: ProbeStatus::Unavailable,
            latency_ms,
            error: Some(format!("no answer within {} ms", timeout.as_millis())),
        },
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// A provider's state on `/health/ai-services`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ServiceStatus {
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "unavailable")]
    Unavailable,
    #[serde(rename = "not configured")]
    NotConfigured,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AiService {
    pub provider: String,
    pub model: String,
    pub status: ServiceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AiServices {
    /// "ok" when every configured provider is available, else "degraded".
    pub status: &'static str,
    pub llm: AiService,
    pub embeddings: AiService,
}

impl AiServices {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The configured LLM and embedding providers, each probed (cheaply) within `timeout`. Only this
/// route calls them: no other route pays for a probe.
///
/// `remote_embedder` builds the configured remote embedding provider (awaited only when one is
/// configured), so a process that embeds nothing itself can still probe it.
pub async fn check_ai_services<R>(
    llm: &dyn LlmProvider,
    embedding: &EmbeddingSettings,
    remote_embedder: R,
    timeout: Duration,
) -> AiServices
where
    R: Future<Output = Result<Option<crate::embedding::SharedEmbedder>, EmbeddingError>>,
{
    use EmbeddingProviderKind as Kind;
    let llm_check = async {
        if !llm.is_remote() {
            // The extractive provider runs in-process on the embedder.
            return (ServiceStatus::Available, None, None);
        }
        let c = timed(timeout, async {
            llm.probe().await.map_err(|e| e.to_string())
        })
        .await;
        (service_status(c.status), c.latency_ms, c.error)
    };
    let embedding_check = async {
        match embedding.configured {
            Kind::None => (ServiceStatus::NotConfigured, None, None),
            Kind::Local => {
                // The model files must be where the embedder loads them from (the layer in AWS);
                // loading them is the job of the functions that embed.
                let missing: Vec<&str> = ["model.safetensors", "tokenizer.json", "config.json"]
                    .into_iter()
                    .filter(|f| !embedding.model_dir.join(f).is_file())
                    .collect();
                if missing.is_empty() {
                    (ServiceStatus::Available, None, None)
                } else {
                    (
                        ServiceStatus::Unavailable,
                        None,
                        Some(format!(
                            "{} missing in {}",
                            missing.join(", "),
                            embedding.model_dir.display()
                        )),
                    )
                }
            }
            Kind::OpenAi | Kind::Bedrock => {
                let c = timed(timeout, async {
                    let e = remote_embedder
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "no embedder".to_string())?;
                    e.embed(&["ping"])
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await;
                (service_status(c.status), c.latency_ms, c.error)
            }
        }
    };
    let ((ls, ll, le), (es, el, ee)) = tokio::join!(llm_check, embedding_check);
    let embedding_provider = match embedding.configured {
        Kind::Local => "local",
        Kind::OpenAi => "openai",
        Kind::Bedrock => "bedrock",
        Kind::None => "none",
    };
    let model = match embedding.configured {
        Kind::OpenAi => embedding.openai.as_ref().map(|o| o.model.clone()),
        Kind::Bedrock => embedding.bedrock.as_ref().map(|b| b.model.clone()),
        _ => None,
    }
    .unwrap_or_else(|| embedding.model.clone());
    let report = AiServices {
        status: if ls == ServiceStatus::Unavailable || es == ServiceStatus::Unavailable {
            "degraded"
        } else {
            "ok"
        },
        llm: AiService {
            provider: llm.name().to_string(),
            model: llm.model().to_string(),
            status: ls,
            latency_ms: ll,
            error: le,
        },
        embeddings: AiService {
            provider: embedding_provider.to_string(),
            model,
            status: es,
            latency_ms: el,
            error: ee,
        },
    };
    if !report.is_ok() {
        tracing::warn!(llm = ?report.llm.error, embeddings = ?report.embeddings.error, "AI services degraded");
    }
    report
}

fn service_status(s: ProbeStatus) -> ServiceStatus {
    match s {
        ProbeStatus::Ok => ServiceStatus::Available,
        ProbeStatus::Unavailable | ProbeStatus::Starting => ServiceStatus::Unavailable,
        ProbeStatus::NotConfigured => ServiceStatus::NotConfigured,
    }
}

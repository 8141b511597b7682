//! Typed configuration, read once from environment variables at cold start.
//!
//! Defaults serve local development (`RAGBOT_ENV=local`). Outside local, variables that name real
//! infrastructure have no default: a missing one stops start-up with one line naming it.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

/// One clear line naming the variable at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {name}: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("invalid value for environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Test,
    Staging,
    Production,
}

impl Environment {
    pub fn is_local(self) -> bool {
        matches!(self, Environment::Local | Environment::Test)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" | "dev" | "development" => Ok(Environment::Local),
            "test" => Ok(Environment::Test),
            "staging" => Ok(Environment::Staging),
            "prod" | "production" => Ok(Environment::Production),
            other => Err(format!(
                "'{other}' is not one of local, test, staging, production"
            )),
        }
    }
}

/// How the pool talks TLS to PostgreSQL (libpq's sslmode names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
}

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disable" | "off" | "false" => Ok(TlsMode::Disable),
            "prefer" => Ok(TlsMode::Prefer),
            "require" | "on" | "true" => Ok(TlsMode::Require),
            other => Err(format!("'{other}' is not one of disable, prefer, require")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// Connection string of the restricted app role (URL or key=value form). Holds a secret.
    pub url: String,
    /// Overrides the password in `url` (e.g. resolved from Secrets Manager).
    pub password: Option<String>,
    pub pool_size: usize,
    pub tls: TlsMode,
    /// Extra PEM CA bundle (e.g. the RDS global bundle), added to the web PKI roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Total time a request may spend retrying connections (Aurora resuming from 0 ACU).
    pub connect_retry_budget: Duration,
    /// `statement_timeout` of every transaction (`DATABASE_STATEMENT_TIMEOUT_MS`, 10 s): a
    /// request path query never hangs past API Gateway's 30 s.
    pub statement_timeout: Duration,
    /// `statement_timeout` of the few long transactions (`DATABASE_LONG_STATEMENT_TIMEOUT_MS`,
    /// 14 min, inside Lambda's 15): a large document's staging and swap, backups, restores.
    pub long_statement_timeout: Duration,
}

impl DatabaseConfig {
    /// Settings for a one-off connection (migrator, admin) with default timeouts.
    pub fn for_url(url: impl Into<String>, tls: TlsMode) -> Self {
        DatabaseConfig {
            url: url.into(),
            password: None,
            pool_size: 1,
            tls,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            connect_retry_budget: Duration::from_secs(0),
            statement_timeout: Duration::from_secs(10),
            long_statement_timeout: Duration::from_secs(14 * 60),
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    // Never print the connection string or password: they hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("connect_retry_budget", &self.connect_retry_budget)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub region: String,
    /// Endpoint override for S3 (local S3 server); path-style addressing is used with it.
    pub s3_endpoint: Option<String>,
    /// Endpoint override for DynamoDB (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// Endpoint override for the Lambda API (ingestion workers' invocations).
    pub lambda_endpoint: Option<String>,
    pub documents_bucket: String,
    pub backups_bucket: String,
    pub state_table: String,
    /// Where failed asynchronous invocations of the embed function are kept
    /// (`FAILED_EVENTS_BUCKET`; the stack's on-failure destination). Read by `ragbot
    /// replay-failed`, written by the dev server; `None` in AWS functions, where Lambda writes it.
    pub failed_events_bucket: Option<String>,
    /// The jobs bucket (`INGEST_JOB_BUCKET`): workers of large documents are started by a job
    /// object put there, whose notification invokes the embed function (no Lambda API endpoint).
    pub job_bucket: Option<String>,
    /// Create the buckets and the state table when missing (local stack only).
    pub create_local_resources: bool,
    /// Bounds on each AWS call, retries included (`AWS_S3_TIMEOUT_MS` 30 s, `AWS_DYNAMODB_TIMEOUT_MS`
    /// 3 s, `AWS_LAMBDA_TIMEOUT_MS` 10 s): an endpoint that accepts and never answers fails the
    /// call instead of hanging the request.
    pub s3_timeout: Duration,
    pub dynamodb_timeout: Duration,
    pub lambda_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub db_timeout: Duration,
    pub db_warn_latency: Duration,
    pub dependency_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingProviderKind {
    /// all-MiniLM-L6-v2 in-process (default).
    Local,
    /// An OpenAI-compatible `/embeddings` endpoint (OpenAI, OpenRouter, Ollama, …).
    OpenAi,
    /// Amazon Bedrock (Titan Text Embeddings v2).
    Bedrock,
    /// No embedder in this process (the health function).
    None,
}

impl FromStr for EmbeddingProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(EmbeddingProviderKind::Local),
            "openai" => Ok(EmbeddingProviderKind::OpenAi),
            "bedrock" => Ok(EmbeddingProviderKind::Bedrock),
            "none" => Ok(EmbeddingProviderKind::None),
            other => Err(format!(
                "'{other}' is not one of local, openai, bedrock, none"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// The provider this process builds (`None` in processes that embed nothing).
    pub provider: EmbeddingProviderKind,
    /// The deployment's provider (`EMBEDDING_PROVIDER`), also where this process builds none:
    /// `/health/ai-services` reports on it.
    pub configured: EmbeddingProviderKind,
    /// Directory with model.safetensors, tokenizer.json, config.json (the Lambda layer in AWS).
    pub model_dir: PathBuf,
    /// Model id recorded on every chunk.
    pub model: String,
    /// Settings of the OpenAI-compatible provider (when selected).
    pub openai: Option<crate::embedding::openai::OpenAiSettings>,
    /// Settings of the Bedrock provider (when selected).
    pub bedrock: Option<crate::aws::BedrockSettings>,
}

impl EmbeddingSettings {
    /// Only the embedding settings (for tools that need no database, e.g. `ragbot embed`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        Self::read(&Env { get: &get })
    }

    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        let provider = env.parse_or("EMBEDDING_PROVIDER", EmbeddingProviderKind::Local)?;
        let openai = if provider == EmbeddingProviderKind::OpenAi {
            let model = env.string("EMBEDDING_MODEL").ok_or(ConfigError::Missing {
                name: "EMBEDDING_MODEL",
                hint: "the provider's model name, e.g. text-embedding-3-small or nomic-embed-text",
            })?;
            Some(crate::embedding::openai::OpenAiSettings {
                base_url: env
                    .string("EMBEDDING_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".to_string()),
                api_key: env.string("EMBEDDING_API_KEY"),
                model,
                dimension: env.parse_or("EMBEDDING_DIMENSION", 384)?,
                send_dimensions: env.parse_or("EMBEDDING_SEND_DIMENSIONS", true)?,
                batch: env.parse_or("EMBEDDING_REMOTE_BATCH", 96)?,
                timeout: env.millis_or("EMBEDDING_TIMEOUT_MS", 10_000)?,
                max_retries: env.parse_or("EMBEDDING_MAX_RETRIES", 4)?,
            })
        } else {
            None
        };
        let bedrock = if provider == EmbeddingProviderKind::Bedrock {
            Some(crate::aws::BedrockSettings {
                region: env
                    .string("AWS_REGION")
                    .or_else(|| env.string("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".to_string()),
                endpoint: env.string("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
                model: env
                    .string("EMBEDDING_MODEL")
                    .unwrap_or_else(|| "amazon.titan-embed-text-v2:0".to_string()),
                dimension: env.parse_or("EMBEDDING_DIMENSION", 1024)?,
                concurrency: env.parse_or("EMBEDDING_CONCURRENCY", 8)?,
                timeout: env.millis_or("EMBEDDING_TIMEOUT_MS", 10_000)?,
                max_retries: env.parse_or("EMBEDDING_MAX_RETRIES", 4)?,
            })
        } else {
            None
        };
        Ok(EmbeddingSettings {
            provider,
            configured: provider,
            openai,
            bedrock,
            model_dir: env
                .string("EMBEDDING_MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/opt/model/all-MiniLM-L6-v2")),
            model: env
                .string("EMBEDDING_MODEL")
                .unwrap_or_else(|| "sentence-transformers/all-MiniLM-L6-v2".to_string()),
        })
    }
}

/// Authentication and tenancy.
#[derive(Clone)]
pub struct AuthSettings {
    /// HS256 secret for in-process verification (`JWT_SECRET`); a development default in local/test.
    pub jwt_secret: Option<String>,
    /// JWKS for RS256/ES256 verification: a URL (`JWT_JWKS_URL`, fetched at cold start and on an
    /// unknown key id) or the JSON itself (`JWT_JWKS`).
    pub jwks_url: Option<String>,
    pub jwks_json: Option<String>,
    /// Required `iss` / `aud` claims of in-process verified tokens.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The tenant of anonymous callers, of S3 keys outside `tenants/<tenant>/`, and — in a
    /// single-tenant deployment — of tokens that name none (`TENANT_CODE`).
    pub default_tenant: String,
    /// `TENANCY`: `multi` (the default) refuses tokens that name no tenant; `single` gives them
    /// `TENANT_CODE`.
    pub tenancy: Tenancy,
    /// Lets requests without a token retrieve and chat (`ALLOW_ANONYMOUS`).
    pub allow_anonymous: bool,
}

/// Whether tokens must name their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenancy {
    /// Every token names its tenant (claim `tenant` or `custom:tenant`); one that names none is
    /// refused rather than put into some default tenant.
    Multi,
    /// One tenant: tokens that name none belong to `TENANT_CODE`.
    Single,
}

impl FromStr for Tenancy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "multi" => Ok(Tenancy::Multi),
            "single" => Ok(Tenancy::Single),
            other => Err(format!("'{other}' is not one of multi, single")),
        }
    }
}

/// The development secret used when `JWT_SECRET` is unset in local/test; refused elsewhere.
pub const LOCAL_DEV_JWT_SECRET: &str = "ragbot-local-development-secret-not-for-production";
pub const LOCAL_DEV_ISSUER: &str = "ragbot-local";
pub const LOCAL_DEV_AUDIENCE: &str = "ragbot";

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks_url", &self.jwks_url)
            .field("jwks_json", &self.jwks_json.as_ref().map(|_| "<set>"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("default_tenant", &self.default_tenant)
            .field("tenancy", &self.tenancy)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl AuthSettings {
    /// Only the auth settings (for tools that need no database, e.g. `ragbot token`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        let env = Env { get: &get };
        let environment = env.environment()?;
        Self::read(&env, environment.is_local())
    }

    /// The auth settings from explicit variables (tests, tools).
    pub fn from_env_map(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        let env = Env { get: &get };
        let environment = env.environment()?;
        Self::read(&env, environment.is_local())
    }

    fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
        local: bool,
    ) -> Result<Self, ConfigError> {
        let jwt_secret = match (env.string("JWT_SECRET"), local) {
            (Some(s), _) if s.len() < 32 => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason: format!(
                        "an HS256 secret must be at least 32 bytes (got {})",
                        s.len()
                    ),
                })
            }
            (Some(s), _) => Some(s),
            (None, true) => Some(LOCAL_DEV_JWT_SECRET.to_string()),
            (None, false) => None,
        };
        let default_tenant = env
            .string("TENANT_CODE")
            .unwrap_or_else(|| "default".to_string());
        if let Err(reason) = crate::auth::Tenant::parse(&default_tenant) {
            return Err(ConfigError::Invalid {
                name: "TENANT_CODE",
                reason,
            });
        }
        let auth = AuthSettings {
            jwt_secret,
            jwks_url: env.string("JWT_JWKS_URL"),
            jwks_json: env.string("JWT_JWKS"),
            issuer: env
                .string("JWT_ISSUER")
                .or_else(|| local.then(|| LOCAL_DEV_ISSUER.to_string())),
            audience: env
                .string("JWT_AUDIENCE")
                .or_else(|| local.then(|| LOCAL_DEV_AUDIENCE.to_string())),
            default_tenant,
            tenancy: env.parse_or("TENANCY", Tenancy::Multi)?,
            allow_anonymous: env.parse_or("ALLOW_ANONYMOUS", false)?,
        };
        if (auth.jwks_url.is_some() || auth.jwks_json.is_some()) && auth.issuer.is_none() {
            return Err(ConfigError::Missing {
                name: "JWT_ISSUER",
                hint: "tokens verified against a JWKS must name their issuer",
            });
        }
        Ok(auth)
    }
}

/// What to do with a request when the rate-limit counters cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Serve the request (and log a warning + metric): availability first.
    Open,
    /// Refuse with 503.
    Closed,
}

impl FromStr for FailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            other => Err(format!("'{other}' is not one of open, closed")),
        }
    }
}

/// Fixed-window request limits per principal; 0 means unlimited.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub anonymous: u32,
    pub user: u32,
    pub admin: u32,
    pub window: Duration,
    pub on_error: FailMode,
    /// Budget for the counter update; beyond it the request is treated per `on_error`.
    pub timeout: Duration,
}

/// Ingestion: chunk sizes in tokens of the embedding model, embedding batch size.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    pub embed_batch: usize,
    /// Large documents: when they are split among workers, and how.
    pub jobs: crate::ingest::jobs::JobSettings,
    /// The Lambda function that runs ingestion workers (`INGEST_JOB_FUNCTION`, else this
    /// function when running in Lambda); `None`: workers are tasks of this process.
    pub job_function: Option<String>,
    /// The largest file ingested (`INGEST_MAX_FILE_BYTES`, 50 MiB): a presigned upload may not
    /// declare more, and a bigger object put into the bucket is marked failed.
    pub max_file_bytes: u64,
    /// How long the ingestion ledger's claim on one S3 write lasts unrenewed
    /// (`INGEST_CLAIM_LEASE_SECONDS`, 45; see [`crate::aws::LEDGER_LEASE`]).
    pub claim_lease: Duration,
}

/// Limits on requests: body size, CORS.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// `RAGBOT_RESPONSE_STREAM=true`: the function streams its responses (a Function URL with
    /// `InvokeMode: RESPONSE_STREAM`, for `/chat/stream`) instead of buffering them.
    pub response_stream: bool,
    /// Allowed CORS origins; `["*"]` for any; empty for no CORS headers.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub service_name: String,
    pub log_format: LogFormat,
    pub database: DatabaseConfig,
    pub aws: AwsSettings,
    pub health: HealthSettings,
    pub embedding: EmbeddingSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub http: HttpSettings,
    pub ingest: IngestSettings,
    pub retrieve: crate::retrieval::RetrieveSettings,
    pub llm: crate::llm::LlmSettings,
    pub chat: crate::chat::ChatSettings,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { get: &get };
        let environment = env.environment()?;
        let local = environment.is_local();
        // Outside local, names of real infrastructure must be given.
        let infra = |name: &'static str, default: &'static str, hint: &'static str| match (
            env.string(name),
            local,
        ) {
            (Some(v), _) => Ok(v),
            (None, true) => Ok(default.to_string()),
            (None, false) => Err(ConfigError::Missing { name, hint }),
        };

        let url = env.string("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: "the PostgreSQL connection string of the app role, e.g. postgres://ragbot_app@127.0.0.1:5432/ragbot",
        })?;
        tokio_postgres::Config::from_str(&url).map_err(|e| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: format!("not a PostgreSQL connection string ({e})"),
        })?;
        let pool_size: usize = env.parse_or("DATABASE_POOL_SIZE", 2)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        let database = DatabaseConfig {
            url,
            password: env.string("DATABASE_PASSWORD"),
            pool_size,
            tls: env.parse_or(
                "DATABASE_TLS",
                if local {
                    TlsMode::Disable
                } else {
                    TlsMode::Require
                },
            )?,
            ca_file: env.string("DATABASE_CA_FILE").map(PathBuf::from),
            connect_timeout: env.millis_or("DATABASE_CONNECT_TIMEOUT_MS", 3_000)?,
            connect_retry_budget: env.millis_or("DATABASE_CONNECT_RETRY_MS", 12_000)?,
            statement_timeout: env.millis_or("DATABASE_STATEMENT_TIMEOUT_MS", 10_000)?,
            long_statement_timeout: env
                .millis_or("DATABASE_LONG_STATEMENT_TIMEOUT_MS", 14 * 60_000)?,
        };

        let common_endpoint = env.string("AWS_ENDPOINT_URL");
        let aws = AwsSettings {
            region: env
                .string("AWS_REGION")
                .or_else(|| env.string("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            s3_endpoint: env
                .string("AWS_ENDPOINT_URL_S3")
                .or_else(|| common_endpoint.clone()),
            dynamodb_endpoint: env
                .string("AWS_ENDPOINT_URL_DYNAMODB")
                .or_else(|| common_endpoint.clone()),
            lambda_endpoint: env.string("AWS_ENDPOINT_URL_LAMBDA").or(common_endpoint),
            documents_bucket: infra(
                "DOCUMENTS_BUCKET",
                "ragbot-documents",
                "the S3 bucket holding source documents",
            )?,
            backups_bucket: infra(
                "BACKUPS_BUCKET",
                "ragbot-backups",
                "the S3 bucket receiving backups",
            )?,
            state_table: infra(
                "STATE_TABLE",
                "ragbot-state",
                "the DynamoDB table for request-path state",
            )?,
            failed_events_bucket: env
                .string("FAILED_EVENTS_BUCKET")
                .or_else(|| local.then(|| "ragbot-failed-events".to_string())),
            job_bucket: env.string("INGEST_JOB_BUCKET"),
            create_local_resources: env.parse_or("RAGBOT_CREATE_LOCAL_RESOURCES", false)?,
            s3_timeout: env.millis_or("AWS_S3_TIMEOUT_MS", 30_000)?,
            dynamodb_timeout: env.millis_or("AWS_DYNAMODB_TIMEOUT_MS", 3_000)?,
            lambda_timeout: env.millis_or("AWS_LAMBDA_TIMEOUT_MS", 10_000)?,
        };
        if aws.create_local_resources && !local {
            return Err(ConfigError::Invalid {
                name: "RAGBOT_CREATE_LOCAL_RESOURCES",
                reason: "may only be set with RAGBOT_ENV=local or test".into(),
            });
        }

        let health = HealthSettings {
            db_timeout: env.millis_or("HEALTH_DB_TIMEOUT_MS", 5_000)?,
            db_warn_latency: env.millis_or("HEALTH_DB_WARN_MS", 100)?,
            dependency_timeout: env.millis_or("HEALTH_DEPENDENCY_TIMEOUT_MS", 3_000)?,
        };

        let embedding = EmbeddingSettings::read(&env)?;

        let auth = AuthSettings::read(&env, local)?;

        let rate_limit = RateLimitSettings {
            anonymous: env.parse_or("RATE_LIMIT_ANONYMOUS", 100)?,
            user: env.parse_or("RATE_LIMIT_USER", 1000)?,
            admin: env.parse_or("RATE_LIMIT_ADMIN", 0)?,
            window: Duration::from_secs(env.parse_or("RATE_LIMIT_WINDOW_SECONDS", 86_400)?),
            on_error: env.parse_or("RATE_LIMIT_ON_ERROR", FailMode::Open)?,
            timeout: env.millis_or("RATE_LIMIT_TIMEOUT_MS", 1_000)?,
        };
        if rate_limit.window.is_zero() {
            return Err(ConfigError::Invalid {
                name: "RATE_LIMIT_WINDOW_SECONDS",
                reason: "must be at least 1".into(),
            });
        }

        let ingest = IngestSettings {
            chunk_max_tokens: env.parse_or("CHUNK_MAX_TOKENS", 200)?,
            chunk_overlap_tokens: env.parse_or("CHUNK_OVERLAP_TOKENS", 30)?,
            embed_batch: env.parse_or("EMBED_BATCH_SIZE", 32)?,
            jobs: {
                let d = crate::ingest::jobs::JobSettings::default();
                crate::ingest::jobs::JobSettings {
                    threshold_chunks: env
                        .parse_or("INGEST_JOB_THRESHOLD_CHUNKS", d.threshold_chunks)?,
                    max_workers: env.parse_or("INGEST_JOB_MAX_WORKERS", d.max_workers)?,
                    chunks_per_worker: env
                        .parse_or("INGEST_JOB_CHUNKS_PER_WORKER", d.chunks_per_worker)?,
                    lease: Duration::from_secs(
                        env.parse_or("INGEST_JOB_LEASE_SECONDS", d.lease.as_secs())?,
                    ),
                    reserve: Duration::from_secs(
                        env.parse_or("INGEST_JOB_RESERVE_SECONDS", d.reserve.as_secs())?,
                    ),
                    swap_rows_per_second: env
                        .parse_or("INGEST_JOB_SWAP_ROWS_PER_SECOND", d.swap_rows_per_second)?,
                }
            },
            job_function: env
                .string("INGEST_JOB_FUNCTION")
                .or_else(|| env.string("AWS_LAMBDA_FUNCTION_NAME")),
            max_file_bytes: env.parse_or("INGEST_MAX_FILE_BYTES", 50 * 1024 * 1024)?,
            claim_lease: Duration::from_secs(env.parse_or(
                "INGEST_CLAIM_LEASE_SECONDS",
                crate::aws::LEDGER_LEASE.as_secs(),
            )?),
        };
        for (name, value) in [
            ("INGEST_JOB_MAX_WORKERS", ingest.jobs.max_workers),
            (
                "INGEST_JOB_CHUNKS_PER_WORKER",
                ingest.jobs.chunks_per_worker,
            ),
            (
                "INGEST_JOB_LEASE_SECONDS",
                ingest.jobs.lease.as_secs() as usize,
            ),
            (
                "INGEST_CLAIM_LEASE_SECONDS",
                ingest.claim_lease.as_secs() as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        // all-MiniLM-L6-v2 reads 256 tokens, two of which are [CLS] and [SEP].
        if !(16..=254).contains(&ingest.chunk_max_tokens) {
            return Err(ConfigError::Invalid {
                name: "CHUNK_MAX_TOKENS",
                reason: format!(
                    "{} is outside 16..=254 (the model reads 256 tokens including 2 special ones)",
                    ingest.chunk_max_tokens
                ),
            });
        }
        if ingest.chunk_overlap_tokens >= ingest.chunk_max_tokens {
            return Err(ConfigError::Invalid {
                name: "CHUNK_OVERLAP_TOKENS",
                reason: "must be smaller than CHUNK_MAX_TOKENS".into(),
            });
        }
        if ingest.embed_batch == 0 {
            return Err(ConfigError::Invalid {
                name: "EMBED_BATCH_SIZE",
                reason: "must be at least 1".into(),
            });
        }

        let defaults = crate::retrieval::RetrieveSettings::default();
        let retrieve = crate::retrieval::RetrieveSettings {
            default_top_k: env.parse_or("RETRIEVE_TOP_K", defaults.default_top_k)?,
            max_top_k: env.parse_or("RETRIEVE_MAX_TOP_K", defaults.max_top_k)?,
            default_threshold: env.parse_or("RETRIEVE_THRESHOLD", defaults.default_threshold)?,
            max_query_chars: env.parse_or("RETRIEVE_MAX_QUERY_CHARS", defaults.max_query_chars)?,
            ef_search: env.parse_or("HNSW_EF_SEARCH", defaults.ef_search)?,
            fallback_questions: env
                .parse_or("FALLBACK_SAMPLE_QUESTIONS", defaults.fallback_questions)?,
            disclaimer: env
                .string("FALLBACK_DISCLAIMER")
                .unwrap_or(defaults.disclaimer),
        };
        if retrieve.default_top_k == 0 || retrieve.default_top_k > retrieve.max_top_k {
            return Err(ConfigError::Invalid {
                name: "RETRIEVE_TOP_K",
                reason: format!(
                    "must be between 1 and RETRIEVE_MAX_TOP_K ({})",
                    retrieve.max_top_k
                ),
            });
        }
        if !(-1.0..=1.0).contains(&retrieve.default_threshold) {
            return Err(ConfigError::Invalid {
                name: "RETRIEVE_THRESHOLD",
                reason: "a cosine similarity between -1 and 1".into(),
            });
        }
        if !(1..=1000).contains(&retrieve.ef_search) {
            return Err(ConfigError::Invalid {
                name: "HNSW_EF_SEARCH",
                reason: "must be between 1 and 1000 (pgvector's range)".into(),
            });
        }

        let http = HttpSettings {
            max_body_bytes: env.parse_or("MAX_BODY_BYTES", 6 * 1024 * 1024)?,
            response_stream: env.parse_or("RAGBOT_RESPONSE_STREAM", false)?,
            cors_origins: env
                .string("CORS_ALLOWED_ORIGINS")
                .or_else(|| local.then(|| "*".to_string()))
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        };

        let log_format = match env
            .string("LOG_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    reason: format!("'{other}' is not one of json, text"),
                })
            }
        };

        Ok(Config {
            environment,
            service_name: env
                .string("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "ragbot".to_string()),
            log_format,
            database,
            aws,
            health,
            embedding,
            auth,
            rate_limit,
            http,
            ingest,
            retrieve,
            llm: crate::llm::LlmSettings::read(&env)?,
            chat: crate::chat::ChatSettings::read(&env)?,
        })
    }
}

/// Typed reads of configuration variables, shared by the modules that define their own settings.
pub(crate) struct Env<'a, F: Fn(&str) -> Option<String>> {
    get: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// `RAGBOT_ENV`; unset, it is `production` inside Lambda (where `AWS_LAMBDA_FUNCTION_NAME` is
    /// set), so that a deployment never falls back to the local development defaults (such as
    /// the public development JWT secret), and `local` elsewhere.
    pub(crate) fn environment(&self) -> Result<Environment, ConfigError> {
        let default = if self.string("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            Environment::Production
        } else {
            Environment::Local
        };
        self.parse_or("RAGBOT_ENV", default)
    }

    /// The variable's value; empty or blank counts as unset.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.string(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("'{v}': {e}"),
            }),
        }
    }

    pub(crate) fn millis_or(
        &self,
        name: &'static str,
        default_ms: u64,
    ) -> Result<Duration, ConfigError> {
        self.parse_or(name, default_ms).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn local_defaults_fill_infrastructure_names() -> Result<(), ConfigError> {
        let c = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://a@localhost/db")]))?;
        assert_eq!(c.environment, Environment::Local);
        assert_eq!(c.aws.documents_bucket, "ragbot-documents");
        assert_eq!(c.database.pool_size, 2);
        assert_eq!(c.database.tls, TlsMode::Disable);
        assert_eq!(c.health.db_timeout, Duration::from_secs(5));
        Ok(())
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        let line = err.to_string();
        assert!(
            line.starts_with("missing required environment variable DATABASE_URL"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn inside_lambda_the_default_environment_is_production() -> Result<(), ConfigError> {
        // No RAGBOT_ENV: inside Lambda nothing falls back to the local development defaults.
        let err = Config::from_lookup(lookup(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "stack-retrieve"),
            ("DATABASE_URL", "postgres://a@h/db"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("DOCUMENTS_BUCKET"), "{err}");
        let auth = AuthSettings::from_env_map(&[("AWS_LAMBDA_FUNCTION_NAME", "stack-chat")])?;
        assert_eq!(
            auth.jwt_secret, None,
            "the public development secret is refused"
        );
        assert_eq!(auth.issuer, None);
        assert_eq!(auth.tenancy, Tenancy::Multi);
        // Outside Lambda the default stays local, and the choice stays explicit either way.
        let auth = AuthSettings::from_env_map(&[])?;
        assert_eq!(auth.jwt_secret.as_deref(), Some(LOCAL_DEV_JWT_SECRET));
        let auth = AuthSettings::from_env_map(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "x"),
            ("RAGBOT_ENV", "local"),
            ("TENANCY", "single"),
        ])?;
        assert_eq!(auth.jwt_secret.as_deref(), Some(LOCAL_DEV_JWT_SECRET));
        assert_eq!(auth.tenancy, Tenancy::Single);
        Ok(())
    }

    #[test]
    fn production_requires_real_resource_names() {
        let err = Config::from_lookup(lookup(&[
            ("RAGBOT_ENV", "production"),
            ("DATABASE_URL", "postgres://a@h/db"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("missing required environment variable DOCUMENTS_BUCKET")
        );
    }

    #[test]
    fn production_defaults_to_tls_and_refuses_local_resource_creation() -> Result<(), ConfigError> {
        let base = [
            ("RAGBOT_ENV", "production"),
            ("DATABASE_URL", "postgres://a@h/db"),
            ("DOCUMENTS_BUCKET", "d"),
            ("BACKUPS_BUCKET", "b"),
            ("STATE_TABLE", "t"),
        ];
        let c = Config::from_lookup(lookup(&base))?;
        assert_eq!(c.database.tls, TlsMode::Require);
        let mut with_create = base.to_vec();
        with_create.push(("RAGBOT_CREATE_LOCAL_RESOURCES", "true"));
        assert!(matches!(
            Config::from_lookup(lookup(&with_create)),
            Err(ConfigError::Invalid {
                name: "RAGBOT_CREATE_LOCAL_RESOURCES",
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn invalid_values_are_reported_with_the_value() {
        let err = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("DATABASE_POOL_SIZE", "many"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_POOL_SIZE: 'many'"),
            "{err}"
        );
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "not a url ::")])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "DATABASE_URL",
                ..
            }
        ));
    }

    #[test]
    fn auth_defaults_are_local_only() -> Result<(), ConfigError> {
        let c = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://a@h/db")]))?;
        assert_eq!(c.auth.jwt_secret.as_deref(), Some(LOCAL_DEV_JWT_SECRET));
        assert_eq!(c.auth.default_tenant, "default");
        assert!(!c.auth.allow_anonymous);
        assert_eq!((c.rate_limit.anonymous, c.rate_limit.user), (100, 1000));
        let prod = Config::from_lookup(lookup(&[
            ("RAGBOT_ENV", "production"),
            ("DATABASE_URL", "postgres://a@h/db"),
            ("DOCUMENTS_BUCKET", "d"),
            ("BACKUPS_BUCKET", "b"),
            ("STATE_TABLE", "t"),
        ]))?;
        assert!(prod.auth.jwt_secret.is_none() && prod.auth.issuer.is_none());
        assert!(prod.http.cors_origins.is_empty());
        let short = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("JWT_SECRET", "short"),
        ]));
        assert!(matches!(
            short,
            Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                ..
            })
        ));
        let tenant = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("TENANT_CODE", "no spaces please"),
        ]));
        assert!(matches!(
            tenant,
            Err(ConfigError::Invalid {
                name: "TENANT_CODE",
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn openai_provider_needs_a_model_and_keeps_its_key_secret() -> Result<(), ConfigError> {
        let missing = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("EMBEDDING_PROVIDER", "openai"),
        ]));
        assert!(matches!(
            missing,
            Err(ConfigError::Missing {
                name: "EMBEDDING_MODEL",
                ..
            })
        ));
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_MODEL", "text-embedding-3-small"),
            ("EMBEDDING_API_KEY", "sk-very-secret"),
        ]))?;
        let o = c.embedding.openai.clone().ok_or(ConfigError::Missing {
            name: "x",
            hint: "",
        })?;
        assert_eq!(
            (o.base_url.as_str(), o.dimension),
            ("https://api.openai.com/v1", 384)
        );
        assert!(!format!("{c:?}").contains("sk-very-secret"));
        Ok(())
    }

    #[test]
    fn debug_output_redacts_secrets() -> Result<(), ConfigError> {
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://app:hunter2@localhost/db"),
            ("DATABASE_PASSWORD", "s3cret"),
            (
                "JWT_SECRET",
                "a-very-long-secret-value-of-at-least-32-bytes",
            ),
        ]))?;
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("s3cret") && !dbg.contains("a-very-long"),
            "{dbg}"
        );
        Ok(())
    }
}

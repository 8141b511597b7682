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
    pub documents_bucket: String,
    pub backups_bucket: String,
    pub state_table: String,
    /// Create the buckets and the state table when missing (local stack only).
    pub create_local_resources: bool,
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
    /// No embedder in this process (the health function).
    None,
}

impl FromStr for EmbeddingProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(EmbeddingProviderKind::Local),
            "none" => Ok(EmbeddingProviderKind::None),
            other => Err(format!("'{other}' is not one of local, none")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    pub provider: EmbeddingProviderKind,
    /// Directory with model.safetensors, tokenizer.json, config.json (the Lambda layer in AWS).
    pub model_dir: PathBuf,
    /// Model id recorded on every chunk.
    pub model: String,
}

impl EmbeddingSettings {
    /// Only the embedding settings (for tools that need no database, e.g. `ragbot embed`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        Self::read(&Env { get: &get })
    }

    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        Ok(EmbeddingSettings {
            provider: env.parse_or("EMBEDDING_PROVIDER", EmbeddingProviderKind::Local)?,
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

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub service_name: String,
    pub log_format: LogFormat,
    pub database: DatabaseConfig,
    pub aws: AwsSettings,
    pub health: HealthSettings,
    pub embedding: EmbeddingSettings,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { get: &get };
        let environment: Environment = env.parse_or("RAGBOT_ENV", Environment::Local)?;
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
            dynamodb_endpoint: env.string("AWS_ENDPOINT_URL_DYNAMODB").or(common_endpoint),
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
            create_local_resources: env.parse_or("RAGBOT_CREATE_LOCAL_RESOURCES", false)?,
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
        })
    }
}

struct Env<'a, F: Fn(&str) -> Option<String>> {
    get: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// The variable's value; empty or blank counts as unset.
    fn string(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
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

    fn millis_or(&self, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
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
    fn debug_output_redacts_secrets() -> Result<(), ConfigError> {
        let c = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://app:hunter2@localhost/db"),
            ("DATABASE_PASSWORD", "s3cret"),
        ]))?;
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cret"), "{dbg}");
        Ok(())
    }
}

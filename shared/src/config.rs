//! Typed configuration, read once from environment variables at cold start.
//!
//! Defaults serve local development (`RAGBOT_ENV=local`). Outside local, variables that name real
//! infrastructure have no default: a missing one stops start-up with one line naming it.

pub use crate::auth::{
    AuthSettings, Tenancy, LOCAL_DEV_AUDIENCE, LOCAL_DEV_ISSUER, LOCAL_DEV_JWT_SECRET,
};
pub use crate::aws::AwsSettings;
pub use crate::embedding::{BedrockSettings, EmbeddingProviderKind, EmbeddingSettings};
use crate::env::Env;
pub use crate::env::{ConfigError, Environment};
pub use crate::health::HealthSettings;
pub use crate::ingest::{IngestSettings, JobSettings};
pub use crate::ratelimit::{FailMode, RateLimitSettings};
pub use crate::retrieval::RetrieveSettings;
pub use crate::store::{DatabaseConfig, TlsMode};
pub use crate::telemetry::LogFormat;

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

impl HttpSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
        local: bool,
    ) -> Result<Self, ConfigError> {
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
        Ok(http)
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
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub http: HttpSettings,
    pub ingest: IngestSettings,
    pub retrieve: RetrieveSettings,
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
        let database = DatabaseConfig::read(&env, local)?;

        let aws = AwsSettings::read(&env, local)?;

        let health = HealthSettings::read(&env)?;
        let embedding = EmbeddingSettings::read(&env)?;

        let auth = AuthSettings::read(&env, local)?;

        let ingest = IngestSettings::read(&env)?;
        let rate_limit = RateLimitSettings::read(&env)?;
        let retrieve = RetrieveSettings::read(&env)?;
        let http = HttpSettings::read(&env, local)?;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

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

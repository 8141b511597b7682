//! How the pool reaches PostgreSQL (`DATABASE_*`).

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use crate::env::{ConfigError, Env};

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

impl DatabaseConfig {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
        local: bool,
    ) -> Result<Self, ConfigError> {
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
        Ok(DatabaseConfig {
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
        })
    }
}

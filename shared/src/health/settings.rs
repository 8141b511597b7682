//! Health probes' timeouts (`HEALTH_*`).

use std::time::Duration;

use crate::env::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub db_timeout: Duration,
    pub db_warn_latency: Duration,
    pub dependency_timeout: Duration,
}

impl HealthSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
        let health = HealthSettings {
            db_timeout: env.millis_or("HEALTH_DB_TIMEOUT_MS", 5_000)?,
            db_warn_latency: env.millis_or("HEALTH_DB_WARN_MS", 100)?,
            dependency_timeout: env.millis_or("HEALTH_DEPENDENCY_TIMEOUT_MS", 3_000)?,
        };
        Ok(health)
    }
}

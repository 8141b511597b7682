//! Request limits (`RATE_LIMIT_*`).

use std::{str::FromStr, time::Duration};

use crate::env::{ConfigError, Env};

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

impl RateLimitSettings {
    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
    ) -> Result<Self, ConfigError> {
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

        Ok(rate_limit)
    }
}

//! Reading configuration variables: the one `Env` reader every module's settings use, the one
//! error naming the variable at fault, and the deployment environment. Imports nothing of the
//! crate: `config` composes the settings each module defines with it.

use std::{fmt, str::FromStr, time::Duration};

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

/// Typed reads of configuration variables, shared by the modules that define their own settings.
pub struct Env<'a, F: Fn(&str) -> Option<String>> {
    pub(crate) get: &'a F,
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

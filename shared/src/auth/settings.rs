//! Authentication and tenancy settings (`JWT_*`, `TENANT_CODE`, `TENANCY`, `ALLOW_ANONYMOUS`).

use std::{fmt, str::FromStr};

use crate::env::{ConfigError, Env};

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

    pub(crate) fn read<F: Fn(&str) -> Option<String>>(
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
        if let Err(reason) = super::Tenant::parse(&default_tenant) {
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

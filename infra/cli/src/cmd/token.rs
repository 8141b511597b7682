//! `ragbot token`: development tokens.

use super::*;

pub(crate) fn mint(
    sub: &str,
    tenant: Option<&str>,
    roles: &str,
    ttl: &str,
) -> Result<String, String> {
    let settings = AuthSettings::from_env().map_err(|e| e.to_string())?;
    let tenant = Tenant::parse(tenant.unwrap_or(&settings.default_tenant))?;
    let roles = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| Role::parse(r).ok_or_else(|| format!("unknown role '{r}': use admin or user")))
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = humantime::parse_duration(ttl).map_err(|e| format!("--ttl '{ttl}': {e}"))?;
    mint_token(&settings, sub, &tenant, &roles, ttl)
}

//! Principals: who is calling (subject, tenant, roles), read from verified JWT claims, and what
//! each role may do.

use std::{collections::BTreeSet, fmt, net::IpAddr};

use serde_json::{Map, Value};

/// A validated tenant code: 1–64 characters of `[A-Za-z0-9_.-]`, starting with a letter or digit.
/// Every row carries one and every query of the data layer is scoped by one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(pub(crate) String);

impl Tenant {
    pub fn parse(code: &str) -> Result<Tenant, String> {
        let ok_len = (1..=64).contains(&code.len());
        let ok_first = code
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok_len && ok_first && ok_chars {
            Ok(Tenant(code.to_string()))
        } else {
            Err(format!(
                "'{code}' is not a valid tenant code (1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit)"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Writes knowledge, runs backups; may also do everything a user may.
    Admin,
    /// Retrieves and chats.
    User,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "admin" | "admins" => Some(Role::Admin),
            "user" | "users" => Some(Role::User),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Knowledge writes, backups: `admin`.
    Admin,
    /// Retrieve and chat: `user` or `admin`, or anyone when anonymous access is on.
    Reader,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A verified token's subject.
    Subject(String),
    /// No token (only when anonymous access is switched on), known by source address.
    Anonymous { source_ip: Option<IpAddr> },
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub identity: Identity,
    pub tenant: Tenant,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn anonymous(tenant: Tenant, source_ip: Option<IpAddr>) -> Self {
        Principal {
            identity: Identity::Anonymous { source_ip },
            tenant,
            roles: BTreeSet::new(),
        }
    }

    /// Reads a principal from verified claims: `sub`; tenant from `tenant` or `custom:tenant`
    /// (else `single_tenant`, when the deployment has one; else the token is refused); roles
    /// from `roles` or `cognito:groups` — a JSON array, or a string list as API Gateway passes
    /// claims (`"[admin user]"`, `"admin,user"`, `"admin user"`).
    pub fn from_claims(
        claims: &Map<String, Value>,
        single_tenant: Option<&Tenant>,
    ) -> Result<Self, AuthError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err(AuthError::BadClaims(
                    "the token has no 'sub' (subject) claim".into(),
                ))
            }
        };
        let tenant = match claims.get("tenant").or_else(|| claims.get("custom:tenant")) {
            None => single_tenant.cloned().ok_or_else(|| {
                AuthError::BadClaims(
                    "the token names no tenant (claim 'tenant' or 'custom:tenant'), and this deployment serves several (TENANCY=multi): ask an administrator to set your tenant".into(),
                )
            })?,
            Some(Value::String(s)) => Tenant::parse(s.trim()).map_err(AuthError::BadClaims)?,
            Some(_) => {
                return Err(AuthError::BadClaims(
                    "the 'tenant' claim must be a string".into(),
                ))
            }
        };
        let mut roles = BTreeSet::new();
        for key in ["roles", "cognito:groups"] {
            match claims.get(key) {
                Some(Value::Array(items)) => roles.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(Role::parse),
                ),
                Some(Value::String(s)) => roles.extend(
                    s.trim_matches(|c| c == '[' || c == ']')
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter_map(Role::parse),
                ),
                _ => {}
            }
        }
        Ok(Principal {
            identity: Identity::Subject(subject),
            tenant,
            roles,
        })
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self.identity, Identity::Anonymous { .. })
    }

    /// Subject, or `anonymous` (for logs and stored conversations).
    pub fn subject(&self) -> &str {
        match &self.identity {
            Identity::Subject(s) => s,
            Identity::Anonymous { .. } => "anonymous",
        }
    }

    /// Whether this principal may use a route needing `access`, as an error a caller can act on.
    pub fn authorize(&self, access: Access) -> Result<(), AuthError> {
        let admin = self.roles.contains(&Role::Admin);
        let user = admin || self.roles.contains(&Role::User);
        match access {
            Access::Admin if admin => Ok(()),
            Access::Admin => Err(AuthError::Forbidden(
                "this route needs the 'admin' role".into(),
            )),
            Access::Reader if user || self.is_anonymous() => Ok(()),
            Access::Reader => Err(AuthError::Forbidden(
                "this route needs the 'user' or 'admin' role; the token grants neither".into(),
            )),
        }
    }

    /// The rate-limit key: per subject within its tenant, or per source address.
    pub fn rate_key(&self) -> String {
        match &self.identity {
            Identity::Subject(s) => format!("sub#{}#{s}", self.tenant),
            Identity::Anonymous {
                source_ip: Some(ip),
            } => format!("ip#{ip}"),
            Identity::Anonymous { source_ip: None } => "ip#unknown".to_string(),
        }
    }
}

/// Why a request is not authenticated (401) or not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <JWT>'")]
    Missing,
    #[error("malformed Authorization header: expected 'Bearer <JWT>'")]
    MalformedHeader,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token's algorithm is not accepted: {0}")]
    Algorithm(String),
    #[error("the token is signed with an unknown key id")]
    UnknownKey,
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's claims are unusable: {0}")]
    BadClaims(String),
    #[error("tokens cannot be verified here: no JWT secret or JWKS is configured")]
    NoVerifier,
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// 403 for a known caller lacking a role; 401 for everything else.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn default() -> Tenant {
        Tenant("default".into())
    }

    fn single() -> Option<&'static Tenant> {
        static T: std::sync::OnceLock<Tenant> = std::sync::OnceLock::new();
        Some(T.get_or_init(default))
    }

    #[test]
    fn tenant_codes_are_validated() {
        assert!(Tenant::parse("acme-corp_1.eu").is_ok());
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(Tenant::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_cognito_and_plain_claims() -> Result<(), AuthError> {
        let p = Principal::from_claims(
            &claims(
                json!({"sub": "u1", "custom:tenant": "acme", "cognito:groups": ["admin", "other"]}),
            ),
            None,
        )?;
        assert_eq!(p.tenant.as_str(), "acme");
        assert_eq!(p.roles, BTreeSet::from([Role::Admin]));
        // API Gateway's JWT authorizer passes arrays as "[a b]" strings.
        let p = Principal::from_claims(
            &claims(json!({"sub": "u2", "cognito:groups": "[user admin]"})),
            single(),
        )?;
        assert_eq!(p.tenant, default());
        assert_eq!(p.roles, BTreeSet::from([Role::Admin, Role::User]));
        let p = Principal::from_claims(&claims(json!({"sub": "u3", "roles": "user"})), single())?;
        assert_eq!(p.roles, BTreeSet::from([Role::User]));
        Ok(())
    }

    #[test]
    fn rejects_unusable_claims() {
        assert!(matches!(
            Principal::from_claims(&claims(json!({"roles": ["admin"]})), single()),
            Err(AuthError::BadClaims(_))
        ));
        assert!(matches!(
            Principal::from_claims(&claims(json!({"sub": "u", "tenant": "../x"})), single()),
            Err(AuthError::BadClaims(_))
        ));
        // A multi-tenant deployment refuses a token that names no tenant.
        let no_tenant = claims(json!({"sub": "u", "roles": ["admin"]}));
        assert!(matches!(
            Principal::from_claims(&no_tenant, None),
            Err(AuthError::BadClaims(m)) if m.contains("names no tenant")
        ));
    }

    #[test]
    fn roles_grant_access() -> Result<(), AuthError> {
        let user =
            Principal::from_claims(&claims(json!({"sub": "u", "roles": ["user"]})), single())?;
        let admin =
            Principal::from_claims(&claims(json!({"sub": "a", "roles": ["admin"]})), single())?;
        let none = Principal::from_claims(&claims(json!({"sub": "n"})), single())?;
        let anon = Principal::anonymous(default(), None);
        assert!(user.authorize(Access::Reader).is_ok());
        assert!(user
            .authorize(Access::Admin)
            .is_err_and(|e| e.is_forbidden()));
        assert!(admin.authorize(Access::Admin).is_ok() && admin.authorize(Access::Reader).is_ok());
        assert!(none.authorize(Access::Reader).is_err());
        assert!(anon.authorize(Access::Reader).is_ok() && anon.authorize(Access::Admin).is_err());
        assert_eq!(user.rate_key(), "sub#default#u");
        assert_eq!(anon.rate_key(), "ip#unknown");
        Ok(())
    }
}

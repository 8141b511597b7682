//! In-process JWT verification (jsonwebtoken, aws-lc-rs backend): HS256 with a shared secret, or
//! RS256/ES256 (and their 384/512 and PSS siblings) against a JWKS — Cognito's shape. Used locally
//! and whenever a request carries no API Gateway authorizer context.

use std::time::{Duration, Instant};

use jsonwebtoken::{
    errors::ErrorKind,
    jwk::{Jwk, JwkSet},
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::{AuthError, AuthSettings};
use crate::env::ConfigError;

/// How often an unknown key id may trigger a JWKS refetch (key rotation).
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, how long tokens with an unknown key id are refused without fetching
/// again (a negative cache: an unreachable issuer must not cost every request a 5 s timeout).
const JWKS_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
}

struct Jwks {
    url: Option<String>,
    http: reqwest::Client,
    state: RwLock<JwksState>,
    /// One refetch at a time: concurrent tokens with a new key id wait for it instead of each
    /// fetching.
    refreshing: tokio::sync::Mutex<()>,
}

struct JwksState {
    set: JwkSet,
    /// The last successful fetch.
    fetched: Option<Instant>,
    /// The last failed fetch (cleared by a success).
    failed: Option<Instant>,
}

impl Verifier {
    /// Builds the verifier at cold start. A JWKS URL is fetched now; if the issuer is unreachable
    /// the function still starts and fetches again on the first token.
    pub async fn from_settings(s: &AuthSettings) -> Result<Verifier, ConfigError> {
        let hs256 = s
            .jwt_secret
            .as_deref()
            .map(|secret| DecodingKey::from_secret(secret.as_bytes()));
        let jwks = match (&s.jwks_json, &s.jwks_url) {
            (None, None) => None,
            (json, url) => {
                let set = match json {
                    Some(j) => {
                        serde_json::from_str::<JwkSet>(j).map_err(|e| ConfigError::Invalid {
                            name: "JWT_JWKS",
                            reason: format!("not a JWK set ({e})"),
                        })?
                    }
                    None => JwkSet { keys: Vec::new() },
                };
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| ConfigError::Invalid {
                        name: "JWT_JWKS_URL",
                        reason: format!("HTTP client: {e}"),
                    })?;
                let jwks = Jwks {
                    url: url.clone(),
                    http,
                    state: RwLock::new(JwksState {
                        set,
                        fetched: None,
                        failed: None,
                    }),
                    refreshing: tokio::sync::Mutex::new(()),
                };
                if jwks.url.is_some() {
                    if let Err(e) = jwks.refresh().await {
                        tracing::warn!(error = %e, "could not fetch the JWKS at start-up; will retry on the first token");
                    }
                }
                Some(jwks)
            }
        };
        Ok(Verifier {
            hs256,
            jwks,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.hs256.is_some() || self.jwks.is_some()
    }

    /// Verifies signature, expiry, issuer and audience; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        if !self.is_configured() {
            return Err(AuthError::NoVerifier);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and other names jsonwebtoken does not know fail here.
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
                AuthError::Algorithm("unsigned or unknown algorithm".into())
            }
            _ => AuthError::Malformed(e.to_string()),
        })?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| AuthError::Algorithm("HS256 tokens are not accepted here".into()))?,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AuthError::Algorithm(format!(
                        "{:?} tokens need a JWKS, none is configured",
                        header.alg
                    ))
                })?;
                jwks.key_for(header.kid.as_deref(), header.alg).await?
            }
            other => return Err(AuthError::Algorithm(format!("{other:?} is not accepted"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        // The audience is checked below: Cognito access tokens carry `client_id` instead of `aud`.
        validation.validate_aud = false;
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidSignature => AuthError::BadSignature,
                    ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                    ErrorKind::InvalidAudience => AuthError::WrongAudience,
                    ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                        AuthError::Algorithm(e.to_string())
                    }
                    ErrorKind::MissingRequiredClaim(c) => {
                        AuthError::Malformed(format!("missing required claim '{c}'"))
                    }
                    _ => AuthError::Malformed(e.to_string()),
                }
            })?;
        if let Some(aud) = &self.audience {
            if !audience_matches(&data.claims, aud) {
                return Err(AuthError::WrongAudience);
            }
        }
        Ok(data.claims)
    }
}

fn audience_matches(claims: &Map<String, Value>, expected: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(expected)),
        _ => claims.get("client_id").and_then(Value::as_str) == Some(expected),
    }
}

impl Jwks {
    async fn refresh(&self) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let fetched: Result<JwkSet, String> = async {
            self.http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("fetching {url}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("{url} is not a JWK set: {e}"))
        }
        .await;
        let mut state = self.state.write().await;
        match fetched {
            Ok(set) => {
                state.set = set;
                state.fetched = Some(Instant::now());
                state.failed = None;
                Ok(())
            }
            Err(e) => {
                state.failed = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Whether an unknown key id may fetch the JWKS again now.
    async fn may_refetch(&self) -> bool {
        let state = self.state.read().await;
        let fetched_long_ago = state
            .fetched
            .is_none_or(|t| t.elapsed() >= JWKS_REFRESH_INTERVAL);
        let failed_recently = state
            .failed
            .is_some_and(|t| t.elapsed() < JWKS_RETRY_AFTER_FAILURE);
        fetched_long_ago && !failed_recently
    }

    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.lookup(kid, alg).await? {
            return Ok(key);
        }
        // Unknown key id: the issuer may have rotated its keys. Refetch, at most once a minute,
        // and not again for a while after a failed fetch.
        if self.url.is_some() && self.may_refetch().await {
            let _one_at_a_time = self.refreshing.lock().await;
            // Another token may have refetched while this one waited.
            if self.may_refetch().await {
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "JWKS refresh failed");
                }
            }
            if let Some(key) = self.lookup(kid, alg).await? {
                return Ok(key);
            }
        }
        Err(AuthError::UnknownKey)
    }

    async fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<DecodingKey>, AuthError> {
        let state = self.state.read().await;
        let jwk: Option<&Jwk> = match kid {
            Some(kid) => state.set.find(kid),
            // No key id: only unambiguous with a single key.
            None if state.set.keys.len() == 1 => state.set.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else {
            return Ok(None);
        };
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{alg:?}") {
                return Err(AuthError::Algorithm(format!(
                    "the key is for {key_alg:?}, the token says {alg:?}"
                )));
            }
        }
        DecodingKey::from_jwk(jwk)
            .map(Some)
            .map_err(|e| AuthError::Malformed(format!("unusable JWK: {e}")))
    }
}

/// Mints a token for `sub` in `tenant` with `roles`, valid for `ttl`, signed with the configured
/// HS256 secret and carrying the configured issuer and audience (`ragbot token`, tests).
pub fn mint_token(
    settings: &AuthSettings,
    sub: &str,
    tenant: &super::Tenant,
    roles: &[super::Role],
    ttl: Duration,
) -> Result<String, String> {
    let secret = settings
        .jwt_secret
        .as_deref()
        .ok_or("JWT_SECRET is not set (and RAGBOT_ENV is not local/test): nothing to sign with")?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(sub));
    claims.insert("tenant".into(), Value::from(tenant.as_str()));
    claims.insert(
        "roles".into(),
        Value::from(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
    );
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl.as_secs()));
    if let Some(iss) = &settings.issuer {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = &settings.audience {
        claims.insert("aud".into(), Value::from(aud.as_str()));
    }
    mint_hs256(secret, &claims)
}

/// Mints an HS256 token over `claims` (the `ragbot token` command and tests).
pub fn mint_hs256(secret: &str, claims: &Map<String, Value>) -> Result<String, String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> AuthSettings {
        AuthSettings {
            jwt_secret: Some("s".repeat(32)),
            jwks_url: None,
            jwks_json: None,
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            default_tenant: "default".into(),
            tenancy: crate::config::Tenancy::Multi,
            allow_anonymous: false,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[tokio::test]
    async fn verifies_hs256_and_rejects_each_defect() -> Result<(), String> {
        let v = Verifier::from_settings(&settings())
            .await
            .map_err(|e| e.to_string())?;
        let secret = "s".repeat(32);
        let good = json!({"sub": "u", "iss": "iss", "aud": "aud", "exp": now() + 60});
        let token = mint_hs256(&secret, &claims(good.clone()))?;
        assert_eq!(
            v.verify(&token).await.map_err(|e| e.to_string())?["sub"],
            "u"
        );

        let mut expired = good.clone();
        expired["exp"] = json!(now() - 3600);
        let t = mint_hs256(&secret, &claims(expired))?;
        assert_eq!(v.verify(&t).await, Err(AuthError::Expired));

        // Not valid before an hour from now (beyond the 30 s leeway); a past nbf is fine.
        let mut early = good.clone();
        early["nbf"] = json!(now() + 3600);
        let t = mint_hs256(&secret, &claims(early))?;
        assert_eq!(v.verify(&t).await, Err(AuthError::NotYetValid));
        let mut started = good.clone();
        started["nbf"] = json!(now() - 10);
        let t = mint_hs256(&secret, &claims(started))?;
        assert!(v.verify(&t).await.is_ok());

        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("evil");
        let t = mint_hs256(&secret, &claims(wrong_iss))?;
        assert_eq!(v.verify(&t).await, Err(AuthError::WrongIssuer));

        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!(["other"]);
        let t = mint_hs256(&secret, &claims(wrong_aud))?;
        assert_eq!(v.verify(&t).await, Err(AuthError::WrongAudience));

        // Cognito access tokens: client_id instead of aud.
        let mut cognito = good.clone();
        cognito.as_object_mut().map(|m| m.remove("aud"));
        cognito["client_id"] = json!("aud");
        let t = mint_hs256(&secret, &claims(cognito))?;
        assert!(v.verify(&t).await.is_ok());

        let forged = mint_hs256(&"x".repeat(32), &claims(good))?;
        assert_eq!(v.verify(&forged).await, Err(AuthError::BadSignature));

        // alg: none, hand-built.
        let b64 = base64_url;
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"u","iss":"iss","aud":"aud","exp":{}}}"#,
                now() + 60
            ))
        );
        assert!(matches!(
            v.verify(&none).await,
            Err(AuthError::Algorithm(_))
        ));
        assert!(matches!(
            v.verify("not.a.jwt").await,
            Err(AuthError::Malformed(_))
        ));
        Ok(())
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[tokio::test]
    async fn no_verifier_configured_is_its_own_error() -> Result<(), String> {
        let mut s = settings();
        s.jwt_secret = None;
        let v = Verifier::from_settings(&s)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(v.verify("a.b.c").await, Err(AuthError::NoVerifier));
        Ok(())
    }
}

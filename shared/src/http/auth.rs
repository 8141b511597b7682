//! The `Authorized<A>` extractor: every non-public route takes one. It authenticates the caller
//! (API Gateway's verified JWT claims, else an in-process verified bearer token, else anonymous
//! when allowed), checks the role the route needs, and counts the request against the caller's rate
//! limit — in that order, so denied requests use no quota.

use std::{marker::PhantomData, net::IpAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use lambda_http::request::RequestContext;
use serde_json::{Map, Value};

use super::ApiError;
use crate::{
    auth::{Access, AuthError, Principal},
    ratelimit::{self, Decision},
    AppState,
};

/// What a route requires; see [`Admin`] and [`Reader`].
pub trait AccessLevel: Send + Sync + 'static {
    const ACCESS: Access;
}

/// Knowledge writes and backups: the `admin` role.
pub struct Admin;
/// Retrieve and chat: `user` or `admin`, or anonymous callers when `ALLOW_ANONYMOUS=true`.
pub struct Reader;

impl AccessLevel for Admin {
    const ACCESS: Access = Access::Admin;
}
impl AccessLevel for Reader {
    const ACCESS: Access = Access::Reader;
}

/// An authenticated, authorised and rate-counted caller.
pub struct Authorized<A: AccessLevel> {
    pub principal: Principal,
    _access: PhantomData<A>,
}

impl<A: AccessLevel> std::ops::Deref for Authorized<A> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<A: AccessLevel> FromRequestParts<AppState> for Authorized<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state, A::ACCESS).await?;
        let span = tracing::Span::current();
        span.record("subject", principal.subject());
        span.record("tenant", principal.tenant.as_str());
        principal.authorize(A::ACCESS).map_err(ApiError::from)?;
        match ratelimit::check(state.limiter.as_ref(), &principal, &state.config.rate_limit).await {
            Ok(Decision::Allowed { .. } | Decision::Unlimited) => {}
            Ok(Decision::Limited { limit, retry_after }) => {
                return Err(ApiError::rate_limited(limit, retry_after));
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate limit unavailable (RATE_LIMIT_ON_ERROR=closed)");
                return Err(ApiError::unavailable(
                    "the rate limiter is unavailable; retry shortly",
                ));
            }
        }
        Ok(Authorized {
            principal,
            _access: PhantomData,
        })
    }
}

/// Whether the request carries a valid token with the `admin` role (public routes show admins
/// detail they keep from everyone else). Not rate-counted; any failure is simply "no".
pub(crate) async fn is_admin(parts: &Parts, state: &AppState) -> bool {
    authenticate(parts, state, Access::Admin)
        .await
        .is_ok_and(|p| p.authorize(Access::Admin).is_ok())
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    access: Access,
) -> Result<Principal, ApiError> {
    let default_tenant = &state.default_tenant;
    let single_tenant =
        (state.config.auth.tenancy == crate::config::Tenancy::Single).then_some(default_tenant);
    // In AWS the HTTP API's JWT authorizer has verified the token: use its claims.
    if let Some(claims) = authorizer_claims(parts) {
        return Ok(Principal::from_claims(&claims, single_tenant)?);
    }
    match bearer_token(parts)? {
        Some(token) => {
            let claims = state.verifier.verify(token).await?;
            Ok(Principal::from_claims(&claims, single_tenant)?)
        }
        None if state.config.auth.allow_anonymous && access == Access::Reader => Ok(
            Principal::anonymous(default_tenant.clone(), source_ip(parts)),
        ),
        None => Err(AuthError::Missing.into()),
    }
}

fn authorizer_claims(parts: &Parts) -> Option<Map<String, Value>> {
    match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
            Some(
                jwt.claims
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        }
        _ => None,
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, AuthError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::MalformedHeader),
    }
}

/// API Gateway's source address; the socket peer on the dev server.
pub(crate) fn source_ip(parts: &Parts) -> Option<IpAddr> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>() {
        return ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    }
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

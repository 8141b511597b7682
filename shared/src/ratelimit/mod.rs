//! Fixed-window request limits per principal (anonymous callers per source address). The port is
//! [`RateLimiter`]; the adapter is DynamoDB ([`crate::aws::DynamoRateLimiter`]), whose atomic
//! conditional counters hold across every concurrent Lambda environment.

mod settings;

pub use crate::ports::{Decision, RateLimitError, RateLimiter, Window};
pub use settings::{FailMode, RateLimitSettings};

use crate::auth::{Principal, Role};

/// The limit that applies to a principal (0 = none).
pub fn limit_for(p: &Principal, s: &RateLimitSettings) -> u32 {
    if p.is_anonymous() {
        s.anonymous
    } else if p.roles.contains(&Role::Admin) {
        s.admin
    } else {
        s.user
    }
}

/// Counts a request of `p`; applies the fail mode when the counters cannot be reached in time.
pub async fn check(
    limiter: &dyn RateLimiter,
    p: &Principal,
    s: &RateLimitSettings,
) -> Result<Decision, RateLimitError> {
    let limit = limit_for(p, s);
    if limit == 0 {
        return Ok(Decision::Unlimited);
    }
    let key = p.rate_key();
    let outcome = tokio::time::timeout(
        s.timeout,
        limiter.hit(&key, limit, Window::current(s.window)),
    )
    .await
    .unwrap_or_else(|_| Err(RateLimitError(format!("no answer within {:?}", s.timeout))));
    match (outcome, s.on_error) {
        (Ok(d), _) => Ok(d),
        (Err(e), FailMode::Open) => {
            tracing::warn!(error = %e, "rate limit not enforced: counters unavailable (RATE_LIMIT_ON_ERROR=open)");
            crate::telemetry::metric("RateLimitUnavailable", 1.0, crate::telemetry::Unit::Count);
            Ok(Decision::Unlimited)
        }
        (Err(e), FailMode::Closed) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows_are_aligned() {
        let w = Window::at(86_400 * 3 + 17, Duration::from_secs(86_400));
        assert_eq!(
            w,
            Window {
                start: 259_200,
                end: 345_600
            }
        );
        let w = Window::at(61, Duration::from_secs(60));
        assert_eq!((w.start, w.end), (60, 120));
    }
}

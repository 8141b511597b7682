//! Fixed-window request counters shared by every concurrent environment (DynamoDB in AWS).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::future::BoxFuture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
    },
    Limited {
        limit: u32,
        retry_after: Duration,
    },
    /// No limit applies to this principal.
    Unlimited,
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit counters unavailable: {0}")]
pub struct RateLimitError(pub String);

/// The current fixed window: `[start, start + window)` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    pub fn at(now_epoch: u64, window: Duration) -> Window {
        let len = window.as_secs().max(1);
        let start = now_epoch - now_epoch % len;
        Window {
            start,
            end: start + len,
        }
    }
    pub fn current(window: Duration) -> Window {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Window::at(now, window)
    }
}

pub trait RateLimiter: Send + Sync {
    /// Counts one request against `key` in `window`, unless the count already reached `limit`.
    fn hit<'a>(
        &'a self,
        key: &'a str,
        limit: u32,
        window: Window,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>>;
}

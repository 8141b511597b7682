//! Backoff for calls to remote providers (embeddings, LLMs): exponential with jitter, and the
//! `Retry-After` a throttling provider sends.

use std::time::Duration;

/// 250 ms, 500 ms, 1 s, 2 s, … (capped at 16 s) plus up to 25 % jitter.
pub fn backoff(attempt: u32) -> Duration {
    with_jitter(Duration::from_millis(250) * 2u32.saturating_pow(attempt.min(6)))
}

/// `d` plus up to a quarter of it, so that clients retrying together spread out. Cheap jitter
/// without a RNG dependency: sub-microsecond clock noise.
pub fn with_jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d / 4 * (nanos % 1000) / 1000
}

/// A `Retry-After` header in seconds (the HTTP-date form is not used by the providers we talk to).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// A provider's non-success answer, read once: its status, `Retry-After`, the start of its body,
/// and whether retrying may help (429 and 5xx).
pub struct Failure {
    pub status: reqwest::StatusCode,
    pub retry_after: Option<Duration>,
    pub detail: String,
    pub retryable: bool,
}

impl Failure {
    pub async fn read(resp: reqwest::Response) -> Failure {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        Failure {
            status,
            retry_after,
            detail: text.chars().take(300).collect(),
            retryable: status.as_u16() == 429 || status.is_server_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(
            backoff(0) >= Duration::from_millis(250) && backoff(0) < Duration::from_millis(313)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(40) <= Duration::from_secs(20));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("2"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }
}

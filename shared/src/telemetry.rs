//! Structured JSON logs (tracing) and CloudWatch Embedded Metric Format lines.

use std::io::{IsTerminal, Write};

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

pub const METRIC_NAMESPACE: &str = "ragbot";

/// Installs the global subscriber once. JSON by default (one object per line, with the current
/// span's fields such as `request_id`); `RUST_LOG` filters, default `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(json_layer(std::io::stdout)).try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The JSON log layer: one object per line with the event's fields flattened and the current
/// span's fields (`request_id`, `subject`, `tenant`, ...) under `span`. Lambda adds the timestamp.
pub fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(writer)
}

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
        }
    }
}

/// Emits one CloudWatch Embedded Metric Format line on stdout, dimensioned by function name.
pub fn metric(name: &str, value: f64, unit: Unit) {
    let line = emf_line(
        name,
        value,
        unit,
        &function_name(),
        chrono::Utc::now().timestamp_millis(),
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_string())
}

fn emf_line(name: &str, value: f64, unit: Unit, function: &str, timestamp_ms: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": unit.as_str()}],
            }],
        },
        "Function": function,
        name: value,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_has_the_documented_shape() -> Result<(), serde_json::Error> {
        let line = emf_line(
            "DatabaseLatency",
            3.5,
            Unit::Milliseconds,
            "health",
            1_700_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line)?;
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "ragbot");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "DatabaseLatency"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
        assert_eq!(v["Function"], "health");
        assert_eq!(v["DatabaseLatency"], 3.5);
        assert!(!line.contains('\n'));
        Ok(())
    }
}

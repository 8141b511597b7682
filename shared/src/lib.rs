//! ragbot — the one library crate behind every Lambda function.
//!
//! Layout (ports and adapters):
//! - [`config`]: typed configuration, read once from the environment at cold start.
//! - [`store`]: PostgreSQL + pgvector (pool, migrations, bootstrap of roles).
//! - [`aws`]: S3 and DynamoDB clients, built once, plus local resource creation.
//! - [`auth`]: principals (subject, tenant, roles) and JWT verification.
//! - [`llm`]: answer generation behind the `LlmProvider` port (extractive, OpenAI-compatible,
//!   Bedrock).
//! - [`chat`]: the answer pipeline: conversation memory, retrieval, generation, citations, cache.
//! - [`ratelimit`]: fixed-window limits per principal (DynamoDB counters).
//! - [`health`]: dependency probes (domain logic of the health function).
//! - [`http`]: the HTTP surface shared by Lambda and the local dev server (routes, error envelope,
//!   request ids).
//! - [`telemetry`]: JSON logs and CloudWatch Embedded Metric Format lines.
//! - [`app`]: the per-process state built once in `main`.

pub mod app;
pub mod auth;
pub mod aws;
pub mod backup;
pub mod chat;
pub mod config;
pub mod deploy;
pub mod embedding;
pub mod env;
pub mod function;
pub mod future;
pub mod health;
pub mod http;
pub mod ingest;
pub mod lambda;
pub mod llm;
pub mod parsing;
pub mod ports;
pub mod providers;
pub mod ratelimit;
pub mod retrieval;
pub mod retry;
pub mod store;
pub mod telemetry;

pub use app::AppState;
pub use config::Config;
pub use function::Function;
pub use future::BoxFuture;

//! ragbot — the one library crate behind every Lambda function.
//!
//! # Layers
//!
//! Each file imports files of its own layer or of lower ones, never of a higher one, and no two
//! files import each other, directly or in a ring. `tests/layers` checks both from the source
//! text (`cargo test -p ragbot-tests --test layers`; `RAGBOT_PRINT_LAYERS=1 … -- --nocapture`
//! prints who imports whom). Lowest first:
//!
//! 1. **Base** — [`env`] (the one reader of configuration variables), [`future`], [`retry`],
//!    [`telemetry`], [`auth`] (principals, tenants, JWT verification). Import nothing above.
//! 2. **Ports and pure logic** — [`ports`] (the traits adapters implement: objects, the ingestion
//!    ledger, job dispatch, the answer cache, token budgets, rate-limit counters, readiness
//!    probes), [`embedding`] (the embedding port, the in-process model, the OpenAI-compatible
//!    client), [`llm`] (the answer-generation port, prompts, the extractive and
//!    OpenAI-compatible providers), [`parsing`] (bytes → text, no I/O).
//! 3. **Adapters** — [`store`] (PostgreSQL + pgvector: the pool, migrations, and every SQL
//!    statement, behind functions named for what they do) and [`aws`] (S3, DynamoDB, Bedrock,
//!    the Lambda API, S3 event decoding). They implement ports and never import the domain.
//! 4. **Domain** — [`ingest`], [`retrieval`], [`chat`], [`backup`], [`health`],
//!    [`ratelimit`]: the product's rules. They reach PostgreSQL through [`store`]'s functions
//!    and everything else through [`ports`]; they never name `aws` or an SDK crate.
//! 5. **Composition** — [`config`] (composes the settings each module defines and reads for
//!    itself), [`providers`] (builds the configured embedder and LLM), [`function`] (the
//!    functions and what each serves), [`app`] (the per-process state built once in `main`),
//!    [`deploy`] (the migrate custom resource).
//! 6. **Entry points** — [`http`] (routes, error envelope, request ids: handlers parse, call one
//!    domain function, map its result) and [`lambda`] (cold start, event dispatch).
//!
//! # Features
//!
//! `full` (the default, for tests, the CLI and the bench) is `model` (the in-process MiniLM),
//! `parsers` (PDF, HTML, CSV), `bedrock`, `lambda-api` and `operator` (seeding, evaluation,
//! re-embedding, the local S3 notifier). Each function's `Cargo.toml` names the ones it uses:
//! health and backup none, retrieve and chat `model` + `bedrock`, embed also `parsers`.

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

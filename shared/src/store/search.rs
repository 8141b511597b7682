//! The retrieval search's SQL: nearest chunks by cosine distance (HNSW), or hybrid (vector and
//! full-text ranks fused by reciprocal rank), in one tenant-scoped transaction with
//! `hnsw.ef_search` and pgvector 0.8's iterative index scans set locally (so filtered queries
//! still return `top_k` rows); and sample questions for the fallback.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::{documents, Store, StoreError, TenantTx};
use crate::auth::Tenant;

/// Reciprocal rank fusion constant (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// At most this many keyword matches are ranked by `ts_rank_cd` in hybrid mode. A query made of
/// common words matches a large share of a big knowledge base, and ranking every match dominated
/// the query (136 ms p50 at 100k chunks); such a query carries little keyword signal, and the
/// vector ranking still covers the whole base. Rare keywords (the reason for hybrid mode) match
/// far fewer chunks than this, so they are all ranked.
pub const KEYWORD_CANDIDATES: i64 = 2000;

/// Which chunks may match (every condition given must hold).
#[derive(Debug, Clone, Default)]
pub struct ChunkFilter {
    pub document_ids: Option<Vec<Uuid>>,
    /// Chunks whose metadata contains this JSON object.
    pub metadata: Option<Value>,
    /// The document's source (`api`, `s3`, `qa`).
    pub source: Option<String>,
    /// A case-insensitive substring of the document's title.
    pub title: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// How the candidates are ranked.
#[derive(Debug, Clone)]
pub enum Ranking {
    /// Cosine similarity on the HNSW index.
    Vector,
    /// Vector and full-text (`websearch_to_tsquery` of `text`) ranks, fused.
    Hybrid { text: String },
}

/// One search.
#[derive(Debug, Clone)]
pub struct NearestQuery<'a> {
    pub embedding: &'a [f32],
    pub filter: &'a ChunkFilter,
    pub ranking: Ranking,
    /// Results below this cosine similarity are cut (hybrid: unless they match the keywords).
    pub threshold: f32,
    pub top_k: usize,
}

/// A chunk found, with its document's title.
#[derive(Debug, Clone)]
pub struct ChunkHit {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub title: String,
    pub text: String,
    pub question: Option<String>,
    pub answer: Option<String>,
    pub metadata: Value,
    pub similarity: f64,
    pub score: f64,
}

/// A tenant-scoped transaction set up for searches: `hnsw.ef_search` (at least `top_k`) and
/// relaxed-order iterative index scans, in the BEGIN's round trip.
pub async fn begin(store: &Store, tenant: &Tenant, ef_search: u32) -> Result<TenantTx, StoreError> {
    let ef = ef_search.to_string();
    store
        .begin_with(
            tenant,
            &[
                ("hnsw.ef_search", ef.as_str()),
                ("hnsw.iterative_scan", "relaxed_order"),
            ],
        )
        .await
}

/// Query parameters collected while the SQL is built.
#[derive(Default)]
struct Binds {
    values: Vec<(Box<dyn ToSql + Sync + Send>, Type)>,
}

impl Binds {
    fn push<T: ToSql + Sync + Send + 'static>(&mut self, v: T, ty: Type) -> String {
        self.values.push((Box::new(v), ty));
        format!("${}", self.values.len())
    }
    fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values
            .iter()
            .map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone()))
            .collect()
    }
}

/// ` AND …` conditions on chunk `c` for the filter (document-level ones as a semi-join, so the
/// HNSW scan over `chunks` stays the plan's driver).
fn filter_sql(f: &ChunkFilter, tenant: &str, b: &mut Binds) -> String {
    let mut sql = String::new();
    if let Some(ids) = &f.document_ids {
        sql.push_str(&format!(
            " AND c.document_id = ANY({})",
            b.push(ids.clone(), Type::UUID_ARRAY)
        ));
    }
    if let Some(m) = &f.metadata {
        sql.push_str(&format!(
            " AND c.metadata @> {}",
            b.push(m.clone(), Type::JSONB)
        ));
    }
    let mut doc = Vec::new();
    if let Some(src) = &f.source {
        doc.push(format!("d.source = {}", b.push(src.clone(), Type::TEXT)));
    }
    if let Some(title) = &f.title {
        let escaped = title
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        doc.push(format!(
            "d.title ILIKE {}",
            b.push(format!("%{escaped}%"), Type::TEXT)
        ));
    }
    if let Some(t) = f.created_after {
        doc.push(format!("d.created_at >= {}", b.push(t, Type::TIMESTAMPTZ)));
    }
    if let Some(t) = f.created_before {
        doc.push(format!("d.created_at < {}", b.push(t, Type::TIMESTAMPTZ)));
    }
    if !doc.is_empty() {
        let t = b.push(tenant.to_string(), Type::TEXT);
        sql.push_str(&format!(
            " AND c.document_id IN (SELECT d.id FROM documents d WHERE d.tenant = {t} AND {})",
            doc.join(" AND ")
        ));
    }
    sql
}

/// The `top_k` best chunks of the transaction's tenant for `q`, best first.
pub async fn nearest(tx: &TenantTx, q: &NearestQuery<'_>) -> Result<Vec<ChunkHit>, StoreError> {
    let vector = documents::vector_type(tx).await?;
    let tenant = tx.tenant().as_str();
    let mut b = Binds::default();
    let qv = b.push(pgvector::Vector::from(q.embedding.to_vec()), vector);
    let t = b.push(tenant.to_string(), Type::TEXT);
    let filters = filter_sql(q.filter, tenant, &mut b);
    let thr = b.push(f64::from(q.threshold), Type::FLOAT8);
    let k = b.push(q.top_k as i64, Type::INT8);

    let sql = match &q.ranking {
        // Relaxed-order iterative scan, then an exact re-sort of the few candidates (pgvector's
        // recommended pattern; `+ 0` stops the planner from trusting the CTE's claimed order and
        // skipping the sort). The threshold cuts after ranking.
        Ranking::Vector => format!(
            "WITH candidates AS MATERIALIZED (
                 SELECT c.id, c.embedding <=> {qv} AS distance FROM chunks c
                 WHERE c.tenant = {t}{filters}
                 ORDER BY c.embedding <=> {qv} LIMIT {k})
             SELECT c.id, c.document_id, d.title, c.text, c.question, c.answer, c.metadata,
                    1 - k.distance AS similarity, 1 - k.distance AS score
             FROM candidates k JOIN chunks c ON c.id = k.id JOIN documents d ON d.id = c.document_id
             WHERE 1 - k.distance >= {thr}
             ORDER BY k.distance + 0"
        ),
        // Reciprocal rank fusion of the vector and full-text rankings (each up to `pool` deep).
        // A result qualifies when it passes the threshold or matches the query's keywords.
        Ranking::Hybrid { text } => {
            let text = b.push(text.clone(), Type::TEXT);
            let pool = b.push((q.top_k * 4).clamp(40, 200) as i64, Type::INT8);
            // The matches come from `ragbot_keyword_matches` (migration V10: the index serves
            // them, which it cannot under RLS directly); filters apply on the way back.
            let keyword_top = if filters.is_empty() {
                format!("SELECT id, rank FROM m ORDER BY rank DESC LIMIT {pool}")
            } else {
                format!(
                    "SELECT m.id, m.rank FROM m JOIN chunks c ON c.id = m.id
                     WHERE c.tenant = {t}{filters} ORDER BY m.rank DESC LIMIT {pool}"
                )
            };
            format!(
                "WITH v AS MATERIALIZED (
                     SELECT c.id, c.embedding <=> {qv} AS distance FROM chunks c
                     WHERE c.tenant = {t}{filters}
                     ORDER BY c.embedding <=> {qv} LIMIT {pool}),
                 vr AS (SELECT id, row_number() OVER (ORDER BY distance + 0) AS r FROM v),
                 q AS (SELECT websearch_to_tsquery('english', {text}) AS query),
                 m AS MATERIALIZED (
                     SELECT k.id, k.rank FROM q,
                         ragbot_keyword_matches(q.query, {KEYWORD_CANDIDATES}) k),
                 t AS MATERIALIZED (
                     {keyword_top}),
                 tr AS (SELECT id, row_number() OVER (ORDER BY rank DESC) AS r FROM t),
                 fused AS (
                     SELECT id, sum(1.0 / ({RRF_K} + r)) AS rrf, bool_or(keyword) AS keyword
                     FROM (SELECT id, r, false AS keyword FROM vr
                           UNION ALL SELECT id, r, true FROM tr) ranks
                     GROUP BY id)
                 SELECT c.id, c.document_id, d.title, c.text, c.question, c.answer, c.metadata,
                        1 - (c.embedding <=> {qv}) AS similarity, f.rrf::float8 AS score
                 FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
                 WHERE f.keyword OR 1 - (c.embedding <=> {qv}) >= {thr}
                 ORDER BY f.rrf DESC, similarity DESC
                 LIMIT {k}"
            )
        }
    };
    let rows = tx.query(&sql, &b.params()).await?;
    rows.iter()
        .map(|r| {
            Ok(ChunkHit {
                chunk_id: r.try_get(0)?,
                document_id: r.try_get(1)?,
                title: r.try_get(2)?,
                text: r.try_get(3)?,
                question: r.try_get(4)?,
                answer: r.try_get(5)?,
                metadata: r.try_get(6)?,
                similarity: r.try_get(7)?,
                score: r.try_get(8)?,
            })
        })
        .collect()
}

/// Up to `n` questions of the tenant's Q&A pairs, a different few each time.
pub async fn sample_questions(tx: &TenantTx, n: usize) -> Result<Vec<String>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT q FROM (SELECT DISTINCT question AS q FROM chunks
                            WHERE tenant = $1 AND question IS NOT NULL) qs
             ORDER BY random() LIMIT $2",
            &[tx.tenant_param(), (&(n as i64), Type::INT8)],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
}

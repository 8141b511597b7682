//! The search itself, in one tenant-scoped transaction with `hnsw.ef_search` and pgvector 0.8's
//! iterative index scans set locally (so filtered queries still return `top_k` rows).

use tokio_postgres::types::{ToSql, Type};

use super::{
    check_query, Fallback, Filters, Hit, Mode, RetrieveError, RetrieveRequest, RetrieveResponse,
    RetrieveSettings,
};
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    store::{documents, Store, TenantTx},
};

/// Reciprocal rank fusion constant (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// At most this many keyword matches are ranked by `ts_rank_cd` in hybrid mode. A query made of
/// common words matches a large share of a big knowledge base, and ranking every match dominated
/// the query (136 ms p50 at 100k chunks); such a query carries little keyword signal, and the
/// vector ranking still covers the whole base. Rare keywords (the reason for hybrid mode) match
/// far fewer chunks than this, so they are all ranked.
pub const KEYWORD_CANDIDATES: i64 = 2000;

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

fn validate(req: &RetrieveRequest, s: &RetrieveSettings) -> Result<(usize, f32), RetrieveError> {
    let top_k = req.top_k.unwrap_or(s.default_top_k);
    if top_k == 0 || top_k > s.max_top_k {
        return Err(RetrieveError::Invalid(format!(
            "top_k must be between 1 and {}",
            s.max_top_k
        )));
    }
    let threshold = req.threshold.unwrap_or(s.default_threshold);
    if !threshold.is_finite() || !(-1.0..=1.0).contains(&threshold) {
        return Err(RetrieveError::Invalid(
            "threshold is a cosine similarity between -1 and 1".into(),
        ));
    }
    if let Some(f) = &req.filters {
        if let Some(src) = f.source.as_deref() {
            if !["api", "s3", "qa"].contains(&src) {
                return Err(RetrieveError::Invalid(format!(
                    "filters.source '{src}' is not one of api, s3, qa"
                )));
            }
        }
        if f.metadata.as_ref().is_some_and(|m| !m.is_object()) {
            return Err(RetrieveError::Invalid(
                "filters.metadata must be a JSON object".into(),
            ));
        }
        if f.document_ids.as_ref().is_some_and(|ids| ids.len() > 1000) {
            return Err(RetrieveError::Invalid(
                "filters.document_ids holds more than 1000 ids".into(),
            ));
        }
        if let (Some(a), Some(b)) = (f.created_after, f.created_before) {
            if a >= b {
                return Err(RetrieveError::Invalid(
                    "filters.created_after must be before filters.created_before".into(),
                ));
            }
        }
    }
    Ok((top_k, threshold))
}

/// ` AND …` conditions on chunk `c` for the filters (document-level ones as a semi-join, so the
/// HNSW scan over `chunks` stays the plan's driver).
fn filter_sql(f: Option<&Filters>, tenant: &str, b: &mut Binds) -> String {
    let Some(f) = f else {
        return String::new();
    };
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

pub async fn search(
    store: &Store,
    embedder: Option<&dyn EmbeddingProvider>,
    tenant: &Tenant,
    req: &RetrieveRequest,
    s: &RetrieveSettings,
) -> Result<RetrieveResponse, RetrieveError> {
    search_embedded(store, embedder, tenant, req, s)
        .await
        .map(|(r, _)| r)
}

/// [`search`], also returning the query's embedding (the chat pipeline compares it with answers).
pub async fn search_embedded(
    store: &Store,
    embedder: Option<&dyn EmbeddingProvider>,
    tenant: &Tenant,
    req: &RetrieveRequest,
    s: &RetrieveSettings,
) -> Result<(RetrieveResponse, Vec<f32>), RetrieveError> {
    let checked = check_query(&req.query, s.max_query_chars)?;
    let (top_k, threshold) = validate(req, s)?;
    let mode = req.mode.unwrap_or_default();
    let embedder = embedder.ok_or(RetrieveError::NoEmbedder)?;
    // The query is embedded while a pooled connection is checked out (a verifying round trip)
    // and the transaction begun: the two waits overlap instead of adding up.
    let ef = s.ef_search.max(top_k as u32).to_string();
    let settings = [
        ("hnsw.ef_search", ef.as_str()),
        ("hnsw.iterative_scan", "relaxed_order"),
    ];
    let query_text = [checked.query.as_str()];
    let (embedded, tx) = tokio::join!(
        embedder.embed(&query_text),
        store.begin_with(tenant, &settings)
    );
    let tx = tx?;
    let q = match embedded {
        Ok(mut v) => v.pop().ok_or(RetrieveError::NoEmbedder),
        Err(e) => Err(RetrieveError::from(e)),
    };
    let q = match q {
        Ok(q) => q,
        Err(e) => {
            // Nothing was read yet: end the transaction cleanly so the connection stays pooled;
            // the embedding failure is the error to report.
            if let Err(end) = tx.commit().await {
                tracing::warn!(error = %end, "could not end the search transaction");
            }
            return Err(e);
        }
    };
    let vector = documents::vector_type(&tx).await?;
    let mut b = Binds::default();
    let qv = b.push(pgvector::Vector::from(q.clone()), vector);
    let t = b.push(tenant.as_str().to_string(), Type::TEXT);
    let filters = filter_sql(req.filters.as_ref(), tenant.as_str(), &mut b);
    let thr = b.push(f64::from(threshold), Type::FLOAT8);
    let k = b.push(top_k as i64, Type::INT8);

    let sql = match mode {
        // Relaxed-order iterative scan, then an exact re-sort of the few candidates (pgvector's
        // recommended pattern; `+ 0` stops the planner from trusting the CTE's claimed order and
        // skipping the sort). The threshold cuts after ranking.
        Mode::Vector => format!(
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
        Mode::Hybrid => {
            let text = b.push(checked.query.clone(), Type::TEXT);
            let pool = b.push((top_k * 4).clamp(40, 200) as i64, Type::INT8);
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
    let results = rows
        .iter()
        .map(|r| -> Result<Hit, RetrieveError> {
            Ok(Hit {
                chunk_id: r.try_get(0).map_err(crate::store::StoreError::from)?,
                document_id: r.try_get(1).map_err(crate::store::StoreError::from)?,
                title: r.try_get(2).map_err(crate::store::StoreError::from)?,
                text: r.try_get(3).map_err(crate::store::StoreError::from)?,
                question: r.try_get(4).map_err(crate::store::StoreError::from)?,
                answer: r.try_get(5).map_err(crate::store::StoreError::from)?,
                metadata: r.try_get(6).map_err(crate::store::StoreError::from)?,
                similarity: r.try_get(7).map_err(crate::store::StoreError::from)?,
                score: r.try_get(8).map_err(crate::store::StoreError::from)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fallback = if results.is_empty() {
        Some(Fallback {
            sample_questions: sample_questions(&tx, s.fallback_questions).await?,
            disclaimer: s.disclaimer.clone(),
        })
    } else {
        None
    };
    tx.commit().await?;
    Ok((
        RetrieveResponse {
            results,
            mode,
            threshold,
            fallback,
            warnings: checked.warnings,
        },
        q,
    ))
}

/// The fallback: sample questions from the tenant's Q&A pairs and the disclaimer.
pub async fn fallback(
    store: &Store,
    tenant: &Tenant,
    s: &RetrieveSettings,
) -> Result<Fallback, RetrieveError> {
    let tx = store.begin(tenant).await?;
    let sample_questions = sample_questions(&tx, s.fallback_questions).await?;
    tx.commit().await?;
    Ok(Fallback {
        sample_questions,
        disclaimer: s.disclaimer.clone(),
    })
}

/// Questions from the tenant's Q&A pairs, a different few each time.
async fn sample_questions(tx: &TenantTx, n: usize) -> Result<Vec<String>, RetrieveError> {
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

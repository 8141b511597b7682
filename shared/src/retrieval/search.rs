//! The search: the query checked and embedded, the tenant's nearest chunks found by the store,
//! the threshold applied, and the fallback when nothing is good enough.

use super::{
    check_query, Fallback, Filters, Hit, Mode, RetrieveError, RetrieveRequest, RetrieveResponse,
    RetrieveSettings,
};
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    store::{
        search::{self as sql, ChunkFilter, NearestQuery, Ranking},
        Store,
    },
};

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

impl From<&Filters> for ChunkFilter {
    fn from(f: &Filters) -> Self {
        ChunkFilter {
            document_ids: f.document_ids.clone(),
            metadata: f.metadata.clone(),
            source: f.source.clone(),
            title: f.title.clone(),
            created_after: f.created_after,
            created_before: f.created_before,
        }
    }
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
    let query_text = [checked.query.as_str()];
    let (embedded, tx) = tokio::join!(
        embedder.embed(&query_text),
        sql::begin(store, tenant, s.ef_search.max(top_k as u32))
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
    let filter = req
        .filters
        .as_ref()
        .map(ChunkFilter::from)
        .unwrap_or_default();
    let ranking = match mode {
        Mode::Vector => Ranking::Vector,
        Mode::Hybrid => Ranking::Hybrid {
            text: checked.query.clone(),
        },
    };
    let hits = sql::nearest(
        &tx,
        &NearestQuery {
            embedding: &q,
            filter: &filter,
            ranking,
            threshold,
            top_k,
        },
    )
    .await?;
    let results: Vec<Hit> = hits
        .into_iter()
        .map(|h| Hit {
            chunk_id: h.chunk_id,
            document_id: h.document_id,
            title: h.title,
            text: h.text,
            question: h.question,
            answer: h.answer,
            metadata: h.metadata,
            similarity: h.similarity,
            score: h.score,
        })
        .collect();
    let fallback = if results.is_empty() {
        Some(Fallback {
            sample_questions: sql::sample_questions(&tx, s.fallback_questions).await?,
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
    let sample_questions = sql::sample_questions(&tx, s.fallback_questions).await?;
    tx.commit().await?;
    Ok(Fallback {
        sample_questions,
        disclaimer: s.disclaimer.clone(),
    })
}

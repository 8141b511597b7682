//! Retrieval quality on a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels.tsv): the corpus
//! is ingested into a fresh tenant through the normal pipeline, every query runs through
//! [`super::search`] (the code behind `POST /retrieve`), and recall@10 / nDCG@10 are computed at
//! the document level (a document's rank is the rank of its best chunk).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Mode, RetrieveRequest, RetrieveSettings};
use crate::{
    auth::Tenant,
    ingest::document::{Ingestor, SourceFile},
    store::{documents, Store},
};

#[derive(Debug, Deserialize)]
struct CorpusDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Query {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

pub struct Dataset {
    pub name: String,
    corpus: Vec<CorpusDoc>,
    queries: Vec<Query>,
    /// query id → relevant corpus ids
    qrels: HashMap<String, HashSet<String>>,
}

impl Dataset {
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let jsonl = |name: &str| -> Result<Vec<serde_json::Value>, String> {
            read(name)?
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| {
                    serde_json::from_str(l).map_err(|e| format!("{name} line {}: {e}", n + 1))
                })
                .collect()
        };
        let corpus = jsonl("corpus.jsonl")?
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<CorpusDoc>, _>>()
            .map_err(|e| format!("corpus.jsonl: {e}"))?;
        let queries = jsonl("queries.jsonl")?
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<Query>, _>>()
            .map_err(|e| format!("queries.jsonl: {e}"))?;
        let mut qrels: HashMap<String, HashSet<String>> = HashMap::new();
        for (n, line) in read("qrels.tsv")?.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').collect();
            if n == 0 && cols.first() == Some(&"query-id") {
                continue;
            }
            if let [q, d, score, ..] = cols.as_slice() {
                if score.trim().parse::<f64>().unwrap_or(0.0) > 0.0 {
                    qrels
                        .entry(q.to_string())
                        .or_default()
                        .insert(d.to_string());
                }
            }
        }
        let queries = queries
            .into_iter()
            .filter(|q| qrels.contains_key(&q.id))
            .collect::<Vec<_>>();
        if queries.is_empty() {
            return Err("no query of queries.jsonl has relevance judgements in qrels.tsv".into());
        }
        Ok(Dataset {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            corpus,
            queries,
            qrels,
        })
    }

    pub fn sizes(&self) -> (usize, usize) {
        (self.corpus.len(), self.queries.len())
    }
}

/// recall@k and nDCG@k (binary relevance) of one ranked list.
pub fn score(ranked: &[String], relevant: &HashSet<String>, k: usize) -> (f64, f64) {
    if relevant.is_empty() {
        return (0.0, 0.0);
    }
    let top = &ranked[..ranked.len().min(k)];
    let hits = top.iter().filter(|d| relevant.contains(*d)).count();
    let dcg: f64 = top
        .iter()
        .enumerate()
        .filter(|(_, d)| relevant.contains(*d))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let idcg: f64 = (0..relevant.len().min(k))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    (hits as f64 / relevant.len() as f64, dcg / idcg)
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Metrics {
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_at_10: f64,
}

/// Ingests the corpus into `tenant` (calls `progress(done, total)`); returns corpus id by document id.
pub async fn ingest_corpus(
    ingestor: &Ingestor,
    tenant: &Tenant,
    data: &Dataset,
    mut progress: impl FnMut(usize, usize),
) -> Result<HashMap<Uuid, String>, String> {
    let mut by_document = HashMap::new();
    for (i, doc) in data.corpus.iter().enumerate() {
        let text = if doc.title.trim().is_empty() {
            doc.text.clone()
        } else {
            format!("{}\n\n{}", doc.title.trim(), doc.text)
        };
        let src = SourceFile {
            tenant: tenant.clone(),
            source: crate::store::Source::Api,
            bucket: ingestor.documents_bucket.clone(),
            key: format!("eval/{}/{}.txt", data.name, doc.id),
            version: None,
            content_type: Some("text/plain".into()),
            title: Some(if doc.title.trim().is_empty() {
                doc.id.clone()
            } else {
                doc.title.clone()
            }),
            metadata: json!({"corpus_id": doc.id}),
        };
        let out = ingestor
            .ingest_file(&src, text.into_bytes(), None)
            .await
            .map_err(|e| format!("corpus document {}: {e}", doc.id))?;
        by_document.insert(out.document_id, doc.id.clone());
        progress(i + 1, data.corpus.len());
    }
    Ok(by_document)
}

/// Runs every query in `mode` and averages the metrics.
pub async fn evaluate(
    store: &Store,
    embedder: &dyn crate::embedding::EmbeddingProvider,
    tenant: &Tenant,
    data: &Dataset,
    by_document: &HashMap<Uuid, String>,
    mode: Mode,
    settings: &RetrieveSettings,
) -> Result<Metrics, String> {
    let (mut recall, mut ndcg) = (0.0, 0.0);
    for q in &data.queries {
        let req = RetrieveRequest {
            query: q.text.clone(),
            // Chunks, not documents: ask deep enough to fill ten distinct documents.
            top_k: Some(settings.max_top_k),
            threshold: Some(-1.0),
            mode: Some(mode),
            filters: None,
        };
        let resp = super::search(store, Some(embedder), tenant, &req, settings)
            .await
            .map_err(|e| format!("query {}: {e}", q.id))?;
        let mut ranked: Vec<String> = Vec::new();
        for hit in resp.results {
            if let Some(id) = by_document.get(&hit.document_id) {
                if !ranked.contains(id) {
                    ranked.push(id.clone());
                }
            }
        }
        let relevant = data.qrels.get(&q.id).cloned().unwrap_or_default();
        let (r, n) = score(&ranked, &relevant, 10);
        recall += r;
        ndcg += n;
    }
    let n = data.queries.len() as f64;
    Ok(Metrics {
        recall_at_10: (recall / n * 10_000.0).round() / 10_000.0,
        ndcg_at_10: (ndcg / n * 10_000.0).round() / 10_000.0,
    })
}

/// Deletes everything the evaluation ingested.
pub async fn cleanup(
    store: &Store,
    tenant: &Tenant,
    by_document: &HashMap<Uuid, String>,
) -> Result<(), String> {
    let tx = store.begin(tenant).await.map_err(|e| e.to_string())?;
    for id in by_document.keys() {
        documents::delete(&tx, *id)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_and_ndcg_match_hand_computed_values() {
        let rel: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let ranked: Vec<String> = ["a", "x", "b"].iter().map(|s| s.to_string()).collect();
        let (r, n) = score(&ranked, &rel, 10);
        assert!((r - 1.0).abs() < 1e-9);
        // DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309
        assert!((n - 1.5 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-9, "{n}");
        let (r, n) = score(&["x".to_string()], &rel, 10);
        assert_eq!((r, n), (0.0, 0.0));
        // Only the top k count.
        let (r, _) = score(&ranked, &rel, 2);
        assert!((r - 0.5).abs() < 1e-9);
    }
}

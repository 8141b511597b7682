//! Chat quality on a Q&A dataset (`ragbot eval-chat`): the FAQ entries (`corpus.jsonl`:
//! `{"_id", "question", "answer"}`) are ingested as Q&A pairs into a fresh tenant, one document
//! per entry, and every question of `queries.jsonl` (`{"_id", "text", "answerable"}`) goes through
//! the chat pipeline ([`super::Chat::answer`], the code behind `POST /chat`). `qrels.tsv` names the
//! right entry of each answerable question.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::Instant,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Chat, Question};
use crate::{
    auth::Tenant,
    embedding::EmbeddingProvider,
    ingest::qa::{self, QaBody, QaPair},
    store::{conversations, Store},
};

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "_id")]
    id: String,
    question: String,
    answer: String,
}

#[derive(Debug, Deserialize)]
struct Query {
    #[serde(rename = "_id")]
    id: String,
    text: String,
    #[serde(default = "yes")]
    answerable: bool,
}

fn yes() -> bool {
    true
}

pub struct Dataset {
    pub name: String,
    entries: Vec<Entry>,
    queries: Vec<Query>,
    /// query id → the right entry
    qrels: HashMap<String, String>,
}

fn jsonl<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Vec<T>, String> {
    let path = dir.join(name);
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    raw.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("{name} line {}: {e}", n + 1)))
        .collect()
}

impl Dataset {
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let entries: Vec<Entry> = jsonl(dir, "corpus.jsonl")?;
        let queries: Vec<Query> = jsonl(dir, "queries.jsonl")?;
        let path = dir.join("qrels.tsv");
        let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut qrels = HashMap::new();
        for (n, line) in raw.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').collect();
            if n == 0 && cols.first() == Some(&"query-id") {
                continue;
            }
            if let [q, d, score, ..] = cols.as_slice() {
                if score.trim().parse::<f64>().unwrap_or(0.0) > 0.0 {
                    qrels.insert(q.to_string(), d.to_string());
                }
            }
        }
        if entries.is_empty() || queries.is_empty() {
            return Err(format!("{}: no entries or no queries", dir.display()));
        }
        let known: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        if let Some((q, d)) = qrels.iter().find(|(_, d)| !known.contains(d.as_str())) {
            return Err(format!(
                "qrels.tsv: {q} points at {d}, which is not in the corpus"
            ));
        }
        Ok(Dataset {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            entries,
            queries,
            qrels,
        })
    }

    /// Keeps `n` questions spread evenly over the set (answerable and unanswerable alike).
    pub fn sample(&mut self, n: usize) {
        let total = self.queries.len();
        if n == 0 || n >= total {
            return;
        }
        let keep: HashSet<usize> = (0..n).map(|i| i * total / n).collect();
        let mut i = 0;
        self.queries.retain(|_| {
            i += 1;
            keep.contains(&(i - 1))
        });
    }

    /// (entries, answerable queries, unanswerable queries)
    pub fn sizes(&self) -> (usize, usize, usize) {
        let answerable = self.queries.iter().filter(|q| q.answerable).count();
        (
            self.entries.len(),
            answerable,
            self.queries.len() - answerable,
        )
    }
}

/// Ingests every entry as a one-pair Q&A document; returns document id → entry id.
pub async fn ingest(
    store: &Store,
    embedder: &dyn EmbeddingProvider,
    tenant: &Tenant,
    data: &Dataset,
    mut progress: impl FnMut(usize),
) -> Result<HashMap<Uuid, String>, String> {
    let mut by_document = HashMap::new();
    for (i, e) in data.entries.iter().enumerate() {
        let body = QaBody {
            document_title: format!("FAQ {}", e.id),
            question_answer_data: vec![QaPair {
                question: e.question.clone(),
                answer: e.answer.clone(),
            }],
        };
        let outcome = qa::ingest(store, Some(embedder), tenant, &body)
            .await
            .map_err(|err| format!("entry {}: {err}", e.id))?;
        by_document.insert(outcome.document_id, e.id.clone());
        progress(i + 1);
    }
    Ok(by_document)
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatMetrics {
    pub provider: String,
    pub model: String,
    pub answerable: usize,
    pub unanswerable: usize,
    /// Answerable questions whose first citation is the right entry.
    pub citation_hit_at_1: f64,
    /// Answerable questions answered (not the fallback) with the right entry first.
    pub answered_and_right: f64,
    /// Answerable questions answered with exactly the entry's stored answer.
    pub answer_exact: f64,
    /// Answerable questions that got the fallback (should be low).
    pub answerable_fallback: f64,
    /// Unanswerable questions that got the fallback (should be high).
    pub unanswerable_fallback: f64,
    /// The whole pipeline per question, model call included (for `extractive` there is none).
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub errors: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i.min(sorted.len() - 1)] * 100.0).round() / 100.0
}

fn rate(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 / of as f64 * 1000.0).round() / 1000.0
    }
}

/// Every question through the chat pipeline, each in a conversation of its own.
pub async fn evaluate(
    chat: &Chat,
    tenant: &Tenant,
    data: &Dataset,
    by_document: &HashMap<Uuid, String>,
    mut progress: impl FnMut(usize),
) -> Result<ChatMetrics, String> {
    let answers: HashMap<&str, &str> = data
        .entries
        .iter()
        .map(|e| (e.id.as_str(), e.answer.trim()))
        .collect();
    let (mut hit, mut right, mut exact, mut fb_ans, mut fb_unans, mut errors) = (0, 0, 0, 0, 0, 0);
    let mut latencies = Vec::with_capacity(data.queries.len());
    for (i, q) in data.queries.iter().enumerate() {
        let started = Instant::now();
        let outcome = chat
            .answer(Question::new(tenant, EVAL_OWNER, &q.text))
            .await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        progress(i + 1);
        let a = match outcome {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(query = %q.id, error = %e, "eval question failed");
                errors += 1;
                continue;
            }
        };
        let first = a
            .citations
            .first()
            .and_then(|c| by_document.get(&c.document_id))
            .map(String::as_str);
        if q.answerable {
            let want = data.qrels.get(&q.id).map(String::as_str);
            let is_right = first.is_some() && first == want;
            hit += usize::from(is_right);
            right += usize::from(is_right && a.grounded);
            exact += usize::from(
                a.grounded && want.and_then(|w| answers.get(w)) == Some(&a.answer.trim()),
            );
            fb_ans += usize::from(!a.grounded);
        } else {
            fb_unans += usize::from(!a.grounded);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (_, answerable, unanswerable) = data.sizes();
    Ok(ChatMetrics {
        provider: chat.provider().name().to_string(),
        model: chat.provider().model().to_string(),
        answerable,
        unanswerable,
        citation_hit_at_1: rate(hit, answerable),
        answered_and_right: rate(right, answerable),
        answer_exact: rate(exact, answerable),
        answerable_fallback: rate(fb_ans, answerable),
        unanswerable_fallback: rate(fb_unans, unanswerable),
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p95_ms: percentile(&latencies, 0.95),
        errors,
    })
}

/// The owner of the eval's conversations.
pub const EVAL_OWNER: &str = "ragbot-eval";

/// Deletes the eval's documents and conversations.
pub async fn cleanup(
    store: &Store,
    tenant: &Tenant,
    by_document: &HashMap<Uuid, String>,
) -> Result<(), String> {
    crate::retrieval::eval::cleanup(store, tenant, by_document).await?;
    let tx = store.begin(tenant).await.map_err(|e| e.to_string())?;
    loop {
        let page = conversations::list(&tx, EVAL_OWNER, None, 200)
            .await
            .map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        for c in page {
            conversations::delete(&tx, c.id, EVAL_OWNER)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates_round() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(rate(1, 3), 0.333);
        assert_eq!(rate(1, 0), 0.0);
    }
}

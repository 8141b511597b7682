//! Quality: `ragbot eval` (retrieval) and `ragbot eval-chat`.

use super::*;

pub(crate) async fn eval(
    dir: &std::path::Path,
    mode: Option<&str>,
    keep: bool,
) -> Result<(), String> {
    use ragbot::retrieval::{eval, Mode};
    let modes = match mode {
        None => vec![Mode::Vector, Mode::Hybrid],
        Some("vector") => vec![Mode::Vector],
        Some("hybrid") => vec![Mode::Hybrid],
        Some(other) => return Err(format!("--mode '{other}' is not one of vector, hybrid")),
    };
    let data = eval::Dataset::load(dir)?;
    let state = operator_state(true).await?;
    let embedder = state
        .embedder
        .clone()
        .ok_or("EMBEDDING_PROVIDER=none: nothing to embed with")?;
    let tenant = Tenant::parse(&format!("eval-{}", std::process::id()))?;
    let (docs, queries) = data.sizes();
    eprintln!(
        "eval: {} — {docs} documents, {queries} judged queries, tenant {tenant}",
        data.name
    );
    let bar = progress(docs as u64, "ingesting corpus");
    let started = std::time::Instant::now();
    let by_document = eval::ingest_corpus(&state.ingestor, &tenant, &data, |done, _| {
        bar.set_position(done as u64)
    })
    .await?;
    bar.finish_and_clear();
    let ingest_s = started.elapsed().as_secs_f64();
    let mut report = serde_json::json!({
        "dataset": data.name, "documents": docs, "queries": queries,
        "model": embedder.model_id(), "ingest_s": (ingest_s * 10.0).round() / 10.0,
    });
    for mode in modes {
        let t = std::time::Instant::now();
        let m = eval::evaluate(
            &state.store,
            embedder.as_ref(),
            &tenant,
            &data,
            &by_document,
            mode,
            &state.config.retrieve,
        )
        .await?;
        let name = if mode == Mode::Vector {
            "vector"
        } else {
            "hybrid"
        };
        eprintln!(
            "  {name:<6}  recall@10 {:.4}  nDCG@10 {:.4}  ({:.1} ms/query)",
            m.recall_at_10,
            m.ndcg_at_10,
            t.elapsed().as_secs_f64() * 1000.0 / queries as f64
        );
        report[name] = serde_json::to_value(m).map_err(|e| e.to_string())?;
    }
    if !keep {
        eval::cleanup(&state.store, &tenant, &by_document).await?;
    }
    println!("{report}");
    Ok(())
}

pub(crate) async fn eval_chat(
    dir: &std::path::Path,
    keep: bool,
    limit: Option<usize>,
) -> Result<(), String> {
    use ragbot::chat::eval;
    let mut data = eval::Dataset::load(dir)?;
    if let Some(n) = limit {
        data.sample(n);
    }
    let state = operator_state(true).await?;
    let embedder = state
        .embedder
        .clone()
        .ok_or("EMBEDDING_PROVIDER=none: nothing to embed with")?;
    let tenant = Tenant::parse(&format!("evalchat-{}", std::process::id()))?;
    let (entries, answerable, unanswerable) = data.sizes();
    let provider = state.chat.provider();
    eprintln!(
        "eval-chat: {} — {entries} entries, {answerable} answerable and {unanswerable} unanswerable questions, provider {} ({}), tenant {tenant}",
        data.name,
        provider.name(),
        provider.model()
    );
    let bar = progress(entries as u64, "ingesting entries");
    let by_document = eval::ingest(&state.store, embedder.as_ref(), &tenant, &data, |n| {
        bar.set_position(n as u64)
    })
    .await?;
    bar.finish_and_clear();
    let bar = progress((answerable + unanswerable) as u64, "asking");
    let cache_before = embedder.cache_stats();
    let metrics = eval::evaluate(&state.chat, &tenant, &data, &by_document, |n| {
        bar.set_position(n as u64)
    })
    .await;
    bar.finish_and_clear();
    if !keep {
        eval::cleanup(&state.store, &tenant, &by_document).await?;
    }
    let m = metrics?;
    eprintln!(
        "  citation hit@1 {:.3}  answered right {:.3}  exact {:.3}  fallback: answerable {:.3}, unanswerable {:.3}  latency p50 {} ms, p95 {} ms  errors {}",
        m.citation_hit_at_1,
        m.answered_and_right,
        m.answer_exact,
        m.answerable_fallback,
        m.unanswerable_fallback,
        m.latency_p50_ms,
        m.latency_p95_ms,
        m.errors
    );
    // The questions' share of query embeddings the cache answered (ingestion's are not counted).
    if let (Some(before), Some(after)) = (cache_before, embedder.cache_stats()) {
        let asked = ragbot::embedding::CacheStats {
            hits: after.hits - before.hits,
            misses: after.misses - before.misses,
        };
        eprintln!(
            "  query embedding cache: {} hits, {} misses ({:.1} % of the questions' embeddings)",
            asked.hits,
            asked.misses,
            100.0 * asked.hit_rate()
        );
    }
    println!("{}", serde_json::to_string(&m).map_err(|e| e.to_string())?);
    Ok(())
}

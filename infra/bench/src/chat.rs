//! Chat figures (`BENCH=chat make bench`): the pipeline's own time (everything but the model
//! call) warm at 10k chunks, the cache-hit answer, and the local LLM's speed.
//!
//! The knowledge: 10 documents × 1000 chunks (real passage embeddings mixed as in the retrieve
//! bench, loaded by binary COPY) plus 40 Q&A pairs embedded for real. Questions are paraphrases of
//! the Q&A questions, so the pipeline runs its whole grounded path: check, context, retrieval
//! (hybrid), relevance, answer, citations, persistence of both messages. The extractive provider
//! answers Q&A pairs verbatim without any model, so its timings are the pipeline's overhead.

use std::{sync::Arc, time::Instant};

use ragbot::{
    auth::Tenant,
    aws::DynamoAnswerCache,
    chat::{Chat, ChatDeps, Question},
    ingest::{
        qa::{self, QaBody, QaPair},
        seed,
    },
    llm::{self, AnswerPrompt, LlmKind, Passage},
    providers,
    store::documents,
};
use serde_json::json;

use crate::{bench_document, ms, pct, round};

/// (stored question, how a user asks it)
const PAIRS: [(&str, &str); 10] = [
    (
        "How far in advance must travel be requested?",
        "how early do I need to request a business trip",
    ),
    (
        "Who approves expense receipts?",
        "who signs off my expense receipts",
    ),
    (
        "How do I report a lost badge?",
        "I lost my access badge, what do I do",
    ),
    (
        "How many days of annual leave can be carried over?",
        "can I carry unused holiday into next year",
    ),
    (
        "How do I reset my password?",
        "I forgot my password, how can I reset it",
    ),
    (
        "What is the mileage allowance for company cars?",
        "what do I get per mile when driving the company car",
    ),
    (
        "How do I book a meeting room?",
        "what are the rules for booking meeting rooms",
    ),
    (
        "When is the deadline for overtime claims?",
        "by when must overtime be claimed",
    ),
    (
        "How long are invoices kept?",
        "for how many years do we keep invoices",
    ),
    (
        "Who can export customer data?",
        "am I allowed to export customer data",
    ),
];

async fn ask(
    chat: &Chat,
    tenant: &Tenant,
    i: usize,
) -> Result<(std::time::Duration, bool), String> {
    let t = Instant::now();
    let a = chat
        .answer(Question::new(tenant, "bench", PAIRS[i % PAIRS.len()].1))
        .await
        .map_err(describe)?;
    Ok((t.elapsed(), a.grounded))
}

/// One streamed answer: the time to the `meta`/`citations` events (retrieval done), to the first
/// `delta`, and to the end.
async fn ask_streamed(
    chat: &Chat,
    tenant: &Tenant,
    i: usize,
) -> Result<
    (
        std::time::Duration,
        std::time::Duration,
        std::time::Duration,
    ),
    String,
> {
    let (progress_tx, mut progress) = tokio::sync::mpsc::channel(4);
    let (delta_tx, mut deltas) = tokio::sync::mpsc::channel(64);
    let t = Instant::now();
    let answer = async move {
        let r = chat
            .answer(Question {
                deltas: Some(&delta_tx),
                progress: Some(&progress_tx),
                ..Question::new(tenant, "bench", PAIRS[i % PAIRS.len()].1)
            })
            .await;
        // The reader's loops end when the senders go.
        drop((delta_tx, progress_tx));
        (r, t.elapsed())
    };
    let read = async {
        let meta = progress.recv().await.map(|_| t.elapsed());
        let first = deltas.recv().await.map(|_| t.elapsed());
        while deltas.recv().await.is_some() {}
        (meta, first)
    };
    let ((r, total), (meta, first)) = tokio::join!(answer, read);
    r.map_err(describe)?;
    Ok((meta.ok_or("no meta")?, first.ok_or("no delta")?, total))
}

fn describe(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(describe)?;
    rt.block_on(async {
        let config = ragbot::Config::from_env().map_err(describe)?;
        // RUST_LOG=ragbot::chat=debug prints each answer's time per pipeline step on stderr.
        ragbot::telemetry::init(ragbot::config::LogFormat::Text);
        let state = ragbot::AppState::init(config).await.map_err(describe)?;
        let embedder = state.embedder.clone().ok_or("no embedder")?;
        let tenant = Tenant::parse("chatbench")?;

        // 10k chunks.
        let (pool_texts, pool) = crate::retrieve::passage_pool(embedder.as_ref(), 20_000, 256).await?;
        let t = Instant::now();
        let mut rng = crate::retrieve::Lcg(7);
        for d in 0..10 {
            let chunks = crate::retrieve::mixed_chunks(&pool_texts, &pool, &mut rng, d * 1000, 1000);
            let doc = bench_document(format!("chat bench document {d}"), format!("chatbench:{d}"));
            let tx = state.store.begin(&tenant).await.map_err(describe)?;
            let id = documents::upsert_document(&tx, &doc, ragbot::store::DocumentStatus::Processing)
                .await
                .map_err(describe)?;
            documents::replace_chunks(&tx, id, &chunks, embedder.model_id())
                .await
                .map_err(describe)?;
            tx.commit().await.map_err(describe)?;
        }
        let body = QaBody {
            document_title: "Staff FAQ".into(),
            question_answer_data: PAIRS
                .iter()
                .enumerate()
                .map(|(i, (q, _))| QaPair {
                    question: q.to_string(),
                    answer: seed::paragraph(30_000 + i as u64, 40),
                })
                .collect(),
        };
        qa::ingest(&state.store, Some(embedder.as_ref()), &tenant, &body)
            .await
            .map_err(describe)?;
        eprintln!("chat: 10,000 chunks + {} Q&A pairs loaded in {:.1} s", PAIRS.len(), t.elapsed().as_secs_f64());
        crate::retrieve::analyze_chunks().await?;

        let extractive = providers::llm(
            &ragbot::llm::LlmSettings {
                kind: LlmKind::Extractive,
                ..state.config.llm.clone()
            },
            Some(embedder.clone()),
        )
        .await
        .map_err(describe)?;
        let chat_with = |cache: bool| {
            Chat::new(ChatDeps {
                store: state.store.clone(),
                embedder: Some(embedder.clone()),
                llm: extractive.clone(),
                cache: cache.then(|| Arc::new(DynamoAnswerCache::new(&state.aws)) as _),
                budget: None,
                settings: ragbot::chat::ChatSettings {
                    cache_ttl_secs: if cache { 3600 } else { 0 },
                    ..state.config.chat.clone()
                },
                retrieve: state.config.retrieve.clone(),
                llm_deadline: state.config.llm.deadline,
            })
        };
        // 1. The pipeline without cache: every step but a model call (the extractive provider
        //    answers Q&A pairs verbatim).
        let plain = chat_with(false);
        for i in 0..20 {
            ask(&plain, &tenant, i).await?;
        }
        let mut overhead = Vec::new();
        let mut grounded = 0;
        for i in 0..200 {
            let (d, g) = ask(&plain, &tenant, i).await?;
            overhead.push(d);
            grounded += usize::from(g);
        }
        // Streamed (POST /chat/stream's pipeline): time to `meta` (retrieval done, what a
        // model would start from) and to the first `delta`.
        let (mut to_meta, mut to_delta) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let (m, d, _) = ask_streamed(&plain, &tenant, i).await?;
            to_meta.push(m);
            to_delta.push(d);
        }
        let streamed = json!({
            "to_meta_ms": {"p50": ms(pct(&mut to_meta.clone(), 50.0)), "p95": ms(pct(&mut to_meta, 95.0))},
            "to_first_delta_ms": {"p50": ms(pct(&mut to_delta.clone(), 50.0)), "p95": ms(pct(&mut to_delta, 95.0))},
            "budget_ms_p95": 50,
        });
        eprintln!("  streamed (extractive): {streamed}");
        // Retrieval alone, per mode, for the same questions (what the pipeline's time rests on).
        let mut by_mode = serde_json::Map::new();
        for (name, mode) in [("vector", ragbot::retrieval::Mode::Vector), ("hybrid", ragbot::retrieval::Mode::Hybrid)] {
            let mut times = Vec::new();
            for i in 0..100 {
                let req = ragbot::retrieval::RetrieveRequest {
                    query: PAIRS[i % PAIRS.len()].1.to_string(),
                    top_k: Some(state.config.chat.top_k),
                    mode: Some(mode),
                    ..Default::default()
                };
                let t = Instant::now();
                ragbot::retrieval::search(&state.store, Some(embedder.as_ref()), &tenant, &req, &state.config.retrieve)
                    .await
                    .map_err(describe)?;
                times.push(t.elapsed());
            }
            by_mode.insert(name.into(), json!({"p50": ms(pct(&mut times.clone(), 50.0)), "p95": ms(pct(&mut times, 95.0))}));
        }
        eprintln!("  retrieval alone: {}", serde_json::Value::Object(by_mode.clone()));

        // 2. With the answer cache: the first ask of each question misses (lookup + store), the
        //    next ones hit.
        let cached = chat_with(true);
        let mut misses = Vec::new();
        for i in 0..PAIRS.len() {
            misses.push(ask(&cached, &tenant, i).await?.0);
        }
        let mut hits = Vec::new();
        for i in 0..200 {
            hits.push(ask(&cached, &tenant, i).await?.0);
        }

        // 3. The local LLM (the stack's llama.cpp server), on a RAG prompt of 5 passages.
        let mut llm_report = json!(null);
        if let (Ok(base), Ok(model)) = (std::env::var("RAGBOT_LLM_BASE_URL"), std::env::var("RAGBOT_LLM_MODEL")) {
            let provider = llm::openai::OpenAiChat::new(&ragbot::llm::LlmSettings {
                kind: LlmKind::OpenAi,
                base_url: base,
                model: model.clone(),
                max_tokens: 128,
                temperature: 0.0,
                ..state.config.llm.clone()
            })
            .map_err(describe)?;
            let passages: Vec<Passage> = (0..5)
                .map(|i| Passage {
                    index: i + 1,
                    title: format!("Policy {i}"),
                    text: seed::paragraph(40_000 + i as u64, 120),
                    question: None,
                    answer: None,
                    similarity: 0.6,
                })
                .collect();
            let mut runs = Vec::new();
            for q in ["How far in advance must travel be requested?", "Who approves expense receipts?", "How do I report a lost badge?"] {
                let prompt = AnswerPrompt {
                    system: &state.config.chat.system_prompt,
                    history: &[],
                    question: q,
                    passages: &passages,
                };
                let t = Instant::now();
                let c = ragbot::llm::LlmProvider::answer(&provider, &prompt, Instant::now() + std::time::Duration::from_secs(300))
                    .await
                    .map_err(describe)?;
                runs.push((t.elapsed().as_secs_f64(), c.usage));
            }
            // Streamed: the first piece after the model read the prompt, then its writing speed.
            let mut first_piece = Vec::new();
            let mut writing = Vec::new();
            for q in ["What is the travel policy?", "Who signs off expenses?"] {
                let prompt = AnswerPrompt {
                    system: &state.config.chat.system_prompt,
                    history: &[],
                    question: q,
                    passages: &passages,
                };
                let (tx, mut rx) = tokio::sync::mpsc::channel(256);
                let t = Instant::now();
                let deadline = Instant::now() + std::time::Duration::from_secs(300);
                let (provider, prompt) = (&provider, &prompt);
                let answer = async move {
                    let c = ragbot::llm::LlmProvider::answer_stream(provider, prompt, deadline, &tx).await;
                    drop(tx);
                    c
                };
                let read = async {
                    let first = rx.recv().await.map(|_| t.elapsed());
                    let mut pieces = 1u32;
                    while rx.recv().await.is_some() {
                        pieces += 1;
                    }
                    (first, pieces, t.elapsed())
                };
                let (c, (first, pieces, end)) = tokio::join!(answer, read);
                c.map_err(describe)?;
                let first = first.ok_or("no piece")?;
                first_piece.push(first.as_secs_f64());
                writing.push(f64::from(pieces) / (end - first).as_secs_f64().max(1e-3));
            }
            let secs: f64 = runs.iter().map(|r| r.0).sum();
            let completion: u32 = runs.iter().map(|r| r.1.completion_tokens).sum();
            let prompt: u32 = runs.iter().map(|r| r.1.prompt_tokens).sum();
            llm_report = json!({
                "model": model,
                "answers": runs.len(),
                "prompt_tokens_avg": prompt / runs.len() as u32,
                "completion_tokens_avg": completion / runs.len() as u32,
                "answer_s_avg": round(secs / runs.len() as f64),
                "tokens_per_s_end_to_end": round(f64::from(completion) / secs),
                "streamed_first_piece_s": first_piece.iter().map(|x| round(*x)).collect::<Vec<_>>(),
                "streamed_tokens_per_s_writing": writing.iter().map(|x| round(*x)).collect::<Vec<_>>(),
            });
        }

        let report = json!({
            "bench": "chat",
            "chunks": 10_000 + PAIRS.len(),
            "pipeline_without_model_ms": {"p50": ms(pct(&mut overhead.clone(), 50.0)), "p95": ms(pct(&mut overhead.clone(), 95.0)), "grounded": grounded, "of": overhead.len()},
            "cache_miss_ms": {"p50": ms(pct(&mut misses.clone(), 50.0)), "max": ms(pct(&mut misses.clone(), 100.0))},
            "cache_hit_ms": {"p50": ms(pct(&mut hits.clone(), 50.0)), "p95": ms(pct(&mut hits.clone(), 95.0))},
            "local_llm": llm_report,
            "streamed": streamed,
            "retrieval_only_ms": by_mode,
            "budget_ms_p95": 25,
        });
        eprintln!(
            "chat (10k chunks, warm, extractive = no model call)\n  pipeline: p50 {:.1} ms, p95 {:.1} ms ({grounded}/{} grounded)   (budget: 25 ms p95)\n  cache hit: p50 {:.1} ms, p95 {:.1} ms\n  local LLM: {}",
            ms(pct(&mut overhead.clone(), 50.0)),
            ms(pct(&mut overhead, 95.0)),
            200,
            ms(pct(&mut hits.clone(), 50.0)),
            ms(pct(&mut hits, 95.0)),
            llm_report
        );
        println!("{report}");
        Ok(())
    })
}

//! `make bench`: measures and prints figures (a benchmark, not a test; nothing here can fail a build).
//!
//! `ragbot-bench [embedding|ingest|retrieve|chat|large-pdf|large-text|all]` (default: embedding). The ingest
//! sections need the local stack (`make bench` starts a throwaway one).
//!
//! embedding: model load time and peak RSS; per matrix kernel the CPU runs, one query's latency
//! p50/p95 (a short question, 20, 32 and 64 tokens) and throughput (texts/s) for 12-word and
//! 150-word texts at batch 32. Baselines (PyTorch sentence-transformers,
//! 2 threads, same machine kind): 11.3 ms p50 query, 138 texts/s (12 words), 16.4 texts/s (150 words).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use ragbot::{
    embedding::{Kernel, LocalEmbedder},
    store::documents::NewDocument,
};

mod chat;
mod ingest;
mod retrieve;

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

fn main() {
    let dir = PathBuf::from(
        std::env::var("EMBEDDING_MODEL_DIR")
            .unwrap_or_else(|_| ".local/models/all-MiniLM-L6-v2".to_string()),
    );
    let what = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "embedding".into());
    let result = match what.as_str() {
        "embedding" => run(&dir),
        "load-loop" => load_loop(&dir),
        "query-loop" => query_loop(&dir, std::env::args().nth(2).and_then(|t| t.parse().ok())),
        "ingest" => ingest::run(),
        "large-pdf" => ingest::large_pdf(),
        "large-text" => ingest::large_text(),
        "retrieve" => retrieve::run(),
        "chat" => chat::run(),
        "all" => run(&dir)
            .and_then(|_| ingest::run())
            .and_then(|_| retrieve::run())
            .and_then(|_| chat::run())
            .and_then(|_| ingest::children()),
        other => Err(format!(
            "unknown bench '{other}': use embedding, ingest, retrieve, chat, large-pdf, large-text or all"
        )),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// Loads the model 20 times: start-up's largest part, to profile (`perf record`).
fn load_loop(dir: &std::path::Path) -> Result<(), String> {
    let t = Instant::now();
    for _ in 0..20 {
        LocalEmbedder::load(dir, MODEL).map_err(|e| e.to_string())?;
    }
    println!("20 loads: {:.1} ms each", t.elapsed().as_secs_f64() * 50.0);
    Ok(())
}

/// Embeds one query (a short question, or `tokens` tokens) in a loop for 10 s: a steady workload
/// to profile (`perf record`): `ragbot-bench query-loop [tokens]`.
fn query_loop(dir: &std::path::Path, tokens: Option<usize>) -> Result<(), String> {
    let embedder = LocalEmbedder::load(dir, MODEL).map_err(|e| e.to_string())?;
    let query = match tokens {
        Some(t) => texts_of_tokens(&embedder, 1, t)?.remove(0),
        None => "How do I reset my password?".to_string(),
    };
    let until = Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 0u64;
    while Instant::now() < until {
        embedder
            .embed_blocking(&[&query])
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    println!("{n} queries in 10 s: {:.2} ms each", 10_000.0 / n as f64);
    Ok(())
}

fn run(dir: &std::path::Path) -> Result<(), String> {
    // Load time: first load (cold page cache for the mmap is not controllable here) and warm loads.
    let mut loads = Vec::new();
    let mut embedder = None;
    for _ in 0..5 {
        let t = Instant::now();
        let e = LocalEmbedder::load(dir, MODEL).map_err(|e| e.to_string())?;
        loads.push(t.elapsed());
        embedder = Some(e);
    }
    let embedder = embedder.ok_or("no load")?;
    let rss = peak_rss_mb();
    eprintln!(
        "embedding (all-MiniLM-L6-v2)\n  load: first {:.1} ms, p50 {:.1} ms; peak RSS {rss:.0} MB",
        ms(loads[0]),
        ms(pct(&mut loads.clone(), 50.0)),
    );
    // The detected kernel first, then every other one this CPU runs, for comparison.
    let mut kernels = Vec::new();
    let mut current = Some(embedder);
    for kernel in Kernel::supported() {
        let embedder = match current.take() {
            Some(e) if e.kernel() == kernel => e,
            _ => LocalEmbedder::load_with_kernel(dir, MODEL, kernel).map_err(|e| e.to_string())?,
        };
        kernels.push(kernel_figures(&embedder)?);
    }
    let report = serde_json::json!({
        "bench": "embedding",
        "model": MODEL,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "load_ms": {"first": ms(loads[0]), "p50": ms(pct(&mut loads.clone(), 50.0))},
        "peak_rss_mb": rss,
        "kernels": kernels,
        "baseline_pytorch": {"query_ms_p50": 11.3, "texts_per_s_words_12": 138.0, "texts_per_s_words_150": 16.4},
    });
    println!("{report}");
    Ok(())
}

/// Query latency by length (a short question, and 20, 32 and 64 tokens: real questions are
/// mostly 16–28) and batch throughput, for the kernel `embedder` runs on.
fn kernel_figures(embedder: &LocalEmbedder) -> Result<serde_json::Value, String> {
    let mut queries: Vec<(String, Vec<String>)> = vec![(
        "short".into(),
        vec![
            "What is the vision for 2024?".into(),
            "How do I reset my password?".into(),
            "refund policy for damaged items".into(),
        ],
    )];
    for tokens in [20, 32, 64] {
        queries.push((
            format!("{tokens}_tokens"),
            texts_of_tokens(embedder, 3, tokens)?,
        ));
    }
    let mut latency = serde_json::Map::new();
    let mut lines = Vec::new();
    for (name, qs) in &queries {
        for q in qs {
            embedder.embed_blocking(&[q]).map_err(|e| e.to_string())?; // warm-up
        }
        let mut single = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            embedder
                .embed_blocking(&[&qs[i % qs.len()]])
                .map_err(|e| e.to_string())?;
            single.push(t.elapsed());
        }
        let tokens = embedder.token_count(&qs[0]).map_err(|e| e.to_string())?;
        let (p50, p95) = (ms(pct(&mut single, 50.0)), ms(pct(&mut single, 95.0)));
        latency.insert(
            name.clone(),
            serde_json::json!({"tokens": tokens, "p50": p50, "p95": p95}),
        );
        lines.push(format!("{tokens} tokens {p50:.2} / {p95:.2} ms"));
    }
    let short = texts(256, 12);
    let long = texts(96, 150);
    let long_tokens = embedder.token_count(&long[0]).map_err(|e| e.to_string())?;
    let tput_short = throughput(embedder, &short)?;
    let tput_long = throughput(embedder, &long)?;
    eprintln!(
        "  {}\n    one query (p50 / p95): {}   (PyTorch: 11.3 ms p50, short)\n    batch 32: 12-word texts {:.0} texts/s (PyTorch: 138), 150-word texts ({} tokens) {:.1} texts/s (PyTorch: 16.4)",
        embedder.kernel().describe(),
        lines.join(", "),
        tput_short,
        long_tokens,
        tput_long,
    );
    Ok(serde_json::json!({
        "kernel": embedder.kernel().describe(),
        "query_ms": latency,
        "texts_per_s": {"words_12": round(tput_short), "words_150": round(tput_long), "tokens_per_150_word_text": long_tokens},
    }))
}

/// `n` different texts of exactly `tokens` tokens (with [CLS] and [SEP]): the longest prefix of a
/// generated text that fits, topped up with "the" (one token).
fn texts_of_tokens(
    embedder: &LocalEmbedder,
    n: usize,
    tokens: usize,
) -> Result<Vec<String>, String> {
    let count = |t: &str| embedder.token_count(t).map_err(|e| e.to_string());
    let mut out = Vec::new();
    for text in texts(n, tokens) {
        let words: Vec<&str> = text.split(' ').collect();
        let mut take = words.len();
        while take > 0 && count(&words[..take].join(" "))? > tokens {
            take -= 1;
        }
        let mut candidate = words[..take].join(" ");
        while count(&candidate)? < tokens {
            candidate.push_str(" the");
        }
        if count(&candidate)? != tokens {
            return Err(format!("no text of {tokens} tokens"));
        }
        out.push(candidate);
    }
    Ok(out)
}

fn throughput(embedder: &LocalEmbedder, texts: &[String]) -> Result<f64, String> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    embedder
        .embed_blocking(&refs[..32.min(refs.len())])
        .map_err(|e| e.to_string())?; // warm-up
    let t = Instant::now();
    for batch in refs.chunks(32) {
        embedder.embed_blocking(batch).map_err(|e| e.to_string())?;
    }
    Ok(texts.len() as f64 / t.elapsed().as_secs_f64())
}

/// Deterministic English-like texts of `words` words.
fn texts(n: usize, words: usize) -> Vec<String> {
    const VOCAB: &[&str] = &[
        "the",
        "customer",
        "account",
        "policy",
        "refund",
        "within",
        "days",
        "of",
        "purchase",
        "support",
        "team",
        "will",
        "review",
        "your",
        "request",
        "and",
        "send",
        "a",
        "confirmation",
        "email",
        "to",
        "address",
        "on",
        "file",
        "shipping",
        "international",
        "orders",
        "may",
        "take",
        "longer",
        "during",
        "holiday",
        "season",
        "password",
        "reset",
        "link",
        "expires",
        "after",
        "one",
        "hour",
        "security",
        "settings",
        "allow",
        "two",
        "factor",
        "authentication",
        "for",
        "every",
        "login",
        "invoice",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            (0..words)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    VOCAB[(state >> 33) as usize % VOCAB.len()]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let idx = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[idx.min(v.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0)
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| round(kb / 1024.0))
        .unwrap_or(0.0)
}

/// A plain-text API document for the bench loads.
pub(crate) fn bench_document(title: String, source_key: String) -> NewDocument {
    NewDocument {
        title,
        source: ragbot::store::Source::Api,
        source_key,
        s3_bucket: None,
        s3_key: None,
        s3_version: None,
        content_sha256: "bench".into(),
        mime: "text/plain".into(),
        metadata: serde_json::json!({}),
    }
}

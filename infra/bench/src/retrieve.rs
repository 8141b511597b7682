//! Retrieval figures at 10k and 100k chunks: load (binary COPY), HNSW index build time, warm
//! search latency p50/p95 through `retrieval::search` (the `/retrieve` code, query embedding
//! included), and recall@10 of the HNSW path against exact search.
//!
//! Vectors: embedding 100k real passages would take hours on 2 cores, so a pool of real passage
//! embeddings is mixed (two pool members plus noise, normalised) into the corpus vectors: they keep
//! the clustered shape of real embeddings. Texts are realistic ~140-word passages.

use std::time::{Duration, Instant};

use ragbot::{
    auth::Tenant,
    config::{DatabaseConfig, TlsMode},
    ingest::seed,
    retrieval::{self, Mode, RetrieveRequest},
    store::{
        connect_once,
        documents::{self, NewChunk},
    },
};
use serde_json::json;

use crate::{bench_document, ms, pct, round};

/// 40 queries, so recall@10 is averaged over 400 neighbours: with 20, three runs at ef_search
/// 200 read 0.95, 0.97 and 0.985 (each run builds a new graph).
const QUERIES: [&str; 40] = [
    "how far in advance must travel be requested",
    "who approves expense receipts",
    "what happens with security incidents",
    "when do contractors get access badges",
    "how are laptop upgrades requested",
    "parking permits for visitors",
    "training records for new joiners",
    "who can export customer data",
    "meeting room booking rules",
    "overtime claims deadline",
    "software licences for interns",
    "how to report a lost badge",
    "quarterly budget planning",
    "audit trail requirements",
    "remote work equipment policy",
    "data protection rules for managers",
    "incident response escalation",
    "onboarding checklist first week",
    "benefits enrolment once a year",
    "facilities team responsibilities",
    "sick leave notification rules",
    "who signs off on new suppliers",
    "password reset procedure",
    "how long are invoices kept",
    "company car mileage allowance",
    "flexible working hours request",
    "conference attendance approval",
    "mobile phone reimbursement",
    "fire drill and evacuation plan",
    "what to do when a customer complains",
    "probation period review",
    "shared drive folder permissions",
    "annual leave carry over limit",
    "purchase order thresholds",
    "visitor sign-in at reception",
    "backup schedule for team files",
    "parental leave entitlement",
    "code of conduct for social media",
    "how to book a business flight",
    "performance review cycle",
];

/// The database's own message (tokio-postgres' Display is just "db error").
fn describe(e: impl std::fmt::Debug + std::fmt::Display) -> String {
    let debug = format!("{e:?}");
    match debug.find("message: \"") {
        Some(i) => debug[i + 10..]
            .split('"')
            .next()
            .unwrap_or(&debug)
            .to_string(),
        None => e.to_string(),
    }
}

/// `VACUUM ANALYZE chunks` as the table's owner: a warm deployment's planner has statistics
/// (autovacuum analyzes within a minute of a load); right after a bulk load it has none and picks
/// an exact scan over the HNSW index.
pub(crate) async fn analyze_chunks() -> Result<(), String> {
    let url = std::env::var("MIGRATOR_DATABASE_URL")
        .map_err(|_| "MIGRATOR_DATABASE_URL is not set (run with make bench)")?;
    connect_once(&DatabaseConfig::for_url(url, TlsMode::Disable))
        .await
        .map_err(describe)?
        .batch_execute("VACUUM ANALYZE chunks")
        .await
        .map_err(describe)
}

/// Real passage embeddings: `n` generated ~140-word passages (seeds from `seed_base`), embedded.
pub(crate) async fn passage_pool(
    embedder: &dyn ragbot::embedding::EmbeddingProvider,
    seed_base: u64,
    n: u64,
) -> Result<(Vec<String>, Vec<Vec<f32>>), String> {
    let texts: Vec<String> = (0..n)
        .map(|i| seed::paragraph(seed_base + i, 140))
        .collect();
    let mut vectors = Vec::new();
    for batch in texts.chunks(32) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        vectors.extend(embedder.embed(&refs).await.map_err(describe)?);
    }
    Ok((texts, vectors))
}

/// `count` chunks numbered from `first`: each vector two pool members plus noise, normalised.
pub(crate) fn mixed_chunks(
    texts: &[String],
    pool: &[Vec<f32>],
    rng: &mut Lcg,
    first: usize,
    count: usize,
) -> Vec<NewChunk> {
    (first..first + count)
        .map(|n| {
            let a = &pool[rng.next_usize(pool.len())];
            let b = &pool[rng.next_usize(pool.len())];
            let mut v: Vec<f32> = a
                .iter()
                .zip(b)
                .map(|(x, y)| x + 0.5 * y + 0.02 * rng.next_f32())
                .collect();
            normalise(&mut v);
            NewChunk {
                text: texts[n % texts.len()].clone(),
                question: None,
                answer: None,
                metadata: json!({"n": n}),
                embedding: Some(v),
                token_count: Some(180),
            }
        })
        .collect()
}

pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
    fn next_usize(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize % n
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

pub fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(describe)?;
    rt.block_on(async {
        let config = ragbot::Config::from_env().map_err(describe)?;
        let state = ragbot::AppState::init(config).await.map_err(describe)?;
        let embedder = state.embedder.clone().ok_or("no embedder")?;
        let owner_url = std::env::var("MIGRATOR_DATABASE_URL").map_err(|_| "MIGRATOR_DATABASE_URL is not set (run with make bench)")?;
        let owner = connect_once(&DatabaseConfig::for_url(owner_url, TlsMode::Disable))
            .await
            .map_err(describe)?;
        // This connection's ORDER BY embedding <=> q is the exact reference: no index scans.
        owner
            .batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
            .await
            .map_err(describe)?;

        // A pool of real passage embeddings.
        let (pool_texts, pool) = passage_pool(embedder.as_ref(), 10_000, 512).await?;

        // The index is dropped for the load and rebuilt exactly as the migrations define it.
        let index_def: String = owner
            .query_opt(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'",
                &[],
            )
            .await
            .map_err(describe)?
            .ok_or("the HNSW index chunks_embedding_hnsw_idx is missing (left dropped by an interrupted BENCH_KEEP_DATA run?); use a fresh stack")?
            .get(0);
        eprintln!("  index: {index_def}");

        // BENCH_RETRIEVE_SIZES=100000 runs one size; BENCH_KEEP_DATA=1 keeps the loaded chunks
        // (for experiments with psql on a stack that outlives the bench).
        let sizes: Vec<usize> = match std::env::var("BENCH_RETRIEVE_SIZES") {
            Ok(v) => v
                .split(',')
                .map(|s| s.trim().parse::<usize>().map_err(|_| format!("BENCH_RETRIEVE_SIZES: '{s}' is not a number")))
                .collect::<Result<_, _>>()?,
            Err(_) => vec![10_000, 100_000],
        };
        let keep = std::env::var("BENCH_KEEP_DATA").is_ok_and(|v| v == "1");
        let mut report = Vec::new();
        for n in sizes {
            let tenant = Tenant::parse(&format!("retrieve{n}"))?;
            // BENCH_REUSE_DATA=1 measures chunks kept by an earlier BENCH_KEEP_DATA=1 run (same
            // generator, index in place) instead of loading them again.
            let kept: i64 = owner
                .query_one(
                    "SELECT count(*) FROM chunks WHERE tenant = $1",
                    &[&tenant.as_str()],
                )
                .await
                .map_err(describe)?
                .get(0);
            let indexed = owner
                .query_opt(
                    "SELECT 1 FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'",
                    &[],
                )
                .await
                .map_err(describe)?
                .is_some();
            let reuse = std::env::var("BENCH_REUSE_DATA").is_ok_and(|v| v == "1")
                && kept == n as i64
                && indexed;
            let (mut load_s, mut index_s) = (f64::NAN, f64::NAN);
            if reuse {
                eprintln!("  reusing the {n} chunks of tenant {} (BENCH_REUSE_DATA=1)", tenant.as_str());
            } else {
                owner
                    .execute("DELETE FROM documents WHERE tenant = $1", &[&tenant.as_str()])
                    .await
                    .map_err(describe)?;
                owner
                    .batch_execute("DROP INDEX IF EXISTS chunks_embedding_hnsw_idx")
                    .await
                    .map_err(describe)?;
                // Load: documents of 1000 chunks, binary COPY.
                let mut rng = Lcg(n as u64);
                let t = Instant::now();
                for d in 0..n / 1000 {
                    let chunks = mixed_chunks(&pool_texts, &pool, &mut rng, d * 1000, 1000);
                    let doc = bench_document(format!("bench document {d}"), format!("bench:{n}:{d}"));
                    let tx = state.store.begin(&tenant).await.map_err(describe)?;
                    let id = documents::upsert_document(&tx, &doc, ragbot::store::DocumentStatus::Processing).await.map_err(describe)?;
                    documents::replace_chunks(&tx, id, &chunks, embedder.model_id()).await.map_err(describe)?;
                    tx.commit().await.map_err(describe)?;
                }
                load_s = t.elapsed().as_secs_f64();

                let t = Instant::now();
                owner
                    .batch_execute(&format!("SET maintenance_work_mem = '512MB'; {index_def};"))
                    .await
                    .map_err(describe)?;
                index_s = t.elapsed().as_secs_f64();
                // VACUUM cannot share a (implicit) transaction with other statements.
                owner
                    .batch_execute("VACUUM ANALYZE chunks")
                    .await
                    .map_err(describe)?;
                // The load left ~0.6 GB of dirty pages: flush them now, so the warm measurement
                // below is not sharing 2 cores and the disk with the checkpointer writing them.
                if let Ok(admin_url) = std::env::var("RAGBOT_PG_ADMIN_URL") {
                    let t = Instant::now();
                    connect_once(&DatabaseConfig::for_url(admin_url, TlsMode::Disable))
                        .await
                        .map_err(describe)?
                        .batch_execute("CHECKPOINT")
                        .await
                        .map_err(describe)?;
                    eprintln!("  checkpoint after the load: {:.1} s", t.elapsed().as_secs_f64());
                }
            }

            // The exact top 10 of each query: the same ordering with the index disabled.
            let mut exact: Vec<Vec<uuid::Uuid>> = Vec::new();
            for q in QUERIES {
                let qv = embedder.embed(&[q]).await.map_err(describe)?.remove(0);
                let rows = owner
                    .query(
                        "SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM chunks WHERE tenant = $2 ORDER BY d LIMIT 10) x",
                        &[&pgvector::Vector::from(qv), &tenant.as_str()],
                    )
                    .await
                    .map_err(describe)?;
                exact.push(rows.iter().map(|r| r.get(0)).collect());
            }
            // Share of the exact top 10 that a response found.
            let recall_of = |resp: &retrieval::RetrieveResponse, exact: &[uuid::Uuid]| {
                resp.results.iter().filter(|h| exact.contains(&h.chunk_id)).count() as f64
                    / exact.len().max(1) as f64
            };

            // Warm latency through the /retrieve code path (query embedding included).
            let settings = state.config.retrieve.clone();
            let ask = |q: &str, mode: Mode| RetrieveRequest {
                query: q.to_string(),
                top_k: Some(10),
                threshold: Some(-1.0),
                mode: Some(mode),
                filters: None,
            };
            for q in QUERIES {
                retrieval::search(&state.store, Some(embedder.as_ref()), &tenant, &ask(q, Mode::Vector), &settings)
                    .await
                    .map_err(describe)?;
            }
            let mut lat: Vec<Duration> = Vec::new();
            let mut hybrid_lat: Vec<Duration> = Vec::new();
            let mut recall = 0.0;
            let mut count = 0.0;
            for round_no in 0..10 {
                for (q, exact) in QUERIES.iter().zip(&exact) {
                    let t = Instant::now();
                    let resp = retrieval::search(&state.store, Some(embedder.as_ref()), &tenant, &ask(q, Mode::Vector), &settings)
                        .await
                        .map_err(describe)?;
                    lat.push(t.elapsed());
                    if round_no == 0 {
                        recall += recall_of(&resp, exact);
                        count += 1.0;
                    }
                    let t = Instant::now();
                    retrieval::search(&state.store, Some(embedder.as_ref()), &tenant, &ask(q, Mode::Hybrid), &settings)
                        .await
                        .map_err(describe)?;
                    hybrid_lat.push(t.elapsed());
                }
            }
            // ef_search sweep: recall@10 against exact search and p95, same queries.
            let mut sweep = Vec::new();
            for ef in [40u32, 100, 200, 300, 400] {
                let mut s = settings.clone();
                s.ef_search = ef;
                let (mut rec, mut times) = (0.0, Vec::new());
                for (q, exact) in QUERIES.iter().zip(&exact) {
                    let t = Instant::now();
                    let resp = retrieval::search(&state.store, Some(embedder.as_ref()), &tenant, &ask(q, Mode::Vector), &s)
                        .await
                        .map_err(describe)?;
                    times.push(t.elapsed());
                    rec += recall_of(&resp, exact);
                }
                let p95 = ms(pct(&mut times, 95.0));
                let recall = round(rec / QUERIES.len() as f64);
                eprintln!("  {n} chunks, ef_search {ef}: recall@10 {recall:.3}, p95 {p95} ms");
                sweep.push(json!({"ef_search": ef, "recall_at_10": recall, "p95_ms": p95}));
            }
            let embed_only = {
                let mut v = Vec::new();
                for q in QUERIES {
                    let t = Instant::now();
                    embedder.embed(&[q]).await.map_err(describe)?;
                    v.push(t.elapsed());
                }
                (ms(pct(&mut v.clone(), 50.0)), ms(pct(&mut v, 95.0)))
            };
            let row = json!({
                "chunks": n,
                "load_s": round(load_s), "copy_rows_per_s": round(n as f64 / load_s),
                "index_build_s": round(index_s),
                "index": index_def,
                "vector_ms": {"p50": ms(pct(&mut lat.clone(), 50.0)), "p95": ms(pct(&mut lat, 95.0))},
                "hybrid_ms": {"p50": ms(pct(&mut hybrid_lat.clone(), 50.0)), "p95": ms(pct(&mut hybrid_lat, 95.0))},
                "query_embedding_ms": {"p50": embed_only.0, "p95": embed_only.1},
                "recall_at_10_vs_exact": round(recall / count),
                "ef_search": settings.ef_search,
                "ef_search_sweep": sweep,
            });
            eprintln!(
                "retrieve at {n} chunks: load {:.1} s ({:.0} rows/s), HNSW build {:.1} s, vector p50 {} ms / p95 {} ms, hybrid p50 {} ms / p95 {} ms (query embedding alone p50 {} ms / p95 {} ms), recall@10 vs exact {:.3}   (budget at 100k: p95 ≤ 15 ms, recall ≥ 0.95)",
                load_s, n as f64 / load_s, index_s,
                row["vector_ms"]["p50"], row["vector_ms"]["p95"], row["hybrid_ms"]["p50"], row["hybrid_ms"]["p95"], embed_only.0, embed_only.1, recall / count
            );
            report.push(row);
            if !keep {
                owner
                    .execute("DELETE FROM documents WHERE tenant = $1", &[&tenant.as_str()])
                    .await
                    .map_err(describe)?;
            }
        }
        println!("{}", json!({"bench": "retrieve", "runs": report}));
        Ok(())
    })
}

//! Ingestion figures against the local stack: end to end (parse → chunk → embed → binary COPY)
//! in chunks/s, COPY alone in rows/s, and the large-document runs (time and peak RSS, each in its
//! own process so its RSS is its own).

use std::{sync::Arc, time::Instant};

use ragbot::{
    auth::Tenant,
    ingest::{document::SourceFile, jobs::JobRun, seed},
    ports::{JobDispatcher, JobRef, PortError},
    store::{
        documents::{self, NewChunk},
        jobs,
    },
    AppState, BoxFuture, Config,
};
use serde_json::json;

use crate::{bench_document, peak_rss_mb, round};

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

async fn state() -> Result<AppState, String> {
    let config = Config::from_env()
        .map_err(|e| format!("{e} (run the ingest benches with `make bench`)"))?;
    AppState::init(config).await.map_err(|e| e.to_string())
}

fn source(tenant: &Tenant, bucket: &str, key: &str) -> SourceFile {
    SourceFile {
        tenant: tenant.clone(),
        source: ragbot::store::Source::Api,
        bucket: bucket.to_string(),
        key: key.to_string(),
        version: None,
        content_type: None,
        title: None,
        metadata: json!({}),
    }
}

pub fn run() -> Result<(), String> {
    runtime()?.block_on(async {
        let state = state().await?;
        let tenant = Tenant::parse(&format!("bench{}", std::process::id()))?;
        let bucket = state.aws.documents_bucket.clone();

        // End to end: the small seed's documents (≈ 50 chunks of ≈ 180 tokens each).
        let docs = seed::documents(seed::Size::Small);
        let t = Instant::now();
        let mut chunks = 0;
        for (name, md) in &docs {
            let out = state
                .ingestor
                .ingest_file(&source(&tenant, &bucket, &format!("bench/{name}")), md.clone().into_bytes(), None)
                .await
                .map_err(|e| e.to_string())?;
            chunks += out.chunks;
        }
        let e2e = chunks as f64 / t.elapsed().as_secs_f64();

        // Binary COPY alone: 10 000 chunks of 384 dimensions in one transaction.
        let n = 10_000;
        let rows: Vec<NewChunk> = (0..n)
            .map(|i| NewChunk {
                text: seed::paragraph(i as u64, 140),
                question: None,
                answer: None,
                metadata: json!({"page": i % 100}),
                embedding: Some((0..384).map(|d| ((i * 31 + d) % 97) as f32 / 97.0 - 0.5).collect()),
                token_count: Some(180),
            })
            .collect();
        let doc = bench_document("copy bench".into(), "bench:copy".into());
        let t = Instant::now();
        let tx = state.store.begin(&tenant).await.map_err(|e| e.to_string())?;
        let id = documents::upsert_document(&tx, &doc, ragbot::store::DocumentStatus::Processing).await.map_err(|e| e.to_string())?;
        let model = state.embedder.as_ref().map(|e| e.model_id().to_string()).unwrap_or_default();
        documents::replace_chunks(&tx, id, &rows, &model).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        let copy = n as f64 / t.elapsed().as_secs_f64();
        // Leave the database as found for the benches that follow.
        let tx = state.store.begin(&tenant).await.map_err(|e| e.to_string())?;
        for d in documents::list(&tx, &documents::ListFilter { limit: 1000, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?
        {
            documents::delete(&tx, d.id).await.map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;

        eprintln!(
            "ingestion\n  end to end (parse → chunk → embed → COPY): {:.1} chunks/s over {chunks} chunks   (target ≥ 25; PyTorch embedding alone: 16.4)\n  binary COPY + move from staging (10k × 384 dims, one transaction, HNSW index maintained): {:.0} rows/s",
            e2e, copy
        );
        println!(
            "{}",
            json!({"bench": "ingest", "end_to_end_chunks_per_s": round(e2e), "chunks": chunks, "copy_rows_per_s": round(copy)})
        );
        Ok(())
    })
}

/// Runs the large-document benches as child processes (their own peak RSS).
pub fn children() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for which in ["large-pdf", "large-text"] {
        let status = std::process::Command::new(&exe)
            .arg(which)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{which} bench failed"));
        }
    }
    Ok(())
}

/// Does not start workers: the bench runs them itself, to time each part.
struct BenchRunsWorkers;

impl JobDispatcher for BenchRunsWorkers {
    fn dispatch<'a>(&'a self, _: &'a JobRef, _: usize) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A large document through the job path, timed part by part: the receiving invocation (sha256,
/// parse, chunk, stage the chunks in one transaction), one worker (chunks/s including its claims
/// and writes; for `sample` if given, else to the end), and the final swap. With a `sample`, the
/// chunks the worker did not reach get random vectors (SQL) so the swap is timed at full size.
async fn large_document(
    label: &str,
    bytes: Vec<u8>,
    content_type: &str,
    key: &str,
    sample: Option<std::time::Duration>,
) -> Result<serde_json::Value, String> {
    let state = state().await?;
    let tenant = Tenant::parse(&format!("{label}{}", std::process::id()))?;
    let mut ingestor = (*state.ingestor).clone();
    ingestor.dispatcher = Some(Arc::new(BenchRunsWorkers));
    let mut src = source(&tenant, &state.aws.documents_bucket, key);
    src.content_type = Some(content_type.to_string());
    let mb = bytes.len() as f64 / 1e6;

    let t = Instant::now();
    let out = ingestor
        .ingest_file(&src, bytes, None)
        .await
        .map_err(|e| e.to_string())?;
    let stage_s = t.elapsed().as_secs_f64();
    let stage_rss = peak_rss_mb();
    let job = JobRef {
        tenant: tenant.clone(),
        job_id: out
            .job_id
            .ok_or("the document was not large enough for a job")?,
    };

    let t = Instant::now();
    let deadline = sample.map(|d| Instant::now() + ingestor.jobs.reserve + d);
    let run = ingestor
        .run_job(&job, deadline)
        .await
        .map_err(|e| e.to_string())?;
    let worker_s = t.elapsed().as_secs_f64();
    let tx = state
        .store
        .begin(&tenant)
        .await
        .map_err(|e| e.to_string())?;
    let progress = jobs::latest_for_document(&tx, out.document_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("job gone")?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let embedded = if run == JobRun::Continued {
        progress.embedded
    } else {
        progress.total
    };
    let rate = embedded as f64 / worker_s;

    let mut swap_s = None;
    if run == JobRun::Continued {
        // The chunks the worker did not reach get mixtures of two real embeddings from the
        // sample (random vectors would be a pathological case for the HNSW inserts of the swap).
        // As real[]: an unnamed statement returning pgvector's type would make tokio-postgres
        // look the type up on the same connection mid-response, which never completes.
        let tx = state
            .store
            .begin(&tenant)
            .await
            .map_err(|e| e.to_string())?;
        let real: Vec<Vec<f32>> = tx
            .query(
                "SELECT embedding::real[] FROM ingest_job_chunks WHERE job_id = $1 AND embedding IS NOT NULL LIMIT 2000",
                &[(&job.job_id, ragbot::store::Type::UUID)],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.try_get::<_, Vec<f32>>(0))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let todo: Vec<i32> = tx
            .query(
                "SELECT ordinal FROM ingest_job_chunks WHERE job_id = $1 AND embedding IS NULL",
                &[(&job.job_id, ragbot::store::Type::UUID)],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if real.len() < 2 {
            return Err("the sampled worker embedded too few chunks to mix".into());
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        for part in todo.chunks(1000) {
            let mixed: Vec<(i32, Vec<f32>)> = part
                .iter()
                .map(|&o| {
                    let (x, y) = (&real[next(real.len())], &real[next(real.len())]);
                    let a = next(1000) as f32 / 1000.0;
                    let v: Vec<f32> = x
                        .iter()
                        .zip(y)
                        .map(|(p, q)| a * p + (1.0 - a) * q)
                        .collect();
                    let norm = v.iter().map(|c| c * c).sum::<f32>().sqrt().max(1e-6);
                    (o, v.into_iter().map(|c| c / norm).collect())
                })
                .collect();
            jobs::store_embeddings(&tx, job.job_id, &mixed)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        let finished = ingestor
            .run_job(&job, None)
            .await
            .map_err(|e| e.to_string())?;
        swap_s = Some(t.elapsed().as_secs_f64());
        if !matches!(finished, JobRun::Finished { .. }) {
            return Err(format!("the job did not finish: {finished:?}"));
        }
    }
    let chunks = out.chunks;
    // Lambda: 2048 MB buys ~1.16 vCPU against this machine's 2 cores; workers in parallel.
    let workers = ingestor.jobs.workers_for(chunks);
    let lambda_rate = rate * 1.16 / 2.0;
    let lambda_minutes = chunks as f64 / (lambda_rate * workers as f64) / 60.0;
    eprintln!(
        "{label}: {mb:.1} MB → {chunks} chunks. Receiving invocation (sha256 + parse + chunk + stage): {stage_s:.1} s, peak RSS {stage_rss:.0} MB. \
         One worker: {rate:.1} chunks/s{}. Swap into place: {}. Peak RSS {:.0} MB. \
         On Lambda (2048 MB ≈ 1.16 vCPU, {workers} workers): ≈ {lambda_minutes:.1} min wall, each invocation ≤ 15 min by hand-over",
        sample.map(|d| format!(" (sampled for {} s)", d.as_secs())).unwrap_or_default(),
        swap_s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "included".into()),
        peak_rss_mb()
    );
    // Leave the database as found.
    let tx = state
        .store
        .begin(&tenant)
        .await
        .map_err(|e| e.to_string())?;
    documents::delete(&tx, out.document_id)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(
        json!({"bench": label, "mb": round(mb), "chunks": chunks, "stage_s": round(stage_s),
        "stage_peak_rss_mb": round(stage_rss), "worker_chunks_per_s": round(rate),
        "worker_sampled_s": sample.map(|d| d.as_secs()), "swap_s": swap_s.map(round),
        "peak_rss_mb": round(peak_rss_mb()), "lambda_workers": workers,
        "lambda_wall_minutes_estimate": round(lambda_minutes)}),
    )
}

/// A 1000-page PDF (≈ 300 words a page), ingested end to end through its job.
pub fn large_pdf() -> Result<(), String> {
    let pages: Vec<String> = (0..1000)
        .map(|p| {
            let text = seed::paragraph(p as u64, 300);
            // ≈ 12 words a line, as a page would have.
            text.split_whitespace()
                .collect::<Vec<_>>()
                .chunks(12)
                .map(|l| l.join(" "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let pdf = ragbot_tests::pdf::pdf_with_pages(&refs);
    let out = runtime()?.block_on(large_document(
        "large_pdf",
        pdf,
        "application/pdf",
        "big.pdf",
        None,
    ))?;
    println!("{out}");
    Ok(())
}

/// A 50 MB text through its job: one worker sampled for a minute (a full run is ~45 minutes of
/// embedding on 2 cores), the rest filled with random vectors so the swap is timed at full size.
pub fn large_text() -> Result<(), String> {
    let mut text = String::with_capacity(51 * 1024 * 1024);
    let mut i = 0u64;
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(&seed::paragraph(i, 140));
        text.push_str("\n\n");
        i += 1;
    }
    let secs = std::env::var("BENCH_WORKER_SAMPLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let out = runtime()?.block_on(large_document(
        "large_text",
        text.into_bytes(),
        "text/plain",
        "big.txt",
        Some(std::time::Duration::from_secs(secs)),
    ))?;
    println!("{out}");
    Ok(())
}

//! Knowledge: `ragbot embed`, `ingest`, `seed`, `reembed`.

use super::*;

pub(crate) async fn embed_stdin() -> Result<(), String> {
    use std::io::{BufRead, Write};
    let settings = EmbeddingSettings::from_env().map_err(|e| e.to_string())?;
    let embedder = providers::embedder(&settings)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("EMBEDDING_PROVIDER=none: nothing to embed with")?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut batch: Vec<String> = Vec::new();
    let mut count = 0usize;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let text = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string))
            .ok_or_else(|| {
                format!(
                    "line {}: expected a JSON object {{\"text\": \"...\"}}",
                    n + 1
                )
            })?;
        batch.push(text);
        if batch.len() == 32 {
            count += write_embedded(embedder.as_ref(), &mut batch, &mut out).await?;
        }
    }
    count += write_embedded(embedder.as_ref(), &mut batch, &mut out).await?;
    out.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "embed: {count} texts with {} ({} dimensions)",
        embedder.model_id(),
        embedder.dimension()
    );
    Ok(())
}

pub(crate) async fn write_embedded(
    embedder: &dyn EmbeddingProvider,
    batch: &mut Vec<String>,
    out: &mut impl std::io::Write,
) -> Result<usize, String> {
    if batch.is_empty() {
        return Ok(0);
    }
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs).await.map_err(|e| e.to_string())?;
    for (text, embedding) in batch.iter().zip(vectors) {
        let line = serde_json::json!({"text": text, "embedding": embedding});
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    let n = batch.len();
    batch.clear();
    Ok(n)
}

/// Puts `bytes` at `key` in the documents bucket and ingests it with the code the embed function
/// runs for the S3 notification (which, in AWS, then finds the content unchanged).
pub(crate) async fn put_and_ingest(
    state: &AppState,
    key: &str,
    bytes: Vec<u8>,
) -> Result<ragbot::ingest::document::RecordReport, String> {
    let bucket = &state.aws.documents_bucket;
    let put = state
        .aws
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| {
            format!(
                "uploading {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
    drop(put);
    state
        .ingestor
        .process_object(bucket, key)
        .await
        .map_err(|e| format!("{key}: {e}"))
}

pub(crate) async fn ingest(path: &std::path::Path, tenant: Option<&str>) -> Result<(), String> {
    let state = operator_state(true).await?;
    let tenant = tenant_or_default(&state, tenant)?;
    let files = collect_files(path)?;
    if files.is_empty() {
        return Err(format!("{}: no files to ingest", path.display()));
    }
    let bar = progress(files.len() as u64, "ingesting");
    let (mut ok, mut failed, mut skipped) = (0, 0, 0);
    for file in &files {
        let rel = file
            .strip_prefix(path)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or_else(|| std::path::Path::new(file.file_name().unwrap_or_default()));
        let key = format!(
            "tenants/{tenant}/{}",
            rel.to_string_lossy().replace('\\', "/")
        );
        bar.set_message(rel.to_string_lossy().to_string());
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut report = put_and_ingest(&state, &key, bytes).await?;
        if let (Some(job), Some(document)) = (report.job_id, report.document_id) {
            // A large document: its workers (tasks of this process, or Lambda invocations when
            // INGEST_JOB_FUNCTION is set) embed it; wait for them, showing their progress.
            let done = wait_for_job(&state, &tenant, document, job, &bar).await?;
            report.result = if done.status == ragbot::store::JobStatus::Done {
                ragbot::store::RecordResult::Ingested
            } else {
                report.reason = done.failure_reason.clone();
                ragbot::store::RecordResult::Failed
            };
        }
        let line = match report.result.as_str() {
            "failed" => {
                failed += 1;
                format!("FAILED    {key}: {}", report.reason.unwrap_or_default())
            }
            "skipped" => {
                skipped += 1;
                format!("skipped   {key}: {}", report.reason.unwrap_or_default())
            }
            other => {
                ok += 1;
                format!(
                    "{other:<9} {key} ({} chunks, document {})",
                    report.chunks.unwrap_or(0),
                    report
                        .document_id
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                )
            }
        };
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "ingest: {ok} documents ready, {failed} failed, {skipped} metadata files (tenant {tenant})"
    );
    if failed > 0 {
        return Err(format!("{failed} documents failed"));
    }
    Ok(())
}

/// Polls a large document's ingestion job until it is no longer running, with a progress bar
/// of the chunks embedded so far.
pub(crate) async fn wait_for_job(
    state: &AppState,
    tenant: &Tenant,
    document: uuid::Uuid,
    job: uuid::Uuid,
    outer: &indicatif::ProgressBar,
) -> Result<ragbot::store::jobs::JobProgress, String> {
    let bar = progress(0, "embedding");
    if outer.is_hidden() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last_report = std::time::Instant::now();
    loop {
        let tx = state.store.begin(tenant).await.map_err(|e| e.to_string())?;
        let progress = ragbot::store::jobs::latest_for_document(&tx, document)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        let Some(p) = progress.filter(|p| p.id == job) else {
            bar.finish_and_clear();
            return Err(format!(
                "document {document}: its ingestion job {job} was replaced or deleted"
            ));
        };
        bar.set_length(p.total.max(0) as u64);
        bar.set_position(p.embedded.max(0) as u64);
        if bar.is_hidden() && last_report.elapsed() > std::time::Duration::from_secs(30) {
            eprintln!("embedding: {}/{} chunks", p.embedded, p.total);
            last_report = std::time::Instant::now();
        }
        if p.status != ragbot::store::JobStatus::Running {
            bar.finish_and_clear();
            return Ok(p);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

pub(crate) fn collect_files(path: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    // Sidecars (`x.metadata.json`) go up before their document.
    out.sort_by_key(|p| {
        let name = p.to_string_lossy().to_string();
        (!name.ends_with(".metadata.json"), name)
    });
    Ok(out)
}

pub(crate) struct SeedParts {
    pub(crate) documents: bool,
    pub(crate) conversations: bool,
}

pub(crate) async fn seed(
    size: &str,
    tenant: Option<&str>,
    subject: &str,
    what: SeedParts,
) -> Result<(), String> {
    use ragbot::ingest::seed;
    let size: seed::Size = size.parse().map_err(|e| format!("--size: {e}"))?;
    let environment = Config::from_env().map_err(|e| e.to_string())?.environment;
    if environment == ragbot::config::Environment::Production {
        return Err("seed refuses to run with RAGBOT_ENV=production: it would mix generated data into real knowledge".into());
    }
    let state = operator_state(true).await?;
    let tenant = tenant_or_default(&state, tenant)?;
    let bodies = seed::qa_bodies(size);
    if what.documents {
        let docs = seed::documents(size);
        let bar = progress((docs.len() + bodies.len()) as u64, "seeding");
        let mut chunks = 0;
        for (name, md) in docs {
            bar.set_message(name.clone());
            let report = put_and_ingest(
                &state,
                &format!("tenants/{tenant}/seed/{name}"),
                md.into_bytes(),
            )
            .await?;
            chunks += report.chunks.unwrap_or(0);
            bar.inc(1);
        }
        for body in &bodies {
            bar.set_message(body.document_title.clone());
            let outcome =
                ragbot::ingest::qa::ingest(&state.store, state.embedder.as_deref(), &tenant, body)
                    .await
                    .map_err(|e| e.to_string())?;
            chunks += outcome.chunks;
            bar.inc(1);
        }
        bar.finish_and_clear();
        eprintln!("seed: {size:?} knowledge in tenant {tenant}: {chunks} chunks");
    }
    if what.conversations {
        // Two turns each, asked through the chat pipeline (the configured provider), so the
        // messages carry real citations of the tenant's chunks.
        let questions: Vec<&str> = bodies
            .iter()
            .flat_map(|b| b.question_answer_data.iter().map(|p| p.question.as_str()))
            .collect();
        let n = seed::conversations(size).min(questions.len());
        let bar = progress(n as u64, "conversations");
        let mut cited = 0;
        for q in questions.iter().take(n) {
            let mut conversation = None;
            for message in [*q, "and who do I ask if that does not work?"] {
                let a = state
                    .chat
                    .answer(ragbot::chat::Question {
                        conversation_id: conversation,
                        ..ragbot::chat::Question::new(&tenant, subject, message)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                cited += a.citations.len();
                conversation = Some(a.conversation_id);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        eprintln!(
            "seed: {n} conversations of 2 turns for subject {subject} in tenant {tenant} ({cited} citations, provider {})",
            state.chat.provider().name()
        );
    }
    Ok(())
}

pub(crate) async fn reembed(batch: usize) -> Result<(), String> {
    let state = operator_state(false).await?;
    let embedder = state
        .embedder
        .clone()
        .ok_or("EMBEDDING_PROVIDER=none: nothing to embed with")?;
    let bar = indicatif::ProgressBar::new_spinner();
    let done = ragbot::ingest::reembed::run(&state.store, embedder.as_ref(), batch, |tenant, n| {
        bar.set_message(format!("tenant {tenant}: {n} chunks re-embedded"));
        bar.tick();
    })
    .await
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    eprintln!(
        "reembed: {} chunks in {} tenants now use {}",
        done.chunks,
        done.tenants,
        embedder.model_id()
    );
    Ok(())
}

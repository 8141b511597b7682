//! `ragbot` — the operator binary: local dev server, database bootstrap and migrations.
//! Later issues add admin subcommands (ingest, seed, eval, backups).

use ragbot_cli::{docs, web};

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use ragbot::{
    auth::{mint_token, Role, Tenant},
    config::{AuthSettings, DatabaseConfig, EmbeddingSettings, TlsMode},
    embedding::{self, EmbeddingProvider},
    http, store, telemetry, AppState, Config,
};

#[derive(Parser)]
#[command(name = "ragbot", version, about = "ragbot operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function's routes locally with the same handlers as Lambda.
    Dev {
        /// Address to listen on.
        #[arg(long, env = "RAGBOT_DEV_ADDR", default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
    },
    /// Apply pending schema migrations as the migrator role.
    Migrate {
        /// Connection string of the migrator role.
        #[arg(long, env = "MIGRATOR_DATABASE_URL", hide_env_values = true)]
        url: String,
        #[arg(long, env = "DATABASE_TLS", default_value = "disable")]
        tls: String,
        /// Then size the stored vectors for a model of this many dimensions (e.g. 1024 for
        /// Titan v2 on Bedrock); only while the knowledge base is empty.
        #[arg(long)]
        dimension: Option<usize>,
    },
    /// Mint a development token signed with the configured JWT_SECRET (prints it on stdout).
    Token {
        /// Subject (user id).
        #[arg(long)]
        sub: String,
        /// Tenant code (default: TENANT_CODE, else `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Comma-separated roles: admin, user.
        #[arg(long, default_value = "user")]
        roles: String,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Upload a file, or every file under a directory, to the documents bucket and ingest it;
    /// reports each document's outcome.
    Ingest {
        /// File or directory.
        path: std::path::PathBuf,
        /// Tenant the documents belong to (default: TENANT_CODE, else `default`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Load realistic generated knowledge (refused when RAGBOT_ENV=production).
    Seed {
        /// small ≈ 5 documents × 50 chunks + 20 Q&A pairs + 3 conversations; medium ×5; large ×20.
        #[arg(long, default_value = "small")]
        size: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Owner of the seeded conversations (the `sub` of your token; `make token` uses `dev`).
        #[arg(long, default_value = "dev")]
        subject: String,
        /// Only the conversations (asked through the chat pipeline against the knowledge there is).
        #[arg(long, conflicts_with = "documents_only")]
        conversations_only: bool,
        /// Only the documents and Q&A pairs.
        #[arg(long)]
        documents_only: bool,
    },
    /// Re-embed every chunk whose model differs from the configured one (resumable).
    Reembed {
        /// Chunks per batch (each batch is one committed transaction).
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Retrieval quality on a BEIR-layout dataset: ingests it into a fresh tenant, runs every query
    /// through the `/retrieve` code, prints recall@10 and nDCG@10 (JSON on the last line).
    Eval {
        /// Directory with corpus.jsonl, queries.jsonl, qrels.tsv.
        #[arg(long)]
        dataset: std::path::PathBuf,
        /// vector or hybrid (default: both).
        #[arg(long)]
        mode: Option<String>,
        /// Keep the ingested corpus (default: deleted at the end).
        #[arg(long)]
        keep: bool,
    },
    /// Chat quality on a Q&A dataset (corpus.jsonl of {_id, question, answer}, queries.jsonl of
    /// {_id, text, answerable}, qrels.tsv): ingests the entries into a fresh tenant, sends every
    /// question through the chat pipeline with the configured provider (LLM_PROVIDER), prints
    /// citation hit@1, right answers, exact answers, fallback rates and latency (JSON last line).
    EvalChat {
        #[arg(long)]
        dataset: std::path::PathBuf,
        /// Keep the ingested entries and conversations (default: deleted at the end).
        #[arg(long)]
        keep: bool,
        /// Ask only this many questions, spread evenly over the set (a local LLM takes seconds
        /// per answer).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Run a function's Lambda handler on an event file against the local stack; print the result.
    Invoke {
        /// health, embed, retrieve, backup or migrate.
        #[arg(long)]
        function: String,
        /// Event JSON (see events/).
        #[arg(long)]
        event: std::path::PathBuf,
    },
    /// Replay the embed function's failed asynchronous invocations (S3 notifications, ingestion
    /// workers) kept in FAILED_EVENTS_BUCKET after their retries, then start a worker again for
    /// every stalled ingestion job. Run it once the cause of the failures is fixed.
    ReplayFailed {
        /// In AWS: invoke this function (the stack's `<stack>-embed`) for each record, instead of
        /// running its handler here against the local stack.
        #[arg(long)]
        function: Option<String>,
    },
    /// Embed JSON lines `{"text": "..."}` from stdin; write `{"text": "...", "embedding": [...]}` lines.
    Embed,
    /// Database administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Logical backups of a tenant to the backups bucket, and restore.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Back up one tenant now (or every tenant with --all); prints each manifest.
    Create {
        /// Tenant (default: TENANT_CODE, else `default`).
        #[arg(long, conflicts_with = "all")]
        tenant: Option<String>,
        /// Every tenant that has data, as the schedule does.
        #[arg(long)]
        all: bool,
    },
    /// List a tenant's backups, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Replace the backup's tenant's documents, chunks and conversations with the backup's, in
    /// one transaction (the data is checked against its manifest first).
    Restore {
        /// Key of the data object, e.g. backups/acme/20261123T020000.000Z.jsonl.gz
        key: String,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create the migrator and app roles, the database, the vector extension and privileges.
    Bootstrap {
        /// Connection string of a superuser (rds_superuser on Aurora).
        #[arg(long, env = "RAGBOT_PG_ADMIN_URL", hide_env_values = true)]
        admin_url: String,
        /// Overrides the password in the admin URL.
        #[arg(long, env = "RAGBOT_PG_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        #[arg(long, env = "RAGBOT_DB_NAME", default_value = "ragbot")]
        database: String,
        #[arg(long, env = "RAGBOT_MIGRATOR_PASSWORD", hide_env_values = true)]
        migrator_password: String,
        #[arg(long, env = "RAGBOT_APP_PASSWORD", hide_env_values = true)]
        app_password: String,
        #[arg(long, env = "DATABASE_TLS", default_value = "disable")]
        tls: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ragbot: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Dev { addr } => dev(addr).await,
        Command::Embed => embed_stdin().await,
        Command::Ingest { path, tenant } => ingest(&path, tenant.as_deref()).await,
        Command::Seed {
            size,
            tenant,
            subject,
            conversations_only,
            documents_only,
        } => {
            let what = SeedParts {
                documents: !conversations_only,
                conversations: !documents_only,
            };
            seed(&size, tenant.as_deref(), &subject, what).await
        }
        Command::Reembed { batch } => reembed(batch).await,
        Command::Invoke { function, event } => invoke(&function, &event).await,
        Command::ReplayFailed { function } => replay_failed(function.as_deref()).await,
        Command::Backup { command } => backup(command).await,
        Command::Eval {
            dataset,
            mode,
            keep,
        } => eval(&dataset, mode.as_deref(), keep).await,
        Command::EvalChat {
            dataset,
            keep,
            limit,
        } => eval_chat(&dataset, keep, limit).await,
        Command::Token {
            sub,
            tenant,
            roles,
            ttl,
        } => {
            let token = mint(&sub, tenant.as_deref(), &roles, &ttl)?;
            println!("{token}");
            Ok(())
        }
        Command::Migrate {
            url,
            tls,
            dimension,
        } => {
            let cfg = DatabaseConfig::for_url(url, parse_tls(&tls)?);
            let applied = store::migrate(&cfg).await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                eprintln!("migrate: schema is up to date");
            } else {
                eprintln!("migrate: applied {applied:?}");
            }
            if let Some(d) = dimension {
                if store::set_dimension(&cfg, d)
                    .await
                    .map_err(|e| format!("migrate: {e}"))?
                {
                    eprintln!("migrate: stored vectors now have {d} dimensions");
                } else {
                    eprintln!("migrate: stored vectors already have {d} dimensions");
                }
            }
            Ok(())
        }
        Command::Db {
            command:
                DbCommand::Bootstrap {
                    admin_url,
                    admin_password,
                    database,
                    migrator_password,
                    app_password,
                    tls,
                },
        } => {
            store::bootstrap(&store::BootstrapSpec {
                admin_url,
                admin_password,
                database: database.clone(),
                migrator_password,
                app_password,
                tls: parse_tls(&tls)?,
                // A resuming Aurora cluster refuses connections for 10-15 s.
                connect_retry_budget: std::time::Duration::from_secs(60),
            })
            .await
            .map_err(|e| e.to_string())?;
            eprintln!(
                "bootstrap: database {database} with roles {} and {} is ready",
                store::MIGRATOR_ROLE,
                store::APP_ROLE
            );
            Ok(())
        }
    }
}

async fn embed_stdin() -> Result<(), String> {
    use std::io::{BufRead, Write};
    let settings = EmbeddingSettings::from_env().map_err(|e| e.to_string())?;
    let embedder = embedding::from_config(&settings)
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

async fn write_embedded(
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

/// Full app state for operator commands (logs as text on stderr unless LOG_FORMAT says otherwise).
async fn operator_state(check_model: bool) -> Result<AppState, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    if std::env::var("LOG_FORMAT").is_err() {
        telemetry::init(ragbot::config::LogFormat::Text);
    } else {
        telemetry::init(config.log_format);
    }
    AppState::init_with(config, check_model)
        .await
        .map_err(|e| e.to_string())
}

fn tenant_or_default(state: &AppState, tenant: Option<&str>) -> Result<Tenant, String> {
    match tenant {
        Some(t) => Tenant::parse(t),
        None => Ok(state.default_tenant.clone()),
    }
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Puts `bytes` at `key` in the documents bucket and ingests it with the code the embed function
/// runs for the S3 notification (which, in AWS, then finds the content unchanged).
async fn put_and_ingest(
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

async fn ingest(path: &std::path::Path, tenant: Option<&str>) -> Result<(), String> {
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
            report.result = if done.status == "done" {
                "ingested".into()
            } else {
                report.reason = done.failure_reason.clone();
                "failed".into()
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
async fn wait_for_job(
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
        if p.status != "running" {
            bar.finish_and_clear();
            return Ok(p);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn collect_files(path: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
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

struct SeedParts {
    documents: bool,
    conversations: bool,
}

async fn seed(
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

async fn reembed(batch: usize) -> Result<(), String> {
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

fn print_json(v: &ragbot::backup::Manifest) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn backup(command: BackupCommand) -> Result<(), String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    config.embedding.provider = ragbot::config::EmbeddingProviderKind::None;
    let state = AppState::init(config).await.map_err(|e| e.to_string())?;
    let tenant = |t: Option<String>| match t {
        Some(t) => ragbot::auth::Tenant::parse(&t),
        None => Ok(state.default_tenant.clone()),
    };
    let backups = state.backups();
    match command {
        BackupCommand::Create { tenant: t, all } => {
            if all {
                let mut failed = 0;
                for r in backups.create_all().await.map_err(|e| e.to_string())? {
                    match r {
                        Ok(m) => print_json(&m)?,
                        Err((t, e)) => {
                            failed += 1;
                            eprintln!("backup of {t} failed: {e}");
                        }
                    }
                }
                if failed > 0 {
                    return Err(format!("{failed} tenant backups failed"));
                }
            } else {
                let m = backups
                    .create(&tenant(t)?)
                    .await
                    .map_err(|e| e.to_string())?;
                print_json(&m)?;
            }
        }
        BackupCommand::List { tenant: t } => {
            let list = backups
                .list(&tenant(t)?, usize::MAX)
                .await
                .map_err(|e| e.to_string())?;
            for m in &list {
                println!(
                    "{}  {}  {} documents, {} chunks, {} conversations, {} messages, {} bytes",
                    m.created_at.to_rfc3339(),
                    m.key,
                    m.counts.documents,
                    m.counts.chunks,
                    m.counts.conversations,
                    m.counts.messages,
                    m.bytes
                );
            }
            if list.is_empty() {
                eprintln!("no backups");
            }
        }
        BackupCommand::Restore { key } => {
            let m = backups.restore(&key).await.map_err(|e| e.to_string())?;
            eprintln!(
                "restored tenant {} from {}: {} documents, {} chunks, {} conversations, {} messages",
                m.tenant,
                m.key,
                m.counts.documents,
                m.counts.chunks,
                m.counts.conversations,
                m.counts.messages
            );
        }
    }
    Ok(())
}

async fn invoke(function: &str, event: &std::path::Path) -> Result<(), String> {
    let raw = std::fs::read_to_string(event).map_err(|e| format!("{}: {e}", event.display()))?;
    let payload: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| format!("{}: not JSON: {e}", event.display()))?;
    let result = if function == "migrate" {
        ragbot::deploy::handle_custom_resource(&payload, None).await?
    } else {
        let routes = http::function_routes(function).ok_or_else(|| {
            format!("unknown function '{function}': use health, embed, retrieve, backup or migrate")
        })?;
        let triggers = ragbot::lambda::Triggers::of(function);
        let mut config = Config::from_env().map_err(|e| e.to_string())?;
        if !ragbot::lambda::needs_model(function) {
            config.embedding.provider = ragbot::config::EmbeddingProviderKind::None;
        }
        if std::env::var("LOG_FORMAT").is_err() {
            telemetry::init(ragbot::config::LogFormat::Text);
        } else {
            telemetry::init(config.log_format);
        }
        let state = AppState::init(config).await.map_err(|e| e.to_string())?;
        let router = http::app(routes, state.clone());
        ragbot::lambda::dispatch(router, &state, triggers, payload, Default::default())
            .await
            .map_err(|e| e.to_string())?
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn replay_failed(function: Option<&str>) -> Result<(), String> {
    use ragbot::lambda::{dispatch, replay_failed, Triggers};
    let restart = serde_json::json!({"action": ragbot::aws::RESTART_STALLED_ACTION});
    let (replayed, restarted) = match function {
        Some(function) => {
            // Only S3 and the Lambda API: the database is the function's to reach.
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let bucket = std::env::var("FAILED_EVENTS_BUCKET").map_err(|_| {
                "set FAILED_EVENTS_BUCKET to the stack's FailedEventsBucketName output".to_string()
            })?;
            let failed = ragbot::aws::failed_events::FailedEvents::new(
                aws_sdk_s3::Client::new(&sdk),
                bucket,
            );
            let lambda = aws_sdk_lambda::Client::new(&sdk);
            let replayed = replay_failed(&failed, |event| {
                let lambda = lambda.clone();
                async move {
                    // Asynchronously, as S3 invokes it: Lambda retries and keeps it again if needed.
                    ragbot::aws::invoke(&lambda, function, &event, false)
                        .await
                        .map_err(|e| e.to_string().into())
                }
            })
            .await
            .map_err(|e| e.to_string())?;
            let restarted = ragbot::aws::invoke(&lambda, function, &restart, true)
                .await
                .map_err(|e| e.to_string())?;
            (replayed, restarted)
        }
        None => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            telemetry::init(ragbot::config::LogFormat::Text);
            let state = AppState::init(config).await.map_err(|e| e.to_string())?;
            let failed = state.aws.failed_events().ok_or(
                "no failed-events bucket: set FAILED_EVENTS_BUCKET (or use --function in AWS)",
            )?;
            let routes = http::function_routes("embed").ok_or("no embed routes")?;
            let router = http::app(routes, state.clone());
            let replayed = replay_failed(&failed, |event| {
                dispatch(
                    router.clone(),
                    &state,
                    Triggers::S3,
                    event,
                    Default::default(),
                )
            })
            .await
            .map_err(|e| e.to_string())?;
            let restarted = dispatch(router, &state, Triggers::S3, restart, Default::default())
                .await
                .map_err(|e| e.to_string())?;
            (replayed, restarted)
        }
    };
    for r in &replayed {
        println!("{}", serde_json::to_string(r).map_err(|e| e.to_string())?);
    }
    let failed = replayed.iter().filter(|r| r.result == "failed").count();
    println!(
        "{}",
        serde_json::json!({
            "replayed": replayed.len() - failed,
            "failed_again": failed,
            "restarted_jobs": restarted["restarted"],
        })
    );
    if failed > 0 {
        return Err(format!(
            "{failed} of {} records failed again and were kept",
            replayed.len()
        ));
    }
    Ok(())
}

async fn eval(dir: &std::path::Path, mode: Option<&str>, keep: bool) -> Result<(), String> {
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

async fn eval_chat(dir: &std::path::Path, keep: bool, limit: Option<usize>) -> Result<(), String> {
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
    println!("{}", serde_json::to_string(&m).map_err(|e| e.to_string())?);
    Ok(())
}

fn mint(sub: &str, tenant: Option<&str>, roles: &str, ttl: &str) -> Result<String, String> {
    let settings = AuthSettings::from_env().map_err(|e| e.to_string())?;
    let tenant = Tenant::parse(tenant.unwrap_or(&settings.default_tenant))?;
    let roles = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| Role::parse(r).ok_or_else(|| format!("unknown role '{r}': use admin or user")))
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = humantime::parse_duration(ttl).map_err(|e| format!("--ttl '{ttl}': {e}"))?;
    mint_token(&settings, sub, &tenant, &roles, ttl)
}

fn parse_tls(s: &str) -> Result<TlsMode, String> {
    s.parse().map_err(|e| format!("DATABASE_TLS: {e}"))
}

async fn dev(addr: SocketAddr) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    telemetry::init(config.log_format);
    let state = AppState::init(config).await.map_err(|e| e.to_string())?;
    let mut app = http::app(http::all_routes(), state.clone());
    // Swagger UI at /docs, from the swagger-ui-dist package the install step unpacked.
    if let Some(dir) = std::env::var_os("SWAGGER_UI_DIR").map(std::path::PathBuf::from) {
        if docs::is_installed(&dir) {
            eprintln!("ragbot dev: API docs (Swagger UI) on http://{addr}/docs");
        } else {
            eprintln!(
                "ragbot dev: SWAGGER_UI_DIR={} holds no swagger-ui-dist; /docs says so",
                dir.display()
            );
        }
        app = app.merge(http::with_request_context(docs::router(dir)));
    }
    // The web chat page at /, from the repository's web/ (RAGBOT_WEB_DIR).
    if let Some(dir) = std::env::var_os("RAGBOT_WEB_DIR").map(std::path::PathBuf::from) {
        if web::is_present(&dir) {
            let auth = AuthSettings::from_env().map_err(|e| e.to_string())?;
            eprintln!("ragbot dev: the chat page on http://{addr}/");
            app = app.merge(http::with_request_context(web::router(dir, auth)));
        } else {
            eprintln!("ragbot dev: RAGBOT_WEB_DIR={} holds no page", dir.display());
        }
    }
    spawn_local_s3_notifications(&state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("ragbot dev: serving on http://{addr} (Ctrl-C stops)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())
}

/// s3s-fs sends no event notifications: poll the documents bucket and hand each change to the
/// embed function's Lambda handler as the S3 event JSON AWS would send.
fn spawn_local_s3_notifications(state: &AppState) {
    let notifier = ragbot::aws::notify_local::LocalNotifier::new(
        state.aws.s3.clone(),
        state.aws.documents_bucket.clone(),
    );
    let ingestor = state.ingestor.clone();
    let failed = state.aws.failed_events().map(std::sync::Arc::new);
    eprintln!(
        "ragbot dev: watching bucket {} for documents (S3 notifications emulated, every 2 s)",
        state.aws.documents_bucket
    );
    tokio::spawn(
        notifier.run(std::time::Duration::from_secs(2), move |event| {
            let (ingestor, failed) = (ingestor.clone(), failed.clone());
            async move {
                // Retried and kept on failure, as Lambda does with S3's asynchronous invocations.
                let handled = ragbot::lambda::deliver_async(
                    "embed",
                    event,
                    &ragbot::lambda::LOCAL_RETRY_DELAYS,
                    failed.as_deref(),
                    |e| {
                        let ingestor = ingestor.clone();
                        async move { ragbot::lambda::dispatch_s3(&ingestor, e).await }
                    },
                )
                .await;
                if let Some(result) = handled {
                    tracing::info!(%result, "local S3 notification handled");
                }
            }
        }),
    );
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    eprintln!("ragbot dev: shutting down");
}

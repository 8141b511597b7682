//! `ragbot` — the operator binary: local dev server, database bootstrap and migrations.
//! Later issues add admin subcommands (ingest, seed, eval, backups).

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
    /// Embed JSON lines `{"text": "..."}` from stdin; write `{"text": "...", "embedding": [...]}` lines.
    Embed,
    /// Database administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create the migrator and app roles, the database, the vector extension and privileges.
    Bootstrap {
        /// Connection string of a superuser (rds_superuser on Aurora).
        #[arg(long, env = "RAGBOT_PG_ADMIN_URL", hide_env_values = true)]
        admin_url: String,
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
        Command::Migrate { url, tls } => {
            let applied = store::migrate(&DatabaseConfig::for_url(url, parse_tls(&tls)?))
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                eprintln!("migrate: schema is up to date");
            } else {
                eprintln!("migrate: applied {applied:?}");
            }
            Ok(())
        }
        Command::Db {
            command:
                DbCommand::Bootstrap {
                    admin_url,
                    database,
                    migrator_password,
                    app_password,
                    tls,
                },
        } => {
            store::bootstrap(&store::BootstrapSpec {
                admin_url,
                database: database.clone(),
                migrator_password,
                app_password,
                tls: parse_tls(&tls)?,
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
    let app = http::app(http::all_routes(), state.clone());
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
    eprintln!(
        "ragbot dev: watching bucket {} for documents (S3 notifications emulated, every 2 s)",
        state.aws.documents_bucket
    );
    tokio::spawn(
        notifier.run(std::time::Duration::from_secs(2), move |event| {
            let ingestor = ingestor.clone();
            async move {
                match ragbot::lambda::dispatch_s3(&ingestor, event).await {
                    Ok(result) => tracing::info!(%result, "local S3 notification handled"),
                    Err(e) => tracing::warn!(error = %e, "local S3 notification failed"),
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

//! `ragbot` — the operator binary: the local dev server, database set-up and migrations,
//! knowledge (ingest, seed, re-embed), backups, evaluations, Lambda handlers on demand and
//! failed-event replay, development tokens. The command line is here; each group of subcommands
//! is a file in `cmd/`.

mod cmd;

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use cmd::{backup::*, db::*, dev::*, eval::*, invoke::*, knowledge::*, token::*};
use ragbot::store;

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
        } => migrate(url, &tls, dimension).await,
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
            bootstrap(store::BootstrapSpec {
                admin_url,
                admin_password,
                database,
                migrator_password,
                app_password,
                tls: parse_tls(&tls)?,
                // A resuming Aurora cluster refuses connections for 10-15 s.
                connect_retry_budget: std::time::Duration::from_secs(60),
            })
            .await
        }
    }
}

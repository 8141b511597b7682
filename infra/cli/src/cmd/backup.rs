//! `ragbot backup create|list|restore`.

use super::*;
use crate::BackupCommand;

pub(crate) fn print_json(v: &ragbot::backup::Manifest) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub(crate) async fn backup(command: BackupCommand) -> Result<(), String> {
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

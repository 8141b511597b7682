//! `GET /backups` and `POST /backups` (the backup function; admin only). Restore is not a public
//! route: it is `ragbot backup restore <key>` or a direct invocation of the backup function.

use axum::{extract::State, http::StatusCode, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Admin, ApiError, Authorized, ErrorEnvelope, Routes};
use crate::{
    backup::{BackupError, Manifest},
    AppState,
};

/// How many of the newest backups `GET /backups` lists.
const LIST_LIMIT: usize = 50;

pub fn routes() -> Routes {
    OpenApiRouter::new().routes(routes!(list_backups, create_backup))
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Store(e) => e.into(),
            BackupError::NotFound(key) => ApiError::not_found(format!("no backup {key}")),
            other => {
                ApiError::unavailable("the backup could not be written or read; retry shortly")
                    .caused_by(other)
            }
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BackupList {
    /// Newest first, at most 50.
    pub backups: Vec<Manifest>,
}

/// The caller's tenant's backups, newest first.
#[utoipa::path(get, path = "/backups", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Backups, newest first", body = BackupList),
        (status = 401, description = "Missing or invalid token", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope)))]
async fn list_backups(
    State(state): State<AppState>,
    who: Authorized<Admin>,
) -> Result<Json<BackupList>, ApiError> {
    let backups = state.backups().list(&who.tenant, LIST_LIMIT).await?;
    Ok(Json(BackupList { backups }))
}

/// Backs up the caller's tenant now (documents, chunks, conversations, messages) and answers with
/// the backup's manifest. Scheduled backups of every tenant run without a call.
#[utoipa::path(post, path = "/backups", tag = "backups",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Backup written", body = Manifest),
        (status = 401, description = "Missing or invalid token", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 503, description = "Database or bucket unavailable", body = ErrorEnvelope)))]
async fn create_backup(
    State(state): State<AppState>,
    who: Authorized<Admin>,
) -> Result<(StatusCode, Json<Manifest>), ApiError> {
    let manifest = state.backups().create(&who.tenant).await?;
    Ok((StatusCode::CREATED, Json(manifest)))
}

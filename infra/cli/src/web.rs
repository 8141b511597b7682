//! The web chat page (`web/`) on the dev server: the page's static files at `/`, a `config.json`
//! that offers the development sign-in, and `POST /dev/token`, which mints a development token
//! (HS256 with the local secret) for the sign-in form. Only `ragbot dev` mounts this: the Lambda
//! functions serve the API alone, and in AWS the page is static files with a `config.json` naming
//! the API, the streaming URL and the Cognito hosted UI.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use ragbot::{
    auth::{mint_token, Role, Tenant},
    config::AuthSettings,
    http::ApiError,
};
use serde::Deserialize;
use serde_json::json;

/// The page's files, with their content types.
const FILES: [(&str, &str); 3] = [
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
];

#[derive(Clone)]
struct Web {
    dir: PathBuf,
    auth: Arc<AuthSettings>,
}

/// `/`, `/{file}`, `/config.json` and `POST /dev/token` from `dir` (the repository's `web/`).
pub fn router(dir: PathBuf, auth: AuthSettings) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/config.json", get(config))
        .route("/dev/token", post(dev_token))
        .route("/{file}", get(file))
        .with_state(Web {
            dir,
            auth: Arc::new(auth),
        })
}

/// Whether `dir` holds the page.
pub fn is_present(dir: &Path) -> bool {
    FILES.iter().all(|(f, _)| dir.join(f).is_file())
}

async fn index(State(w): State<Web>) -> Response {
    serve(&w.dir, "index.html").await
}

async fn file(State(w): State<Web>, UrlPath(name): UrlPath<String>) -> Response {
    serve(&w.dir, &name).await
}

async fn serve(dir: &Path, name: &str) -> Response {
    match crate::static_file(dir, &FILES, name, "no-cache").await {
        Some(r) => r,
        None => ApiError::not_found(format!("no route for GET /{name}")).into_response(),
    }
}

/// The page's settings: same-origin API, and the development sign-in.
async fn config() -> Response {
    Json(json!({"devSignIn": true})).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    sub: String,
    tenant: String,
    roles: Vec<String>,
}

/// A development token for the sign-in form (12 hours).
async fn dev_token(State(w): State<Web>, Json(req): Json<TokenRequest>) -> Response {
    let fail = |m: String| ApiError::validation(m).into_response();
    let tenant = match Tenant::parse(req.tenant.trim()) {
        Ok(t) => t,
        Err(e) => return fail(format!("tenant: {e}")),
    };
    let mut roles = Vec::new();
    for r in &req.roles {
        match Role::parse(r) {
            Some(role) => roles.push(role),
            None => return fail(format!("unknown role '{r}': use admin or user")),
        }
    }
    if roles.is_empty() {
        return fail("pick at least one role".into());
    }
    let sub = req.sub.trim();
    if sub.is_empty() {
        return fail("user must not be empty".into());
    }
    match mint_token(
        &w.auth,
        sub,
        &tenant,
        &roles,
        Duration::from_secs(12 * 3600),
    ) {
        Ok(token) => (StatusCode::OK, Json(json!({ "token": token }))).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

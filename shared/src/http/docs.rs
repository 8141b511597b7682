//! Interactive API docs: Swagger UI for `/openapi.json`, at `/docs`.
//!
//! The UI's files come from the npm package `swagger-ui-dist`, which `infra/local/install.sh`
//! unpacks into `.local/swagger-ui` (nothing is fetched from a CDN when the page is viewed). The
//! local dev server mounts this router (`SWAGGER_UI_DIR`); in AWS the same files can be hosted
//! next to the web page (see the README).

use std::path::{Path, PathBuf};

use axum::{
    extract::{Path as UrlPath, State},
    http::header,
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};

use super::ApiError;

/// The files of `swagger-ui-dist` the page loads, with their content types.
const FILES: [(&str, &str); 3] = [
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("favicon-32x32.png", "image/png"),
];

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>ragbot API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true
    });
  </script>
</body>
</html>
"##;

/// `/docs` (the page) and `/docs/{file}` (its assets) from `dir`, the unpacked package's
/// directory (the one holding `swagger-ui-bundle.js`).
pub fn router(dir: PathBuf) -> Router {
    Router::new()
        .route("/docs", get(page))
        .route("/docs/", get(page))
        .route("/docs/{file}", get(asset))
        .with_state(dir)
}

/// Whether `dir` holds an unpacked `swagger-ui-dist`.
pub fn is_installed(dir: &Path) -> bool {
    FILES.iter().all(|(f, _)| dir.join(f).is_file())
}

async fn page(State(dir): State<PathBuf>) -> Response {
    if !is_installed(&dir) {
        return not_installed(&dir);
    }
    Html(PAGE).into_response()
}

async fn asset(State(dir): State<PathBuf>, UrlPath(file): UrlPath<String>) -> Response {
    // Only the known files: nothing else under (or outside) the directory is reachable.
    let Some((name, content_type)) = FILES.iter().find(|(f, _)| *f == file) else {
        return ApiError::not_found(format!("no file {file} in the API docs")).into_response();
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_installed(&dir),
    }
}

fn not_installed(dir: &Path) -> Response {
    ApiError::not_found(format!(
        "the API docs are not installed ({} has no swagger-ui-dist): run `bash infra/local/install.sh`",
        dir.display()
    ))
    .into_response()
}

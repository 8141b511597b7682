//! Interactive API docs: Swagger UI for `/openapi.json`, at `/docs`.
//!
//! The UI's files come from the npm package `swagger-ui-dist`, which `infra/local/install.sh`
//! unpacks into `.local/swagger-ui` (nothing is fetched from a CDN when the page is viewed). Only
//! the local dev server mounts this router (`SWAGGER_UI_DIR`): it is a page over the API, not part
//! of it, so it is neither in the OpenAPI document nor in the functions. In AWS the same files
//! can be hosted next to the web page (see the README).

use std::path::{Path, PathBuf};

use axum::{
    extract::{Path as UrlPath, State},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};

use ragbot::http::ApiError;

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
    if !FILES.iter().any(|(f, _)| *f == file) {
        return ApiError::not_found(format!("no file {file} in the API docs")).into_response();
    }
    match crate::static_file(&dir, &FILES, &file, "public, max-age=3600").await {
        Some(r) => r,
        None => not_installed(&dir),
    }
}

fn not_installed(dir: &Path) -> Response {
    ApiError::not_found(format!(
        "the API docs are not installed ({} has no swagger-ui-dist): run `bash infra/local/install.sh`",
        dir.display()
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let r = router.oneshot(req).await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, ct, body)
    }

    /// Against the package `make test`'s install step unpacked.
    #[tokio::test]
    async fn docs_serve_swagger_ui_from_the_installed_package() {
        let dir = std::env::var("SWAGGER_UI_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/swagger-ui/package")
            });
        assert!(
            is_installed(&dir),
            "{} holds no swagger-ui-dist (make test installs it: bash infra/local/install.sh)",
            dir.display()
        );
        let docs = router(dir);
        let (status, ct, page) = get(docs.clone(), "/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("/openapi.json") && page.contains("/docs/swagger-ui-bundle.js"));
        let (status, ct, js) = get(docs.clone(), "/docs/swagger-ui-bundle.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/javascript"), "{ct}");
        assert!(js.len() > 100_000, "the real bundle");
        // Only the page's own files: nothing else in (or outside) the package directory.
        for uri in ["/docs/package.json", "/docs/..%2F..%2Fetc%2Fpasswd"] {
            let (status, _, _) = get(docs.clone(), uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        }
        // Not installed: a 404 that says how to install it.
        let (status, _, body) = get(router("/nonexistent/swagger".into()), "/docs").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("install.sh"));
    }
}

//! The dev server's own pages, beside the API it serves: Swagger UI at `/docs` ([`docs`]) and the
//! web chat page at `/` ([`web`]). A library so the browser tests serve exactly what `ragbot dev`
//! serves.

pub mod docs;
pub mod web;

use std::path::Path;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

/// One of `files` (name, content type) from `dir`, or `None` when `name` is not one of them (so
/// nothing else under, or outside, the directory is reachable) or cannot be read.
pub(crate) async fn static_file(
    dir: &Path,
    files: &[(&str, &'static str)],
    name: &str,
    cache_control: &'static str,
) -> Option<Response> {
    let (name, content_type) = files.iter().find(|(f, _)| *f == name)?;
    let bytes = tokio::fs::read(dir.join(name)).await.ok()?;
    Some(
        (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, cache_control),
            ],
            bytes,
        )
            .into_response(),
    )
}

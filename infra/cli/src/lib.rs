//! The dev server's own pages, beside the API it serves: Swagger UI at `/docs` ([`docs`]) and the
//! web chat page at `/` ([`web`]). A library so the browser tests serve exactly what `ragbot dev`
//! serves.

pub mod docs;
pub mod web;

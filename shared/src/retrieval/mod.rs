//! Retrieval: the read path every answer rests on. Checks the query, embeds it, searches the
//! tenant's chunks (HNSW cosine, or hybrid: vector + full-text fused by reciprocal rank), applies
//! the similarity threshold, and when nothing is good enough returns a fallback (sample questions
//! from the tenant's Q&A pairs and a disclaimer) instead of guessing.

#[cfg(feature = "operator")]
pub mod eval;
mod query;
mod search;
mod settings;
mod types;

pub use query::{check_query, check_text, QueryCheck};
pub use search::{fallback, search, search_embedded};
pub use types::{
    Fallback, Filters, Hit, Mode, RetrieveError, RetrieveRequest, RetrieveResponse,
    RetrieveSettings,
};

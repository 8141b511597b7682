//! Knowledge ingestion: the write path. Validates input, embeds outside any transaction, then
//! writes the document and all of its chunks in ONE tenant-scoped transaction, so a failure leaves
//! the previous version intact. Identical content (same sha256) is a no-op.

pub mod chunking;
pub mod document;
mod error;
pub mod jobs;
pub mod qa;
#[cfg(feature = "operator")]
pub mod reembed;
#[cfg(feature = "operator")]
pub mod seed;
mod settings;
mod write;

pub use error::IngestError;
pub use settings::{IngestSettings, JobSettings};
pub use write::{sha256_hex, Change, Outcome};
pub(crate) use write::{stored_version, write_version};

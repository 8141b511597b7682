//! The boxed future of the crate's object-safe async traits (`Arc<dyn EmbeddingProvider>`,
//! `Arc<dyn LlmProvider>`, the ports).

use std::{future::Future, pin::Pin};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

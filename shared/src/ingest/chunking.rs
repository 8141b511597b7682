//! Token-aware chunking with the embedder's own tokenizer, so every chunk fits the model's window.
//! text-splitter breaks at the largest unit that fits: headings/blocks (markdown), paragraphs, then
//! sentences, then words. Sections come from the parser, so a chunk never spans two headings or two
//! PDF pages, and carries their heading path and page number in its metadata.

use std::sync::Arc;

use serde_json::{json, Value};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::parsing::Parsed;

/// A chunk before embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub text: String,
    pub metadata: Value,
    pub token_count: usize,
}

#[derive(Clone)]
enum Sizer {
    /// The embedding model's tokenizer (without truncation or padding).
    Tokens(Arc<Tokenizer>),
    /// No tokenizer (remote providers): about four characters per token.
    Approximate,
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Tokens(t) => t
                .encode_fast(chunk, false)
                .map(|e| e.len())
                .unwrap_or_else(|_| chunk.len().div_ceil(4)),
            Sizer::Approximate => chunk.chars().count().div_ceil(4),
        }
    }
}

#[derive(Clone)]
pub struct Chunker {
    sizer: Sizer,
    max_tokens: usize,
    overlap: usize,
}

impl Chunker {
    /// `max_tokens` excludes the two special tokens the model adds ([CLS], [SEP]).
    pub fn new(
        tokenizer: Option<&Tokenizer>,
        max_tokens: usize,
        overlap: usize,
    ) -> Result<Self, String> {
        if max_tokens == 0 || overlap >= max_tokens {
            return Err(format!(
                "chunk overlap ({overlap}) must be smaller than the chunk size ({max_tokens})"
            ));
        }
        let sizer = match tokenizer {
            Some(t) => {
                let mut t = t.clone();
                t.with_truncation(None).map_err(|e| e.to_string())?;
                t.with_padding(None);
                Sizer::Tokens(Arc::new(t))
            }
            None => Sizer::Approximate,
        };
        Ok(Chunker {
            sizer,
            max_tokens,
            overlap,
        })
    }

    pub fn chunk(&self, parsed: &Parsed) -> Result<Vec<Draft>, String> {
        let config = || {
            ChunkConfig::new(self.max_tokens)
                .with_sizer(self.sizer.clone())
                .with_overlap(self.overlap)
                .map_err(|e| e.to_string())
        };
        let text_splitter = TextSplitter::new(config()?);
        let md_splitter = MarkdownSplitter::new(config()?);
        let mut out = Vec::new();
        for section in &parsed.sections {
            let pieces: Vec<&str> = if parsed.markdown {
                md_splitter.chunks(&section.text).collect()
            } else {
                text_splitter.chunks(&section.text).collect()
            };
            for piece in pieces {
                let text = piece.trim();
                if text.is_empty() {
                    continue;
                }
                let mut metadata = json!({});
                if !section.headings.is_empty() {
                    metadata["headings"] = json!(section.headings);
                }
                if let Some(page) = section.page {
                    metadata["page"] = json!(page);
                }
                out.push(Draft {
                    text: text.to_string(),
                    token_count: self.sizer.size(text),
                    metadata,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsing::{self, Format};

    #[test]
    fn approximate_chunks_respect_the_size_and_keep_headings() -> Result<(), String> {
        let chunker = Chunker::new(None, 20, 4)?;
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let md = format!(
            "# Guide\n{}\n\n## Install\n{}",
            sentence.repeat(10),
            sentence.repeat(3)
        );
        let parsed = parsing::parse(Format::Markdown, md.as_bytes()).map_err(|e| e.to_string())?;
        let drafts = chunker.chunk(&parsed)?;
        assert!(drafts.len() > 3, "{drafts:?}");
        assert!(drafts.iter().all(|d| d.token_count <= 20), "{drafts:?}");
        let last = drafts.last().ok_or("no chunks")?;
        assert_eq!(last.metadata["headings"], json!(["Guide", "Install"]));
        assert!(Chunker::new(None, 10, 10).is_err());
        Ok(())
    }
}

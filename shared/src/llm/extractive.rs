//! The extractive provider: no model call, no key, deterministic.
//!
//! - When the best passage is a Q&A pair at least `qa_direct_threshold` similar to the question,
//!   the answer is its stored answer, verbatim (the text business users approved), citing it.
//! - Otherwise the answer is the few sentences of the passages closest to the question (by the
//!   in-process embedder), in passage order, each followed by its `[n]` and cited with its span.

use std::time::Instant;

use super::{AnswerPrompt, CitedSpans, Completion, LlmError, LlmProvider, Passage, Turn, Usage};
use crate::{embedding::SharedEmbedder, BoxFuture};

/// Sentences shorter than this (in characters) carry too little to quote on their own.
const MIN_SENTENCE_CHARS: usize = 12;
/// Sentences from at most this many passages are considered.
const PASSAGES_CONSIDERED: usize = 3;

pub struct Extractive {
    embedder: Option<SharedEmbedder>,
    qa_direct_threshold: f32,
    max_sentences: usize,
}

impl Extractive {
    pub fn new(
        embedder: Option<SharedEmbedder>,
        qa_direct_threshold: f32,
        max_sentences: usize,
    ) -> Self {
        Extractive {
            embedder,
            qa_direct_threshold,
            max_sentences: max_sentences.max(1),
        }
    }

    async fn extract(&self, p: &AnswerPrompt<'_>) -> Result<Completion, LlmError> {
        // The most similar passage (in hybrid mode the first one is not always it).
        let Some(best) = p.passages.iter().max_by(|a, b| {
            a.similarity
                .total_cmp(&b.similarity)
                .then(b.index.cmp(&a.index))
        }) else {
            return Ok(done(String::new(), Vec::new()));
        };
        if let Some(answer) = best
            .answer
            .as_deref()
            .filter(|_| best.similarity >= f64::from(self.qa_direct_threshold))
        {
            let text = answer.trim().to_string();
            let end = text.chars().count();
            return Ok(done(text, vec![(best.index, vec![(0, end)])]));
        }
        let candidates: Vec<(&Passage, usize, &str)> = p
            .passages
            .iter()
            .take(PASSAGES_CONSIDERED)
            .flat_map(|passage| {
                let body = passage.answer.as_deref().unwrap_or(&passage.text);
                sentences(body)
                    .into_iter()
                    .enumerate()
                    .map(move |(i, s)| (passage, i, s))
            })
            .filter(|(_, _, s)| s.chars().count() >= MIN_SENTENCE_CHARS)
            .collect();
        if candidates.is_empty() {
            // Nothing sentence-like (e.g. a table row): quote the best passage itself.
            let body = best.answer.as_deref().unwrap_or(&best.text).trim();
            return Ok(quote(&[(best.index, body)]));
        }
        let order = self.rank(p.question, &candidates).await?;
        let mut chosen: Vec<usize> = order.into_iter().take(self.max_sentences).collect();
        // Read in the order the knowledge base tells it: by passage rank, then position.
        chosen.sort_unstable();
        let picked: Vec<(usize, &str)> = chosen
            .iter()
            .map(|&i| (candidates[i].0.index, candidates[i].2))
            .collect();
        Ok(quote(&picked))
    }

    /// Candidate positions, most similar to the question first. Without an embedder (a process
    /// that loads no model), the passages' own order.
    async fn rank(
        &self,
        question: &str,
        candidates: &[(&Passage, usize, &str)],
    ) -> Result<Vec<usize>, LlmError> {
        let Some(embedder) = &self.embedder else {
            return Ok((0..candidates.len()).collect());
        };
        let mut texts: Vec<&str> = Vec::with_capacity(candidates.len() + 1);
        texts.push(question);
        texts.extend(candidates.iter().map(|(_, _, s)| *s));
        let vectors = embedder
            .embed(&texts)
            .await
            .map_err(|e| LlmError::Unavailable(format!("ranking sentences: {e}")))?;
        let Some((q, rest)) = vectors.split_first() else {
            return Err(LlmError::Provider("the embedder returned nothing".into()));
        };
        let mut scored: Vec<(usize, f32)> = rest
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(scored.into_iter().map(|(i, _)| i).collect())
    }
}

fn done(text: String, citations: CitedSpans) -> Completion {
    Completion {
        text,
        usage: Usage::default(),
        model: "extractive".to_string(),
        citations: Some(citations),
    }
}

/// "sentence [n] sentence [m]", each sentence's span cited by its passage.
fn quote(parts: &[(usize, &str)]) -> Completion {
    let mut text = String::new();
    let mut cited: CitedSpans = Vec::new();
    for (index, sentence) in parts {
        if !text.is_empty() {
            text.push(' ');
        }
        let start = text.chars().count();
        text.push_str(sentence.trim());
        let end = text.chars().count();
        text.push_str(&format!(" [{index}]"));
        match cited.iter_mut().find(|(i, _)| i == index) {
            Some((_, spans)) => spans.push((start, end)),
            None => cited.push((*index, vec![(start, end)])),
        }
    }
    done(text, cited)
}

/// Sentences of `text`: split after `.`, `!` or `?` followed by whitespace, and at line breaks.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        let end = match c {
            '\n' => Some(i),
            '.' | '!' | '?' if next_is_space => Some(i + c.len_utf8()),
            _ => None,
        };
        if let Some(end) = end {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

impl LlmProvider for Extractive {
    fn name(&self) -> &'static str {
        "extractive"
    }

    fn model(&self) -> &str {
        "extractive"
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn answer<'a>(
        &'a self,
        prompt: &'a AnswerPrompt<'a>,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.extract(prompt))
    }

    fn rewrite<'a>(
        &'a self,
        _history: &'a [Turn],
        _question: &'a str,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Option<Completion>, LlmError>> {
        Box::pin(async { Ok(None) })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(index: usize, text: &str, qa: Option<(&str, &str)>, similarity: f64) -> Passage {
        Passage {
            index,
            title: format!("doc {index}"),
            text: text.into(),
            question: qa.map(|(q, _)| q.into()),
            answer: qa.map(|(_, a)| a.into()),
            similarity,
        }
    }

    fn prompt<'a>(passages: &'a [Passage]) -> AnswerPrompt<'a> {
        AnswerPrompt {
            system: "",
            history: &[],
            question: "q",
            passages,
        }
    }

    #[tokio::test]
    async fn a_close_qa_pair_is_answered_verbatim() -> Result<(), LlmError> {
        let passages = [passage(
            1,
            "Use ~~tildes~~.",
            Some(("Strikethrough?", "Use ~~tildes~~.")),
            0.9,
        )];
        let c = Extractive::new(None, 0.6, 3)
            .extract(&prompt(&passages))
            .await?;
        assert_eq!(c.text, "Use ~~tildes~~.");
        assert_eq!(c.citations, Some(vec![(1, vec![(0, 15)])]));
        assert_eq!(c.usage.total(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn otherwise_sentences_are_quoted_with_their_spans() -> Result<(), LlmError> {
        let passages = [
            passage(1, "Staff get 25 days of leave. Ask HR for more.", None, 0.5),
            passage(2, "Carry-over is limited to five days.", None, 0.4),
        ];
        let c = Extractive::new(None, 0.6, 2)
            .extract(&prompt(&passages))
            .await?;
        assert_eq!(
            c.text,
            "Staff get 25 days of leave. [1] Ask HR for more. [1]"
        );
        let cites = c.citations.unwrap_or_default();
        let text: Vec<char> = c.text.chars().collect();
        let (_, spans) = &cites[0];
        let first: String = text[spans[0].0..spans[0].1].iter().collect();
        assert_eq!(first, "Staff get 25 days of leave.");
        Ok(())
    }

    #[test]
    fn sentences_split_at_ends_and_lines() {
        assert_eq!(
            sentences("One. Two? Three!\nFour 3.5 five"),
            vec!["One.", "Two?", "Three!", "Four 3.5 five"]
        );
        assert_eq!(sentences("  "), Vec::<&str>::new());
    }
}

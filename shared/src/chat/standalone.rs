//! Follow-ups made standalone without a model: a question that leans on the previous turn (a
//! pronoun or reference, or too short to stand alone) is searched together with the previous
//! question, so "and how long does it take?" after "How do I delete my account?" finds the
//! account-deletion passage.

use crate::llm::{Role, Turn};

/// Words that refer back to something said before.
const REFERRING: [&str; 22] = [
    "it", "its", "it's", "this", "that", "these", "those", "they", "them", "their", "there", "he",
    "she", "him", "her", "one", "ones", "same", "above", "previous", "such", "then",
];

/// Follow-ups of at most this many words usually need the previous turn.
const SHORT_WORDS: usize = 4;

/// Whether `question` likely depends on the conversation before it.
pub fn needs_context(question: &str) -> bool {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.len() <= SHORT_WORDS {
        return true;
    }
    let starts_as_continuation = matches!(
        words.first().map(String::as_str),
        Some("and" | "but" | "also" | "so" | "what" | "how")
    ) && words.len() <= 8;
    starts_as_continuation || words.iter().any(|w| REFERRING.contains(&w.as_str()))
}

/// The question to search with: the previous user question joined to this one when this one
/// leans on it; the question itself otherwise.
pub fn heuristic(history: &[Turn], question: &str) -> String {
    let previous = history
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.content.trim());
    match previous {
        Some(p) if !p.is_empty() && needs_context(question) => format!("{p} {question}"),
        _ => question.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> Turn {
        Turn {
            role: Role::User,
            content: s.into(),
        }
    }

    #[test]
    fn follow_ups_borrow_the_previous_question() {
        let h = [
            user("How do I delete my Facebook account?"),
            Turn {
                role: Role::Assistant,
                content: "Go to the help page.".into(),
            },
        ];
        assert_eq!(
            heuristic(&h, "how long does it take?"),
            "How do I delete my Facebook account? how long does it take?"
        );
        assert_eq!(
            heuristic(&h, "What is the capital of France and of Spain today?"),
            "What is the capital of France and of Spain today?"
        );
        assert_eq!(heuristic(&[], "and then?"), "and then?");
    }

    #[test]
    fn standalone_questions_are_left_alone() {
        assert!(!needs_context("How do I add new styles to Google docs?"));
        assert!(needs_context("Why?"));
        assert!(needs_context("Can I undo that later on my phone?"));
    }
}

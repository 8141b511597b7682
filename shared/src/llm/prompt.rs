//! The prompts remote providers get: numbered context passages, answer only from them, cite `[n]`.

use super::{AnswerPrompt, Role, Turn};

/// The default system prompt (`CHAT_SYSTEM_PROMPT` replaces it).
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant for a team's knowledge base. \
Answer the user's question using only the numbered context passages. Cite the passages you use \
with their numbers in square brackets, like [1] or [2], right after the sentence they support. \
If the passages do not answer the question, say that the knowledge base does not cover it. \
Be brief: a few sentences at most.";

/// At most this many characters of one passage go into the prompt.
pub const MAX_PASSAGE_CHARS: usize = 1500;

/// A chat message as OpenAI-compatible APIs and Bedrock's Converse take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

fn clip(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The numbered passages block.
pub fn context_block(prompt: &AnswerPrompt<'_>) -> String {
    let mut ctx = String::new();
    for p in prompt.passages {
        ctx.push_str(&format!("[{}] {}\n", p.index, p.title));
        match (&p.question, &p.answer) {
            (Some(q), Some(a)) => ctx.push_str(&format!(
                "Q: {}\nA: {}\n\n",
                clip(q, 300),
                clip(a, MAX_PASSAGE_CHARS)
            )),
            _ => ctx.push_str(&format!("{}\n\n", clip(&p.text, MAX_PASSAGE_CHARS))),
        }
    }
    ctx
}

/// System, then the history, then the question with its context passages.
pub fn answer_messages(prompt: &AnswerPrompt<'_>) -> Vec<Message> {
    let mut out = vec![Message {
        role: "system",
        content: prompt.system.to_string(),
    }];
    out.extend(history(prompt.history));
    out.push(Message {
        role: "user",
        content: format!(
            "Context passages:\n\n{}Question: {}",
            context_block(prompt),
            prompt.question
        ),
    });
    out
}

/// Asks for the last question rewritten so it can be understood without the conversation.
pub fn rewrite_messages(turns: &[Turn], question: &str) -> Vec<Message> {
    let mut transcript = String::new();
    for t in turns {
        let who = match t.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        transcript.push_str(&format!("{who}: {}\n", clip(&t.content, 500)));
    }
    vec![
        Message {
            role: "system",
            content: "Rewrite the user's last question so that it can be understood without the \
                      conversation: replace pronouns and references with what they refer to. \
                      Reply with the rewritten question only, nothing else."
                .to_string(),
        },
        Message {
            role: "user",
            content: format!(
                "Conversation:\n{transcript}\nLast question: {question}\n\nRewritten question:"
            ),
        },
    ]
}

fn history(turns: &[Turn]) -> impl Iterator<Item = Message> + '_ {
    turns.iter().map(|t| Message {
        role: t.role.as_str(),
        content: t.content.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Passage;

    #[test]
    fn passages_are_numbered_and_the_question_comes_last() {
        let passages = [
            Passage {
                index: 1,
                title: "Leave".into(),
                text: "Staff get 25 days.".into(),
                question: None,
                answer: None,
                similarity: 0.8,
            },
            Passage {
                index: 2,
                title: "FAQ".into(),
                text: "x".into(),
                question: Some("Can I carry days over?".into()),
                answer: Some("Up to five.".into()),
                similarity: 0.7,
            },
        ];
        let history = [Turn {
            role: Role::User,
            content: "hi".into(),
        }];
        let p = AnswerPrompt {
            system: "sys",
            history: &history,
            question: "How many days?",
            passages: &passages,
        };
        let m = answer_messages(&p);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].role, m[1].role, m[2].role),
            ("system", "user", "user")
        );
        assert!(m[2].content.contains("[1] Leave\nStaff get 25 days."));
        assert!(m[2]
            .content
            .contains("[2] FAQ\nQ: Can I carry days over?\nA: Up to five."));
        assert!(m[2].content.ends_with("Question: How many days?"));
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hi", 5), "hi");
    }
}

//! Answer generation on Amazon Bedrock through the Converse API (any Bedrock chat model or
//! inference profile id), with an optional guardrail. Throttling and 5xx are retried by the SDK's
//! standard retry mode; the whole call is bounded by the answer's deadline.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::{
    error::DisplayErrorContext,
    types::{
        ContentBlock, ConversationRole, GuardrailConfiguration, InferenceConfiguration, Message,
        SystemContentBlock,
    },
};

use crate::{
    llm::{
        prompt::{self, Message as PromptMessage},
        AnswerPrompt, Completion, LlmError, LlmProvider, LlmSettings, Turn, Usage,
    },
    BoxFuture,
};

pub struct BedrockChat {
    client: aws_sdk_bedrockruntime::Client,
    model: String,
    temperature: f32,
    max_tokens: u32,
    guardrail: Option<(String, String)>,
}

impl BedrockChat {
    pub async fn new(s: &LlmSettings) -> Result<Self, LlmError> {
        // No per-attempt timeout: the answer's deadline bounds the whole call.
        let client = super::bedrock::runtime_client(
            &s.region,
            s.bedrock_endpoint.as_deref(),
            s.max_retries,
            None,
        )
        .await;
        Ok(BedrockChat {
            client,
            model: s.model.clone(),
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            guardrail: s.guardrail.clone(),
        })
    }

    async fn converse(
        &self,
        messages: Vec<PromptMessage>,
        max_tokens: u32,
        deadline: Instant,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut req = self
            .client
            .converse()
            .model_id(&self.model)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens as i32)
                    .temperature(self.temperature)
                    .build(),
            );
        if let Some((id, version)) = &self.guardrail {
            req = req.guardrail_config(
                GuardrailConfiguration::builder()
                    .guardrail_identifier(id)
                    .guardrail_version(version)
                    .build(),
            );
        }
        // Converse takes the system text apart and strictly alternating user/assistant turns.
        let mut turns: Vec<(ConversationRole, String)> = Vec::new();
        for m in messages {
            let role = match m.role {
                "system" => {
                    req = req.system(SystemContentBlock::Text(m.content));
                    continue;
                }
                "assistant" => ConversationRole::Assistant,
                _ => ConversationRole::User,
            };
            match turns.last_mut() {
                Some((last, text)) if *last == role => {
                    text.push_str("\n\n");
                    text.push_str(&m.content);
                }
                _ => turns.push((role, m.content)),
            }
        }
        if turns
            .first()
            .is_some_and(|(r, _)| *r == ConversationRole::Assistant)
        {
            turns.remove(0);
        }
        for (role, text) in turns {
            let msg = Message::builder()
                .role(role)
                .content(ContentBlock::Text(text))
                .build()
                .map_err(|e| LlmError::Provider(format!("building the Converse request: {e}")))?;
            req = req.messages(msg);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let out = match tokio::time::timeout(left, req.send()).await {
            Err(_) => return Err(LlmError::Timeout(started.elapsed().as_millis() as u64)),
            Ok(Err(e)) => {
                let down = e
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 429 || r.status().is_server_error())
                    || e.as_service_error().is_none();
                let msg = format!("bedrock {}: {}", self.model, DisplayErrorContext(&e));
                return Err(if down {
                    LlmError::Unavailable(msg)
                } else {
                    LlmError::Provider(msg)
                });
            }
            Ok(Ok(out)) => out,
        };
        let text: String = out
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| {
                m.content()
                    .iter()
                    .filter_map(|c| c.as_text().ok())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("")
            })
            .ok_or_else(|| {
                LlmError::Provider(format!(
                    "bedrock {}: the response has no message",
                    self.model
                ))
            })?;
        let usage = out
            .usage()
            .map(|u| Usage {
                prompt_tokens: u.input_tokens().max(0) as u32,
                completion_tokens: u.output_tokens().max(0) as u32,
            })
            .unwrap_or_default();
        Ok(Completion {
            text: text.trim().to_string(),
            usage,
            model: self.model.clone(),
            citations: None,
        })
    }
}

impl LlmProvider for BedrockChat {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn answer<'a>(
        &'a self,
        p: &'a AnswerPrompt<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.converse(prompt::answer_messages(p), self.max_tokens, deadline))
    }

    fn rewrite<'a>(
        &'a self,
        history: &'a [Turn],
        question: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Option<Completion>, LlmError>> {
        Box::pin(async move {
            self.converse(prompt::rewrite_messages(history, question), 64, deadline)
                .await
                .map(Some)
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async move {
            let msgs = vec![PromptMessage {
                role: "user",
                content: "ping".to_string(),
            }];
            self.converse(msgs, 1, Instant::now() + Duration::from_secs(5))
                .await
                .map(|_| ())
        })
    }
}

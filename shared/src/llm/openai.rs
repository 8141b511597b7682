//! An OpenAI-compatible `/chat/completions` client (OpenAI, OpenRouter, Groq, Ollama, vLLM,
//! llama.cpp's server): base URL, key, model, temperature, max tokens. Retries 429/5xx and
//! transport errors with backoff and jitter, honouring `Retry-After`, but never past the answer's
//! deadline: each attempt gets what is left of it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::{
    prompt::{self, Message},
    AnswerPrompt, Completion, LlmError, LlmProvider, LlmSettings, Turn, Usage,
};
use crate::BoxFuture;

pub struct OpenAiChat {
    http: reqwest::Client,
    url: String,
    models_url: String,
    model: String,
    api_key: Option<String>,
    temperature: f32,
    max_tokens: u32,
    max_retries: u32,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl OpenAiChat {
    pub fn new(s: &LlmSettings) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        let base = s.base_url.trim_end_matches('/');
        Ok(OpenAiChat {
            http,
            url: format!("{base}/chat/completions"),
            models_url: format!("{base}/models"),
            model: s.model.clone(),
            api_key: s.api_key.clone(),
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            max_retries: s.max_retries,
        })
    }

    /// One completion of `messages`, retried within `deadline`.
    pub async fn chat(
        &self,
        messages: &[Message],
        max_tokens: u32,
        deadline: Instant,
    ) -> Result<Completion, LlmError> {
        let body = json!({
            "model": self.model,
            "messages": messages.iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>(),
            "temperature": self.temperature,
            "max_tokens": max_tokens,
            "stream": false,
        });
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LlmError::Timeout(started.elapsed().as_millis() as u64));
            }
            let mut req = self.http.post(&self.url).json(&body).timeout(left);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let (retry_after, why) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let parsed: Response = resp.json().await.map_err(|e| {
                        if e.is_timeout() {
                            LlmError::Timeout(started.elapsed().as_millis() as u64)
                        } else {
                            LlmError::Provider(format!("{}: unexpected response: {e}", self.url))
                        }
                    })?;
                    return self.completion(parsed);
                }
                Ok(resp) => {
                    let crate::retry::Failure {
                        status,
                        retry_after,
                        detail,
                        retryable,
                    } = crate::retry::Failure::read(resp).await;
                    if !retryable {
                        return Err(LlmError::Provider(format!(
                            "{} answered {status}: {detail}",
                            self.url
                        )));
                    }
                    (retry_after, format!("{status}: {detail}"))
                }
                Err(e) if e.is_timeout() => {
                    return Err(LlmError::Timeout(started.elapsed().as_millis() as u64))
                }
                Err(e) => (None, e.to_string()),
            };
            let delay = retry_after
                .unwrap_or_else(|| crate::retry::backoff(attempt))
                .min(Duration::from_secs(10));
            if attempt >= self.max_retries || Instant::now() + delay >= deadline {
                return Err(LlmError::Unavailable(format!(
                    "{} after {} attempts: {why}",
                    self.url,
                    attempt + 1
                )));
            }
            tracing::warn!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, url = %self.url, reason = %why, "LLM request retried");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn completion(&self, r: Response) -> Result<Completion, LlmError> {
        let text = r
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| {
                LlmError::Provider(format!("{}: the response has no choice", self.url))
            })?;
        Ok(Completion {
            text: text.trim().to_string(),
            usage: r
                .usage
                .map(|u| Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                })
                .unwrap_or_default(),
            model: r.model.unwrap_or_else(|| self.model.clone()),
            citations: None,
        })
    }
}

impl LlmProvider for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn answer<'a>(
        &'a self,
        p: &'a AnswerPrompt<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            self.chat(&prompt::answer_messages(p), self.max_tokens, deadline)
                .await
        })
    }

    fn rewrite<'a>(
        &'a self,
        history: &'a [Turn],
        question: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Option<Completion>, LlmError>> {
        Box::pin(async move {
            self.chat(&prompt::rewrite_messages(history, question), 64, deadline)
                .await
                .map(Some)
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async move {
            // The caller bounds the probe (HEALTH_DEPENDENCY_TIMEOUT_MS).
            let mut req = self.http.get(&self.models_url);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(LlmError::Unavailable(format!(
                    "{} answered {}",
                    self.models_url,
                    r.status()
                ))),
                Err(e) => Err(LlmError::Unavailable(format!("{}: {e}", self.models_url))),
            }
        })
    }
}

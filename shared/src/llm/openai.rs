//! An OpenAI-compatible `/chat/completions` client (OpenAI, OpenRouter, Groq, Ollama, vLLM,
//! llama.cpp's server): base URL, key, model, temperature, max tokens. Retries 429/5xx and
//! transport errors with backoff and jitter, honouring `Retry-After`, but never past the answer's
//! deadline: each attempt gets what is left of it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    prompt::{self, Message},
    AnswerPrompt, Completion, DeltaSender, LlmError, LlmProvider, LlmSettings, Turn, Usage,
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
    /// `LLM_MAX_CONCURRENCY`: a permit per request in flight (a stream holds its permit until it
    /// ends); waiting for one counts against the answer's deadline.
    gate: Option<Arc<Semaphore>>,
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

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<WireMessage>,
}

/// The state of one `text/event-stream` answer: bytes in, text pieces out. Only `data:` lines
/// matter to OpenAI-compatible streams (each a `chat.completion.chunk`, then `[DONE]`); comments,
/// `event:`/`id:` fields and keep-alives are skipped. (A 60-line parser over `reqwest`'s
/// `chunk()`, rather than `eventsource-stream` and reqwest's `stream` feature, for this.)
#[derive(Default)]
struct Stream {
    pending: Vec<u8>,
    text: String,
    pieces: u32,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
}

impl Stream {
    /// Takes the next bytes; returns the text pieces of the events they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, serde_json::Error> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim_start();
            if data == "[DONE]" {
                self.done = true;
                break;
            }
            let chunk: Chunk = serde_json::from_str(data)?;
            if chunk.model.is_some() {
                self.model = chunk.model;
            }
            if let Some(u) = chunk.usage {
                self.usage = Some(Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                });
            }
            let piece: String = chunk
                .choices
                .into_iter()
                .filter_map(|c| c.delta.and_then(|d| d.content))
                .collect();
            if !piece.is_empty() {
                self.pieces += 1;
                self.text.push_str(&piece);
                out.push(piece);
            }
        }
        Ok(out)
    }

    /// The whole text, its usage and the model; `None` when no text came. A server that reports
    /// no usage gets it estimated: one token per streamed piece (llama.cpp and vLLM send one per
    /// token) and about four characters per prompt token.
    fn finish(self, prompt_chars: usize) -> Option<(String, Usage, Option<String>)> {
        if self.text.trim().is_empty() {
            return None;
        }
        let usage = self.usage.unwrap_or(Usage {
            prompt_tokens: u32::try_from(prompt_chars.div_ceil(4)).unwrap_or(u32::MAX),
            completion_tokens: self.pieces,
        });
        Some((self.text, usage, self.model))
    }
}

/// A permit under `LLM_MAX_CONCURRENCY`. A call whose future is dropped mid-stream (rather than
/// seeing its reader leave, see `abandon`) keeps the permit a moment longer: the server only
/// notices at its next token, and a request reaching a server still writing an abandoned stream
/// is what crashes llama-cpp-python 0.2.60's server.
#[derive(Default)]
struct GateTurn {
    permit: Option<OwnedSemaphorePermit>,
    /// The server finished its side (answered or failed): no grace needed.
    ended: bool,
}

/// How long an abandoned stream keeps its turn (a few tokens of a small CPU model).
const ABANDONED_STREAM_GRACE: Duration = Duration::from_millis(1500);

impl Drop for GateTurn {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if self.ended {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(ABANDONED_STREAM_GRACE).await;
                drop(permit);
            });
        }
    }
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
            gate: (s.max_concurrency > 0).then(|| Arc::new(Semaphore::new(s.max_concurrency))),
        })
    }

    fn body(&self, messages: &[Message], max_tokens: u32, stream: bool) -> serde_json::Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages.iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>(),
            "temperature": self.temperature,
            "max_tokens": max_tokens,
            "stream": stream,
        });
        if stream {
            // OpenAI then ends the stream with a usage chunk; servers that do not (llama.cpp's
            // Python server) get their usage estimated (see `Stream::finish`).
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    /// The provider's successful response to `body`, retrying 429/5xx/transport failures within
    /// `deadline`. `started` is when the answer began (for the timeout's message).
    async fn send(
        &self,
        body: &serde_json::Value,
        started: Instant,
        deadline: Instant,
    ) -> Result<reqwest::Response, LlmError> {
        let mut attempt = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LlmError::Timeout(started.elapsed().as_millis() as u64));
            }
            let mut req = self.http.post(&self.url).json(body).timeout(left);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let (retry_after, why) = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
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

    /// A turn at the provider under `LLM_MAX_CONCURRENCY` (none needed without a limit).
    async fn turn(&self, started: Instant, deadline: Instant) -> Result<GateTurn, LlmError> {
        let Some(gate) = &self.gate else {
            return Ok(GateTurn::default());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, gate.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(GateTurn {
                permit: Some(permit),
                ended: false,
            }),
            Ok(Err(_)) => Err(LlmError::Unavailable(
                "the provider's gate is closed".into(),
            )),
            Err(_) => Err(LlmError::Timeout(started.elapsed().as_millis() as u64)),
        }
    }

    /// One completion of `messages`, retried within `deadline`.
    pub async fn chat(
        &self,
        messages: &[Message],
        max_tokens: u32,
        deadline: Instant,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut turn = self.turn(started, deadline).await?;
        // The server holds its own lock for a whole non-streamed answer.
        turn.ended = true;
        let resp = self
            .send(&self.body(messages, max_tokens, false), started, deadline)
            .await?;
        let parsed: Response = resp.json().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout(started.elapsed().as_millis() as u64)
            } else {
                LlmError::Provider(format!("{}: unexpected response: {e}", self.url))
            }
        })?;
        self.completion(parsed)
    }

    /// One completion of `messages` as a server-sent event stream: each piece of text goes to
    /// `deltas` as it arrives. Failures before the first byte are retried like [`Self::chat`];
    /// once text has flowed a failure ends the answer (a retry would repeat what was sent).
    /// A closed `deltas` (the client went away) drops the connection, which stops generation.
    pub async fn chat_stream(
        &self,
        messages: &[Message],
        max_tokens: u32,
        deadline: Instant,
        deltas: &DeltaSender,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut turn = self.turn(started, deadline).await?;
        let mut resp = self
            .send(&self.body(messages, max_tokens, true), started, deadline)
            .await?;
        let mut stream = Stream::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = match tokio::time::timeout(left, resp.chunk()).await {
                Err(_) => return Err(LlmError::Timeout(started.elapsed().as_millis() as u64)),
                Ok(Err(e)) if e.is_timeout() => {
                    return Err(LlmError::Timeout(started.elapsed().as_millis() as u64))
                }
                Ok(Err(e)) => {
                    return Err(LlmError::Unavailable(format!(
                        "{}: the stream broke off: {e}",
                        self.url
                    )))
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            for text in stream.feed(&chunk).map_err(|e| {
                LlmError::Provider(format!("{}: unexpected stream event: {e}", self.url))
            })? {
                if deltas.send(text).await.is_err() {
                    self.abandon(resp, turn, deadline);
                    return Err(LlmError::Cancelled);
                }
            }
            if stream.done {
                break;
            }
        }
        // The server sent its last event: the turn ends now, not after a grace period.
        turn.ended = true;
        let prompt_chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
        stream
            .finish(prompt_chars)
            .map(|(text, usage, model)| Completion {
                text: text.trim().to_string(),
                usage,
                model: model.unwrap_or_else(|| self.model.clone()),
                citations: None,
            })
            .ok_or_else(|| LlmError::Provider(format!("{}: the stream carried no text", self.url)))
    }

    /// The reader left mid-stream. Without `LLM_MAX_CONCURRENCY` the connection is dropped, which
    /// stops a hosted provider's generation (no tokens paid for nobody). With it (single-slot
    /// servers) the stream is read to its end in the background and the turn kept until then:
    /// llama-cpp-python's server crashes when a request reaches it while an abandoned stream is
    /// still being generated.
    fn abandon(&self, mut resp: reqwest::Response, mut turn: GateTurn, deadline: Instant) {
        if turn.permit.is_none() {
            return;
        }
        turn.ended = true;
        tokio::spawn(async move {
            let left = deadline.saturating_duration_since(Instant::now());
            let drain = async { while let Ok(Some(_)) = resp.chunk().await {} };
            if tokio::time::timeout(left, drain).await.is_err() {
                tracing::warn!("an abandoned stream outlived its deadline; its turn ends now");
            }
            drop(turn);
        });
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

    fn answer_stream<'a>(
        &'a self,
        p: &'a AnswerPrompt<'a>,
        deadline: Instant,
        deltas: &'a DeltaSender,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            self.chat_stream(
                &prompt::answer_messages(p),
                self.max_tokens,
                deadline,
                deltas,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(content: &str) -> String {
        format!(
            "data: {{\"model\":\"m1\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
            serde_json::to_string(content).unwrap_or_default()
        )
    }

    #[test]
    fn pieces_come_out_as_their_events_complete_even_when_split_anywhere() {
        let wire = format!(
            ": keep-alive\r\n\r\ndata: {{\"choices\":[{{\"delta\":{{\"role\":\"assistant\"}}}}]}}\r\n\r\n{}{}{}data: [DONE]\n\n",
            event("Hel"),
            event("lo [1]"),
            event(" wörld"),
        );
        // Every split point, including inside a multi-byte character.
        for cut in 0..wire.len() {
            let mut s = Stream::default();
            let mut pieces = s.feed(&wire.as_bytes()[..cut]).unwrap();
            pieces.extend(s.feed(&wire.as_bytes()[cut..]).unwrap());
            assert_eq!(pieces, ["Hel", "lo [1]", " wörld"], "cut at {cut}");
            assert!(s.done);
            let (text, usage, model) = s.finish(40).unwrap();
            assert_eq!(text, "Hello [1] wörld");
            assert_eq!(model.as_deref(), Some("m1"));
            assert_eq!(
                usage,
                Usage {
                    prompt_tokens: 10,
                    completion_tokens: 3
                },
                "estimated: one token per piece, four characters per prompt token"
            );
        }
    }

    #[test]
    fn a_reported_usage_wins_over_the_estimate() {
        let mut s = Stream::default();
        let wire = format!(
            "{}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":123,\"completion_tokens\":7}}}}\n\ndata: [DONE]\n\n",
            event("Hi")
        );
        s.feed(wire.as_bytes()).unwrap();
        let (_, usage, _) = s.finish(4000).unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 123,
                completion_tokens: 7
            }
        );
    }

    #[test]
    fn an_empty_or_garbled_stream_is_an_error() {
        let mut s = Stream::default();
        s.feed(b"data: [DONE]\n\n").unwrap();
        assert!(s.finish(10).is_none(), "no text: no completion");
        let mut s = Stream::default();
        assert!(s.feed(b"data: {not json}\n\n").is_err());
    }
}

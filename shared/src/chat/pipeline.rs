//! The answer pipeline (see the module docs of [`crate::chat`]).

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lru::LruCache;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    citations, standalone, AnswerCache, CachedAnswer, ChatError, ChatResponse, ChatSettings,
    Citation, TokenBudget, TokenUsage,
};
use crate::{
    auth::Tenant,
    embedding::{EmbeddingProvider, SharedEmbedder},
    llm::{AnswerPrompt, Completion, DeltaSender, Passage, Role, SharedLlm, Turn, Usage},
    retrieval::{self, Fallback, Filters, Hit, Mode, RetrieveRequest, RetrieveSettings},
    store::{
        conversations::{self, NewMessage},
        Store, StoreError,
    },
    telemetry::{metric, Unit},
};

/// What the chat pipeline runs on, built once per process.
pub struct ChatDeps {
    pub store: Store,
    pub embedder: Option<SharedEmbedder>,
    pub llm: SharedLlm,
    /// `None`: no answer cache (e.g. `ANSWER_CACHE_TTL_SECONDS=0`).
    pub cache: Option<Arc<dyn AnswerCache>>,
    pub budget: Option<Arc<dyn TokenBudget>>,
    pub settings: ChatSettings,
    pub retrieve: RetrieveSettings,
    /// Everything one answer may take in the provider (`LLM_DEADLINE_MS`).
    pub llm_deadline: Duration,
}

pub struct Chat {
    d: ChatDeps,
    /// Embeddings of Q&A answers the relevance blend needed, by answer text: business-approved
    /// answers are few and asked about again and again, so a warm instance embeds each once.
    answer_vectors: Mutex<LruCache<String, Arc<Vec<f32>>>>,
}

/// How many answer embeddings a warm instance keeps (1.5 kB each at 384 dimensions).
const ANSWER_VECTORS: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// One question to answer.
pub struct Question<'a> {
    pub tenant: &'a Tenant,
    /// The conversation owner (see [`super::owner_of`]).
    pub owner: &'a str,
    pub conversation_id: Option<Uuid>,
    pub message: &'a str,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub filters: Option<&'a Filters>,
    /// The caller's own history (the OpenAI-compatible endpoint without a conversation): used
    /// instead of a stored conversation, and nothing is stored.
    pub history: Option<&'a [Turn]>,
    /// Where the answer's text goes as it is generated (streaming); cache hits and fallbacks
    /// send theirs as one piece.
    pub deltas: Option<&'a DeltaSender>,
    /// A streamed answer's reader: told the ids and the retrieved passages before any text.
    pub progress: Option<&'a ProgressSender>,
}

impl<'a> Question<'a> {
    /// `message` from `owner` of `tenant`, in a new conversation, with the default retrieval,
    /// answered whole; set the other fields with struct update syntax.
    pub fn new(tenant: &'a Tenant, owner: &'a str, message: &'a str) -> Self {
        Question {
            tenant,
            owner,
            conversation_id: None,
            message,
            top_k: None,
            mode: None,
            filters: None,
            history: None,
            deltas: None,
            progress: None,
        }
    }
}

/// What a streamed answer tells its reader before the text: the ids the turn will be stored
/// under, and the passages the answer rests on (the cited ones for a cache hit, none for the
/// fallback).
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub passages: Vec<Citation>,
}

pub type ProgressSender = tokio::sync::mpsc::Sender<Retrieved>;

/// The ids a turn is stored under, chosen before it is stored when a reader must know them.
#[derive(Clone, Copy)]
struct Planned {
    conversation_id: Uuid,
    message_id: Uuid,
}

/// The snippet length of a citation, in characters.
const SNIPPET_CHARS: usize = 300;

impl Chat {
    pub fn new(d: ChatDeps) -> Self {
        Chat {
            d,
            answer_vectors: Mutex::new(LruCache::new(ANSWER_VECTORS)),
        }
    }

    pub fn provider(&self) -> &SharedLlm {
        &self.d.llm
    }

    pub async fn answer(&self, q: Question<'_>) -> Result<ChatResponse, ChatError> {
        let started = Instant::now();
        let result = self.run(&q, started).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        metric("ChatLatency", ms, Unit::Milliseconds);
        if let Err(e) = &result {
            if matches!(e, ChatError::Llm(_)) {
                metric("LlmErrors", 1.0, Unit::Count);
            }
        }
        result
    }

    async fn run(&self, q: &Question<'_>, started: Instant) -> Result<ChatResponse, ChatError> {
        let s = &self.d.settings;
        let llm = &self.d.llm;
        // 1. The message, as /retrieve checks its query.
        let checked = retrieval::check_text(q.message, s.max_message_chars, "message")?;
        let mut warnings = checked.warnings.clone();
        let question = checked.query.as_str();
        let top_k = q.top_k.unwrap_or(s.top_k);
        if top_k == 0 || top_k > self.d.retrieve.max_top_k {
            return Err(ChatError::Invalid(format!(
                "top_k must be between 1 and {}",
                self.d.retrieve.max_top_k
            )));
        }
        let mode = q.mode.unwrap_or(Mode::Hybrid);
        let planned = q.progress.map(|_| Planned {
            conversation_id: q.conversation_id.unwrap_or_else(Uuid::new_v4),
            message_id: Uuid::new_v4(),
        });

        // 2. The conversation's last turns and the knowledge version, in one transaction.
        let mut steps = Steps::start(started);
        let (history, knowledge) = self.context(q).await?;
        steps.mark("context");

        // 3. The tenant's daily token budget (only providers that cost tokens).
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        if llm.is_remote() && s.tenant_daily_tokens > 0 {
            if let Some(budget) = &self.d.budget {
                match budget.used(q.tenant.as_str(), &day).await {
                    Ok(used) if used >= s.tenant_daily_tokens => {
                        return Err(ChatError::BudgetSpent {
                            limit: s.tenant_daily_tokens,
                            retry_after_secs: seconds_to_midnight(),
                        })
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "LLM token budget unavailable; answering anyway");
                        warnings.push("llm_budget_unavailable".into());
                    }
                }
            }
        }

        // 4. The follow-up made standalone.
        let deadline = started + self.d.llm_deadline;
        let mut usage = Usage::default();
        let standalone_q = self
            .standalone(&history, question, deadline, &mut usage, &mut warnings)
            .await;
        steps.mark("standalone");

        let turn = Turn {
            role: Role::User,
            content: question.to_string(),
        };
        // 5. The answer cache (only grounded answers are cached, so a hit needs no retrieval).
        let key = self.cache_key(q, knowledge, &standalone_q, mode, top_k);
        if let (Some(cache), Some(key)) = (&self.d.cache, &key) {
            // An entry of an older shape is a miss (rewritten after this answer).
            let entry = cache
                .get(key)
                .await
                .map(|e| e.and_then(|json| serde_json::from_str::<CachedAnswer>(&json).ok()));
            match entry {
                Ok(Some(hit)) => {
                    metric("AnswerCacheHits", 1.0, Unit::Count);
                    tell(q, planned, hit.citations.clone()).await;
                    let answer = Answered {
                        streamed: false,
                        text: hit.answer,
                        citations: hit.citations,
                        grounded: true,
                        fallback: None,
                        model: hit.model,
                        cached: true,
                        usage,
                    };
                    return self
                        .persist(
                            q,
                            planned,
                            &turn,
                            &standalone_q,
                            answer,
                            warnings,
                            &mut steps,
                        )
                        .await;
                }
                Ok(None) => metric("AnswerCacheMisses", 1.0, Unit::Count),
                Err(e) => {
                    tracing::warn!(error = %e, "answer cache unavailable; answering without it");
                    metric("AnswerCacheErrors", 1.0, Unit::Count);
                    warnings.push("answer_cache_unavailable".into());
                }
            }
        }

        steps.mark("cache");

        // 6. Retrieval, through the library.
        let search_text: String = standalone_q
            .chars()
            .take(self.d.retrieve.max_query_chars)
            .collect();
        let (retrieved, query_vector) = retrieval::search_embedded(
            &self.d.store,
            self.d.embedder.as_deref(),
            q.tenant,
            &RetrieveRequest {
                query: search_text,
                top_k: Some(top_k),
                threshold: None,
                mode: Some(mode),
                filters: q.filters.cloned(),
            },
            &self.d.retrieve,
        )
        .await?;
        steps.mark("retrieval");
        let relevance = self.relevance(&query_vector, &retrieved.results).await;
        steps.mark("relevance");
        // The hit most similar to the question must be relevant enough.
        let best = retrieved
            .results
            .iter()
            .zip(&relevance)
            .max_by(|a, b| a.0.similarity.total_cmp(&b.0.similarity))
            .map_or(f64::NEG_INFINITY, |(_, r)| *r);

        // 7. Nothing relevant enough: the fallback, no model call.
        if retrieved.results.is_empty() || best < f64::from(s.min_similarity) {
            let fallback = match retrieved.fallback {
                Some(f) => f,
                None => retrieval::fallback(&self.d.store, q.tenant, &self.d.retrieve).await?,
            };
            metric("ChatFallbacks", 1.0, Unit::Count);
            tell(q, planned, Vec::new()).await;
            let answer = Answered {
                streamed: false,
                text: fallback.disclaimer.clone(),
                citations: Vec::new(),
                grounded: false,
                fallback: Some(fallback),
                model: llm.model().to_string(),
                cached: false,
                usage,
            };
            return self
                .persist(
                    q,
                    planned,
                    &turn,
                    &standalone_q,
                    answer,
                    warnings,
                    &mut steps,
                )
                .await;
        }
        let hits = retrieved.results;
        let passages = passages(&hits);
        if q.progress.is_some() {
            let all = (1..=hits.len()).map(|i| (i, Vec::new())).collect();
            tell(q, planned, citations_of(all, &hits)).await;
        }

        // 8. Generation.
        let turns: Vec<Turn> = history;
        let prompt = AnswerPrompt {
            system: &s.system_prompt,
            history: &turns,
            question: &standalone_q,
            passages: &passages,
        };
        let llm_started = Instant::now();
        let generated = match q.deltas {
            Some(deltas) => llm.answer_stream(&prompt, deadline, deltas).await,
            None => llm.answer(&prompt, deadline).await,
        };
        let completion = match generated {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, provider = llm.name(), "answer generation failed");
                // Nothing the user typed is lost: their message is kept, marked failed.
                self.persist_failure(q, planned, &turn, &standalone_q, &e.to_string(), &warnings)
                    .await;
                return Err(e.into());
            }
        };
        steps.mark("generation");
        metric(
            "LlmLatency",
            llm_started.elapsed().as_secs_f64() * 1000.0,
            Unit::Milliseconds,
        );
        usage.prompt_tokens += completion.usage.prompt_tokens;
        usage.completion_tokens += completion.usage.completion_tokens;
        if usage.total() > 0 {
            metric("LlmTokens", usage.total() as f64, Unit::Count);
        }

        // 9. `[n]` markers into citations (indices that point at nothing are dropped).
        let (text, citations) = cite(completion, &hits);

        // 10. Spent tokens; the answer cached.
        if llm.is_remote() && usage.total() > 0 {
            if let Some(budget) = &self.d.budget {
                if let Err(e) = budget.add(q.tenant.as_str(), &day, usage.total()).await {
                    tracing::warn!(error = %e, "could not count LLM tokens against the budget");
                }
            }
        }
        let model = llm.model().to_string();
        if let (Some(cache), Some(key)) = (&self.d.cache, &key) {
            let entry = CachedAnswer {
                answer: text.clone(),
                citations: citations.clone(),
                model: model.clone(),
                usage: usage.into(),
            };
            let stored = match serde_json::to_string(&entry) {
                Ok(json) => cache.put(key, &json, s.cache_ttl_secs).await,
                Err(e) => Err(crate::ports::StateError(e.to_string())),
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not store the answer in the cache");
                metric("AnswerCacheErrors", 1.0, Unit::Count);
            }
        }

        // 11. Both messages, in one transaction.
        let answer = Answered {
            streamed: q.deltas.is_some(),
            text,
            citations,
            grounded: true,
            fallback: None,
            model,
            cached: false,
            usage,
        };
        self.persist(
            q,
            planned,
            &turn,
            &standalone_q,
            answer,
            warnings,
            &mut steps,
        )
        .await
    }

    /// How well each hit answers the question. A document chunk: its cosine similarity. A Q&A
    /// pair (whose stored vector is its question's): the question's similarity blended with the
    /// answer's (`CHAT_ANSWER_WEIGHT`), so a question worded like a stored one but about something
    /// else (“export Google Chat logs” vs “export Gmail messages”) weighs less, and one worded
    /// differently but answered by the stored answer more. On the stackfaq-dev set this moved the
    /// trade-off from 97.2 % right / 86.7 % fallback (question similarity alone at 0.5) to
    /// 97.2 % / 87.8–91.1 % over thresholds 0.47–0.495.
    async fn relevance(&self, query: &[f32], hits: &[Hit]) -> Vec<f64> {
        let mut relevance: Vec<f64> = hits.iter().map(|h| h.similarity).collect();
        let w = f64::from(self.d.settings.answer_weight);
        let t = f64::from(self.d.settings.min_similarity);
        let Some(embedder) = self.d.embedder.as_ref().filter(|_| w > 0.0) else {
            return relevance;
        };
        // Only the most similar hit decides (see `run`), and only when it is a Q&A pair whose
        // answer can tip the decision: with an answer similarity in [0, 1] the blend passes `t`
        // for sure from `s >= t(1 + w)` and never below `s < t(1 + w) - w`.
        let (sure, never) = (t * (1.0 + w), t * (1.0 + w) - w);
        let Some((i, best)) = hits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.similarity.total_cmp(&b.1.similarity))
        else {
            return relevance;
        };
        let Some(answer) = best.answer.as_deref() else {
            return relevance;
        };
        if best.similarity >= sure || best.similarity < never {
            return relevance;
        }
        if let Some(v) = self.answer_vector(embedder.as_ref(), answer).await {
            let answer_sim = f64::from(crate::embedding::cosine(query, &v));
            relevance[i] = (best.similarity + w * answer_sim) / (1.0 + w);
        }
        relevance
    }

    /// The embedding of a Q&A answer, from the instance's cache or the embedder (`None`, logged,
    /// when it fails: the question's similarity decides alone).
    async fn answer_vector(
        &self,
        embedder: &dyn EmbeddingProvider,
        answer: &str,
    ) -> Option<Arc<Vec<f32>>> {
        // A poisoned lock only means another request panicked while holding it; the cache
        // itself is still consistent (every operation is a single get or put).
        let cached = match self.answer_vectors.lock() {
            Ok(mut c) => c.get(answer).cloned(),
            Err(p) => p.into_inner().get(answer).cloned(),
        };
        if cached.is_some() {
            return cached;
        }
        match embedder.embed(&[answer]).await {
            Ok(mut v) if v.len() == 1 => {
                let v = Arc::new(v.pop()?);
                match self.answer_vectors.lock() {
                    Ok(mut c) => c.put(answer.to_string(), v.clone()),
                    Err(p) => p.into_inner().put(answer.to_string(), v.clone()),
                };
                Some(v)
            }
            Ok(_) => {
                tracing::warn!("the embedder returned a wrong count; question similarity only");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedding the answer failed; question similarity only");
                None
            }
        }
    }

    async fn context(&self, q: &Question<'_>) -> Result<(Vec<Turn>, i64), ChatError> {
        let tx = self.d.store.begin(q.tenant).await?;
        if let Some(own) = q.history {
            let knowledge = conversations::knowledge_version(&tx).await?;
            tx.commit().await?;
            let keep = self.d.settings.history_turns * 2;
            return Ok((own[own.len().saturating_sub(keep)..].to_vec(), knowledge));
        }
        let history = match q.conversation_id {
            Some(id) => {
                if !conversations::owned(&tx, id, q.owner).await? {
                    tx.commit().await?;
                    return Err(ChatError::ConversationNotFound(id));
                }
                conversations::history(&tx, id, self.d.settings.history_turns).await?
            }
            None => Vec::new(),
        };
        let knowledge = conversations::knowledge_version(&tx).await?;
        tx.commit().await?;
        let turns = history
            .into_iter()
            .map(|(role, content)| Turn {
                role: if role == "assistant" {
                    Role::Assistant
                } else {
                    Role::User
                },
                content,
            })
            .collect();
        Ok((turns, knowledge))
    }

    async fn standalone(
        &self,
        history: &[Turn],
        question: &str,
        deadline: Instant,
        usage: &mut Usage,
        warnings: &mut Vec<String>,
    ) -> String {
        if history.is_empty() || !standalone::needs_context(question) {
            return question.to_string();
        }
        let llm = &self.d.llm;
        if llm.is_remote() && self.d.settings.llm_rewrite {
            // A short call: at most a quarter of the answer's time.
            let budget = deadline.saturating_duration_since(Instant::now()) / 4;
            match llm
                .rewrite(history, question, Instant::now() + budget)
                .await
            {
                Ok(Some(c)) => {
                    usage.prompt_tokens += c.usage.prompt_tokens;
                    usage.completion_tokens += c.usage.completion_tokens;
                    let line = c
                        .text
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string();
                    if !line.is_empty() && line.chars().count() <= 1000 {
                        return line;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "rewriting the follow-up failed; using the heuristic");
                    warnings.push("standalone_rewrite_failed".into());
                }
            }
        }
        standalone::heuristic(history, question)
    }

    /// The cache key, or `None` when the cache is off. Everything that shapes the answer is in it.
    fn cache_key(
        &self,
        q: &Question<'_>,
        knowledge: i64,
        standalone_q: &str,
        mode: Mode,
        top_k: usize,
    ) -> Option<String> {
        if self.d.cache.is_none() || self.d.settings.cache_ttl_secs == 0 {
            return None;
        }
        let filters = q.filters.map(|f| format!("{f:?}")).unwrap_or_default();
        let material = json!({
            "v": 1,
            "tenant": q.tenant.as_str(),
            "knowledge": knowledge,
            "question": normalise(standalone_q),
            "provider": self.d.llm.name(),
            "model": self.d.llm.model(),
            "mode": mode,
            "top_k": top_k,
            "filters": filters,
            "min_similarity": self.d.settings.min_similarity,
            "answer_weight": self.d.settings.answer_weight,
            "system": hex::encode(Sha256::digest(self.d.settings.system_prompt.as_bytes())),
        });
        Some(format!(
            "{}#{}",
            q.tenant.as_str(),
            hex::encode(Sha256::digest(material.to_string().as_bytes()))
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn persist(
        &self,
        q: &Question<'_>,
        planned: Option<Planned>,
        turn: &Turn,
        standalone_q: &str,
        a: Answered,
        warnings: Vec<String>,
        steps: &mut Steps,
    ) -> Result<ChatResponse, ChatError> {
        if let (Some(deltas), false) = (q.deltas, a.streamed) {
            // A closed reader only means nobody is listening; the turn is still stored.
            deltas.send(a.text.clone()).await.ok();
        }
        let latency_ms = steps.began.elapsed().as_millis() as u64;
        let llm = &self.d.llm;
        let fallback_json = a
            .fallback
            .as_ref()
            .and_then(|f| serde_json::to_value(f).ok());
        let warnings_json = json!(warnings);
        let user = user_message(turn, standalone_q, "ok", None, &warnings_json);
        let citations_json = serde_json::to_value(&a.citations).unwrap_or(Value::Array(vec![]));
        let assistant = NewMessage {
            id: planned.map(|p| p.message_id),
            role: "assistant",
            content: &a.text,
            citations: citations_json,
            status: "ok",
            error: None,
            provider: Some(llm.name()),
            model: Some(&a.model),
            latency_ms: Some(latency_ms.min(i32::MAX as u64) as i32),
            prompt_tokens: Some(a.usage.prompt_tokens.min(i32::MAX as u32) as i32),
            completion_tokens: Some(a.usage.completion_tokens.min(i32::MAX as u32) as i32),
            cached: a.cached,
            grounded: Some(a.grounded),
            standalone: None,
            fallback: fallback_json,
            warnings: warnings_json.clone(),
        };
        let (conversation_id, message_id) =
            self.write_turn(q, planned, &user, Some(&assistant)).await?;
        steps.mark("persist");
        tracing::debug!(steps = %steps, cached = a.cached, grounded = a.grounded, "chat pipeline steps (ms)");
        let message_id = message_id
            .ok_or_else(|| StoreError::Unavailable("the answer was not stored".into()))?;
        Ok(ChatResponse {
            conversation_id,
            message_id,
            answer: a.text,
            citations: a.citations,
            grounded: a.grounded,
            fallback: a.fallback,
            provider: llm.name().to_string(),
            model: a.model,
            cached: a.cached,
            usage: TokenUsage::from(a.usage),
            latency_ms,
            warnings,
        })
    }

    /// Keeps the user's message, marked failed, when no answer could be produced. Best effort:
    /// the provider's error is what the caller gets either way.
    async fn persist_failure(
        &self,
        q: &Question<'_>,
        planned: Option<Planned>,
        turn: &Turn,
        standalone_q: &str,
        error: &str,
        warnings: &[String],
    ) {
        let warnings_json = json!(warnings);
        let user = user_message(turn, standalone_q, "failed", Some(error), &warnings_json);
        if let Err(e) = self.write_turn(q, planned, &user, None).await {
            tracing::warn!(error = %e, "could not keep the failed message");
        }
    }

    /// Writes a turn (and creates the conversation when there is none) in one transaction.
    async fn write_turn(
        &self,
        q: &Question<'_>,
        planned: Option<Planned>,
        user: &NewMessage<'_>,
        assistant: Option<&NewMessage<'_>>,
    ) -> Result<(Uuid, Option<Uuid>), ChatError> {
        if q.history.is_some() {
            // The caller keeps the conversation: nothing is stored; the answer still gets an id.
            return Ok((Uuid::nil(), assistant.map(|_| Uuid::new_v4())));
        }
        let tx = self.d.store.begin(q.tenant).await?;
        let conversation_id = match q.conversation_id {
            Some(id) => {
                // Deleted meanwhile: nothing is written.
                if !conversations::owned(&tx, id, q.owner).await? {
                    tx.commit().await?;
                    return Err(ChatError::ConversationNotFound(id));
                }
                id
            }
            None => {
                let id = planned.map(|p| p.conversation_id);
                conversations::create(&tx, id, q.owner, None).await?.id
            }
        };
        conversations::insert_message(&tx, conversation_id, user).await?;
        conversations::touch(&tx, conversation_id, user.content).await?;
        let assistant_id = match assistant {
            Some(a) => Some(conversations::insert_message(&tx, conversation_id, a).await?),
            None => None,
        };
        tx.commit().await?;
        Ok((conversation_id, assistant_id))
    }
}

/// Time spent per pipeline step, logged at debug level (`RUST_LOG=ragbot::chat=debug`).
struct Steps {
    /// When the request's answer began (its `latency_ms` counts from here).
    began: Instant,
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Steps {
    fn start(began: Instant) -> Self {
        Steps {
            began,
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.done
            .push((step, (now - self.last).as_secs_f64() * 1000.0));
        self.last = now;
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, ms)) in self.done.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{step}={ms:.2}")?;
        }
        Ok(())
    }
}

/// An answer on its way to the response and the store.
struct Answered {
    text: String,
    /// The text already went to the caller's deltas as it was generated.
    streamed: bool,
    citations: Vec<Citation>,
    grounded: bool,
    fallback: Option<Fallback>,
    model: String,
    cached: bool,
    usage: Usage,
}

fn user_message<'a>(
    turn: &'a Turn,
    standalone_q: &'a str,
    status: &'a str,
    error: Option<&'a str>,
    warnings: &Value,
) -> NewMessage<'a> {
    NewMessage {
        id: None,
        role: "user",
        content: &turn.content,
        citations: json!([]),
        status,
        error,
        provider: None,
        model: None,
        latency_ms: None,
        prompt_tokens: None,
        completion_tokens: None,
        cached: false,
        grounded: None,
        standalone: (standalone_q != turn.content).then_some(standalone_q),
        fallback: None,
        warnings: warnings.clone(),
    }
}

/// Hits as the provider sees them, numbered from 1 in retrieval order.
fn passages(hits: &[Hit]) -> Vec<Passage> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| Passage {
            index: i + 1,
            title: h.title.clone(),
            text: h.text.clone(),
            question: h.question.clone(),
            answer: h.answer.clone(),
            similarity: h.similarity,
        })
        .collect()
}

/// The answer text and its citations: the provider's own (extractive), else parsed `[n]` markers.
fn cite(completion: Completion, hits: &[Hit]) -> (String, Vec<Citation>) {
    let (text, cited) = match completion.citations {
        Some(c) => (completion.text, c),
        None => citations::parse(&completion.text, hits.len()),
    };
    (text, citations_of(cited, hits))
}

/// The hits that `(index, spans)` pairs cite, as citations (indices that point at nothing are
/// dropped).
fn citations_of(cited: crate::llm::CitedSpans, hits: &[Hit]) -> Vec<Citation> {
    cited
        .into_iter()
        .filter_map(|(index, spans)| {
            let h = hits.get(index.checked_sub(1)?)?;
            Some(Citation {
                index,
                chunk_id: h.chunk_id,
                document_id: h.document_id,
                title: h.title.clone(),
                snippet: h.text.chars().take(SNIPPET_CHARS).collect(),
                score: h.score,
                question: h.question.clone(),
                spans,
            })
        })
        .collect()
}

/// Tells a streamed answer's reader the ids and passages (a reader that left is no error here:
/// the text's send notices it and stops the provider).
async fn tell(q: &Question<'_>, planned: Option<Planned>, passages: Vec<Citation>) {
    if let (Some(progress), Some(p)) = (q.progress, planned) {
        let r = Retrieved {
            conversation_id: p.conversation_id,
            message_id: p.message_id,
            passages,
        };
        progress.send(r).await.ok();
    }
}

/// Lower case, single spaces, no trailing punctuation: "How do I…?" and "how do i… " share a key.
fn normalise(q: &str) -> String {
    q.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['?', '!', '.', ' '])
        .to_string()
}

fn seconds_to_midnight() -> u64 {
    let now = chrono::Utc::now();
    let secs = now.timestamp().rem_euclid(86_400);
    (86_400 - secs).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_questions_share_a_key() {
        assert_eq!(normalise("  How do I  Reset? "), "how do i reset");
        assert_eq!(normalise("how do i reset"), "how do i reset");
    }

    fn hit(i: u128) -> Hit {
        Hit {
            chunk_id: Uuid::from_u128(i),
            document_id: Uuid::from_u128(100 + i),
            title: format!("t{i}"),
            text: "x".repeat(400),
            question: None,
            answer: None,
            metadata: json!({}),
            score: 0.5,
            similarity: 0.5,
        }
    }

    #[test]
    fn citations_point_at_real_hits_only() {
        let c = Completion {
            text: "A [1]. B [3]. C [2].".into(),
            usage: Usage::default(),
            model: "m".into(),
            citations: None,
        };
        let (text, cites) = cite(c, &[hit(1), hit(2)]);
        assert_eq!(text, "A [1]. B. C [2].");
        assert_eq!(cites.len(), 2);
        assert_eq!(cites[0].chunk_id, Uuid::from_u128(1));
        assert_eq!(cites[1].index, 2);
        assert_eq!(cites[0].snippet.chars().count(), SNIPPET_CHARS);
    }
}

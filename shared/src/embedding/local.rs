//! all-MiniLM-L6-v2 in-process: BERT forward (`ragbot-bert`), mean pooling over the attention mask, L2
//! normalisation, truncation at the model's `max_seq_length` (256) exactly as sentence-transformers.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Instant,
};

use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

pub use ragbot_bert::Kernel;
use ragbot_bert::{Bert, BertConfig, Tokens};

use super::{BoxFuture, EmbeddingError, EmbeddingProvider};

/// Texts per forward pass. Inputs are sorted by length first, so a batch pads little.
const DEFAULT_BATCH: usize = 32;

/// At most this many queued single texts (queries) share one forward pass. On 2 cores, 20-token
/// queries took 1.5-1.6 ms alone and 1.33-1.4 ms each four or eight to a pass (the weights are
/// read from L3 once per pass, not once per query); more would make the first ones wait longer.
const QUEUE_BATCH: usize = 8;

pub struct LocalEmbedder {
    inner: Arc<Inner>,
    model_id: String,
    dimension: usize,
}

struct Inner {
    model: Bert,
    tokenizer: Tokenizer,
    batch_size: usize,
    queue: Mutex<Queue>,
    /// Forward passes the queue has run.
    queue_passes: AtomicU64,
}

/// Single texts waiting for a forward pass ([`Inner::embed_queued`]).
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A blocking task is running passes over what is queued.
    running: bool,
}

struct Waiting {
    text: String,
    reply: tokio::sync::oneshot::Sender<Result<Vec<f32>, EmbeddingError>>,
}

impl LocalEmbedder {
    /// Loads `model.safetensors` (memory-mapped), `tokenizer.json`, `config.json` and, when
    /// present, `sentence_bert_config.json` from `dir`. Every problem is one line naming the file.
    /// The linear layers run on the fastest kernel this CPU has ([`Kernel::detect`]).
    pub fn load(dir: &Path, model_id: &str) -> Result<Self, EmbeddingError> {
        Self::load_with_kernel(dir, model_id, Kernel::detect())
    }

    /// [`Self::load`] with a given matrix kernel (benchmarks and the parity test compare them).
    pub fn load_with_kernel(
        dir: &Path,
        model_id: &str,
        kernel: Kernel,
    ) -> Result<Self, EmbeddingError> {
        let started = Instant::now();
        let file = |name: &str| -> Result<PathBuf, EmbeddingError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbeddingError::Config(format!(
                    "{} not found (EMBEDDING_MODEL_DIR={})",
                    name,
                    dir.display()
                )))
            }
        };
        let config_path = file("config.json")?;
        let weights = file("model.safetensors")?;
        let tokenizer_path = file("tokenizer.json")?;

        let config: BertConfig = read_json(&config_path)?;
        let max_len = match dir.join("sentence_bert_config.json") {
            p if p.is_file() => read_json::<StConfig>(&p)?.max_seq_length,
            _ => 256,
        }
        .min(config.max_position_embeddings);

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", tokenizer_path.display())))?;
        // The shipped tokenizer.json truncates at 128 and pads to a fixed 128; sentence-transformers
        // truncates at max_seq_length (256). No padding: the encoder stacks texts unpadded.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..Default::default()
            }))
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(None);

        let model = Bert::load(&weights, &config, kernel)
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", weights.display())))?;

        let embedder = LocalEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                batch_size: DEFAULT_BATCH,
                queue: Mutex::default(),
                queue_passes: AtomicU64::new(0),
            }),
            model_id: model_id.to_string(),
            dimension: config.hidden_size,
        };
        // One tiny forward pass proves the weights are usable (a truncated file fails here, at
        // start-up, not on the first request).
        embedder
            .inner
            .embed_batch(&["ok"])
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", weights.display())))?;
        tracing::info!(
            model = %embedder.model_id,
            dimension = embedder.dimension,
            max_tokens = max_len,
            kernel = embedder.inner.model.kernel().describe(),
            load_ms = started.elapsed().as_secs_f64() * 1000.0,
            "embedding model loaded"
        );
        Ok(embedder)
    }

    /// Blocking embed on the calling thread (CLI, benchmarks).
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        self.inner.embed_all(texts)
    }

    /// Number of tokens the model sees for `text` (after truncation, with special tokens).
    pub fn token_count(&self, text: &str) -> Result<usize, EmbeddingError> {
        let enc = self
            .inner
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbeddingError::Inference(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Forward passes run so far over queued single texts (several concurrent queries share
    /// one); for tests and benchmarks.
    pub fn queue_passes(&self) -> u64 {
        self.inner.queue_passes.load(Ordering::Relaxed)
    }

    /// The matrix kernel the model runs on.
    pub fn kernel(&self) -> Kernel {
        self.inner.model.kernel()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }
}

#[derive(serde::Deserialize)]
struct StConfig {
    max_seq_length: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbeddingError> {
    let raw = std::fs::read(path)
        .map_err(|e| EmbeddingError::Config(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&raw)
        .map_err(|e| EmbeddingError::Config(format!("{}: {e}", path.display())))
}

impl Inner {
    /// One text through the queue: the caller that finds no pass running starts a blocking task
    /// that embeds everything queued, up to [`QUEUE_BATCH`] texts a pass, until nothing is left;
    /// texts queued meanwhile go in its next pass.
    async fn embed_queued(self: Arc<Self>, text: String) -> Result<Vec<f32>, EmbeddingError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = self.queue();
            q.waiting.push(Waiting { text, reply });
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            // CPU-bound: off the async workers, so a busy dev server keeps answering health checks.
            let passes = Passes {
                inner: self,
                finished: false,
            };
            drop(tokio::task::spawn_blocking(move || passes.run()));
        }
        answer.await.map_err(|_| {
            EmbeddingError::Inference("the embedding task ended without an answer".into())
        })?
    }

    /// The queue (a panic while it was held left nothing half-changed: take it over).
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The texts' vectors sent to their callers; when the pass fails, each text is tried alone
    /// so one text's error is not every caller's.
    fn answer(&self, batch: Vec<Waiting>) {
        self.queue_passes.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(texts = batch.len(), "embedding pass over queued texts");
        let texts: Vec<&str> = batch.iter().map(|w| w.text.as_str()).collect();
        match self.embed_all(&texts) {
            Ok(vectors) => {
                for (w, v) in batch.into_iter().zip(vectors) {
                    // A caller that went away (a cancelled request) needs no answer.
                    let _ = w.reply.send(Ok(v));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(w) = batch.into_iter().next() {
                    let _ = w.reply.send(Err(e));
                }
            }
            Err(_) => {
                for w in batch {
                    let one = self.embed_all(&[w.text.as_str()]).and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| EmbeddingError::Inference("no vector".into()))
                    });
                    let _ = w.reply.send(one);
                }
            }
        }
    }

    /// Sorts by length, embeds in batches, returns vectors in the caller's order.
    fn embed_all(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            for (&i, v) in batch.iter().zip(self.embed_batch(&batch_texts)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbeddingError::Inference(e.to_string()))?;
        let tokens: Vec<Tokens<'_>> = encodings
            .iter()
            .map(|e| Tokens {
                ids: e.get_ids(),
                types: e.get_type_ids(),
            })
            .collect();
        self.model.embed(&tokens).map_err(EmbeddingError::Inference)
    }
}

impl EmbeddingProvider for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn tokenizer(&self) -> Option<&tokenizers::Tokenizer> {
        Some(&self.inner.tokenizer)
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbeddingError>> {
        let inner = Arc::clone(&self.inner);
        if let ([text], true) = (texts, self.inner.model.kernel().batch_invariant()) {
            // A query: it shares a pass with the others waiting (a busy server's concurrent
            // requests), and runs alone when there are none. Only on a kernel whose vectors do
            // not depend on the company they are computed in.
            let text = text.to_string();
            return Box::pin(async move { Ok(vec![inner.embed_queued(text).await?]) });
        }
        let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        Box::pin(async move {
            // CPU-bound: off the async workers, so a busy dev server keeps answering health checks.
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
                inner.embed_all(&refs)
            })
            .await
            .map_err(|e| EmbeddingError::Inference(format!("embedding task failed: {e}")))?
        })
    }
}

/// The blocking task behind [`Inner::embed_queued`]: passes until the queue is empty.
struct Passes {
    inner: Arc<Inner>,
    /// Ended by finding the queue empty (and saying so under its lock).
    finished: bool,
}

impl Passes {
    fn run(mut self) {
        loop {
            let batch: Vec<Waiting> = {
                let mut q = self.inner.queue();
                if q.waiting.is_empty() {
                    q.running = false;
                    self.finished = true;
                    return;
                }
                let n = q.waiting.len().min(QUEUE_BATCH);
                q.waiting.drain(..n).collect()
            };
            self.inner.answer(batch);
        }
    }
}

impl Drop for Passes {
    /// A pass that panicked, or a task the runtime dropped unrun: the next caller starts anew, and
    /// the ones waiting get an error (their senders dropped) rather than waiting forever.
    fn drop(&mut self) {
        if !self.finished {
            let mut q = self.inner.queue();
            q.running = false;
            q.waiting.clear();
        }
    }
}

//! all-MiniLM-L6-v2 in-process: BERT forward (candle), mean pooling over the attention mask, L2
//! normalisation, truncation at the model's `max_seq_length` (256) exactly as sentence-transformers.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use super::{BoxFuture, EmbeddingError, EmbeddingProvider};

/// Texts per forward pass. Inputs are sorted by length first, so a batch pads little.
const DEFAULT_BATCH: usize = 32;

pub struct LocalEmbedder {
    inner: Arc<Inner>,
    model_id: String,
    dimension: usize,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    batch_size: usize,
}

impl LocalEmbedder {
    /// Loads `model.safetensors` (memory-mapped), `tokenizer.json`, `config.json` and, when
    /// present, `sentence_bert_config.json` from `dir`. Every problem is one line naming the file.
    pub fn load(dir: &Path, model_id: &str) -> Result<Self, EmbeddingError> {
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
        // truncates at max_seq_length (256) and pads to the longest text of the batch.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..Default::default()
            }))
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: config.pad_token_id as u32,
            ..Default::default()
        }));

        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; it must not be modified while mapped, which
        // holds for model files shipped in a Lambda layer or the local install.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", weights.display())))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| EmbeddingError::Config(format!("{}: {e}", weights.display())))?;

        let embedder = LocalEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
                batch_size: DEFAULT_BATCH,
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
        let infer = |e: candle_core::Error| EmbeddingError::Inference(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbeddingError::Inference(e.to_string()))?;
        let n = encodings.len();
        let seq = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * seq);
        let mut mask = Vec::with_capacity(n * seq);
        let mut types = Vec::with_capacity(n * seq);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| x as i64));
            mask.extend(e.get_attention_mask().iter().map(|&x| x as i64));
            types.extend(e.get_type_ids().iter().map(|&x| x as i64));
        }
        let ids = Tensor::from_vec(ids, (n, seq), &self.device).map_err(infer)?;
        let mask = Tensor::from_vec(mask, (n, seq), &self.device).map_err(infer)?;
        let types = Tensor::from_vec(types, (n, seq), &self.device).map_err(infer)?;

        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(infer)?; // (n, seq, dim)
                              // Mean pooling over real tokens, then L2 normalisation (sentence-transformers' Pooling +
                              // Normalize modules).
        let mask_f = mask
            .to_dtype(DType::F32)
            .map_err(infer)?
            .unsqueeze(2)
            .map_err(infer)?; // (n, seq, 1)
        let summed = hidden
            .broadcast_mul(&mask_f)
            .map_err(infer)?
            .sum(1)
            .map_err(infer)?; // (n, dim)
        let counts = mask_f
            .sum(1)
            .map_err(infer)?
            .clamp(1e-9, f64::MAX)
            .map_err(infer)?; // (n, 1)
        let mean = summed.broadcast_div(&counts).map_err(infer)?;
        let norms = mean
            .sqr()
            .map_err(infer)?
            .sum_keepdim(1)
            .map_err(infer)?
            .sqrt()
            .map_err(infer)?
            .clamp(1e-12, f64::MAX)
            .map_err(infer)?;
        mean.broadcast_div(&norms)
            .map_err(infer)?
            .to_vec2::<f32>()
            .map_err(infer)
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

//! The BERT encoder forward pass behind ragbot's `LocalEmbedder`, written for sentence embeddings
//! on a few CPU cores.
//!
//! candle-transformers' `BertModel` computes the same function, but spends two thirds of its time
//! outside the matrix products on these shapes (measured: 9.8 texts/s of 167 tokens, 13 ms for a
//! short query). This pass keeps the layout and the work down around the products:
//! - the linear layers run on the fastest matrix kernel the CPU has, chosen at load
//!   ([`Kernel`], see `matmul`): bfloat16 matrix tiles (AMX) or dot products (AVX-512 BF16)
//!   for every row count, or
//!   f32 multiply-adds (a few-row kernel over bfloat16 weights up to 32 rows, the `gemm` crate
//!   above);
//! - the query, key and value projections are one product (`in × 3·hidden`), the attention scale
//!   is folded into the query weights, biases and residuals are accumulated in place, and the
//!   bf16 kernel applies GELU as it stores each sum;
//! - tokens of every text of a batch are stacked without padding, so no work is spent on pad
//!   tokens and attention needs no mask: it runs per text and head, texts in parallel (and a
//!   query's heads);
//! - the whole pass runs on one rayon worker, so its parallel steps fork and join inside the
//!   pool instead of waking the caller at each step.
//!
//! Numerics follow the reference (GELU with erf, LayerNorm eps from the config, f32
//! accumulation); the bf16 kernels round activations to bfloat16 before each product (0.99998
//! cosine to sentence-transformers at worst on the reference texts, the f32 kernel 0.99999).

use std::{borrow::Cow, path::Path};

use gemm::{gemm, Parallelism};
use rayon::prelude::*;
use safetensors::{tensor::Dtype, SafeTensors};

mod aligned;
mod matmul;

use aligned::Aligned;

pub use matmul::Kernel;
use matmul::{dense, dense_gelu, dense_residual, Dense};

/// The fields of the Hugging Face `config.json` this encoder uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

pub struct Bert {
    kernel: Kernel,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
    word: Table,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
}

/// One tokenized text: ids and token type ids (same length, no padding).
pub struct Tokens<'a> {
    pub ids: &'a [u32],
    pub types: &'a [u32],
}

struct Weights<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
    kernel: Kernel,
}

/// IEEE half precision to f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: normalise the mantissa.
        (0, _) => {
            let shift = man.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((man << (shift + 13)) & 0x7f_ffff)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

impl<'a> Weights<'a> {
    /// A tensor as f32 (stored as f32, f16 or bf16), checked against the expected shape:
    /// borrowed from the map where it is stored as aligned f32 (all-MiniLM-L6-v2's are), copied
    /// and converted otherwise.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Cow<'a, [f32]>, String> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .tensor(&full)
            .map_err(|e| format!("tensor {full}: {e}"))?;
        if t.shape() != shape {
            return Err(format!(
                "tensor {full} has shape {:?}, config.json implies {shape:?}",
                t.shape()
            ));
        }
        let bytes: &'a [u8] = t.data();
        let pairs = || {
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        Ok(match t.dtype() {
            Dtype::F32 => match f32_view(bytes) {
                Some(view) => Cow::Borrowed(view),
                None => Cow::Owned(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
            },
            Dtype::F16 => Cow::Owned(pairs().map(f16_to_f32).collect()),
            Dtype::BF16 => Cow::Owned(
                pairs()
                    .map(|h| f32::from_bits(u32::from(h) << 16))
                    .collect(),
            ),
            other => {
                return Err(format!(
                    "tensor {full} is {other:?}; f32, f16 or bf16 expected"
                ))
            }
        })
    }

    /// A `torch.nn.Linear`, packed for the kernel.
    fn dense(&self, name: &str, input: usize, output: usize) -> Result<Dense, String> {
        let (w, b) = self.linear(name, input, output)?;
        Ok(Dense::new(&w, b.into_owned(), input, output, self.kernel))
    }

    /// The f32 weight `(out, in)` and bias of a `torch.nn.Linear`.
    fn linear(&self, name: &str, input: usize, output: usize) -> Result<Linear<'a>, String> {
        let w = self.get(&format!("{name}.weight"), &[output, input])?;
        let b = self.get(&format!("{name}.bias"), &[output])?;
        Ok((w, b))
    }

    fn norm(&self, name: &str, size: usize) -> Result<Norm, String> {
        Ok(Norm {
            gamma: self.get(&format!("{name}.weight"), &[size])?.into_owned(),
            beta: self.get(&format!("{name}.bias"), &[size])?.into_owned(),
        })
    }
}

/// A linear layer's f32 weight `(out, in)` and its bias.
type Linear<'a> = (Cow<'a, [f32]>, Cow<'a, [f32]>);

/// `bytes` as f32 values, without a copy, where they are aligned (and the CPU little-endian, as
/// safetensors stores them).
fn f32_view(bytes: &[u8]) -> Option<&[f32]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32; `align_to` only yields the aligned middle.
    let (head, view, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(view)
}

/// The word embeddings (30522 × 384 f32 for all-MiniLM-L6-v2, 47 MB): read in place from the
/// memory-mapped file where they are stored as aligned f32, so only the rows of tokens seen are
/// paged in, and start-up copies nothing; a copy otherwise.
enum Table {
    Mapped {
        map: memmap2::Mmap,
        start: usize,
        len: usize,
    },
    Owned(Vec<f32>),
}

impl Table {
    fn values(&self) -> &[f32] {
        match self {
            Table::Mapped { map, start, len } => map
                .get(*start..*start + *len * 4)
                .and_then(f32_view)
                .unwrap_or(&[]),
            Table::Owned(v) => v,
        }
    }
}

/// Stacks the query, key and value projections along the output axis (torch layout: rows),
/// scaling the query.
fn fuse_qkv(
    q: Linear<'_>,
    k: Linear<'_>,
    v: Linear<'_>,
    input: usize,
    scale: f32,
    kernel: Kernel,
) -> Dense {
    let h = q.1.len();
    let mut w = Vec::with_capacity(3 * h * input);
    w.extend(q.0.iter().map(|x| x * scale));
    w.extend_from_slice(&k.0);
    w.extend_from_slice(&v.0);
    let mut b: Vec<f32> = q.1.iter().map(|x| x * scale).collect();
    b.extend_from_slice(&k.1);
    b.extend_from_slice(&v.1);
    Dense::new(&w, b, input, 3 * h, kernel)
}

impl Bert {
    /// Loads the weights of a `BertModel` checkpoint (memory-mapped safetensors, with or without
    /// the `bert.` prefix), checking every shape against the config. `kernel` is the matrix
    /// kernel of the linear layers ([`Kernel::detect`] for the fastest); one this CPU does not
    /// run is refused.
    pub fn load(weights: &Path, cfg: &BertConfig, kernel: Kernel) -> Result<Self, String> {
        if !kernel.is_supported() {
            return Err(format!("this CPU does not run the {kernel:?} kernel"));
        }
        if cfg.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\", as in all-MiniLM-L6-v2)",
                cfg.hidden_act
            ));
        }
        let heads = cfg.num_attention_heads;
        let hidden = cfg.hidden_size;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            ));
        }
        let file =
            std::fs::File::open(weights).map_err(|e| format!("{}: {e}", weights.display()))?;
        // SAFETY: the file is mapped read-only and must not change while the model is loaded
        // (the word embeddings are read from it for the process's lifetime): it is a Lambda
        // layer's read-only file in AWS, and the install's own copy locally.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| format!("{}: not a safetensors file ({e})", weights.display()))?;
        let prefix = if st.tensor("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else {
            "bert."
        };
        let w = Weights { st, prefix, kernel };
        let scale = 1.0 / ((hidden / heads) as f32).sqrt();
        let inter = cfg.intermediate_size;
        // Layers are converted and packed in parallel.
        let layers = (0..cfg.num_hidden_layers)
            .into_par_iter()
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                let qkv = fuse_qkv(
                    w.linear(&format!("{p}.attention.self.query"), hidden, hidden)?,
                    w.linear(&format!("{p}.attention.self.key"), hidden, hidden)?,
                    w.linear(&format!("{p}.attention.self.value"), hidden, hidden)?,
                    hidden,
                    scale,
                    kernel,
                );
                Ok(Layer {
                    qkv,
                    attn_out: w.dense(&format!("{p}.attention.output.dense"), hidden, hidden)?,
                    attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), hidden)?,
                    intermediate: w.dense(&format!("{p}.intermediate.dense"), hidden, inter)?,
                    output: w.dense(&format!("{p}.output.dense"), inter, hidden)?,
                    out_norm: w.norm(&format!("{p}.output.LayerNorm"), hidden)?,
                })
            })
            .collect::<Result<Vec<Layer>, String>>()?;
        // Where the word embeddings sit in the map (borrowed), or their converted copy; the
        // table takes the map once nothing borrows it any more.
        enum Words {
            InMap { start: usize, len: usize },
            Copied(Vec<f32>),
        }
        let word = match w.get(
            "embeddings.word_embeddings.weight",
            &[cfg.vocab_size, hidden],
        )? {
            Cow::Borrowed(view) => Words::InMap {
                start: view.as_ptr() as usize - map.as_ptr() as usize,
                len: view.len(),
            },
            Cow::Owned(copy) => Words::Copied(copy),
        };
        let position = w
            .get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, hidden],
            )?
            .into_owned();
        let token_type = w
            .get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, hidden],
            )?
            .into_owned();
        let emb_norm = w.norm("embeddings.LayerNorm", hidden)?;
        drop(w);
        let word = match word {
            Words::Copied(copy) => Table::Owned(copy),
            Words::InMap { start, len } => Table::Mapped { map, start, len },
        };
        Ok(Bert {
            kernel,
            hidden,
            heads,
            intermediate: inter,
            eps: cfg.layer_norm_eps as f32,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            type_vocab: cfg.type_vocab_size,
        })
    }

    /// The matrix kernel the linear layers run on.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Mean-pooled, L2-normalised sentence embeddings, one per text.
    pub fn embed(&self, texts: &[Tokens<'_>]) -> Result<Vec<Vec<f32>>, String> {
        // The whole pass runs on a rayon worker: each of its ~70 parallel steps called from
        // outside the pool would queue its work and put the caller to sleep until done, a
        // thread wake-up per step.
        let x = rayon::scope(|_| self.encode(texts))?;
        let h = self.hidden;
        let mut out = Vec::with_capacity(texts.len());
        let mut row = 0;
        for t in texts {
            let n = t.ids.len();
            let mut v = vec![0f32; h];
            for r in row..row + n {
                for (a, b) in v.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                    *a += b;
                }
            }
            row += n;
            let count = (n as f32).max(1e-9);
            v.iter_mut().for_each(|a| *a /= count);
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
        }
        Ok(out)
    }

    /// The last hidden state of every token of every text, stacked: `(Σ len, hidden)`.
    /// The buffers start on cache lines (the AMX kernel loads and stores its sums in place).
    fn encode(&self, texts: &[Tokens<'_>]) -> Result<Aligned<f32>, String> {
        let h = self.hidden;
        let words = self.word.values();
        if words.len() != self.vocab * h {
            return Err("the word embeddings are not readable".into());
        }
        let rows: usize = texts.iter().map(|t| t.ids.len()).sum();
        let mut x = Aligned::zeroed(rows * h);
        let mut r = 0;
        for t in texts {
            if t.ids.len() > self.max_positions || t.types.len() != t.ids.len() {
                return Err(format!(
                    "{} tokens with {} type ids (at most {} positions)",
                    t.ids.len(),
                    t.types.len(),
                    self.max_positions
                ));
            }
            for (pos, (&id, &ty)) in t.ids.iter().zip(t.types).enumerate() {
                let (id, ty) = (id as usize, ty as usize);
                if id >= self.vocab || ty >= self.type_vocab {
                    return Err(format!("token id {id} / type {ty} out of range"));
                }
                let dst = &mut x[r * h..(r + 1) * h];
                let word = &words[id * h..(id + 1) * h];
                let posv = &self.position[pos * h..(pos + 1) * h];
                let tyv = &self.token_type[ty * h..(ty + 1) * h];
                for i in 0..h {
                    dst[i] = word[i] + posv[i] + tyv[i];
                }
                r += 1;
            }
        }
        layer_norm(&mut x, h, &self.emb_norm, self.eps);

        let lens: Vec<usize> = texts.iter().map(|t| t.ids.len()).collect();
        let mut qkv = Aligned::zeroed(rows * 3 * h);
        let mut ctx = Aligned::zeroed(rows * h);
        let mut inter = Aligned::zeroed(rows * self.intermediate);
        for layer in &self.layers {
            dense(&x, rows, &layer.qkv, &mut qkv, false);
            self.attention(&qkv, &lens, &mut ctx);
            // x ← LayerNorm(x + ctx·Wo + bo)
            dense(&ctx, rows, &layer.attn_out, &mut x, true);
            layer_norm(&mut x, h, &layer.attn_norm, self.eps);
            // x ← LayerNorm(x + GELU(x·Wi + bi)·Wo2 + bo2)
            dense_gelu(&x, rows, &layer.intermediate, &mut inter);
            // `dense` reads x as the residual while the product lands in it: keep a copy.
            ctx.copy_from_slice(&x);
            dense_residual(&inter, rows, &layer.output, &ctx, &mut x);
            layer_norm(&mut x, h, &layer.out_norm, self.eps);
        }
        Ok(x)
    }

    /// Scaled dot-product attention per text and head, into `ctx`: texts in parallel, and the
    /// heads of each text too when there are few texts (a query alone would keep one core busy).
    fn attention(&self, qkv: &[f32], lens: &[usize], ctx: &mut [f32]) {
        let h = self.hidden;
        let heads = self.heads;
        let dh = h / heads;
        let threads = rayon::current_num_threads();
        let split_heads = threads > 1 && lens.len() < 2 * threads;
        let mut parts = Vec::with_capacity(lens.len());
        let (mut rest, mut r0) = (ctx, 0usize);
        for &len in lens {
            let (mine, tail) = rest.split_at_mut(len * h);
            parts.push((mine, r0, len));
            rest = tail;
            r0 += len;
        }
        parts.into_par_iter().for_each(|(out, r0, len)| {
            if len == 0 {
                return;
            }
            let qkv = &qkv[r0 * 3 * h..(r0 + len) * 3 * h];
            let one = |head: usize, out: &mut [f32], stride: usize| {
                let mut scratch = Scratch::default();
                head_attention(qkv, len, h, dh, head, &mut scratch, out, stride);
            };
            if split_heads {
                let done: Vec<(usize, Vec<f32>)> = (0..heads)
                    .into_par_iter()
                    .map(|head| {
                        let mut o = vec![0f32; len * dh];
                        one(head, &mut o, dh);
                        (head, o)
                    })
                    .collect();
                for (head, o) in done {
                    for (row, src) in out.chunks_exact_mut(h).zip(o.chunks_exact(dh)) {
                        row[head * dh..(head + 1) * dh].copy_from_slice(src);
                    }
                }
            } else {
                let mut scratch = Scratch::default();
                for head in 0..heads {
                    head_attention(
                        qkv,
                        len,
                        h,
                        dh,
                        head,
                        &mut scratch,
                        &mut out[head * dh..],
                        h,
                    );
                }
            }
        });
    }
}

/// Buffers one head's attention reuses.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    kt: Vec<f32>,
}

/// softmax(Q·Kᵀ)·V of one head of one text (`qkv` is its `len` rows of `3h`: queries, keys,
/// values, the scale already in the queries), into `len` rows of `dh` columns of `out` at row
/// stride `stride`.
#[allow(clippy::too_many_arguments)]
fn head_attention(
    qkv: &[f32],
    len: usize,
    h: usize,
    dh: usize,
    head: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
    stride: usize,
) {
    if len == 0 || out.len() < (len - 1) * stride + dh || qkv.len() < len * 3 * h {
        return;
    }
    let Scratch { scores, kt } = scratch;
    scores.resize(len * len, 0.0);
    kt.resize(dh * len, 0.0);
    let (q_off, k_off, v_off) = (head * dh, h + head * dh, 2 * h + head * dh);
    // Kᵀ of this head, contiguous (dh × len).
    for j in 0..len {
        for i in 0..dh {
            kt[i * len + j] = qkv[j * 3 * h + k_off + i];
        }
    }
    // SAFETY (both calls): every pointer/stride pair stays inside its slice (checked above): Q
    // and V are `len` rows of `dh` columns at row stride 3h inside `qkv`, Kᵀ is dh × len, scores
    // len × len, and the output `len` rows of `dh` columns at row stride `stride` inside `out`.
    unsafe {
        gemm(
            len,
            len,
            dh,
            scores.as_mut_ptr(),
            1,
            len as isize,
            false,
            qkv.as_ptr().add(q_off),
            1,
            (3 * h) as isize,
            kt.as_ptr(),
            1,
            len as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
    for row in scores.chunks_exact_mut(len) {
        softmax(row);
    }
    unsafe {
        gemm(
            len,
            dh,
            len,
            out.as_mut_ptr(),
            1,
            stride as isize,
            false,
            scores.as_ptr(),
            1,
            len as isize,
            qkv.as_ptr().add(v_off),
            1,
            (3 * h) as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Rows per parallel task of the element-wise passes.
const ROWS_PER_TASK: usize = 32;

fn layer_norm(x: &mut [f32], h: usize, n: &Norm, eps: f32) {
    x.par_chunks_mut(h * ROWS_PER_TASK).for_each(|block| {
        for row in block.chunks_exact_mut(h) {
            let mean = lane_sum(row, |v| v) / h as f32;
            let var = lane_sum(row, |v| (v - mean) * (v - mean)) / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&n.gamma).zip(&n.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    });
}

/// Σ f(v) over `row`, in 16 running sums (one vector register) added at the end: a plain
/// `sum()` must add in order, one value at a time, which no compiler vectorises.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    lanes.iter().sum::<f32>() + tail
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EMBEDDING_MODEL_DIR=… cargo test -p ragbot-bert --release query_speed -- --ignored
    /// --nocapture`: one query's latency p50 at 10, 20, 32 and 64 tokens on the detected kernel,
    /// without the tokenizer or the rest of the service (`--profile profiling` to run it under
    /// perf; `QUERY_SPEED_TOKENS=20` for one length, `QUERY_SPEED_SECONDS` per length).
    #[test]
    #[ignore]
    fn query_speed() {
        let Ok(dir) = std::env::var("EMBEDDING_MODEL_DIR") else {
            eprintln!("EMBEDDING_MODEL_DIR is not set");
            return;
        };
        let dir = std::path::Path::new(&dir);
        let cfg: BertConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let bert = Bert::load(&dir.join("model.safetensors"), &cfg, Kernel::detect()).unwrap();
        let setting = |name: &str| -> Option<f64> { std::env::var(name).ok()?.parse().ok() };
        let lengths: Vec<usize> = match setting("QUERY_SPEED_TOKENS") {
            Some(t) => vec![t as usize],
            None => vec![10, 20, 32, 64],
        };
        let seconds = setting("QUERY_SPEED_SECONDS").unwrap_or(2.0);
        let batch = setting("QUERY_SPEED_BATCH").map_or(1, |b| b as usize);
        for len in lengths {
            // [CLS] words… [SEP]: the ids only need to be in the vocabulary.
            let mut ids: Vec<u32> = (0..len as u32).map(|i| 2000 + 37 * i).collect();
            ids[0] = 101;
            ids[len - 1] = 102;
            let types = vec![0u32; len];
            let text: Vec<Tokens<'_>> = (0..batch)
                .map(|_| Tokens {
                    ids: &ids,
                    types: &types,
                })
                .collect();
            let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
            let mut times = Vec::new();
            while std::time::Instant::now() < until {
                let t = std::time::Instant::now();
                bert.embed(&text).unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            eprintln!(
                "{:?} {len} tokens × {batch}: p50 {:.3} ms, p10 {:.3} ms, {:.0} passes/s",
                bert.kernel(),
                times[times.len() / 2],
                times[times.len() / 10],
                times.len() as f64 / seconds
            );
        }
    }

    #[test]
    fn half_floats_convert_exactly() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3800, 0.5),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0400, 6.103_515_6e-5),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(h), f, "{h:#06x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut r = vec![1.0, 2.0, 3.0, 8.0];
        softmax(&mut r);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(r[3] > 0.98 && r[0] < r[1] && r[1] < r[2]);
        // Large logits do not overflow (the row maximum is subtracted first).
        let mut big = vec![1000.0, 1000.0];
        softmax(&mut big);
        assert_eq!(big, vec![0.5, 0.5]);
    }

    #[test]
    fn lane_sums_match_a_plain_sum_at_every_length() {
        // Whole blocks of 16, a remainder, both, and nothing.
        for len in [0, 5, 16, 37, 384, 1536] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 101) as f32 * 0.37 - 18.0)
                .collect();
            let exact: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let got = f64::from(lane_sum(&row, |v| v * v));
            assert!(
                (got - exact).abs() <= 1e-5 * exact.max(1.0),
                "{len}: {got} vs {exact}"
            );
            let plain: f32 = row.iter().sum();
            assert!((lane_sum(&row, |v| v) - plain).abs() < 1e-2, "{len}");
        }
    }

    #[test]
    fn layer_norm_normalises_each_row() {
        let n = Norm {
            gamma: vec![1.0; 4],
            beta: vec![0.0; 4],
        };
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0];
        layer_norm(&mut x, 4, &n, 1e-12);
        let first = &x[..4];
        assert!(first.iter().sum::<f32>().abs() < 1e-5);
        assert!((first.iter().map(|v| v * v).sum::<f32>() / 4.0 - 1.0).abs() < 1e-4);
        assert!(x[4..].iter().all(|v| v.abs() < 1e-3));
    }
}

//! `out += x·W` for the encoder's linear layers, with the fastest kernel this CPU has, chosen
//! once at load ([`Kernel::detect`]).
//!
//! - [`Kernel::Amx`] (x86-64 with AMX-BF16: Intel Sapphire Rapids and later): the same bfloat16
//!   products on the matrix tiles ([`amx`]), 16 × 16 sums at a time.
//! - [`Kernel::Bf16`] (x86-64 with AVX-512 BF16: AMD Zen 4 and later, Intel Sapphire Rapids and
//!   later): weights and activations in bfloat16, products summed in f32 by `vdpbf16ps`, which
//!   does two multiply-adds per f32 lane, twice an f32 FMA's work per instruction and half its
//!   bytes read. Every row count goes through it, a one-token query as a batch of long chunks,
//!   so the f32 copy of the weights is not kept (42 MB less for all-MiniLM-L6-v2).
//! - [`Kernel::F32`] (every other CPU: AVX-512F, AVX2 + FMA, NEON, portable): f32 activations.
//!   Up to [`SMALL_ROWS`] rows, a register-tiled kernel over a bfloat16 copy of the weights (a
//!   few rows are bound by reading the weights); above, the `gemm` crate over f32 weights.
//!
//! Both accumulate in f32. Rounding activations to bfloat16 costs about 1e-4 cosine against
//! sentence-transformers (the parity test's bar is 1e-3).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

mod amx;

use crate::aligned::Aligned;

/// The matrix kernel of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// bfloat16 matrix tiles (`tdpbf16ps`, AMX-BF16), f32 sums.
    Amx,
    /// bfloat16 dot products (`vdpbf16ps`, AVX-512 BF16), f32 sums.
    Bf16,
    /// f32 multiply-adds (AVX-512F, AVX2 + FMA, NEON or portable, chosen at run time).
    F32,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        if Kernel::Amx.is_supported() {
            Kernel::Amx
        } else if Kernel::Bf16.is_supported() {
            Kernel::Bf16
        } else {
            Kernel::F32
        }
    }

    /// Every kernel this CPU runs, fastest first.
    pub fn supported() -> Vec<Self> {
        [Kernel::Amx, Kernel::Bf16, Kernel::F32]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    pub fn is_supported(self) -> bool {
        match self {
            Kernel::F32 => true,
            Kernel::Bf16 => has_avx512_bf16(),
            Kernel::Amx => amx::available(),
        }
    }

    /// Whether a text's vector is the same, bit for bit, whichever texts share its pass: every
    /// row's sums are taken in one order however many rows there are (the bfloat16 kernels). The
    /// f32 kernel hands more than a few rows to a general gemm, which sums in another order.
    pub fn batch_invariant(self) -> bool {
        matches!(self, Kernel::Amx | Kernel::Bf16)
    }

    /// The kernel and the instruction set it runs with here, for logs and benchmarks.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Amx => "bf16 tiles (AMX)",
            Kernel::Bf16 => "bf16 (AVX-512 BF16)",
            Kernel::F32 => f32_instructions(),
        }
    }
}

fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn f32_instructions() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "f32 (AVX-512F)";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "f32 (AVX2)";
        }
        "f32 (SSE2)"
    }
    #[cfg(target_arch = "aarch64")]
    return "f32 (NEON)";
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    "f32 (portable)"
}

/// A linear layer: `y = x·W + b`, W packed for its kernel.
pub(crate) struct Dense {
    b: Vec<f32>,
    input: usize,
    output: usize,
    weights: Packed,
}

enum Packed {
    /// [`Kernel::Bf16`]: [`pack_pairs`].
    Pairs(Aligned<u16>),
    /// [`Kernel::Amx`]: [`pack_pairs`] with whole tiles of input pairs ([`amx::TILE_PAIRS`]).
    Tiles(Aligned<u16>),
    /// [`Kernel::F32`]: W in f32 (row-major `(input, output)`) for gemm, and its bfloat16 column
    /// strips ([`pack_bf16`]) for the few-row path.
    Strips { w: Vec<f32>, w16: Vec<u16> },
}

impl Dense {
    /// `w` is a `torch.nn.Linear` weight: row-major `(output, input)`.
    pub(crate) fn new(w: &[f32], b: Vec<f32>, input: usize, output: usize, kernel: Kernel) -> Self {
        let weights = match kernel {
            Kernel::Bf16 => Packed::Pairs(pack_pairs(w, input, output, input.div_ceil(2))),
            Kernel::Amx => Packed::Tiles(pack_pairs(w, input, output, tile_pairs(input))),
            Kernel::F32 => {
                // gemm and the strips read W as (input, output).
                let mut t = vec![0f32; input * output];
                for (o, row) in w.chunks_exact(input).enumerate() {
                    for (i, &v) in row.iter().enumerate() {
                        t[i * output + o] = v;
                    }
                }
                Packed::Strips {
                    w16: pack_bf16(&t, input, output),
                    w: t,
                }
            }
        };
        Dense {
            b,
            input,
            output,
            weights,
        }
    }
}

/// f32 → bfloat16 bits, rounding to nearest even.
pub(crate) fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

fn parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// `out = x·W + b` (`accumulate`: `out += x·W + b`), `x` being `rows × d.input`.
pub(crate) fn dense(x: &[f32], rows: usize, d: &Dense, out: &mut [f32], accumulate: bool) {
    debug_assert_eq!(x.len(), rows * d.input);
    debug_assert_eq!(out.len(), rows * d.output);
    for row in out.chunks_exact_mut(d.output) {
        if accumulate {
            row.iter_mut().zip(&d.b).for_each(|(o, b)| *o += b);
        } else {
            row.copy_from_slice(&d.b);
        }
    }
    matmul_acc(x, rows, d, out);
}

/// GELU with erf, as BERT's `"gelu"` (not the tanh approximation).
fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(8192).for_each(|block| {
        for v in block {
            *v = gelu1(*v);
        }
    });
}

#[inline(always)]
fn gelu1(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf in f32 as a rational function of x (Eigen's and XLA's `fast_erf`): within 5e-7 of libm's
/// `erff` (tested), made of multiply-adds and one division with no branch, so it vectorises;
/// libm's `erff` took a fifth of a query's time. Beyond ±4, erf is ±1 in f32.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ERF_P[1..].iter().fold(ERF_P[0], |p, &c| x2 * p + c);
    let q = ERF_Q[1..].iter().fold(ERF_Q[0], |q, &c| x2 * q + c);
    x * p / q
}

/// The numerator's coefficients (of x², highest first; times x) and the denominator's.
const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_600_1e-3,
    -1.609_603_3e-2,
];
const ERF_Q: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329_4e-3,
    -1.426_474e-2,
];

/// [`gelu1`] on 16 lanes.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gelu_avx512(v: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let x = _mm512_mul_ps(v, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
    let x2 = _mm512_mul_ps(x, x);
    let mut p = _mm512_set1_ps(ERF_P[0]);
    for &c in &ERF_P[1..] {
        p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(c));
    }
    let mut q = _mm512_set1_ps(ERF_Q[0]);
    for &c in &ERF_Q[1..] {
        q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(c));
    }
    let erf = _mm512_div_ps(_mm512_mul_ps(x, p), q);
    let half = _mm512_mul_ps(v, _mm512_set1_ps(0.5));
    _mm512_fmadd_ps(half, erf, half)
}

/// `out = GELU(x·W + b)`.
pub(crate) fn dense_gelu(x: &[f32], rows: usize, d: &Dense, out: &mut [f32]) {
    for row in out.chunks_exact_mut(d.output) {
        row.copy_from_slice(&d.b);
    }
    if matches!(d.weights, Packed::Pairs(_) | Packed::Tiles(_)) {
        // The kernel applies GELU as it stores each finished sum.
        return product(x, rows, d, out, Epilogue::Gelu);
    }
    product(x, rows, d, out, Epilogue::None);
    gelu(out);
}

/// `out = residual + x·W + b`.
pub(crate) fn dense_residual(x: &[f32], rows: usize, d: &Dense, residual: &[f32], out: &mut [f32]) {
    for (row, res) in out
        .chunks_exact_mut(d.output)
        .zip(residual.chunks_exact(d.output))
    {
        for ((o, r), b) in row.iter_mut().zip(res).zip(&d.b) {
            *o = r + b;
        }
    }
    matmul_acc(x, rows, d, out);
}

/// What the product does with each finished sum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Epilogue {
    /// `out += x·W`.
    None,
    /// `out = GELU(out + x·W)` (only the [`Packed::Pairs`] and [`Packed::Tiles`] kernels apply it).
    Gelu,
}

/// `out += x·W`.
fn matmul_acc(x: &[f32], rows: usize, d: &Dense, out: &mut [f32]) {
    product(x, rows, d, out, Epilogue::None)
}

fn product(x: &[f32], rows: usize, d: &Dense, out: &mut [f32], epilogue: Epilogue) {
    // Callers size the buffers from `rows`; an empty or mis-sized one is skipped rather than
    // read out of bounds (and shows up as a wrong vector in the parity tests).
    if rows == 0 || x.len() != rows * d.input || out.len() != rows * d.output {
        debug_assert!(
            rows == 0,
            "matmul_acc: buffer sizes do not match {rows} rows"
        );
        return;
    }
    match &d.weights {
        Packed::Pairs(packed) => {
            let kp = d.input.div_ceil(2);
            pairs_matmul_acc(x, rows, d.input, kp, packed, out, epilogue, false)
        }
        Packed::Tiles(packed) => {
            let kp = tile_pairs(d.input);
            pairs_matmul_acc(x, rows, d.input, kp, packed, out, epilogue, true)
        }
        Packed::Strips { w16, .. } if rows <= SMALL_ROWS => {
            small_matmul_acc(x, rows, d.input, w16, out)
        }
        // SAFETY: x is rows × input, W input × output, out rows × output, all row-major and
        // checked above.
        Packed::Strips { w, .. } => unsafe {
            gemm(
                rows,
                d.output,
                d.input,
                out.as_mut_ptr(),
                1,
                d.output as isize,
                true,
                x.as_ptr(),
                1,
                d.input as isize,
                w.as_ptr(),
                1,
                d.output as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism(),
            );
        },
    }
}

// ---- Kernel::Bf16 ------------------------------------------------------------------------------

/// Column strips of 16 (one 512-bit register of f32) per group: a tile of [`PAIR_ROWS`] rows ×
/// one group is 16 accumulators, half the 32 vector registers, the rest for weights and inputs;
/// a group of 384 inputs is 24 KB, inside L1.
const GROUP: usize = 2;
const PAIR_ROWS: usize = 8;
/// bfloat16 values per strip and input pair: 16 columns × 2 inputs.
const PAIR_STRIP: usize = 32;
const GROUP_COLS: usize = GROUP * 16;
/// At most this many rows per task when the rows are split between threads (a batch; the blocks
/// are made equal, in whole row tiles); a query's rows (no more than this) are split by column
/// groups instead.
const ROW_BLOCK: usize = 64;

/// W (a torch weight, `output × input`, f32, row-major) as bfloat16, laid out for `vdpbf16ps`: inputs are taken
/// in pairs (`2p`, `2p+1`); for each group of [`GROUP_COLS`] columns and each pair, the group's
/// strips follow each other, and a strip holds `W[2p][c], W[2p+1][c]` for its 16 columns `c`.
/// A group is read front to back, 128 bytes per pair. `kp` pairs per column (at least
/// `input / 2`, rounded up): odd inputs, pairs past the inputs and the last group's missing
/// columns are zero.
fn pack_pairs(w: &[f32], input: usize, output: usize, kp: usize) -> Aligned<u16> {
    let groups = output.div_ceil(GROUP_COLS);
    let mut packed = Aligned::zeroed(groups * kp * GROUP * PAIR_STRIP);
    for (col, row) in w.chunks_exact(input).enumerate() {
        let (g, strip, lane) = (col / GROUP_COLS, (col / 16) % GROUP, col % 16);
        let base = (g * kp * GROUP + strip) * PAIR_STRIP + 2 * lane;
        for (i, &v) in row.iter().enumerate() {
            packed[base + (i / 2) * GROUP * PAIR_STRIP + i % 2] = to_bf16(v);
        }
    }
    packed
}

/// `x` (`rows × input`) as bfloat16 pairs: row `r`, pair `p` is `x[r][2p]` in the low half and
/// `x[r][2p+1]` in the high half, as `vdpbf16ps` reads them. A query's few rows are converted on
/// the calling thread (a fork-join would cost more than the conversion). `kp` pairs per row, as
/// [`pack_pairs`]; the pairs past the inputs are zero.
fn to_pairs(x: &[f32], rows: usize, input: usize, kp: usize) -> Aligned<u32> {
    let mut pairs = Aligned::zeroed(rows * kp);
    let convert = |dst: &mut [u32], src: &[f32]| {
        for (d, s) in dst.chunks_exact_mut(kp).zip(src.chunks_exact(input)) {
            pairs_row(s, d);
        }
    };
    if rows <= ROW_BLOCK {
        convert(&mut pairs, x);
    } else {
        pairs
            .par_chunks_mut(kp * ROW_BLOCK)
            .zip(x.par_chunks(input * ROW_BLOCK))
            .for_each(|(dst, src)| convert(dst, src));
    }
    pairs
}

/// Input pairs per row of [`Kernel::Amx`]: whole tiles.
fn tile_pairs(input: usize) -> usize {
    input.div_ceil(2 * amx::TILE_PAIRS) * amx::TILE_PAIRS
}

/// One row of [`to_pairs`], 32 values per instruction where the CPU converts to bfloat16.
fn pairs_row(src: &[f32], dst: &mut [u32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        // SAFETY: the CPU has AVX-512 BF16.
        done = unsafe { pairs_row_avx512(src, dst) };
    }
    for (p, v) in dst.iter_mut().enumerate().skip(done) {
        let Some(&first) = src.get(2 * p) else {
            *v = 0;
            continue;
        };
        let lo = to_bf16(first);
        let hi = src.get(2 * p + 1).map_or(0, |&v| to_bf16(v));
        *v = u32::from(lo) | (u32::from(hi) << 16);
    }
}

/// The pairs of `src`'s first whole blocks of 32 values (rounded to nearest even, as
/// [`to_bf16`]); returns how many pairs it wrote.
///
/// # Safety
/// The CPU supports AVX-512F and AVX-512 BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_row_avx512(src: &[f32], dst: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = (src.len() / 32).min(dst.len() / 16);
    for i in 0..blocks {
        let lo = _mm512_loadu_ps(src[32 * i..].as_ptr());
        let hi = _mm512_loadu_ps(src[32 * i + 16..].as_ptr());
        // The second operand fills the low 16 values: src order is kept.
        let bf: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst[16 * i..].as_mut_ptr().cast(), bf);
    }
    blocks * 16
}

/// `out` as a raw pointer the tasks of [`pairs_matmul_acc`] share; each writes its own rows and
/// columns.
struct SharedOut(*mut f32);
// SAFETY: the tasks write disjoint parts of the buffer and the caller holds `&mut` to it for as
// long as they run.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    // A method, so closures capture the whole (Sync) wrapper rather than its raw-pointer field.
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

/// `out += x·W` with W's bfloat16 pairs ([`pack_pairs`], `kp` per column); `out` is `rows × n`,
/// checked by the caller. Tasks are row blocks × column groups: enough of them for every thread,
/// a query's few rows being split by columns and a batch by rows. `tiles`: on the AMX tiles.
#[allow(clippy::too_many_arguments)]
fn pairs_matmul_acc(
    x: &[f32],
    rows: usize,
    input: usize,
    kp: usize,
    packed: &[u16],
    out: &mut [f32],
    epilogue: Epilogue,
    tiles: bool,
) {
    let n = out.len() / rows;
    // Tile instructions fault unless the OS granted them (`available` asks, once): a `Tiles`
    // layout made by hand without asking gets the scalar sums instead.
    let tiles = tiles && amx::available();
    let xp = to_pairs(x, rows, input, kp);
    let groups = n.div_ceil(GROUP_COLS);
    // Row blocks of equal size (whole row tiles), so no task is left with a short remainder.
    let row_blocks = rows.div_ceil(ROW_BLOCK);
    let tile = if tiles { 2 * amx::TILE_ROWS } else { PAIR_ROWS };
    let block_rows = rows.div_ceil(row_blocks).next_multiple_of(tile);
    let row_blocks = rows.div_ceil(block_rows);
    let threads = rayon::current_num_threads().max(1);
    let parts = (2 * threads).div_ceil(row_blocks).clamp(1, groups);
    let per_part = groups.div_ceil(parts);
    let parts = groups.div_ceil(per_part);
    let shared = SharedOut(out.as_mut_ptr());
    let bf16 = has_avx512_bf16();
    // Column-part major: the tasks rayon hands one thread share their weights.
    (0..row_blocks * parts).into_par_iter().for_each(|task| {
        let (part, block) = (task / row_blocks, task % row_blocks);
        let rows = block * block_rows..((block + 1) * block_rows).min(rows);
        let groups = part * per_part..((part + 1) * per_part).min(groups);
        let task = PairsTask {
            xp: &xp,
            kp,
            packed,
            n,
            out: shared.ptr(),
            gelu: epilogue == Epilogue::Gelu,
        };
        #[cfg(target_arch = "x86_64")]
        if tiles {
            // SAFETY: `tiles` only for [`Packed::Tiles`] (`kp` whole tiles) where AMX is
            // available; the rows and groups are as below.
            return unsafe { amx::run(&task, rows, groups) };
        }
        #[cfg(target_arch = "x86_64")]
        if bf16 {
            // SAFETY: the CPU has AVX-512 BF16; the task's rows and groups are inside `xp`,
            // `packed` and `out` (rows × n), and no other task writes them.
            return unsafe { task.run_avx512(rows, groups) };
        }
        let _ = tiles;
        let _ = bf16;
        // SAFETY: as above, without the CPU requirement.
        unsafe { task.run_scalar(rows, groups) }
    });
}

/// What every task of one product shares.
struct PairsTask<'a> {
    xp: &'a [u32],
    kp: usize,
    packed: &'a [u16],
    n: usize,
    out: *mut f32,
    /// Apply GELU to each finished sum ([`Epilogue::Gelu`]).
    gelu: bool,
}

impl PairsTask<'_> {
    fn group_len(&self) -> usize {
        self.kp * GROUP * PAIR_STRIP
    }

    /// Rows `rows` × column groups `groups` with `vdpbf16ps`: each group's weights (24 KB for 384
    /// inputs) stay in L1/L2 while the row tiles pass over them.
    ///
    /// # Safety
    /// The CPU supports AVX-512F and AVX-512 BF16; `rows` are rows of `xp` and of `out`, `groups`
    /// groups of `packed`, and no one else touches those rows × columns of `out` meanwhile.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn run_avx512(&self, rows: std::ops::Range<usize>, groups: std::ops::Range<usize>) {
        if self.gelu {
            self.tiles::<true>(rows, groups)
        } else {
            self.tiles::<false>(rows, groups)
        }
    }

    /// [`Self::run_avx512`] with the epilogue fixed at compile time.
    ///
    /// # Safety
    /// As [`Self::run_avx512`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn tiles<const GELU: bool>(
        &self,
        rows: std::ops::Range<usize>,
        groups: std::ops::Range<usize>,
    ) {
        let (kp, n) = (self.kp, self.n);
        let last = groups.end;
        for g in groups {
            let w = self.packed[g * self.group_len()..(g + 1) * self.group_len()].as_ptr();
            let col0 = g * GROUP_COLS;
            let cols = (n - col0).min(GROUP_COLS);
            let mut r = rows.start;
            while r < rows.end {
                let x = self.xp[r * kp..].as_ptr();
                let out = self.out.add(r * n + col0);
                let step = (rows.end - r).min(PAIR_ROWS);
                // The first row tile of a group also brings the next group's weights into L1
                // (from L3: the model's weights are far past L2); measured on Zen 5, a 20-token
                // query on one thread 2.9 -> 1.9-2.2 ms.
                let next = if r == rows.start && g + 1 < last {
                    w.add(self.group_len())
                } else {
                    std::ptr::null()
                };
                match step {
                    1 => pairs_tile::<1, GELU>(x, kp, w, next, out, n, cols),
                    2 => pairs_tile::<2, GELU>(x, kp, w, next, out, n, cols),
                    3 => pairs_tile::<3, GELU>(x, kp, w, next, out, n, cols),
                    4 => pairs_tile::<4, GELU>(x, kp, w, next, out, n, cols),
                    5 => pairs_tile::<5, GELU>(x, kp, w, next, out, n, cols),
                    6 => pairs_tile::<6, GELU>(x, kp, w, next, out, n, cols),
                    7 => pairs_tile::<7, GELU>(x, kp, w, next, out, n, cols),
                    _ => pairs_tile::<PAIR_ROWS, GELU>(x, kp, w, next, out, n, cols),
                }
                r += step;
            }
        }
    }

    /// The same sums without vector instructions: `vdpbf16ps`'s arithmetic (two bf16 products
    /// added to an f32) for a CPU without it, which [`Kernel::is_supported`] keeps from getting
    /// here; and the reference the tests hold the vector kernel to.
    ///
    /// # Safety
    /// As [`Self::run_avx512`], without the CPU requirement.
    unsafe fn run_scalar(&self, rows: std::ops::Range<usize>, groups: std::ops::Range<usize>) {
        let bf = |h: u32| f32::from_bits(h << 16);
        for g in groups {
            let w = &self.packed[g * self.group_len()..(g + 1) * self.group_len()];
            let col0 = g * GROUP_COLS;
            let cols = (self.n - col0).min(GROUP_COLS);
            for r in rows.clone() {
                let x = &self.xp[r * self.kp..(r + 1) * self.kp];
                for c in 0..cols {
                    let (strip, lane) = (c / 16, c % 16);
                    let mut sum = 0f32;
                    for (p, &xv) in x.iter().enumerate() {
                        let at = (p * GROUP + strip) * PAIR_STRIP + 2 * lane;
                        sum += bf(xv & 0xffff) * bf(u32::from(w[at]))
                            + bf(xv >> 16) * bf(u32::from(w[at + 1]));
                    }
                    let o = self.out.add(r * self.n + col0 + c);
                    *o += sum;
                    if self.gelu {
                        *o = gelu1(*o);
                    }
                }
            }
        }
    }
}

/// `R` rows × one column group: for each input pair, the group's strips are loaded once
/// and each row's pair is broadcast against them; the sums are added to `out` at the end
/// (`cols` of the group's columns exist), through GELU if `GELU`. Unless `next` is null, the
/// same offsets of the group at `next` are prefetched as it goes.
///
/// # Safety
/// AVX-512F and AVX-512 BF16; `x` points at `R` rows of `kp` pairs, `w` at a group of `kp`
/// pairs, `out` at `R` rows of stride `n` with `cols` writable columns; `next` is null or a
/// group like `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
// Indexed loops over constant bounds are what keep the accumulators in registers.
#[allow(clippy::needless_range_loop)]
unsafe fn pairs_tile<const R: usize, const GELU: bool>(
    x: *const u32,
    kp: usize,
    w: *const u16,
    next: *const u16,
    out: *mut f32,
    n: usize,
    cols: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); GROUP]; R];
    for p in 0..kp {
        let wp = w.add(p * GROUP * PAIR_STRIP);
        if !next.is_null() {
            // The pair's 128 bytes: two cache lines.
            let np = next.add(p * GROUP * PAIR_STRIP);
            _mm_prefetch::<_MM_HINT_T0>(np.cast());
            _mm_prefetch::<_MM_HINT_T0>(np.add(PAIR_STRIP).cast());
        }
        let mut wv = [_mm512_setzero_si512(); GROUP];
        for c in 0..GROUP {
            wv[c] = _mm512_loadu_si512(wp.add(c * PAIR_STRIP).cast());
        }
        for r in 0..R {
            let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(r * kp + p) as i32));
            for c in 0..GROUP {
                let wc: __m512bh = std::mem::transmute(wv[c]);
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wc);
            }
        }
    }
    for r in 0..R {
        for c in 0..GROUP {
            let col = c * 16;
            if col >= cols {
                break;
            }
            let o = out.add(r * n + col);
            let lanes = (cols - col).min(16);
            let mask = if lanes == 16 {
                !0
            } else {
                ((1u32 << lanes) - 1) as __mmask16
            };
            let mut sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), acc[r][c]);
            if GELU {
                sum = gelu_avx512(sum);
            }
            _mm512_mask_storeu_ps(o, mask, sum);
        }
    }
}

// ---- Kernel::F32 -------------------------------------------------------------------------------

/// Row count up to which [`matmul_acc`] uses the few-row kernel instead of gemm: a short query
/// is ~10 rows, and gemm packs the whole f32 weight matrix into panels before a product that
/// small, which costs more than the product itself.
const SMALL_ROWS: usize = 32;

/// Columns and rows of one register tile: 4 × 16 accumulators fit the vector registers of
/// AVX-512 (4 registers), AVX2 (8) and NEON (16), with room for the weights.
const TILE_COLS: usize = 16;
const TILE_ROWS: usize = 4;

/// W (`input × output`, f32, row-major) as bfloat16 in column strips of [`TILE_COLS`]: strip `t`
/// holds columns `16t..16t+16` of every input row, contiguous (`input × 16`), zero-padded past
/// the last column. The few-row kernel then reads each strip front to back.
fn pack_bf16(w: &[f32], input: usize, output: usize) -> Vec<u16> {
    let strips = output.div_ceil(TILE_COLS);
    let mut packed = vec![0u16; strips * input * TILE_COLS];
    for (t, strip) in packed.chunks_exact_mut(input * TILE_COLS).enumerate() {
        for (i, dst) in strip.chunks_exact_mut(TILE_COLS).enumerate() {
            let c0 = t * TILE_COLS;
            let c1 = (c0 + TILE_COLS).min(output);
            for (d, &v) in dst.iter_mut().zip(&w[i * output + c0..i * output + c1]) {
                *d = to_bf16(v);
            }
        }
    }
    packed
}

/// `out += x·W` for a few rows (`x` is `rows × input`, already checked against `out`), with W's
/// bfloat16 strips ([`pack_bf16`]).
///
/// A short query is bound by reading the weights: half the bytes of f32, read front to back,
/// keep the whole model (21 MB) inside a server's L3 cache. The strips are split between the
/// threads; each task accumulates its columns in a small block copied back afterwards.
fn small_matmul_acc(x: &[f32], rows: usize, input: usize, w16: &[u16], out: &mut [f32]) {
    let n = out.len() / rows;
    let strips = n.div_ceil(TILE_COLS);
    let per_task = strips.div_ceil(rayon::current_num_threads().clamp(1, 8));
    let current: &[f32] = out;
    let blocks: Vec<(usize, usize, Vec<f32>)> = (0..strips.div_ceil(per_task))
        .into_par_iter()
        .map(|b| {
            let first = b * per_task;
            let last = ((b + 1) * per_task).min(strips);
            let (c0, c1) = (first * TILE_COLS, (last * TILE_COLS).min(n));
            let width = c1 - c0;
            let mut acc = Vec::with_capacity(rows * width);
            for r in 0..rows {
                acc.extend_from_slice(&current[r * n + c0..r * n + c1]);
            }
            let packed = &w16[first * input * TILE_COLS..last * input * TILE_COLS];
            strips_product(x, rows, input, packed, &mut acc, width);
            (c0, width, acc)
        })
        .collect();
    for (c0, width, acc) in blocks {
        for (r, src) in acc.chunks_exact(width).enumerate() {
            out[r * n + c0..r * n + c0 + width].copy_from_slice(src);
        }
    }
}

/// `acc += x · strips` (`acc` is `rows × width`, the strips' columns), with the widest vector
/// instructions this CPU has, chosen at run time: the binary itself targets baseline x86-64.
fn strips_product(x: &[f32], rows: usize, k: usize, packed: &[u16], acc: &mut [f32], width: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { strips_product_avx512(x, rows, k, packed, acc, width) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { strips_product_avx2(x, rows, k, packed, acc, width) };
        }
        strips_product_body::<false>(x, rows, k, packed, acc, width)
    }
    // aarch64 (Graviton) always has NEON and fused multiply-add.
    #[cfg(target_arch = "aarch64")]
    strips_product_body::<true>(x, rows, k, packed, acc, width);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    strips_product_body::<false>(x, rows, k, packed, acc, width);
}

/// A copy of the kernel compiled for one x86 instruction set; [`strips_product`] picks it at run
/// time. Calling it is `unsafe` because the CPU must support `$features`.
macro_rules! x86_strips_product {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            x: &[f32],
            rows: usize,
            k: usize,
            packed: &[u16],
            acc: &mut [f32],
            width: usize,
        ) {
            strips_product_body::<true>(x, rows, k, packed, acc, width)
        }
    };
}
x86_strips_product!(strips_product_avx512, "avx512f,avx2,fma");
x86_strips_product!(strips_product_avx2, "avx2,fma");

/// The loops themselves, inlined into each feature-specific copy so the compiler vectorises them
/// for that instruction set. `FUSED` uses `mul_add`, a single instruction only where FMA is
/// available (elsewhere a slow library call). The row tiles of a strip run back to back, so the
/// strip comes from memory once and from cache after that.
#[inline(always)]
fn strips_product_body<const FUSED: bool>(
    x: &[f32],
    rows: usize,
    k: usize,
    packed: &[u16],
    acc: &mut [f32],
    width: usize,
) {
    for (s, strip) in packed.chunks_exact(k * TILE_COLS).enumerate() {
        let col = s * TILE_COLS;
        let cols = TILE_COLS.min(width.saturating_sub(col));
        let mut r0 = 0;
        while r0 < rows {
            let t = Tile {
                x,
                k,
                strip,
                r0,
                col,
                cols,
            };
            match rows - r0 {
                1 => t.run::<1, FUSED>(acc, width),
                2 => t.run::<2, FUSED>(acc, width),
                3 => t.run::<3, FUSED>(acc, width),
                _ => t.run::<TILE_ROWS, FUSED>(acc, width),
            }
            r0 += TILE_ROWS.min(rows - r0);
        }
    }
}

/// One register tile: rows `r0..r0+R` of `x` times one strip, added to `cols` columns of `acc`
/// from `col`.
struct Tile<'a> {
    x: &'a [f32],
    k: usize,
    strip: &'a [u16],
    r0: usize,
    col: usize,
    cols: usize,
}

impl Tile<'_> {
    // Indexed loops over constant bounds are what lets the compiler keep `a` in registers.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn run<const R: usize, const FUSED: bool>(&self, acc: &mut [f32], width: usize) {
        let k = self.k;
        let xs: [&[f32]; R] = std::array::from_fn(|r| &self.x[(self.r0 + r) * k..][..k]);
        let mut a = [[0f32; TILE_COLS]; R];
        for (kk, bits) in self.strip.chunks_exact(TILE_COLS).enumerate().take(k) {
            let mut wf = [0f32; TILE_COLS];
            for (f, &b) in wf.iter_mut().zip(bits) {
                *f = f32::from_bits(u32::from(b) << 16);
            }
            for r in 0..R {
                let xv = xs[r][kk];
                for j in 0..TILE_COLS {
                    a[r][j] = if FUSED {
                        xv.mul_add(wf[j], a[r][j])
                    } else {
                        a[r][j] + xv * wf[j]
                    };
                }
            }
        }
        for (r, sums) in a.iter().enumerate() {
            let row = (self.r0 + r) * width + self.col;
            for (o, s) in acc[row..row + self.cols].iter_mut().zip(sums) {
                *o += s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w` (`input × output`, row-major) in torch's layout, `output × input`.
    fn torch(w: &[f32], input: usize, output: usize) -> Vec<f32> {
        let mut t = vec![0f32; w.len()];
        for i in 0..input {
            for o in 0..output {
                t[o * input + i] = w[i * output + o];
            }
        }
        t
    }

    /// A deterministic matrix of values in [-0.5, 0.5).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * seed) % 97) as f32 / 97.0 - 0.5)
            .collect()
    }

    #[test]
    fn dense_matches_naive_product() {
        // x (2×3) · W (3×2) + b, W given as a torch Linear (out × in).
        let w_out_in = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // rows: out0 = [1,2,3], out1 = [4,5,6]
        for kernel in Kernel::supported() {
            let d = Dense::new(&w_out_in, vec![0.5, -0.5], 3, 2, kernel);
            let x = [1.0, 0.0, -1.0, 2.0, 1.0, 0.0];
            let mut out = vec![0f32; 4];
            dense(&x, 2, &d, &mut out, false);
            // Small integers are exact in bfloat16 too.
            assert_eq!(
                out,
                vec![1.0 - 3.0 + 0.5, 4.0 - 6.0 - 0.5, 4.0 + 0.5, 13.0 - 0.5],
                "{kernel:?}"
            );
            dense(&x, 2, &d, &mut out, true);
            assert_eq!(out[0], 2.0 * (1.0 - 3.0 + 0.5), "{kernel:?}");
        }
    }

    /// Every kernel, at row counts around its tile and block edges and odd widths (an odd
    /// input leaves half a pair; 53 and 131 outputs leave part of a strip and of a group), stays
    /// within bfloat16 rounding of the f32 product, and the bf16 kernel gives exactly what its
    /// scalar reference gives.
    #[test]
    fn every_kernel_matches_the_f32_product() {
        for (input, output) in [(37, 53), (64, 131)] {
            let w = values(input * output, 7919);
            for kernel in Kernel::supported() {
                let d = Dense::new(
                    &torch(&w, input, output),
                    vec![0.0; output],
                    input,
                    output,
                    kernel,
                );
                for rows in [1, 2, 3, 4, 5, 16, 17, 32, 33, 63, 64, 65, 150] {
                    let x = values(rows * input, 104_729);
                    let start: Vec<f32> = (0..rows * output).map(|i| i as f32 * 0.01).collect();
                    let mut got = start.clone();
                    matmul_acc(&x, rows, &d, &mut got);
                    let mut exact = start.clone();
                    for r in 0..rows {
                        for o in 0..output {
                            for i in 0..input {
                                exact[r * output + o] += x[r * input + i] * w[i * output + o];
                            }
                        }
                    }
                    for (a, e) in got.iter().zip(&exact) {
                        assert!((a - e).abs() < 2e-2, "{kernel:?} {rows} rows: {a} vs {e}");
                    }
                    let pairs = match &d.weights {
                        Packed::Pairs(packed) => Some((packed, input.div_ceil(2))),
                        Packed::Tiles(packed) => Some((packed, tile_pairs(input))),
                        Packed::Strips { .. } => None,
                    };
                    if let Some((packed, kp)) = pairs {
                        let xp = to_pairs(&x, rows, input, kp);
                        let mut scalar = start.clone();
                        let task = PairsTask {
                            xp: &xp,
                            kp,
                            packed,
                            n: output,
                            out: scalar.as_mut_ptr(),
                            gelu: false,
                        };
                        // SAFETY: all rows and groups of this product, one task.
                        unsafe { task.run_scalar(0..rows, 0..output.div_ceil(GROUP_COLS)) };
                        for (a, s) in got.iter().zip(&scalar) {
                            assert!((a - s).abs() < 1e-4, "{rows} rows: {a} vs scalar {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) - libm::erff(x)).abs());
        }
        assert!(worst < 5e-7, "erf off by {worst}");
        eprintln!("erf: at most {worst:e} from libm");
        // Far out it saturates at ±1 (within an ulp) instead of diverging.
        assert!((erf(10.0) - 1.0).abs() <= f32::EPSILON);
        assert!((erf(-1e30) + 1.0).abs() <= f32::EPSILON);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn gelu_is_applied_once_by_every_kernel() {
        let (input, output, rows) = (40, 70, 5);
        let w = values(input * output, 7919);
        let x = values(rows * input, 104_729);
        let b = values(output, 31);
        let mut expected = vec![0f32; rows * output];
        for r in 0..rows {
            for o in 0..output {
                let mut s = b[o];
                for i in 0..input {
                    s += x[r * input + i] * w[i * output + o];
                }
                expected[r * output + o] = 0.5 * s * (1.0 + libm::erff(s / 2f32.sqrt()));
            }
        }
        for kernel in Kernel::supported() {
            let d = Dense::new(&torch(&w, input, output), b.clone(), input, output, kernel);
            let mut out = vec![f32::NAN; rows * output];
            dense_gelu(&x, rows, &d, &mut out);
            for (a, e) in out.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-2, "{kernel:?}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2⁻⁸ is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
    }

    #[test]
    fn pairs_put_two_inputs_in_each_lane() {
        // W 3 × 2: the pair (input 0, input 1) of column 1 is lane 1 of strip 0; input 2 pairs
        // with a zero.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let packed = pack_pairs(&torch(&w, 3, 2), 3, 2, 2);
        assert_eq!(packed.len(), 2 * GROUP * PAIR_STRIP);
        assert_eq!(
            &packed[..4],
            &[to_bf16(1.0), to_bf16(3.0), to_bf16(2.0), to_bf16(4.0)]
        );
        let second = GROUP * PAIR_STRIP;
        assert_eq!(
            &packed[second..second + 4],
            &[to_bf16(5.0), 0, to_bf16(6.0), 0]
        );
        assert_eq!(
            to_pairs(&[1.0, -2.0, 3.0], 1, 3, 2).to_vec(),
            vec![
                u32::from(to_bf16(1.0)) | (u32::from(to_bf16(-2.0)) << 16),
                u32::from(to_bf16(3.0))
            ]
        );
        // The vector conversion (blocks of 32) and the scalar one (the tail) agree, ties included.
        let x: Vec<f32> = (0..101)
            .map(|i| 1.0 + (i % 7) as f32 / 256.0 - (i as f32) * 0.37)
            .collect();
        let expected: Vec<u32> = x
            .chunks(2)
            .map(|p| {
                u32::from(to_bf16(p[0])) | (p.get(1).map_or(0, |&v| u32::from(to_bf16(v))) << 16)
            })
            .collect();
        assert_eq!(to_pairs(&x, 1, 101, 51).to_vec(), expected);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test -p ragbot-bert --release speed -- --ignored --nocapture`: GFLOP/s of one
    /// product on one thread, per kernel, at query row counts.
    #[test]
    #[ignore]
    fn kernel_speed() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for (input, output) in [(384, 1536), (1536, 384), (384, 1152)] {
            let w: Vec<f32> = (0..input * output)
                .map(|i| (i % 13) as f32 * 0.01)
                .collect();
            for kernel in Kernel::supported() {
                let d = Dense::new(&w, vec![0.0; output], input, output, kernel);
                for rows in [4, 8, 20, 64] {
                    // Cache-line aligned, as the encoder's buffers.
                    let mut x = Aligned::zeroed(rows * input);
                    x.fill(0.5);
                    let mut out = Aligned::zeroed(rows * output);
                    // The best of 5 runs: shared machines are noisy.
                    let reps = 40_000_000 / (rows * input * output) + 1;
                    let s = (0..5)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            pool.install(|| {
                                for _ in 0..reps {
                                    matmul_acc(&x, rows, &d, &mut out);
                                }
                            });
                            t.elapsed().as_secs_f64()
                        })
                        .fold(f64::INFINITY, f64::min);
                    let flop = 2.0 * (rows * input * output * reps) as f64;
                    eprintln!(
                        "{kernel:?} {input}x{output} {rows} rows: {:.1} GFLOP/s, {:.1} us",
                        flop / s / 1e9,
                        s / reps as f64 * 1e6
                    );
                }
            }
        }
    }
}

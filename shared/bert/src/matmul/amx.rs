//! [`Kernel::Amx`](super::Kernel::Amx): the products on Intel's matrix tiles (AMX-BF16, Sapphire
//! Rapids and later). One `tdpbf16ps` multiplies a 16 × 32 bfloat16 tile of activations by a
//! 32 × 16 tile of weights into 16 × 16 f32 sums: 8,192 multiply-adds, 32 times the work of one
//! AVX-512 `vdpbf16ps`. The weights are the [`pack_pairs`](super::pack_pairs) layout padded to
//! whole tiles of 16 input pairs: a strip's 16 pairs are one weight tile, read at a row stride
//! of one group.
//!
//! Rust has no stable AMX intrinsics, so the six instructions are written with `asm!` (stable),
//! and the CPU and Linux support are checked by hand: CPUID, and `arch_prctl` asking the kernel
//! for tile state (Linux 5.16+ gives it only to a process that asks).

use std::{arch::asm, ops::Range, sync::OnceLock};

use super::{gelu_avx512, PairsTask, GROUP, GROUP_COLS, PAIR_STRIP};

/// Input pairs per tile (the depth of one `tdpbf16ps`): the activation rows and weight groups
/// of this kernel hold a whole number of them.
pub(super) const TILE_PAIRS: usize = 16;
/// Rows of an activation tile (and of a sum tile).
pub(super) const TILE_ROWS: usize = 16;

/// Whether the CPU has AMX-BF16 and the OS lets this process use it (asked once).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    const AMX_BF16: u32 = 1 << 22;
    const AMX_TILE: u32 = 1 << 24;
    // The epilogue (GELU) and the activations' conversion use AVX-512 BF16.
    if !super::has_avx512_bf16() {
        return false;
    }
    // Leaf 7 exists where AVX-512 does.
    let leaf7 = __cpuid_count(7, 0);
    if leaf7.edx & (AMX_BF16 | AMX_TILE) != AMX_BF16 | AMX_TILE {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes the process's permissions; it fails
    // (EINVAL, ENOSPC…) on a kernel without AMX support or one that refuses.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// The 64-byte operand of `ldtilecfg` (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    /// Bytes per row of each tile register.
    colsb: [u16; 16],
    /// Rows of each tile register.
    rows: [u8; 16],
}

/// The registers: sums `tmm0`–`tmm3` (two row tiles × the group's two strips), activations
/// `tmm4`/`tmm5` (the two row tiles), weights `tmm6`/`tmm7` (the two strips). `upper` rows in
/// the first row tile, `lower` (possibly none) in the second.
///
/// # Safety
/// [`available`].
#[cfg(target_arch = "x86_64")]
unsafe fn configure(upper: usize, lower: usize) {
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for (tile, rows) in [
        (0, upper),
        (1, upper),
        (2, lower),
        (3, lower),
        (4, upper),
        (5, lower),
    ] {
        if rows > 0 {
            cfg.rows[tile] = rows as u8;
            cfg.colsb[tile] = 64;
        }
    }
    for tile in [6, 7] {
        cfg.rows[tile] = TILE_PAIRS as u8;
        cfg.colsb[tile] = 64;
    }
    asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
}

/// Rows `rows` × column groups `groups` of `task` on the tiles, 32 rows at a time. A group is
/// two 16-column strips, so each step loads two activation tiles and two weight tiles for four
/// products. Whole groups are summed in place in `out`; a last, partial one through a copy.
///
/// # Safety
/// [`available`]; `task.kp` is a multiple of [`TILE_PAIRS`]; `rows` are rows of `task.xp` and
/// `task.out`, `groups` groups of `task.packed`, and no one else touches those rows × columns of
/// `out` meanwhile.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn run(task: &PairsTask<'_>, rows: Range<usize>, groups: Range<usize>) {
    let (kp, n) = (task.kp, task.n);
    debug_assert_eq!(kp % TILE_PAIRS, 0);
    let x_stride = kp * 4;
    let mut configured = (0, 0);
    let mut partial = [0f32; 2 * TILE_ROWS * GROUP_COLS];
    // Each group's weights (24 KB for 384 inputs) stay in L1 while the row chunks pass over them.
    for g in groups {
        let col0 = g * GROUP_COLS;
        let cols = (n - col0).min(GROUP_COLS);
        let w = task.packed.as_ptr().add(g * task.group_len()).cast::<u8>();
        let mut r0 = rows.start;
        while r0 < rows.end {
            let upper = (rows.end - r0).min(TILE_ROWS);
            let lower = (rows.end - r0 - upper).min(TILE_ROWS);
            if (upper, lower) != configured {
                configure(upper, lower);
                configured = (upper, lower);
            }
            let (c, c_stride) = if cols == GROUP_COLS {
                (task.out.add(r0 * n + col0), n * 4)
            } else {
                for r in 0..upper + lower {
                    for (col, v) in partial[r * GROUP_COLS..(r + 1) * GROUP_COLS]
                        .iter_mut()
                        .enumerate()
                    {
                        *v = if col < cols {
                            *task.out.add((r0 + r) * n + col0 + col)
                        } else {
                            0.0
                        };
                    }
                }
                (partial.as_mut_ptr(), GROUP_COLS * 4)
            };
            let c_lower = c.cast::<u8>().add(TILE_ROWS * c_stride);
            let x = task.xp.as_ptr().add(r0 * kp).cast::<u8>();
            chunk(c, c_lower, c_stride, x, x_stride, w, kp, lower > 0);
            if cols < GROUP_COLS {
                for r in 0..upper + lower {
                    for col in 0..cols {
                        *task.out.add((r0 + r) * n + col0 + col) = partial[r * GROUP_COLS + col];
                    }
                }
            }
            if task.gelu {
                for r in r0..r0 + upper + lower {
                    gelu_row(task.out.add(r * n + col0), cols);
                }
            }
            r0 += upper + lower;
        }
    }
    // Back to the initial state: a thread's context switches stop saving 8 KB of tiles.
    asm!("tilerelease", options(nostack, nomem));
}

/// One chunk of up to 32 rows × one group: the sums `c` (and `c_lower`, the second row tile's,
/// if `lower`) at row stride `c_stride` bytes are loaded, accumulate `kp` pairs of activations
/// `x` (row stride `x_stride`) times the group's weights `w`, and are stored back.
///
/// # Safety
/// The tiles are configured for this chunk's rows ([`configure`]); every pointer covers its
/// tiles' rows.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn chunk(
    c: *mut f32,
    c_lower: *mut u8,
    c_stride: usize,
    x: *const u8,
    x_stride: usize,
    w: *const u8,
    kp: usize,
    lower: bool,
) {
    // Bytes from one input pair to the next within a strip: the group's strips interleave.
    let w_stride = GROUP * PAIR_STRIP * 2;
    let strip_bytes = PAIR_STRIP * 2;
    asm!(
        "tileloadd tmm0, [{c} + {s}*1]",
        "tileloadd tmm1, [{c} + {s}*1 + 64]",
        c = in(reg) c, s = in(reg) c_stride, options(nostack, readonly)
    );
    if lower {
        asm!(
            "tileloadd tmm2, [{c} + {s}*1]",
            "tileloadd tmm3, [{c} + {s}*1 + 64]",
            c = in(reg) c_lower, s = in(reg) c_stride, options(nostack, readonly)
        );
    }
    let step = TILE_PAIRS * w_stride;
    for kb in 0..kp / TILE_PAIRS {
        let xa = x.add(kb * TILE_PAIRS * 4);
        let wb = w.add(kb * step);
        // The upper row tile's step, then the lower one's with the same weight tiles (the
        // tile registers keep their contents between the two blocks).
        asm!(
            "tileloadd tmm6, [{w} + {ws}*1]",
            "tileloadd tmm7, [{w2} + {ws}*1]",
            "tileloadd tmm4, [{x} + {xs}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            w = in(reg) wb, w2 = in(reg) wb.add(strip_bytes), ws = in(reg) w_stride,
            x = in(reg) xa, xs = in(reg) x_stride, options(nostack, readonly)
        );
        if lower {
            asm!(
                "tileloadd tmm5, [{xl} + {xs}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                xl = in(reg) xa.add(TILE_ROWS * x_stride),
                xs = in(reg) x_stride, options(nostack, readonly)
            );
        }
    }
    asm!(
        "tilestored [{c} + {s}*1], tmm0",
        "tilestored [{c} + {s}*1 + 64], tmm1",
        c = in(reg) c, s = in(reg) c_stride, options(nostack)
    );
    if lower {
        asm!(
            "tilestored [{c} + {s}*1], tmm2",
            "tilestored [{c} + {s}*1 + 64], tmm3",
            c = in(reg) c_lower, s = in(reg) c_stride, options(nostack)
        );
    }
}

/// GELU on `cols` (≤ 32) values at `at`.
///
/// # Safety
/// AVX-512F; `cols` values at `at` are writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_row(at: *mut f32, cols: usize) {
    use std::arch::x86_64::*;
    let mut col = 0;
    while col < cols {
        let lanes = (cols - col).min(16);
        let mask = if lanes == 16 {
            !0
        } else {
            ((1u32 << lanes) - 1) as __mmask16
        };
        let o = at.add(col);
        _mm512_mask_storeu_ps(o, mask, gelu_avx512(_mm512_maskz_loadu_ps(mask, o)));
        col += 16;
    }
}

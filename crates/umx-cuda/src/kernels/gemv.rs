//! Matrix-vector products: `x (M, K) @ W.T` for a few rows `M` (up to [`MAX_ROWS`]) and a
//! weight stored row-major as `(N, K)` (what a Linear layer's `x @ weight.T` is), the product
//! of every decoding step of a language model. Reading the weight once at the card's bandwidth
//! is all the work, so the kernel is built for that: each warp owns output columns (or, for
//! few columns, a block's warps share each one), its lanes read 16-byte vectors of a weight
//! row, two at a time in flight with the registers capped so that many blocks fit an SM, and
//! accumulate in float32 for all rows at once by fused multiply-adds (`fmaf`, as cuBLAS's
//! kernels do: umx compiles kernels without contraction, so the source asks for it); warp
//! shuffles (and shared memory across warps) sum them. `addmm`'s addend (the residual
//! `compile` folds into the product before it, or a bias) is added in the same kernel.
//! cuBLASLt picks its kernels for products with many rows; with one row it leaves bandwidth
//! unused (see bench/RESULTS.md).
//!
//! A rope form (`fast::linear_rope_cache_write`) takes each block's columns as rope pairs of
//! the stacked q/k/v weight and, in place of the store, rotates each pair and writes it to the
//! queries or into a key/value cache.
//!
//! A norm form (`FastOp::NormPrologue`, which `compile` makes of an RMS norm feeding a
//! product) takes `x`'s rows RMS-normalised: the lanes sum the squares of the elements they
//! take into the products anyway, and each column's sums are scaled once by the row's norm.
//!
//! A decoding step is a chain of short kernels, each started early by programmatic dependent
//! launch and waiting for the one before it. A weight no running kernel writes (one whose
//! writes ended at a synchronization: `compile::may_read_early`) needs no wait, so each lane
//! loads its first weight vectors before waiting, and that memory latency overlaps the
//! tail of the kernel before: a TinyLlama decoding step 1.441 -> 1.358 ms on the H100.

use super::source::{Args, HEADER, ROTATE, load, storage_type, store};
use crate::compile::{function_for, launch, may_read_early};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr};
use std::sync::atomic::{AtomicBool, Ordering};
use umx_core::primitives::UnaryOp;
use umx_core::shape::row_major_strides;
use umx_core::{ArrayData, Dtype, Result};

/// The most rows of `x` a product may have to take this path.
pub const MAX_ROWS: usize = 8;
/// Warps per block: each computes one output column at a time, or all share one.
const WARPS: u32 = 4;
/// Weight vectors a lane loads before using any (two beat four and eight on the H200 with the
/// registers capped: bench/RESULTS.md).
const U: usize = 2;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Sends products with at most 8 rows against a row-major weight to umx's matrix-vector
/// kernel (the default) or, off, to cuBLASLt. Returns the previous setting.
pub fn set_gemv(enabled: bool) -> bool {
    ENABLED.swap(enabled, Ordering::Relaxed)
}

/// `a @ b` by the matrix-vector kernel when it fits: `a` has at most [`MAX_ROWS`] rows in all
/// (leading axes included) stored row-major, `b` is the transpose of a row-major `(N, K)`
/// matrix (one matrix, no batch), both of `dtype`, and `K` fills whole 16-byte vectors.
/// With `addend = (c, alpha, beta)` it is `addmm`: `alpha * (a @ b) + beta * c`, `c` of
/// `dtype` broadcast to the output (a residual or a bias, added in float32 before the one
/// rounding, as cuBLASLt does; a `c` whose rows no single stride reaches is not taken).
/// `None` otherwise.
pub(crate) fn try_gemv(
    a: &ArrayData,
    b: &ArrayData,
    addend: Option<(&ArrayData, f64, f64)>,
    out_shape: &[usize],
    dtype: Dtype,
) -> Result<Option<ArrayData>> {
    if !ENABLED.load(Ordering::Relaxed)
        || !matches!(dtype, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
        || a.dtype != dtype
        || b.dtype != dtype
        || a.shape.is_empty()
        || b.shape.len() < 2
    {
        return Ok(None);
    }
    let k = *a.shape.last().unwrap_or(&0);
    let nb = b.shape.len();
    let (kb, n) = (b.shape[nb - 2], b.shape[nb - 1]);
    let m = a.size().checked_div(k).unwrap_or(0);
    let per_vec = 16 / dtype.size();
    if kb != k
        || k == 0
        || n == 0
        || m == 0
        || m > MAX_ROWS
        || !k.is_multiple_of(per_vec)
        // One weight matrix: any leading axes of b are 1.
        || b.shape[..nb - 2].iter().any(|&d| d != 1)
        // b[kk, nn] at nn * k + kk: the transpose of a row-major (N, K) matrix.
        || b.strides[nb - 2] != 1
        || (n > 1 && b.strides[nb - 1] != k as isize)
        // Row-major from its offset (a slice of a wider row: the pointer carries it).
        || !umx_core::shape::is_row_contiguous(&a.shape, &a.strides)
    {
        return Ok(None);
    }
    let (alpha, beta) = addend.map_or((1.0, 0.0), |(_, al, be)| (al as f32, be as f32));
    // beta = 0 reads no c (as cuBLASLt: a NaN there does not come through).
    let c = match addend {
        Some((c, _, be)) if be != 0.0 => match addend_strides(c, out_shape, dtype) {
            Some(st) => Some((input_ptr(c)?, st)),
            None => return Ok(None),
        },
        _ => None,
    };
    let (xp, wp) = (input_ptr(a)?, input_ptr(b)?);
    if xp % 16 != 0 || wp % 16 != 0 {
        return Ok(None);
    }
    let (out, yp) = fresh(out_shape, dtype)?;
    debug_assert_eq!(out.strides, row_major_strides(out_shape));
    let launch = Launch {
        y: yp,
        x: xp,
        w: wp,
        rows: m,
        n,
        k,
        c,
        alpha,
        beta,
        pair: false,
        early: may_read_early(&[b]),
        rope: None,
        norm: None,
    };
    launch.run(dtype)?;
    Ok(Some(out))
}

/// `fast::swiglu_linear` for a few rows: `silu(x @ w[..I].T) * (x @ w[I..].T)`, each output's
/// two dot products (rows `i` and `I + i` of the weight) in one pass of the matrix-vector
/// kernel. `x` and `w` are copied to row-major order first when they are views of another
/// layout. `None` where the kernel does not fit (the op makes its node only where it does).
pub(crate) fn swiglu(
    x: &ArrayData,
    w: &ArrayData,
    out_shape: &[usize],
    norm: Option<&Norm>,
) -> Result<Option<ArrayData>> {
    products(x, w, out_shape, norm, true)
}

/// `x @ w.T` for a few rows with `x` RMS-normalised in the kernel's pass
/// (`FastOp::NormPrologue` of `FastOp::Linear`: a language model's final norm and head). `None`
/// where the kernel does not fit (the caller then normalises first).
pub(crate) fn linear(
    x: &ArrayData,
    w: &ArrayData,
    out_shape: &[usize],
    norm: &Norm,
) -> Result<Option<ArrayData>> {
    products(x, w, out_shape, Some(norm), false)
}

/// [`swiglu`] (`pair`: each output the SwiGLU of weight rows `i` and `I + i`) or [`linear`].
fn products(
    x: &ArrayData,
    w: &ArrayData,
    out_shape: &[usize],
    norm: Option<&Norm>,
    pair: bool,
) -> Result<Option<ArrayData>> {
    let dtype = x.dtype;
    let k = *x.shape.last().unwrap_or(&0);
    let m = x.size().checked_div(k).unwrap_or(0);
    let norm_given = norm.is_some();
    if !matches!(dtype, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
        || w.dtype != dtype
        || w.shape.len() != 2
        || w.shape[1] != k
        || (pair && !w.shape[0].is_multiple_of(2))
        || w.shape[0] == 0
        || k == 0
        || !k.is_multiple_of(16 / dtype.size())
        || !(1..=MAX_ROWS).contains(&m)
    {
        return Ok(None);
    }
    // Row-major from an aligned pointer, or a copy that is.
    let aligned = |a: &ArrayData| -> Result<Option<ArrayData>> {
        if umx_core::shape::is_row_contiguous(&a.shape, &a.strides) && input_ptr(a)? % 16 == 0 {
            return Ok(Some(a.clone()));
        }
        super::contiguous(a, dtype)
    };
    let (Some(x), Some(w)) = (aligned(x)?, aligned(w)?) else {
        return Ok(None);
    };
    let norm = norm_operand(norm, &x)?;
    if norm.is_none() && norm_given {
        return Ok(None);
    }
    let (out, yp) = fresh(out_shape, dtype)?;
    let launch = Launch {
        y: yp,
        x: input_ptr(&x)?,
        w: input_ptr(&w)?,
        rows: m,
        n: w.shape[0] / if pair { 2 } else { 1 },
        k,
        c: None,
        alpha: 1.0,
        beta: 0.0,
        pair,
        early: may_read_early(&[&w]),
        rope: None,
        norm,
    };
    launch.run(dtype)?;
    Ok(Some(out))
}

/// One launch of the matrix-vector kernel: `y (rows, n)` from `x (rows, k)` and the weight
/// rows, device pointers all (16-byte aligned for `x` and `w`).
struct Launch<'a> {
    y: u64,
    x: u64,
    w: u64,
    rows: usize,
    /// Output columns (with `pair`, the weight has twice as many rows).
    n: usize,
    k: usize,
    /// The addend's pointer and `(row, column)` element strides.
    c: Option<(u64, (isize, isize))>,
    alpha: f32,
    beta: f32,
    /// SwiGLU of weight rows `i` and `n + i` for output column `i`.
    pair: bool,
    /// Whether the weights may be read before the kernel before this one ends.
    early: bool,
    /// The rope form: columns in rope pairs, rotated into queries and caches (no `y`).
    rope: Option<&'a RopeLaunch>,
    /// `x`'s rows RMS-normalised first: the norm's weight (of the dtype, `K` long, 16-byte
    /// aligned) and epsilon.
    norm: Option<(u64, f32)>,
}

impl Launch<'_> {
    fn run(&self, dtype: Dtype) -> Result<()> {
        let g = gpu()?;
        let (m, n) = (self.rows, self.n);
        // Few columns: a block's warps share each one, so enough loads are in flight (two
        // warps a column, or a split chosen by the vectors each lane loads, were slower); rows
        // of two to four passes of a warp's loads do so up to a wave and a half of columns
        // (TinyLlama's q/k/v product, 2560 columns of 2048). Two warps a column for those rows,
        // as until 2026-11-28, made a decoding step 1.094 ms -> 1.107 on the H100 (its output
        // projection; bench/RESULTS.md).
        let kv = self.k / (16 / dtype.size());
        let pass = |warps: u32| 4 * 32 * warps as usize;
        let sm = g.sm_count as usize;
        let short_rows = kv < pass(WARPS) && kv >= pass(2);
        let split = if n >= sm * 24 || (n >= sm * 16 && !short_rows) {
            1
        } else {
            WARPS
        };
        // A SwiGLU's pairs of one row: a block's warps share each pair too, however many
        // there are (TinyLlama's 5632 on an H200: a decoding step 0.822 -> 0.811 ms; two
        // warps a pair 0.838). The products with an addend keep the rule above: there one
        // warp a column took 0.952 ms, two 0.856.
        let split = if self.pair && m == 1 { WARPS } else { split };
        // The rope form pairs a block's groups: at most two warps a column.
        let split = if self.rope.is_some() {
            split.min(2)
        } else {
            split
        };
        let add = self.c.is_some();
        let pair = self.pair;
        let after = crate::compile::pdl_trigger_after();
        let form = self.rope.map(|r| r.form);
        let norm = self.norm.is_some();
        let key = format!("gemv|{dtype:?}|{m}|{split}|{add}|{pair}|{after}|{form:?}|{norm}");
        let f = function_for(
            &key,
            || source(dtype, m, split, add, pair, after, form.as_ref(), norm),
            "umx_gemv",
        )?;
        let (cp, (c_row, c_col)) = self.c.unwrap_or((0, (0, 0)));
        let mut args = Args::default();
        args.push(self.y)
            .push(self.x)
            .push(self.w)
            .push(n as i64)
            .push(kv as i64)
            .push(cp)
            .push(c_row as i64)
            .push(c_col as i64)
            .push(self.alpha)
            .push(self.beta)
            .push(self.early as i32);
        let (nw, eps) = self.norm.unwrap_or((0, 0.0));
        args.push(nw).push(eps);
        if let Some(r) = self.rope {
            r.push(&mut args);
        }
        // Enough blocks to fill the card; each strides over the columns.
        let per_block = (WARPS / split) as u64;
        let blocks = (n as u64).div_ceil(per_block).min(g.sm_count as u64 * 32) as u32;
        let start = crate::profile::mark()?;
        launch(f, blocks, WARPS * 32, 0, &mut args.pointers())?;
        if start.is_some() {
            let what = match (add, pair) {
                _ if form.is_some() => "matrix-vector, rope and cache writes",
                (true, _) => "matrix-vector + addend",
                (_, true) => "matrix-vector, SwiGLU",
                _ => "matrix-vector",
            };
            let early = if self.early {
                ", weights read early"
            } else {
                ""
            };
            crate::profile::span(format!(" {what}: {blocks} blocks{early}"), start)?;
        }
        Ok(())
    }
}

/// The element strides `(row, column)` of `c` broadcast to `out_shape` seen as `(rows, N)`:
/// `None` when `c` is not of `dtype`, does not broadcast, or its leading axes do not fold
/// into one row stride.
fn addend_strides(c: &ArrayData, out_shape: &[usize], dtype: Dtype) -> Option<(isize, isize)> {
    let (&_, lead) = out_shape.split_last()?;
    if c.dtype != dtype
        || c.shape.len() > out_shape.len()
        || umx_core::shape::broadcast_shapes("addmm", &c.shape, out_shape).ok()? != out_shape
    {
        return None;
    }
    let st = umx_core::shape::broadcast_strides(&c.shape, &c.strides, out_shape);
    let (&col, lead_st) = st.split_last()?;
    // From the innermost leading axis out: the first of length > 1 sets the row stride, every
    // outer one must step by it times the rows inside.
    let (mut row, mut inner) = (None, 1isize);
    for (&d, &s) in lead.iter().zip(lead_st).rev().filter(|(d, _)| **d > 1) {
        match row {
            None => row = Some(s),
            Some(r) if s != r * inner => return None,
            Some(_) => {}
        }
        inner *= d as isize;
    }
    Some((row.unwrap_or(0), col))
}

/// What a [`rope`] launch's kernel is compiled for: the head dim `d` (every feature rotated),
/// halves or neighbours, `base` or `freqs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RopeForm {
    pub d: usize,
    pub traditional: bool,
    pub freqs: bool,
}

/// The outputs and rotation of a [`rope`] launch, device pointers all.
pub(crate) struct RopeLaunch {
    pub form: RopeForm,
    /// Queries `(B, heads, L, D)`, keys and values `(B, kv_heads, cap, D)`, row-major.
    pub q: u64,
    pub keys: u64,
    pub values: u64,
    /// The int32 offset, the float32 `freqs` (0 without), the index-error record.
    pub offset: u64,
    pub freqs: u64,
    pub err: u64,
    pub heads: usize,
    pub kv_heads: usize,
    pub l: usize,
    pub cap: usize,
    pub scale: f32,
    /// `-ln(base) / (D / 2)` (the exponent of pair `i` is `i * k`).
    pub k: f32,
}

impl RopeLaunch {
    /// Adds the launch's [`ROPE_PARAMS`] to a kernel's arguments.
    pub(crate) fn push(&self, args: &mut Args) {
        args.push(self.q)
            .push(self.keys)
            .push(self.values)
            .push(self.offset)
            .push(self.freqs)
            .push(self.heads as i64)
            .push(self.kv_heads as i64)
            .push(self.l as i64)
            .push(self.cap as i64)
            .push(self.scale)
            .push(self.k)
            .push(self.err);
    }
}

/// `fast::linear_rope_cache_write` in one matrix-vector pass: `x (rows = B * L, K)` against
/// the stacked q/k/v weight `w`, each block's columns taken as rope pairs (features `p` and
/// `p + D/2` of a head, or `2p` and `2p + 1`), whose two products meet in shared memory, are
/// rounded to the dtype as the product would be, rotated as the rope kernel rotates them and
/// written to the queries or into the caches (value pairs are written as they are). For
/// operands that [`rope_fits`] takes (the caller asks first, before it allocates the
/// outputs); others are an error.
pub(crate) fn rope(
    x: &ArrayData,
    w: &ArrayData,
    r: &RopeLaunch,
    norm: Option<&Norm>,
) -> Result<()> {
    if !rope_fits(x, w, norm)? {
        return Err(umx_core::Error::Device(format!(
            "linear_rope_cache_write: operands {:?} and {:?} do not fit the matrix-vector kernel",
            x.shape, w.shape
        )));
    }
    let k = *x.shape.last().unwrap_or(&0);
    let launch = Launch {
        y: 0,
        x: input_ptr(x)?,
        w: input_ptr(w)?,
        rows: x.size() / k,
        n: w.shape[0],
        k,
        c: None,
        alpha: 1.0,
        beta: 0.0,
        pair: false,
        early: may_read_early(&[w]),
        rope: Some(r),
        norm: norm_operand(norm, x)?,
    };
    launch.run(x.dtype)
}

/// Whether [`rope`] takes `x` and `w`: both row-major from 16-byte aligned pointers, of one
/// float dtype, at most [`MAX_ROWS`] rows of `x`, `K` a whole number of vectors and an even
/// number of weight rows.
pub(crate) fn rope_fits(x: &ArrayData, w: &ArrayData, norm: Option<&Norm>) -> Result<bool> {
    let dtype = x.dtype;
    let k = *x.shape.last().unwrap_or(&0);
    let m = x.size().checked_div(k).unwrap_or(0);
    let n = w.shape.first().copied().unwrap_or(0);
    if !matches!(dtype, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
        || w.dtype != dtype
        || w.shape.len() != 2
        || w.shape[1] != k
        || k == 0
        || !k.is_multiple_of(16 / dtype.size())
        || !(1..=MAX_ROWS).contains(&m)
        || n == 0
        || !n.is_multiple_of(2)
        || !umx_core::shape::is_row_contiguous(&x.shape, &x.strides)
        || !umx_core::shape::is_row_contiguous(&w.shape, &w.strides)
    {
        return Ok(false);
    }
    Ok(input_ptr(x)? % 16 == 0
        && input_ptr(w)? % 16 == 0
        && (norm.is_none() || norm_operand(norm, x)?.is_some()))
}

/// An RMS norm the kernel applies to `x`'s rows before its products
/// (`FastOp::NormPrologue`): its weight `(K,)` and epsilon.
pub(crate) struct Norm<'a> {
    pub weight: &'a ArrayData,
    pub eps: f32,
}

/// The kernel's norm operand for `x`: the weight's pointer and epsilon where the weight is
/// `x`'s dtype, `K` long, contiguous and 16-byte aligned; `None` without a norm or where it
/// does not fit (the caller then normalises first).
fn norm_operand(norm: Option<&Norm>, x: &ArrayData) -> Result<Option<(u64, f32)>> {
    let Some(n) = norm else { return Ok(None) };
    let w = n.weight;
    let k = *x.shape.last().unwrap_or(&0);
    if w.dtype != x.dtype || w.shape != [k] || (k > 1 && w.strides[0] != 1) {
        return Ok(None);
    }
    let p = input_ptr(w)?;
    Ok((p % 16 == 0).then_some((p, n.eps)))
}

/// The rope form's kernel parameters (after the product's own), as [`Launch::run`] and
/// the 4-bit kernel's rope form pass them.
pub(crate) const ROPE_PARAMS: &str = ", umx_st* q_out, umx_st* keys, umx_st* values, \
    const int* offset, const float* freqs, long long heads, long long kv_heads, long long l, \
    long long cap, float scale, float rk, umx_err* err";

/// The defines and helpers of a matrix-vector kernel's rope form (this kernel's, and the
/// 4-bit kernel's): `COLUMN(s)` maps a slot to its weight row (slots `2P` and `2P + 1` are
/// pair `P`'s two features; value heads' columns in order after the rotated heads'),
/// `ROUND`/`STORE` the product's rounding and store, and `umx_rope_write` rotates pair `P`'s
/// two rounded products of row `(bi, li)` and writes them to the queries or the caches (the
/// parameters of [`ROPE_PARAMS`] by the same names); an index error names `op`.
pub(crate) fn rope_defs(r: &RopeForm, dtype: Dtype, op: &str) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    format!(
        r#"{flag}
typedef {st} umx_st;
#define RD {d}
#define RH {h}
#define TRAD {trad}
#define CODE {code}
#define ROUND(v) ({round})
#define STORE(v) ({store})
#define INV(p) ({inv}){ROTATE}UMX_FN long long umx_rope_column(long long s, long long rot_pairs) {{
  long long P = s / 2; int side = (int)(s % 2);
  if (P < rot_pairs) {{
    long long head = P / RH, p = P % RH;
    return head * RD + (TRAD ? 2 * p + side : p + side * RH);
  }}
  return 2 * rot_pairs + 2 * (P - rot_pairs) + side;
}}
#define COLUMN(s) umx_rope_column((s), (heads + kv_heads) * RH)
UMX_FN void umx_rope_write(float a0, float a1, long long P, long long bi, long long li{params}) {{
  long long rot_pairs = (heads + kv_heads) * RH;
  int off = offset[0];
  long long at = (long long)off + li;
  bool fits = at >= 0 && at < cap;
  if (P < rot_pairs) {{
    long long head = P / RH, p = P % RH;
    float pos = ((float)off + (float)li) * scale;
    float inv = INV(p);
    float ya, yb;
    umx_rotate(a0, a1, pos * inv, &ya, &yb);
    long long fa = TRAD ? 2 * p : p, fb = TRAD ? 2 * p + 1 : p + RH;
    umx_st* dst = 0;
    if (head < heads) dst = q_out + ((bi * heads + head) * l + li) * RD;
    else if (fits) dst = keys + ((bi * kv_heads + head - heads) * cap + at) * RD;
    else umx_flag(err, CODE, 2, at, cap);
    if (dst) {{ dst[fa] = STORE(ya); dst[fb] = STORE(yb); }}
  }} else {{
    long long col = 2 * (P - rot_pairs), head = col / RD, f = col % RD;
    if (fits) {{
      umx_st* dst = values + ((bi * kv_heads + head) * cap + at) * RD;
      dst[f] = STORE(a0); dst[f + 1] = STORE(a1);
    }} else umx_flag(err, CODE, 2, at, cap);
  }}
}}"#,
        params = ROPE_PARAMS,
        flag = super::indexing::ERROR_FLAG,
        d = r.d,
        h = r.d / 2,
        trad = r.traditional as u8,
        code = super::indexing::error_code(op),
        round = load(dtype, &store(dtype, "(v)"), "float"),
        store = store(dtype, "(v)"),
        inv = if r.freqs {
            "1.0f / freqs[p]"
        } else {
            "expf((float)(p) * rk)"
        },
    )
}

/// The rope form's epilogue (in place of the product's store): every warp's sums to shared
/// memory, then the pair's first group sums both columns' shares, rounds, rotates and writes.
const ROPE_EPILOGUE: &str = r#"
    if (lane == 0) {
      #pragma unroll
      for (int r = 0; r < ROWS; r++) part[wb][0][r] = acc[0][r];
    }
    __syncthreads();
    if (group % 2 == 0 && share == 0 && lane < ROWS && live) {
      int r = lane;
      float t0 = 0.f, t1 = 0.f;
      for (int q = 0; q < SPLIT; q++) {
        t0 += part[group * SPLIT + q][0][r];
        t1 += part[(group + 1) * SPLIT + q][0][r];
      }
      /*norm*/
      umx_rope_write(ROUND(t0), ROUND(t1), (base + group) / 2, r / l, r % l, q_out, keys,
                     values, offset, freqs, heads, kv_heads, l, cap, scale, rk, err);
    }
    __syncthreads();
    continue;
"#;

/// The norm form (`FastOp::NormPrologue`): each lane sums the squares of the `x` elements it
/// takes anyway (a warp, or a column's warps, cover the whole row) into `ss[r]`; a column's
/// sums are scaled by the row's `1 / sqrt(mean(x^2) + eps)`, as the norm kernel computes it,
/// once the squares are summed over the warp (`NORM_REDUCE`) or its warps (`NORM_SPLIT`, in
/// shared memory with the products' shares). The main loop takes each element times the
/// norm's weight: the product of the normalised row in float32, without the norm's rounding
/// of its output to the dtype. Not first tried so: each warp summing the whole row's squares
/// before its products, and rounding each element as the norm does, made a TinyLlama
/// decoding step 1.038 -> 1.187 ms on the H100 (1.082 without the rounding).
const NORM_REDUCE: &str = r#"
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {
      float v = ss[r];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      ss[r] = v;
    }
    if (SPLIT == 1) {
      #pragma unroll
      for (int r = 0; r < ROWS; r++) {
        float iv = 1.0f / sqrtf(ss[r] / (float)(kv * E) + eps);
        #pragma unroll
        for (int h = 0; h < HALVES; h++) acc[h][r] *= iv;
      }
    } else if (lane == 0) {
      #pragma unroll
      for (int r = 0; r < ROWS; r++) nss[wb][r] = ss[r];
    }"#;

/// The norm's scale of a column's shares once they meet (`SPLIT > 1`): for row `r`, applied
/// to `NORM_SUMS`.
const NORM_SPLIT: &str = r#"
      if (SPLIT > 1) {
        float tot = 0.f;
        for (int q = 0; q < SPLIT; q++) tot += nss[group * SPLIT + q][r];
        float iv = 1.0f / sqrtf(tot / (float)(kv * E) + eps);
        NORM_SUMS
      }"#;

/// Blocks of the kernel an SM should hold at once, which caps its registers: a product's
/// blocks mostly fit in one or two waves, so more of them resident is fewer waves (for one
/// row: 12, or 16 where a block shares each column of one weight row; more rows need their
/// registers). With a SwiGLU's pairs a TinyLlama decoding step took 1.206 ms at 8, 1.153 at
/// 12, 1.207 at 4 and 1.216 at 16 on the H200.
fn min_blocks(rows: usize, split: u32, pair: bool) -> u32 {
    match (rows, split, pair) {
        (1, WARPS, false) => 16,
        (1, _, _) => 12,
        _ => 1,
    }
}

/// The SwiGLU of a pair's two dot products `a0` (gate) and `a1` (up), each rounded to
/// `dtype` first, as the composite's product is: `silu(g) * u` with each op's rounding.
pub(crate) fn swiglu_expr(dtype: Dtype) -> String {
    let round = |e: &str| load(dtype, &store(dtype, e), "float");
    let sigmoid = UnaryOp::Sigmoid
        .c_expr(Dtype::Float32, "g")
        .unwrap_or_else(|| "(1.f / (1.f + expf(-g)))".into());
    format!(
        "float g = {g}, u = {u}; float sg = {sg}; float t = {t}; s = t * u;",
        g = round("a0"),
        u = round("a1"),
        sg = round(&sigmoid),
        t = round("g * sg"),
    )
}

#[allow(clippy::too_many_arguments)]
fn source(
    dtype: Dtype,
    rows: usize,
    split: u32,
    add: bool,
    pair: bool,
    trigger_after: bool,
    rope: Option<&RopeForm>,
    norm: bool,
) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    let add = add as u8;
    let halves = if pair { 2 } else { 1 };
    let cv = load(dtype, "c[r * c_row + n * c_col]", "float");
    let per_vec = 16 / dtype.size();
    let min_blocks = min_blocks(rows, split, pair);
    let to_f = |v: &str| load(dtype, v, "float");
    let y = store(dtype, "s");
    let xv = to_f("xe[e]");
    let wv = to_f("we[e]");
    let epilogue = if pair {
        format!(
            "float a0 = acc[0][r], a1 = acc[1][r], s; {}",
            swiglu_expr(dtype)
        )
    } else {
        "float s = alpha * acc[0][r]; if (ADD) s += beta * CV;".to_string()
    };
    format!(
        r#"{HEADER}
#define ROWS {rows}
#define E {per_vec}
#define WARPS {WARPS}
/* Warps sharing one column: 1, or the whole block (each a share of the row). */
#define SPLIT {split}
/* y = alpha * (x @ w.T) + beta * c, or alpha * (x @ w.T) without c. */
#define ADD {add}
/* Weight rows an output column reads: 2 for a SwiGLU's gate and up (rows n and n_cols + n). */
#define HALVES {halves}
#define STEP (SPLIT * 32)
/* Vectors a lane has in flight a weight row; blocks an SM should hold (registers capped to
   fit them). */
#define U {U}
#define MIN_BLOCKS {min_blocks}
#define CV {cv}
/* 16 bytes: E elements. */
typedef uint4 vec_t;
{rope_defs}
/* y[r, n] = sum_k x[r, k] * w[n, k]; kv = K / E vectors per row. */
extern "C" __global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS) umx_gemv({st}* y,
    const {st}* x, const {st}* w, long long n_cols, long long kv, const {st}* c, long long c_row,
    long long c_col, float alpha, float beta, int early, const {st}* nw, float eps{rope_params}) {{
  __shared__ float part[WARPS][HALVES][ROWS];{norm_shared}
  int lane = threadIdx.x % 32, wb = threadIdx.x / 32;
  int group = wb / SPLIT, share = wb % SPLIT;
  const int per_block = WARPS / SPLIT;
  const vec_t* xs = (const vec_t*)x;
  /* A lane reads its share of each weight row in batches of U vectors, every load of a batch
     (the row's tail too, guarded) issued before any is used. With `early`, the first batch
     loads before the wait for the kernel before this one (the launch knows no kernel still
     running writes w): its latency overlaps that kernel's tail. */
  vec_t buf[HALVES][U];
  bool have = early && (long long)blockIdx.x * per_block + group < n_cols;
  long long n_first = COLUMN((long long)blockIdx.x * per_block + group);
  if (have) {{
    #pragma unroll
    for (int h = 0; h < HALVES; h++) {{
      const vec_t* wr = (const vec_t*)w + (n_first + h * n_cols) * kv;
      #pragma unroll
      for (int u = 0; u < U; u++) {{
        long long j = share * 32 + lane + (long long)STEP * u;
        if (j < kv) buf[h][u] = __ldg(&wr[j]);
      }}
    }}
  }}
  {wait}
  /* Every warp of a block runs the same iterations (they meet at barriers); a group past
     the last column reads column 0 and writes nothing. */
  for (long long base = (long long)blockIdx.x * per_block; base < n_cols;
       base += (long long)gridDim.x * per_block) {{
    bool live = base + group < n_cols;
    long long n = COLUMN(base + group);
    const vec_t* wr = (const vec_t*)w + (live ? n : 0) * kv;
    float acc[HALVES][ROWS];
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int r = 0; r < ROWS; r++) acc[h][r] = 0.f;{norm_zero}
    for (long long j0 = share * 32 + lane; j0 < kv; j0 += (long long)U * STEP) {{
      if (!have) {{
        #pragma unroll
        for (int h = 0; h < HALVES; h++)
          #pragma unroll
          for (int u = 0; u < U; u++) {{
            long long j = j0 + (long long)STEP * u;
            if (j < kv) buf[h][u] = __ldg(&wr[h * n_cols * kv + j]);
          }}
      }}
      have = false;
      #pragma unroll
      for (int u = 0; u < U; u++) {{
        long long j = j0 + (long long)STEP * u;
        if (j < kv) {{{norm_weight}
          #pragma unroll
          for (int r = 0; r < ROWS; r++) {{
            vec_t xq = xs[r * kv + j];
            const {st}* xe = reinterpret_cast<const {st}*>(&xq);{norm_x}
            #pragma unroll
            for (int h = 0; h < HALVES; h++) {{
              const {st}* we = reinterpret_cast<const {st}*>(&buf[h][u]);
              #pragma unroll
              for (int e = 0; e < E; e++) acc[h][r] = fmaf({x_elem}, {wv}, acc[h][r]);
            }}
          }}
        }}
      }}
    }}
    have = false;
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int r = 0; r < ROWS; r++) {{
        float s = acc[h][r];
        for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
        acc[h][r] = s;
      }}{norm_reduce}
    {rope_epilogue}
    if (SPLIT == 1) {{
      if (lane == 0 && live) {{
        #pragma unroll
        for (int r = 0; r < ROWS; r++) {{
          {epilogue}
          y[r * n_cols + n] = {y};
        }}
      }}
    }} else {{
      if (lane == 0) {{
        #pragma unroll
        for (int h = 0; h < HALVES; h++)
          #pragma unroll
          for (int r = 0; r < ROWS; r++) part[wb][h][r] = acc[h][r];
      }}
      __syncthreads();
      if (share == 0 && lane < ROWS && live) {{
        int r = lane;
        #pragma unroll
        for (int h = 0; h < HALVES; h++) {{
          float t = 0.f;
          for (int q = 0; q < SPLIT; q++) t += part[group * SPLIT + q][h][r];
          acc[h][0] = t;
        }}{norm_split}
        {{
          /* acc[h][0] holds row r's sums here. */
          float a0 = acc[0][0];
          {epilogue_split}
          y[r * n_cols + n] = {y};
        }}
      }}
      __syncthreads();
    }}
  }}
}}
"#,
        // The next kernel may start once the first weights are on their way (before the wait,
        // as every kernel lets it: see `compile::PDL_PROLOGUE`).
        wait = crate::compile::pdl_wait_source(trigger_after),
        rope_params = if rope.is_some() { ROPE_PARAMS } else { "" },
        rope_defs = rope.map_or_else(
            || "#define COLUMN(s) (s)".to_string(),
            |r| rope_defs(r, dtype, "linear_rope_cache_write")
        ),
        rope_epilogue = match (rope, norm) {
            (None, _) => String::new(),
            (Some(_), false) => ROPE_EPILOGUE.to_string(),
            (Some(_), true) => ROPE_EPILOGUE.replace(
                "/*norm*/",
                &NORM_SPLIT.replace("NORM_SUMS", "t0 *= iv; t1 *= iv;"),
            ),
        },
        norm_shared = if norm {
            "\n  __shared__ float nss[WARPS][ROWS];"
        } else {
            ""
        },
        norm_zero = if norm {
            "\n    float ss[ROWS];\n    #pragma unroll\n    for (int r = 0; r < ROWS; r++) ss[r] = 0.f;"
        } else {
            ""
        },
        norm_reduce = if norm { NORM_REDUCE } else { "" },
        norm_split = if norm {
            NORM_SPLIT.replace(
                "NORM_SUMS",
                "for (int h = 0; h < HALVES; h++) acc[h][0] *= iv;",
            )
        } else {
            String::new()
        },
        norm_weight = if norm {
            format!(
                "\n          vec_t gq = __ldg((const vec_t*)nw + j);\n          \
                 const {st}* ge = reinterpret_cast<const {st}*>(&gq);"
            )
        } else {
            String::new()
        },
        norm_x = if norm {
            format!(
                "\n            float xn[E];\n            #pragma unroll\n            \
                 for (int e = 0; e < E; e++) {{ float v = {xv}; ss[r] = fmaf(v, v, ss[r]); \
                 xn[e] = v * {}; }}",
                to_f("ge[e]")
            )
        } else {
            String::new()
        },
        x_elem = if norm { "xn[e]" } else { &xv },
        epilogue_split = if pair {
            format!("float a1 = acc[HALVES - 1][0], s; {}", swiglu_expr(dtype))
        } else {
            "float s = alpha * a0; if (ADD) s += beta * CV;".to_string()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's forms have balanced braces and parentheses and name the kernel; with
    /// `UMX_DUMP_GEMV_SOURCES=dir` they are also written there (to compile them with NVRTC
    /// where no GPU is at hand).
    #[test]
    fn generated_sources_are_well_formed() {
        let dump = std::env::var("UMX_DUMP_GEMV_SOURCES").ok();
        let rope = RopeForm {
            d: 64,
            traditional: false,
            freqs: false,
        };
        let mut i = 0;
        for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
            for (rows, split, add, pair, form) in [
                (1, 1, true, false, None),
                (1, 1, false, false, None),
                (3, WARPS, false, false, None),
                (1, 1, false, true, None),
                (1, WARPS, false, true, None),
                (2, 1, false, true, None),
                (1, 2, false, false, Some(&rope)),
                (3, WARPS, false, false, Some(&rope)),
            ] {
                for norm in [false, true] {
                    let src = source(dtype, rows, split, add, pair, false, form, norm);
                    let count = |c: char| src.chars().filter(|&x| x == c).count();
                    assert_eq!(count('{'), count('}'), "{i}");
                    assert_eq!(count('('), count(')'), "{i}");
                    assert!(src.contains("umx_gemv("));
                    assert_eq!(src.contains("ss[r]"), norm);
                    if let Some(dir) = &dump {
                        std::fs::write(format!("{dir}/gemv_{i}.cu"), &src).unwrap();
                    }
                    i += 1;
                }
            }
        }
    }
}

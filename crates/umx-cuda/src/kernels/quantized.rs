//! GPU kernels of the quantization primitives (the format: `umx_core::primitives::quantized`).
//!
//! - `dequantize`: one thread per element, grid-stride; the code's bits are read from one or
//!   two words (3, 5 and 6 bits cross words).
//! - `quantized_matmul`, transposed, with at most [`QMV_MAX_ROWS`] rows of `x` per weight
//!   matrix (decode): a matrix-vector kernel. Each warp computes one output column for every
//!   row of `x`; each lane takes chunks of 32 codes of the weight row (`bits` words, read with
//!   16-byte loads for 4 and 8 bits, 8-byte loads for 2 and 6), decodes them into registers
//!   and accumulates `s * Σ x q + b * Σ x` in float32; the warp then sums its lanes. One
//!   bfloat16 row against 4-bit weights takes `qmv4_source`'s kernel: four output columns a
//!   warp, sharing `x`, with the codes made floats by integer operations alone, and a row
//!   split over several warps where the columns are few (`qmv4_split`). The weights are
//!   read once, yet a 4-bit decoding step gains far less than the bytes it saves (TinyLlama
//!   on an H200: 0.719 ms against bfloat16's 0.811): its time is its kernels' latency, not
//!   their bytes. With an addend (`fast`'s
//!   `QuantizedLinearAdd`, a residual), the kernels add it as they write; the 4-bit kernel's
//!   rope form (`fast::quantized_linear_rope_cache_write`) rotates each warp's two columns,
//!   a rope pair, into the queries and the caches.
//! - every other product (more rows, or `W` not transposed): the weights are dequantized to
//!   the activation dtype and multiplied by cuBLASLt (`kernels/matmul.rs`).
//! - `quantize`: one thread per group, the CPU's arithmetic step for step (the same codes,
//!   scales and biases bit for bit).

use super::gemv::{RopeForm, RopeLaunch};
use super::source::{Args, HEADER, grid_for, load, storage_type, store};
use super::{contiguous, matmul};
use crate::compile::{function_for, launch};
use crate::gpu::{driver_err, gpu};
use crate::storage::{fresh, input_ptr, output};
use cudarc::driver::result;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::{MatmulOp, QuantOp};
use umx_core::shape::{is_row_contiguous, numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

/// Products with at most this many rows of `x` per weight matrix use the matrix-vector kernel.
pub const QMV_MAX_ROWS: usize = 8;
const THREADS: u32 = 256;

type Outs = Result<Option<Vec<ArrayData>>>;

pub fn eval(op: &QuantOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let (group_size, bits) = op.params();
    match (op, inputs, outputs) {
        (QuantOp::Dequantize { .. }, [q, s, b], [out]) => {
            let Some((q, s, b)) = packed_operands(q, s, b, out.dtype)? else {
                return Ok(None);
            };
            let k = out.shape.last().copied().unwrap_or(0);
            Ok(
                dequantize(&q, &s, &b, k, group_size, bits, &out.shape, out.dtype)?
                    .map(|o| vec![o]),
            )
        }
        (QuantOp::QuantizedMatmul { transpose, .. }, [x, q, s, b], [out]) => {
            qmm(x, q, s, b, *transpose, group_size, bits, out)
        }
        (QuantOp::Quantize { .. }, [w], _) => quantize(w, group_size, bits, outputs),
        _ => Err(Error::Device(format!(
            "{}: {} inputs and {} outputs",
            op.name(),
            inputs.len(),
            outputs.len()
        ))),
    }
}

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
}

/// `x` row-contiguous, starting 16-byte aligned, in `dtype` (copied when it is not).
fn dense(x: &ArrayData, dtype: Dtype) -> Result<Option<ArrayData>> {
    let aligned = (x.offset * x.dtype.size() as isize) % 16 == 0;
    if x.dtype == dtype && aligned && is_row_contiguous(&x.shape, &x.strides) {
        return Ok(Some(x.clone()));
    }
    contiguous(x, dtype)
}

/// The codes, scales and biases dense and aligned, scales and biases in `dtype`.
fn packed_operands(
    q: &ArrayData,
    s: &ArrayData,
    b: &ArrayData,
    dtype: Dtype,
) -> Result<Option<(ArrayData, ArrayData, ArrayData)>> {
    if q.dtype != Dtype::Uint32 || !is_float(dtype) {
        return Ok(None);
    }
    let (Some(q), Some(s), Some(b)) =
        (dense(q, Dtype::Uint32)?, dense(s, dtype)?, dense(b, dtype)?)
    else {
        return Ok(None);
    };
    Ok(Some((q, s, b)))
}

/// Dequantizes dense rows of `k` elements into a new array of `shape` and `dtype`.
#[allow(clippy::too_many_arguments)]
fn dequantize(
    q: &ArrayData,
    s: &ArrayData,
    b: &ArrayData,
    k: usize,
    group_size: usize,
    bits: usize,
    shape: &[usize],
    dtype: Dtype,
) -> Result<Option<ArrayData>> {
    let n = numel(shape);
    let (buffer, ptr) = output(n * dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: shape.to_vec(),
        dtype,
        strides: row_major_strides(shape),
        offset: 0,
    };
    if n == 0 {
        return Ok(Some(result));
    }
    let key = format!("dequantize|{dtype:?}|{bits}|{group_size}");
    let f = function_for(
        &key,
        || dequantize_source(dtype, bits, group_size),
        "umx_dequantize",
    )?;
    let g = gpu()?;
    let mut args = Args::default();
    args.push(ptr)
        .push(input_ptr(q)?)
        .push(input_ptr(s)?)
        .push(input_ptr(b)?)
        .push(n as i64)
        .push(k as i64);
    launch(
        f,
        grid_for(n, THREADS, g.sm_count),
        THREADS,
        0,
        &mut args.pointers(),
    )?;
    Ok(Some(result))
}

/// `quantize`: one thread per group of `group_size` elements of the dense weights `w`, the
/// CPU's arithmetic (`umx_core::primitives::quantized::quantize_group`) step for step.
fn quantize(w: &ArrayData, group_size: usize, bits: usize, outputs: &[OutSpec]) -> Outs {
    let [oq, os, ob] = outputs else {
        return Err(Error::Device(format!(
            "quantize: {} outputs, not 3",
            outputs.len()
        )));
    };
    if !is_float(w.dtype) || os.dtype != w.dtype || ob.dtype != w.dtype {
        return Ok(None);
    }
    let n = w.size();
    if group_size == 0 || !n.is_multiple_of(group_size) || !(group_size * bits).is_multiple_of(32) {
        return Err(Error::Invalid(format!(
            "quantize: {n} elements do not split into groups of {group_size} at {bits} bits"
        )));
    }
    let Some(w) = dense(w, w.dtype)? else {
        return Ok(None);
    };
    let groups = n / group_size;
    let (q, pq) = fresh(&oq.shape, Dtype::Uint32)?;
    let (s, ps) = fresh(&os.shape, w.dtype)?;
    let (b, pb) = fresh(&ob.shape, w.dtype)?;
    if q.size() != groups * group_size * bits / 32 || s.size() != groups || b.size() != groups {
        return Err(Error::Device(format!(
            "quantize: outputs {:?}, {:?}, {:?} for {groups} groups",
            oq.shape, os.shape, ob.shape
        )));
    }
    if groups == 0 {
        return Ok(Some(vec![q, s, b]));
    }
    let dtype = w.dtype;
    let f = function_for(
        &format!("quantize|{dtype:?}|{bits}|{group_size}"),
        || quantize_source(dtype, bits, group_size),
        "umx_quantize",
    )?;
    let mut args = Args::default();
    args.push(input_ptr(&w)?)
        .push(pq)
        .push(ps)
        .push(pb)
        .push(groups as i64);
    let grid = grid_for(groups, THREADS, gpu()?.sm_count);
    launch(f, grid, THREADS, 0, &mut args.pointers())?;
    Ok(Some(vec![q, s, b]))
}

/// The CUDA source of the quantize kernel. Division, subtraction and `rintf` are IEEE
/// round-to-nearest on both sides (no contraction: `--fmad=false`), so the codes, scales and
/// biases are the CPU's bit for bit.
fn quantize_source(dtype: Dtype, bits: usize, group_size: usize) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    let words = group_size * bits / 32;
    format!(
        r#"{HEADER}
#define BITS {bits}
#define GS {group_size}
#define WORDS {words}
extern "C" __global__ void umx_quantize(const {st}* w, unsigned int* q, {st}* sc, {st}* bi,
    long long groups) {{
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < groups;
       g += (long long)gridDim.x * blockDim.x) {{
    const {st}* src = w + g * GS;
    float lo = __int_as_float(0x7f800000), hi = -lo;
    for (int i = 0; i < GS; i++) {{
      float v = {v};
      hi = fmaxf(hi, v);
      lo = fminf(lo, v);
    }}
    const float n_bins = (float)((1u << BITS) - 1u);
    float scale, bias = 0.0f;
    if (BITS == 1) {{
      // The two codes are the group's minimum and maximum.
      scale = fmaxf(hi - lo, 1e-7f);
      bias = lo;
    }} else {{
      bool mask = fabsf(lo) > fabsf(hi);
      scale = fmaxf((hi - lo) / n_bins, 1e-7f);
      if (!mask) scale = -scale;
      float edge = mask ? lo : hi;
      float q0 = rintf(edge / scale);
      if (q0 != 0.0f) {{
        scale = edge / q0;
        bias = edge;
      }}
    }}
    unsigned int acc[WORDS];
    for (int j = 0; j < WORDS; j++) acc[j] = 0u;
    for (int i = 0; i < GS; i++) {{
      float v = {v};
      float c = fminf(fmaxf(rintf((v - bias) / scale), 0.0f), n_bins);
      unsigned int code = (unsigned int)c;
      int bit = i * BITS, at = bit >> 5, sh = bit & 31;
      acc[at] |= code << sh;
      if (sh + BITS > 32) acc[at + 1] |= code >> (32 - sh);
    }}
    for (int j = 0; j < WORDS; j++) q[g * WORDS + j] = acc[j];
    sc[g] = {so};
    bi[g] = {bo};
  }}
}}
"#,
        v = load(dtype, "src[i]", "float"),
        so = store(dtype, "scale"),
        bo = store(dtype, "bias"),
    )
}

/// The CUDA source of the dequantize kernel.
fn dequantize_source(dtype: Dtype, bits: usize, group_size: usize) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    format!(
        r#"{HEADER}
#define BITS {bits}
#define GS {group_size}
extern "C" __global__ void umx_dequantize({st}* out, const unsigned int* q, const {st}* sc,
    const {st}* bi, long long n, long long k) {{
  long long words = k * BITS / 32, groups = k / GS;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {{
    long long row = i / k, col = i - row * k;
    const unsigned int* w = q + row * words;
    long long bit = col * BITS;
    long long wi = bit >> 5;
    int sh = (int)(bit & 31);
    unsigned int v = w[wi] >> sh;
    if (sh + BITS > 32) v |= w[wi + 1] << (32 - sh);
    v &= (1u << BITS) - 1u;
    long long g = row * groups + col / GS;
    float r = {s} * (float)v + {b};
    out[i] = {o};
  }}
}}
"#,
        s = load(dtype, "sc[g]", "float"),
        b = load(dtype, "bi[g]", "float"),
        o = store(dtype, "r"),
    )
}

/// The CUDA source of the matrix-vector kernel for `rows` rows of `x`.
fn qmv_source(dtype: Dtype, bits: usize, group_size: usize, rows: usize, pair: bool) -> String {
    let m = rows;
    let halves = if pair { 2 } else { 1 };
    let epilogue = if pair {
        format!(
            "float a0 = acc[0][r], a1 = acc[1][r], s; {} float v = s;",
            super::gemv::swiglu_expr(dtype)
        )
    } else {
        "float v = acc[0][r];".to_string()
    };
    let st = storage_type(dtype).unwrap_or("void");
    let xv = 16 / dtype.size(); // x elements per 16-byte load
    // The `bits` words of a chunk of 32 codes, in the widest loads their alignment allows.
    let load_words = match bits % 4 {
        0 => {
            "for (int i = 0; i < BITS / 4; i++) { umx_pack<unsigned int, 4> t = \
             ((const umx_pack<unsigned int, 4>*)wc)[i]; \
             for (int e = 0; e < 4; e++) w[4 * i + e] = t.v[e]; }"
        }
        2 => {
            "for (int i = 0; i < BITS / 2; i++) { umx_pack<unsigned int, 2> t = \
             ((const umx_pack<unsigned int, 2>*)wc)[i]; \
             for (int e = 0; e < 2; e++) w[2 * i + e] = t.v[e]; }"
        }
        _ => "for (int i = 0; i < BITS; i++) w[i] = wc[i];",
    };
    format!(
        r#"{HEADER}
#define BITS {bits}
#define GS {group_size}
#define ROWS {m}
#define XV {xv}
#define HALVES {halves}
extern "C" __global__ void umx_qmv({st}* out, const {st}* x, const unsigned int* q,
    const {st}* sc, const {st}* bi, const {st}* res, long long n, long long k,
    long long batches, int early) {{
  int lane = threadIdx.x & 31;
  long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  bool live = warp < batches * n;
  long long bat = live ? warp / n : 0, col = live ? warp - bat * n : 0;
  long long words = k * BITS / 32, groups = k / GS;
  /* Weight rows of output column `col`: one, or a SwiGLU's gate and up (col and n + col). */
  const unsigned int* wr[HALVES];
  const {st}* sr[HALVES];
  const {st}* br[HALVES];
  #pragma unroll
  for (int h = 0; h < HALVES; h++) {{
    long long row = bat * n * HALVES + h * n + col;
    wr[h] = q + row * words;
    sr[h] = sc + row * groups;
    br[h] = bi + row * groups;
  }}
  const {st}* xb = x + bat * ROWS * k;
  long long chunks = k / 32;
  /* A lane takes chunks lane, lane + 32, ... of each row: two at a time, their codes, scales
     and biases all loaded before any is used. With `early`, the first two load before the
     wait for the kernel before this one (the launch knows that kernel does not write them):
     their latency overlaps its tail. */
  unsigned int wq[HALVES][2][BITS];
  float sq[HALVES][2], bq[HALVES][2];
  bool have = early && live;
  if (have) {{
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int u = 0; u < 2; u++) {{
      long long c = lane + 32 * u;
      if (c < chunks) {{
        unsigned int* w = wq[h][u];
        const unsigned int* wc = wr[h] + c * BITS;
        {load_words}
        long long g = c * 32 / GS;
        sq[h][u] = {s}; bq[h][u] = {b};
      }}
    }}
  }}
  /* The next kernel starts only after the wait: a TinyLlama 4-bit decoding step took 1.146 ms
     with it let start first (as the other kernels do), 1.094 so, on the H100. */
  umx_pdl_wait();
  umx_pdl_trigger();
  if (!live) return;
  float acc[HALVES][ROWS];
  #pragma unroll
  for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int r = 0; r < ROWS; r++) acc[h][r] = 0.f;
  for (long long c0 = lane; c0 < chunks; c0 += 64) {{
    if (!have) {{
      #pragma unroll
      for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int u = 0; u < 2; u++) {{
        long long c = c0 + 32 * u;
        if (c < chunks) {{
          unsigned int* w = wq[h][u];
          const unsigned int* wc = wr[h] + c * BITS;
          {load_words}
          long long g = c * 32 / GS;
          sq[h][u] = {s}; bq[h][u] = {b};
        }}
      }}
    }}
    have = false;
    #pragma unroll
    for (int u = 0; u < 2; u++) {{
    long long c = c0 + 32 * u;
    if (c >= chunks) break;
    #pragma unroll
    for (int h = 0; h < HALVES; h++) {{
    const unsigned int* w = wq[h][u];
    float s = sq[h][u], b = bq[h][u];
    float qv[32];
    #pragma unroll
    for (int j = 0; j < 32; j++) {{
      const int bit = j * BITS, wi = bit >> 5, sh = bit & 31;
      unsigned int v = w[wi] >> sh;
      if (sh + BITS > 32) v |= w[wi + 1] << (32 - sh);
      qv[j] = (float)(v & ((1u << BITS) - 1u));
    }}
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {{
      const umx_pack<{st}, XV>* xp = (const umx_pack<{st}, XV>*)(xb + r * k + c * 32);
      float dot = 0.f, sum = 0.f;
      #pragma unroll
      for (int i = 0; i < 32 / XV; i++) {{
umx_pack<{st}, XV> p = xp[i];
#pragma unroll
for (int e = 0; e < XV; e++) {{
  float xv = {xe};
  dot += xv * qv[i * XV + e];
  sum += xv;
}}
      }}
      acc[h][r] += s * dot + b * sum;
    }}
    }}
    }}
  }}
  #pragma unroll
  for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {{
      float v = acc[h][r];
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      acc[h][r] = v;
    }}
  if (lane == 0) {{
    #pragma unroll
    for (int r = 0; r < ROWS; r++) {{
      {epilogue}
      long long oi = (bat * ROWS + r) * n + col;
      /* A residual sum: the product rounded to the dtype first, as the ops compute it. */
      if (res) {{ {st} p = {o}; v = {pv} + {rv}; }}
      out[oi] = {o};
    }}
  }}
}}
"#,
        s = load(dtype, "sr[h][g]", "float"),
        b = load(dtype, "br[h][g]", "float"),
        xe = load(dtype, "p.v[e]", "float"),
        o = store(dtype, "v"),
        pv = load(dtype, "p", "float"),
        rv = load(dtype, "res[oi]", "float"),
    )
}

#[allow(clippy::too_many_arguments)]
fn qmm(
    x: &ArrayData,
    q: &ArrayData,
    s: &ArrayData,
    b: &ArrayData,
    transpose: bool,
    group_size: usize,
    bits: usize,
    out: &OutSpec,
) -> Outs {
    let dtype = out.dtype;
    if !is_float(dtype) || x.dtype != dtype {
        return Ok(None);
    }
    let qn = q.shape.len();
    if qn < 2 {
        return Ok(None);
    }
    let (rows, wpr) = (q.shape[qn - 2], q.shape[qn - 1]);
    let k_row = wpr * 32 / bits;
    let (k, n) = if transpose {
        (k_row, rows)
    } else {
        (rows, k_row)
    };
    let batches = numel(&q.shape[..qn - 2]);
    let total = numel(&out.shape);
    let m = if batches == 0 || n == 0 {
        0
    } else {
        total / n / batches
    };
    if total == 0 || k == 0 {
        // Nothing to compute, or empty sums: zeros.
        let (y, ptr) = fresh(&out.shape, dtype)?;
        if total > 0 {
            let g = gpu()?;
            // SAFETY: `y` holds `total` elements of `dtype`; the fill is queued on the stream
            // before any reader of `y`.
            unsafe { result::memset_d8_async(ptr, 0, total * dtype.size(), g.stream()) }
                .map_err(|e| driver_err("zeroing a product", e))?;
        }
        return Ok(Some(vec![y]));
    }
    let Some((q, s, b)) = packed_operands(q, s, b, dtype)? else {
        return Ok(None);
    };
    let Some(x) = dense(x, dtype)? else {
        return Ok(None);
    };
    if transpose && m <= QMV_MAX_ROWS && k.is_multiple_of(32) {
        return qmv(
            &x, &q, &s, &b, m, n, k, batches, group_size, bits, false, None, out,
        )
        .map(|o| Some(vec![o]));
    }
    // Dequantize to the activation dtype, then one (batched) cuBLASLt product.
    let mut wshape = q.shape.clone();
    wshape[qn - 1] = k_row;
    let Some(mut w) = dequantize(&q, &s, &b, k_row, group_size, bits, &wshape, dtype)? else {
        return Ok(None);
    };
    if transpose {
        w.shape.swap(qn - 1, qn - 2);
        w.strides.swap(qn - 1, qn - 2);
    }
    let mut xm = x.clone();
    if qn == 2 {
        // Every leading dim of x is a row.
        xm.shape = vec![x.size() / k, k];
        xm.strides = row_major_strides(&xm.shape);
    }
    let mut mshape = xm.shape.clone();
    if let Some(l) = mshape.last_mut() {
        *l = n;
    }
    let spec = OutSpec {
        shape: mshape,
        dtype,
    };
    let Some(mut r) = matmul::eval(&MatmulOp::Matmul, &[xm, w], &[spec])? else {
        return Ok(None);
    };
    let mut y = r
        .pop()
        .ok_or_else(|| Error::Device("quantized_matmul: no product".into()))?;
    y.shape = out.shape.clone();
    y.strides = row_major_strides(&out.shape);
    Ok(Some(vec![y]))
}

/// `fast::swiglu_quantized_linear` for a few rows: `silu(x @ W[..I]^T) * (x @ W[I..]^T)` for
/// `W` `(2I, k)` quantized, each output's gate and up rows read by one warp of the
/// matrix-vector kernel. `None` where the kernel does not fit (the op makes its node only
/// where it does).
pub(crate) fn swiglu(inputs: &[ArrayData], group_size: usize, bits: usize, out: &OutSpec) -> Outs {
    let Some(MatVec {
        ops: [x, q, s, b],
        m,
        rows,
        k,
    }) = matvec_operands(inputs, bits, out.dtype)?
    else {
        return Ok(None);
    };
    if !rows.is_multiple_of(2) {
        return Ok(None);
    }
    let y = qmv(
        &x,
        &q,
        &s,
        &b,
        m,
        rows / 2,
        k,
        1,
        group_size,
        bits,
        true,
        None,
        out,
    )?;
    Ok(Some(vec![y]))
}

/// Whether [`qmv4_source`]'s kernel takes a product: one bfloat16 row against one 4-bit
/// matrix (unless `UMX_QMV4_COLS=0`).
fn takes_qmv4(dtype: Dtype, bits: usize, m: usize, batches: usize) -> bool {
    qmv4_cols() > 0 && bits == 4 && m == 1 && batches == 1 && dtype == Dtype::Bfloat16
}

/// The operands of a matrix-vector kernel launch ([`matvec_operands`]).
struct MatVec {
    /// `x`, the codes, scales and biases, dense.
    ops: [ArrayData; 4],
    /// Rows of `x`, rows of the weight, and `K`.
    m: usize,
    rows: usize,
    k: usize,
}

/// The first four of `inputs` (`x`, the codes, scales and biases) made dense for the
/// matrix-vector kernel, where it takes their transposed product (a 2-D weight, `x` in
/// `dtype`, a few rows); `None` where it does not.
fn matvec_operands(inputs: &[ArrayData], bits: usize, dtype: Dtype) -> Result<Option<MatVec>> {
    let [x, q, s, b, ..] = inputs else {
        return Ok(None);
    };
    if !is_float(dtype) || x.dtype != dtype || q.shape.len() != 2 || bits == 0 {
        return Ok(None);
    }
    let (rows, k) = (q.shape[0], q.shape[1] * 32 / bits);
    let m = x.size().checked_div(k).unwrap_or(0);
    if rows == 0
        || x.shape.last() != Some(&k)
        || !k.is_multiple_of(32)
        || !(1..=QMV_MAX_ROWS).contains(&m)
    {
        return Ok(None);
    }
    let (Some((q, s, b)), Some(x)) = (packed_operands(q, s, b, dtype)?, dense(x, dtype)?) else {
        return Ok(None);
    };
    Ok(Some(MatVec {
        ops: [x, q, s, b],
        m,
        rows,
        k,
    }))
}

/// `fast`'s [`umx_core::primitives::FastOp::QuantizedLinearAdd`]: `x @ W^T + c`, the sum in
/// the matrix-vector kernel's pass (its output written once) where the kernel takes the
/// product, else the product as `quantized_matmul` computes it and an element-wise sum.
pub(crate) fn linear_add(
    inputs: &[ArrayData],
    group_size: usize,
    bits: usize,
    out: &OutSpec,
) -> Outs {
    let [_, _, _, _, c] = inputs else {
        return Ok(None);
    };
    let dtype = out.dtype;
    if c.dtype == dtype
        && c.shape == out.shape
        && let Some(MatVec {
            ops: [x, q, s, b],
            m,
            rows: n,
            k,
        }) = matvec_operands(inputs, bits, dtype)?
        && let Some(c) = dense(c, dtype)?
    {
        let y = qmv(
            &x,
            &q,
            &s,
            &b,
            m,
            n,
            k,
            1,
            group_size,
            bits,
            false,
            Some(&c),
            out,
        )?;
        return Ok(Some(vec![y]));
    }
    let op = QuantOp::QuantizedMatmul {
        transpose: true,
        group_size,
        bits,
    };
    let Some(y) = eval(&op, &inputs[..4], std::slice::from_ref(out))? else {
        return Ok(None);
    };
    let add = umx_core::primitives::BinaryOp::Add;
    super::binary(&add, &[y[0].clone(), c.clone()], std::slice::from_ref(out))
}

/// The operands of the 4-bit kernel's rope form ([`rope`]).
pub(crate) struct RopeOperands(MatVec);

/// The operands of [`rope`] where it takes the transposed 4-bit product of `inputs` (`x`, the
/// codes, scales and biases): one bfloat16 row of `x`, an even number of weight rows, the
/// 4-bit kernel not turned off (`UMX_QMV4_COLS=0`); `None` where it does not.
pub(crate) fn rope_operands(inputs: &[ArrayData], bits: usize) -> Result<Option<RopeOperands>> {
    let Some(x) = inputs.first() else {
        return Ok(None);
    };
    let m = x.size().checked_div(x.shape.last().copied().unwrap_or(0));
    if !takes_qmv4(x.dtype, bits, m.unwrap_or(0), 1) {
        return Ok(None);
    }
    let Some(v) = matvec_operands(inputs, bits, x.dtype)? else {
        return Ok(None);
    };
    Ok(v.rows.is_multiple_of(2).then_some(RopeOperands(v)))
}

/// Columns a warp of the 4-bit kernel's rope form takes: one rope pair. A TinyLlama 4-bit
/// decoding step on an H200: 0.723 ms so, 0.733 with two pairs a warp, 0.756 with three (the
/// conformance suite's rope and quantized tests passed with both on the GPU).
const ROPE_COLS: usize = 2;

/// `fast::quantized_linear_rope_cache_write` in one pass of the 4-bit kernel's rope form
/// ([`qmv4_source`]): each warp's two columns are a rope pair of the q/k/v product, rotated
/// and written as `gemv`'s rope form writes them.
pub(crate) fn rope(ops: &RopeOperands, group_size: usize, r: &RopeLaunch) -> Result<()> {
    let RopeOperands(MatVec {
        ops: [x, q, s, b],
        rows: n,
        k,
        ..
    }) = ops;
    let form = &r.form;
    let cols = ROPE_COLS;
    let split = qmv4_split(n.div_ceil(cols), *k);
    let key = format!(
        "qmv4-rope|{group_size}|{cols}|{split}|{}|{}|{}",
        form.d, form.traditional, form.freqs
    );
    let f = function_for(
        &key,
        || qmv4_source(group_size, cols, split, false, Some(form)),
        "umx_qmv4",
    )?;
    let mut args = Args::default();
    args.push(0u64)
        .push(input_ptr(x)?)
        .push(input_ptr(q)?)
        .push(input_ptr(s)?)
        .push(input_ptr(b)?)
        .push(0u64)
        .push(*n as i64)
        .push(*k as i64)
        .push(crate::compile::may_read_early(&[q, s, b]) as i32);
    r.push(&mut args);
    let blocks = n.div_ceil(cols).div_ceil(THREADS as usize / 32 / split);
    launch(f, blocks.max(1) as u32, THREADS, 0, &mut args.pointers())
}

/// Output columns a warp of the 4-bit kernel takes ([`qmv4_source`]): 4, or `UMX_QMV4_COLS`
/// (1 to 8; 0 keeps [`qmv_source`]'s kernel; the rope form always takes 2, a rope pair). A
/// TinyLlama 4-bit decoding step on an H200 with rows split over warps ([`qmv4_split`]): 0.761
/// / 0.741 / **0.719** / 0.925 ms with 1 / 2 / 4 / 8 columns a warp. Before the split (one
/// warp a group, no residual or rope forms): 0.914 ms with [`qmv_source`]'s kernel, 0.951 /
/// 0.894 / 1.005 / 1.157 with 1 / 2 / 4 / 8 columns: four columns made too few warps then.
fn qmv4_cols() -> usize {
    static COLS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COLS.get_or_init(|| {
        std::env::var("UMX_QMV4_COLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|c| (0..=8).contains(c))
            .unwrap_or(4)
    })
}

/// Warps of the 4-bit kernel ([`qmv4_source`]) that share `groups` groups of output columns
/// of rows of `k`: `UMX_QMV4_SPLIT` (1, 2, 4 or 8), or by default as many as keep every lane
/// a chunk of the row while the warps stay within 32 an SM. A TinyLlama 4-bit decoding step
/// on an H200, two columns a warp (its o and down products 1024 warps of one row each, 8 an
/// SM, with one warp a group): 0.820 ms with one warp a group, 0.752 with two for every
/// product, 0.975 with four (half of the lanes idle on rows of 2048), 0.740 so (two for the o
/// and q/k/v products, four for the down product's rows of 5632, one for the SwiGLU's 2816
/// groups); aiming at 16 warps an SM 0.769, at 64 0.757. With four columns a warp (the
/// default now): 0.719 so, at 64 warps 0.719, at 16 0.821; two warps a group for every
/// product 0.764, four 0.872.
fn qmv4_split(groups: usize, k: usize) -> usize {
    static SPLIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let forced = *SPLIT.get_or_init(|| {
        std::env::var("UMX_QMV4_SPLIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|s: &usize| [1, 2, 4, 8].contains(s))
    });
    if let Some(s) = forced {
        return s;
    }
    let warps = gpu().map_or(132 * 32, |g| g.sm_count as usize * 32);
    let mut split = 1;
    while split < 8 && k / 32 >= 64 * split && groups * 2 * split <= warps {
        split *= 2;
    }
    split
}

/// The 4-bit matrix-vector kernel for one bfloat16 row of `x` (a decoding step; see
/// [`qmv4_cols`]): a warp takes `cols` output columns (with `pair`, their gate and up
/// rows too), so each lane converts its chunk of `x` and sums it once for all of them. A pair
/// of codes becomes two floats without a conversion instruction: the nibbles masked into the
/// mantissas of two bfloat16 `128 + q` (`0x4300 | q`), which are the halves of a float's bits;
/// `Σ x (128 + q) - 128 Σ x` is `Σ x q` (float32 keeps ~20 of its 24 bits through that).
///
/// The rope form (`fast`'s quantized `RopeCacheWrite`) takes whole rope pairs a warp
/// (`gemv`'s `COLUMN`; [`ROPE_COLS`]), and its lane 0 rounds, rotates and writes each to the
/// queries or the caches (`umx_rope_write`) in place of the store.
fn qmv4_source(
    group_size: usize,
    cols: usize,
    split: usize,
    pair: bool,
    rope: Option<&RopeForm>,
) -> String {
    let dtype = Dtype::Bfloat16;
    let halves = if pair { 2 } else { 1 };
    // The rope form's columns are whole rope pairs.
    let cols = if rope.is_some() {
        cols.next_multiple_of(2)
    } else {
        cols
    };
    let epilogue = if pair {
        format!(
            "float a0 = acc[0][cc], a1 = acc[1][cc], s; {} float v = s;",
            super::gemv::swiglu_expr(dtype)
        )
    } else {
        "float v = acc[0][cc];".to_string()
    };
    let finish = format!(
        r#"#pragma unroll
    for (int cc = 0; cc < COLS; cc++) {{
      if (col0 + cc >= n) break;
      {epilogue}
      if (res) {{ st p = {o}; v = {pv} + {rv}; }}
      out[col0 + cc] = {o};
    }}"#,
        o = store(dtype, "v"),
        pv = load(dtype, "p", "float"),
        rv = load(dtype, "res[col0 + cc]", "float"),
    );
    let (rope_defs, rope_params, row, finish) = match rope {
        None => (String::new(), "", "min(col0 + cc, n - 1)", finish),
        Some(r) => (
            super::gemv::rope_defs(r, dtype, "quantized_linear_rope_cache_write"),
            super::gemv::ROPE_PARAMS,
            "COLUMN(min(col0 + cc, n - 1))",
            "#pragma unroll
    for (int pp = 0; pp < COLS / 2; pp++)
      if (col0 + 2 * pp < n)
        umx_rope_write(ROUND(acc[0][2 * pp]), ROUND(acc[0][2 * pp + 1]), col0 / 2 + pp, 0, 0,
                       q_out, keys, values, offset, freqs, heads, kv_heads, l, cap, scale, rk,
                       err);"
                .to_string(),
        ),
    };
    format!(
        r#"{HEADER}
#define GS {group_size}
#define COLS {cols}
#define HALVES {halves}
#define SPLIT {split}
typedef {stype} st;
{rope_defs}
UMX_FN void umx_bf16x8(uint4 p, float* f) {{
  unsigned int u[4] = {{p.x, p.y, p.z, p.w}};
  #pragma unroll
  for (int e = 0; e < 4; e++) {{
    f[2 * e] = __uint_as_float(u[e] << 16);
    f[2 * e + 1] = __uint_as_float(u[e] & 0xffff0000u);
  }}
}}
extern "C" __global__ void umx_qmv4(st* out, const st* x, const unsigned int* q,
    const st* sc, const st* bi, const st* res, long long n, long long k,
    int early{rope_params}) {{
  /* SPLIT warps of a block share a group of columns, each over every SPLIT-th chunk of
     the row; their sums meet in shared memory. */
  int lane = threadIdx.x & 31, wb = threadIdx.x >> 5;
  int group = wb / SPLIT, share = wb % SPLIT;
  long long col0 = ((long long)blockIdx.x * ((blockDim.x >> 5) / SPLIT) + group) * COLS;
  bool live = col0 < n;
  long long words = k / 8, groups = k / GS, chunks = k / 32, c1 = share * 32 + lane;
  /* The weight rows of the warp's columns (past the last column, the last one's again). */
  const uint4* wr[HALVES][COLS];
  const st* sr[HALVES][COLS];
  const st* br[HALVES][COLS];
  #pragma unroll
  for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int cc = 0; cc < COLS; cc++) {{
      long long row = h * n + {row};
      wr[h][cc] = (const uint4*)(q + row * words);
      sr[h][cc] = sc + row * groups;
      br[h][cc] = bi + row * groups;
    }}
  /* A lane takes chunks c1, c1 + 32 SPLIT, ... (32 codes: 16 bytes a row); with `early`, its
     first chunk's codes, scales and biases load before the wait for the kernel before. */
  uint4 wq[HALVES][COLS];
  float sq[HALVES][COLS], bq[HALVES][COLS];
  bool have = early && live && c1 < chunks;
  if (have) {{
    long long g = c1 * 32 / GS;
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int cc = 0; cc < COLS; cc++) {{
        wq[h][cc] = __ldg(&wr[h][cc][c1]);
        sq[h][cc] = {s}; bq[h][cc] = {b};
      }}
  }}
  umx_pdl_wait();
  umx_pdl_trigger();
  if (!live && SPLIT == 1) return;
  float acc[HALVES][COLS];
  #pragma unroll
  for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int cc = 0; cc < COLS; cc++) acc[h][cc] = 0.f;
  for (long long c = c1; live && c < chunks; c += 32 * SPLIT) {{
    if (!have) {{
      long long g = c * 32 / GS;
      #pragma unroll
      for (int h = 0; h < HALVES; h++)
        #pragma unroll
        for (int cc = 0; cc < COLS; cc++) {{
          wq[h][cc] = __ldg(&wr[h][cc][c]);
          sq[h][cc] = {s}; bq[h][cc] = {b};
        }}
    }}
    have = false;
    const uint4* xp = (const uint4*)(x + c * 32);
    float xf[32], sx = 0.f;
    #pragma unroll
    for (int i = 0; i < 4; i++) umx_bf16x8(xp[i], xf + 8 * i);
    #pragma unroll
    for (int j = 0; j < 32; j++) sx += xf[j];
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int cc = 0; cc < COLS; cc++) {{
        unsigned int w[4] = {{wq[h][cc].x, wq[h][cc].y, wq[h][cc].z, wq[h][cc].w}};
        float dot = 0.f;
        #pragma unroll
        for (int wi = 0; wi < 4; wi++)
          #pragma unroll
          for (int p = 0; p < 4; p++) {{
            /* Codes 8 wi + p and 8 wi + p + 4: nibbles p and p + 4 of word wi. */
            unsigned int t = ((w[wi] >> (4 * p)) & 0x000F000Fu) | 0x43004300u;
            dot = fmaf(xf[8 * wi + p], __uint_as_float(t << 16), dot);
            dot = fmaf(xf[8 * wi + p + 4], __uint_as_float(t & 0xffff0000u), dot);
          }}
        acc[h][cc] = fmaf(sq[h][cc], fmaf(-128.f, sx, dot), fmaf(bq[h][cc], sx, acc[h][cc]));
      }}
  }}
  #pragma unroll
  for (int h = 0; h < HALVES; h++)
    #pragma unroll
    for (int cc = 0; cc < COLS; cc++) {{
      float v = acc[h][cc];
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      acc[h][cc] = v;
    }}
  if (SPLIT > 1) {{
    __shared__ float part[32][HALVES][COLS];
    if (lane == 0) {{
      #pragma unroll
      for (int h = 0; h < HALVES; h++)
        #pragma unroll
        for (int cc = 0; cc < COLS; cc++) part[wb][h][cc] = acc[h][cc];
    }}
    __syncthreads();
    if (share != 0 || !live) return;
    #pragma unroll
    for (int h = 0; h < HALVES; h++)
      #pragma unroll
      for (int cc = 0; cc < COLS; cc++) {{
        float t = 0.f;
        for (int i = 0; i < SPLIT; i++) t += part[group * SPLIT + i][h][cc];
        acc[h][cc] = t;
      }}
  }}
  if (lane == 0) {{
    {finish}
  }}
}}
"#,
        stype = storage_type(dtype).unwrap_or("void"),
        s = load(dtype, "sr[h][cc][g]", "float"),
        b = load(dtype, "br[h][cc][g]", "float"),
    )
}

/// The matrix-vector kernel: `out (batches, m, n) = x (batches, m, k) @ W^T`, `W` `(batches,
/// n, k)` quantized, all dense; with `pair`, `W` has `2n` rows and `out` is the SwiGLU of
/// each column's two (see [`swiglu`]).
#[allow(clippy::too_many_arguments)]
fn qmv(
    x: &ArrayData,
    q: &ArrayData,
    s: &ArrayData,
    b: &ArrayData,
    m: usize,
    n: usize,
    k: usize,
    batches: usize,
    group_size: usize,
    bits: usize,
    pair: bool,
    res: Option<&ArrayData>,
    out: &OutSpec,
) -> Result<ArrayData> {
    let dtype = out.dtype;
    let total = numel(&out.shape);
    let (buffer, ptr) = output(total * dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    let per_block = (THREADS / 32) as usize;
    // Both kernels take the output, the operands and the shape first.
    let mut args = Args::default();
    args.push(ptr)
        .push(input_ptr(x)?)
        .push(input_ptr(q)?)
        .push(input_ptr(s)?)
        .push(input_ptr(b)?)
        .push(res.map(input_ptr).transpose()?.unwrap_or(0))
        .push(n as i64)
        .push(k as i64);
    let early = crate::compile::may_read_early(&[q, s, b]) as i32;
    let (f, blocks) = if takes_qmv4(dtype, bits, m, batches) {
        let cols = qmv4_cols();
        let split = qmv4_split(n.div_ceil(cols), k);
        let key = format!("qmv4|{group_size}|{cols}|{split}|{pair}");
        let make = || qmv4_source(group_size, cols, split, pair, None);
        let f = function_for(&key, make, "umx_qmv4")?;
        args.push(early);
        (f, n.div_ceil(cols).div_ceil(per_block / split))
    } else {
        let key = format!("qmv|{dtype:?}|{bits}|{group_size}|{m}|{pair}");
        let f = function_for(
            &key,
            || qmv_source(dtype, bits, group_size, m, pair),
            "umx_qmv",
        )?;
        args.push(batches as i64).push(early);
        (f, (batches * n).div_ceil(per_block))
    };
    launch(f, blocks.max(1) as u32, THREADS, 0, &mut args.pointers())?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generated source has balanced braces and parentheses, and names its kernel; with
    /// `UMX_DUMP_QUANTIZED_SOURCES=dir` they are also written there (to check them with a C++
    /// compiler where no NVRTC is at hand).
    #[test]
    fn generated_sources_are_well_formed() {
        let dump = std::env::var("UMX_DUMP_QUANTIZED_SOURCES").ok();
        for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
            for bits in [1, 2, 3, 4, 5, 6, 8] {
                for gs in [32, 64, 128] {
                    let mut sources = vec![(
                        format!("deq_{dtype:?}_{bits}_{gs}"),
                        dequantize_source(dtype, bits, gs),
                    )];
                    if dtype == Dtype::Bfloat16 && bits == 4 {
                        for cols in [1, 2, 4, 8] {
                            for pair in [false, true] {
                                sources.push((
                                    format!("qmv4_{gs}_{cols}_{pair}"),
                                    qmv4_source(gs, cols, 1, pair, None),
                                ));
                                sources.push((
                                    format!("qmv4split_{gs}_{cols}_{pair}"),
                                    qmv4_source(gs, cols, 4, pair, None),
                                ));
                            }
                        }
                        for (d, traditional, freqs) in [(64, false, false), (128, true, true)] {
                            let form = RopeForm {
                                d,
                                traditional,
                                freqs,
                            };
                            for cols in [2, 4] {
                                sources.push((
                                    format!("qmv4rope_{gs}_{d}_{traditional}_{cols}"),
                                    qmv4_source(gs, cols, 2, false, Some(&form)),
                                ));
                            }
                        }
                    }
                    for rows in [1, 8] {
                        sources.push((
                            format!("qmv_{dtype:?}_{bits}_{gs}_{rows}"),
                            qmv_source(dtype, bits, gs, rows, false),
                        ));
                        sources.push((
                            format!("qmvpair_{dtype:?}_{bits}_{gs}_{rows}"),
                            qmv_source(dtype, bits, gs, rows, true),
                        ));
                    }
                    for (name, src) in sources {
                        let count = |c: char| src.chars().filter(|&x| x == c).count();
                        assert_eq!(count('{'), count('}'), "{name}");
                        assert_eq!(count('('), count(')'), "{name}");
                        assert!(src.contains("extern \"C\" __global__"), "{name}");
                        if let Some(dir) = &dump {
                            std::fs::write(format!("{dir}/{name}.cu"), &src).unwrap();
                        }
                    }
                }
            }
        }
    }
}

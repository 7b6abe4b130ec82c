//! The fast primitives (`umx_core::fast`) on the GPU.
//!
//! - Rows (rms_norm, layer_norm, softmax): one block per row. The row is loaded once into
//!   registers with 16-byte vector loads (the norms keep it in its stored form, which for
//!   2-byte dtypes halves the registers and lets more rows share an SM: rms_norm went from
//!   2250 to 2405 GB/s on an H200), reduced with warp shuffles and a shared-memory step, and
//!   written once: one read and one write of the data. Rows too long for registers are read
//!   again from the cache for each pass.
//! - Rope: a thread per feature pair (and per passed-through feature), any input strides.
//! - Attention for short query blocks (decoding): split-K "flash decoding". A block takes up
//!   to [`ATTN_ROWS`] query rows that share a key head (the group of grouped-query heads) and
//!   one chunk of the keys, so each key and value row is read once for the whole group; its
//!   warps keep online-softmax running values; a second kernel merges the chunks.
//! - SwiGLU of a few rows (`swiglu_linear`): the matrix-vector kernel (`gemv.rs`).
//! - Attention for longer query blocks in 16-bit floats: flash attention (`flash.rs`).
//!
//! Everything computes in float32 and rounds once, as the CPU kernels and the fallback do.

use super::flash::{flash, flash_backward};
use super::source::{Args, HEADER, load, storage_type, store};
use super::{first_out, row_major};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr};
use umx_core::device::OutSpec;
use umx_core::primitives::FastOp;
use umx_core::{ArrayData, Dtype, Error, Result};

type Outs = Result<Option<Vec<ArrayData>>>;

/// Query rows one attention block serves.
pub const ATTN_ROWS: usize = 8;
/// Warps of an attention block when values are wider than 128 (8 otherwise, which hides more
/// of the memory latency; the block's partial sums must fit shared memory).
const ATTN_WARPS: usize = 4;
/// Leading axes a strided rope input may have (more: copied first).
const MAX_DIMS: usize = 8;

pub fn eval(op: &FastOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    if let FastOp::CudaKernel(k) = op {
        return super::custom::eval(k, inputs);
    }
    let out = first_out(op.name(), outputs)?;
    if let FastOp::SwigluQuantizedLinear { group_size, bits } = *op {
        // The packed weight is uint32: the quantized kernels check their operands.
        return super::quantized::swiglu(inputs, group_size, bits, out);
    }
    if !inputs.iter().all(|a| supported(a.dtype)) || !supported(out.dtype) {
        return Ok(None);
    }
    match *op {
        FastOp::RmsNorm { eps, weight } => rows(Row::Rms, eps, inputs, weight, false, out),
        FastOp::LayerNorm { eps, weight, bias } => rows(Row::Layer, eps, inputs, weight, bias, out),
        FastOp::Softmax => rows(Row::Softmax, 0.0, inputs, false, false, out),
        FastOp::LogSumExp => rows(Row::LogSumExp, 0.0, inputs, false, false, out),
        FastOp::Rope {
            dims,
            traditional,
            base,
            scale,
            freqs,
        } => rope(inputs, out, dims, traditional, base, scale, freqs),
        FastOp::RopeCacheWrite {
            project,
            heads,
            kv_heads,
            dims,
            traditional,
            base,
            scale,
            freqs,
        } => {
            let rotation = Rotation {
                dims,
                traditional,
                base,
                scale,
                freqs,
            };
            if project {
                linear_rope_cache_write(inputs, outputs, heads, kv_heads, &rotation)
            } else {
                rope_cache_write(inputs, outputs, heads, kv_heads, &rotation)
            }
        }
        FastOp::Attention {
            scale,
            causal,
            lse: true,
            ..
        } => match inputs {
            [q, k, v] => flash(q, k, v, out, scale, causal, true),
            _ => Ok(None),
        },
        FastOp::Attention {
            scale,
            causal,
            mask,
            sinks,
            lse: false,
        } => attention(inputs, out, scale, causal, mask, sinks),
        FastOp::AttentionVjp { scale, causal } => flash_backward(inputs, scale, causal),
        FastOp::SwigluLinear => match inputs {
            [x, w] => Ok(super::gemv::swiglu(x, w, &out.shape)?.map(|y| vec![y])),
            _ => Ok(None),
        },
        FastOp::SwigluQuantizedLinear { .. } => Ok(None),
        FastOp::CudaKernel(_) => Ok(None),
    }
}

fn supported(d: Dtype) -> bool {
    matches!(
        d,
        Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16 | Dtype::Int32 | Dtype::Bool
    )
}

/// The body of a C function rounding the float `v` to `d` and back (the value the fallback
/// holds in that dtype). A
/// NaN stays a NaN (its payload does not survive arithmetic on the GPU anyway), so bfloat16
/// takes the bare conversion instruction where there is one.
fn round_fn(d: Dtype) -> &'static str {
    match d {
        Dtype::Float16 => "return umx_h2f(umx_f2h(v));",
        Dtype::Bfloat16 => {
            "\n#if __CUDA_ARCH__ >= 800\n  unsigned short h; asm(\"cvt.rn.bf16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(v)); return umx_bf2f(h);\n#else\n  return umx_bf2f(umx_f2bf(v));\n#endif\n"
        }
        _ => "return v;",
    }
}

/// NVRTC without headers has no INFINITY.
const INF: &str = "#define INFINITY __int_as_float(0x7f800000)\n";

const BLOCK_REDUCE: &str = r#"
UMX_FN float umx_warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
UMX_FN float umx_warp_max(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
/* The block's total (every thread gets it); `sh` holds 32 floats. */
UMX_FN float umx_block_sum(float v, float* sh) {
  v = umx_warp_sum(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < (int)(blockDim.x / 32) ? sh[l] : 0.f;
  return umx_warp_sum(v);
}
UMX_FN float umx_block_max(float v, float* sh) {
  v = umx_warp_max(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < (int)(blockDim.x / 32) ? sh[l] : -INFINITY;
  return umx_warp_max(v);
}
"#;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    Rms,
    Layer,
    Softmax,
    /// One value a row (the output has no last axis).
    LogSumExp,
}

/// Rows held in registers up to this many vectors per thread.
const MAX_CHUNKS: usize = 8;

fn rows(
    kind: Row,
    eps: f32,
    inputs: &[ArrayData],
    weight: bool,
    bias: bool,
    out: &OutSpec,
) -> Outs {
    let Some(x) = row_major(&inputs[0])? else {
        return Ok(None);
    };
    let params: Vec<ArrayData> = match inputs[1..]
        .iter()
        .map(row_major)
        .collect::<Result<Option<Vec<_>>>>()?
    {
        Some(p) => p,
        None => return Ok(None),
    };
    let d = x.shape.last().copied().unwrap_or(1);
    let n_rows = x.size().checked_div(d).unwrap_or(0);
    let (result, out_ptr) = fresh(&out.shape, out.dtype)?;
    if n_rows == 0 {
        return Ok(Some(vec![result]));
    }
    let x_ptr = input_ptr(&x)?;
    // The widest vector (at most 16 bytes of input or output) that rows split into evenly
    // and that the input's address allows.
    let widest = x.dtype.size().max(out.dtype.size());
    let mut vec = 16 / widest;
    while vec > 1 && (d % vec != 0 || x_ptr % (vec * x.dtype.size()) as u64 != 0) {
        vec /= 2;
    }
    let vecs = d / vec;
    let threads = (vecs.div_ceil(4).div_ceil(32) * 32).clamp(32, 1024);
    let chunks = vecs.div_ceil(threads);
    let chunks = if chunks <= MAX_CHUNKS { chunks } else { 0 };
    let xs = storage_type(x.dtype).unwrap_or("void");
    let os = storage_type(out.dtype).unwrap_or("void");
    let ws = params
        .first()
        .filter(|_| weight)
        .map_or("float", |w| storage_type(w.dtype).unwrap_or("void"));
    let wd = params
        .first()
        .filter(|_| weight)
        .map_or(Dtype::Float32, |w| w.dtype);
    let bp = params.get(weight as usize).filter(|_| bias);
    let bs = bp.map_or("float", |b| storage_type(b.dtype).unwrap_or("void"));
    let bd = bp.map_or(Dtype::Float32, |b| b.dtype);
    let w_ptr = if weight { input_ptr(&params[0])? } else { 0 };
    let b_ptr = match bp {
        Some(b) => input_ptr(b)?,
        None => 0,
    };
    // Weight and bias come in vectors too when their addresses allow it.
    let packed = |ptr: u64, d: Dtype| ptr == 0 || ptr.is_multiple_of((vec * d.size()) as u64);
    let wvec = packed(w_ptr, wd) && packed(b_ptr, bd);
    let key = format!(
        "fast-rows|{kind:?}|{:?}|{:?}|{wd:?}|{bd:?}|{weight}|{bias}|{vec}|{chunks}|{wvec}",
        x.dtype, out.dtype
    );
    let f = function_for(
        &key,
        || {
            rows_source(
                kind,
                (xs, x.dtype),
                (os, out.dtype),
                (ws, wd, weight),
                (bs, bd, bias),
                vec,
                chunks,
                wvec,
            )
        },
        "umx_fast_rows",
    )?;
    let mut args = Args::default();
    args.push(out_ptr)
        .push(x_ptr)
        .push(w_ptr)
        .push(b_ptr)
        .push(d as i64)
        .push(eps);
    launch(f, n_rows as u32, threads as u32, 0, &mut args.pointers())?;
    Ok(Some(vec![result]))
}

/// The source of one row kernel: `chunks` vectors per thread held in registers (0: read the
/// row again for each pass).
#[allow(clippy::too_many_arguments)]
fn rows_source(
    kind: Row,
    (xs, xd): (&str, Dtype),
    (os, od): (&str, Dtype),
    (ws, wd, weight): (&str, Dtype, bool),
    (bs, bd, bias): (&str, Dtype, bool),
    vec: usize,
    chunks: usize,
    wvec: bool,
) -> String {
    let lx = load(xd, "px.v[e]", "float");
    let reg = chunks > 0;
    // The norms keep the row in its stored form (half the registers for 2-byte dtypes, so
    // more rows fit an SM at once) and convert an element on each use; softmax keeps floats,
    // since it overwrites them with the exponentials.
    let packed_row = reg && kind != Row::Softmax;
    // A loop over the thread's vectors; `body` sees `val` (the element as float), `j + e`
    // (its index in the row) and, when it writes, fills `po.v[e]`.
    let over = |body: &str, write: bool| -> String {
        let (open, value) = if reg {
            (
                "for (int c = 0; c < CHUNKS; c++) { long long j = ((long long)c * blockDim.x + threadIdx.x) * VEC; if (j >= d) break;".to_string(),
                if packed_row {
                    load(xd, "pv[c].v[e]", "float")
                } else {
                    "v[c][e]".to_string()
                },
            )
        } else {
            (
                "for (long long j = (long long)threadIdx.x * VEC; j < d; j += (long long)blockDim.x * VEC) { XP px = *(const XP*)(xr + j);".to_string(),
                lx.clone(),
            )
        };
        let (pre, post) = if write {
            let mut pre = String::from("OP po;");
            if wvec && weight {
                pre += if reg {
                    " WP pw = pwr[c];"
                } else {
                    " WP pw = *(const WP*)(w + j);"
                };
            }
            if wvec && bias {
                pre += if reg {
                    " BP pb = pbr[c];"
                } else {
                    " BP pb = *(const BP*)(b + j);"
                };
            }
            (pre, "*(OP*)(yr + j) = po;")
        } else {
            (String::new(), "")
        };
        format!(
            "{open} {pre} for (int e = 0; e < VEC; e++) {{ float val = {value}; {body} }} {post} }}"
        )
    };
    let loads = if packed_row {
        "XP pv[CHUNKS];
  for (int c = 0; c < CHUNKS; c++) {
    long long j = ((long long)c * blockDim.x + threadIdx.x) * VEC;
    if (j < d) pv[c] = *(const XP*)(xr + j);
  }"
        .to_string()
    } else if reg {
        format!(
            "float v[CHUNKS][VEC];
  for (int c = 0; c < CHUNKS; c++) {{
    long long j = ((long long)c * blockDim.x + threadIdx.x) * VEC;
    if (j < d) {{ XP px = *(const XP*)(xr + j); for (int e = 0; e < VEC; e++) v[c][e] = {lx}; }}
  }}"
        )
    } else {
        String::new()
    };
    // Held rows load their weight and bias with the row, before the reduction: one memory
    // latency for the whole kernel, not one more after the reduction (a decoding step's
    // norms are one row each, so that latency is most of their time).
    let mut loads = loads;
    for (on, name, ty, ptr) in [(weight, "pwr", "WP", "w"), (bias, "pbr", "BP", "b")] {
        if reg && wvec && on {
            loads += &format!(
                "
  {ty} {name}[CHUNKS];
  for (int c = 0; c < CHUNKS; c++) {{
    long long j = ((long long)c * blockDim.x + threadIdx.x) * VEC;
    if (j < d) {name}[c] = *(const {ty}*)({ptr} + j);
  }}"
            );
        }
    }
    let affine = {
        let mut s = String::from("y = umx_round_out(y);");
        let (wv, bv) = if wvec {
            ("pw.v[e]", "pb.v[e]")
        } else {
            ("w[j + e]", "b[j + e]")
        };
        if weight {
            s += &format!(" y = umx_round_out(y * {});", load(wd, wv, "float"));
        }
        if bias {
            s += &format!(" y = umx_round_out(y + {});", load(bd, bv, "float"));
        }
        s
    };
    let st = store(od, "y");
    let body = match kind {
        Row::Rms => format!(
            "float acc = 0.f;
  {sum}
  float n = 1.0f / sqrtf(umx_block_sum(acc, sh) / (float)d + eps);
  {write}",
            sum = over("acc += val * val;", false),
            write = over(
                &format!("float y = val * n; {affine} po.v[e] = {st};"),
                true
            ),
        ),
        Row::Layer => format!(
            "float acc = 0.f;
  {sum}
  float mean = umx_block_sum(acc, sh) / (float)d;
  acc = 0.f;
  {sq}
  float n = 1.0f / sqrtf(umx_block_sum(acc, sh) / (float)d + eps);
  {write}",
            sum = over("acc += val;", false),
            sq = over("acc += (val - mean) * (val - mean);", false),
            write = over(
                &format!("float y = (val - mean) * n; {affine} po.v[e] = {st};"),
                true
            ),
        ),
        Row::Softmax => format!(
            "float m = -INFINITY;
  {max}
  m = umx_block_max(m, sh);
  if (m == -INFINITY) m = 0.f;
  float acc = 0.f;
  {sum}
  float s = umx_block_sum(acc, sh);
  {write}",
            max = over("m = fmaxf(m, val);", false),
            // Held in registers, each exponential is computed once.
            sum = over(
                if reg {
                    "float ex = expf(val - m); v[c][e] = ex; acc += ex;"
                } else {
                    "acc += expf(val - m);"
                },
                false
            ),
            write = over(
                &format!(
                    "float y = {} / s; po.v[e] = {st};",
                    if reg { "val" } else { "expf(val - m)" }
                ),
                true
            ),
        ),
        Row::LogSumExp => format!(
            "float m = -INFINITY;
  {max}
  m = umx_block_max(m, sh);
  if (m == INFINITY || m == -INFINITY) m = 0.f;
  float acc = 0.f;
  {sum}
  float s = umx_block_sum(acc, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = {fin};",
            max = over("m = fmaxf(m, val);", false),
            sum = over("acc += expf(val - m);", false),
            fin = store(od, "(logf(s) + m)"),
        ),
    };
    format!(
        r#"{HEADER}{INF}{BLOCK_REDUCE}
#define VEC {vec}
#define CHUNKS {chunks}
typedef umx_pack<{xs}, VEC> XP;
typedef umx_pack<{os}, VEC> OP;
typedef umx_pack<{ws}, VEC> WP;
typedef umx_pack<{bs}, VEC> BP;
UMX_FN float umx_round_out(float v) {{ {round} }}
extern "C" __global__ void umx_fast_rows({os}* out, const {xs}* x, const {ws}* w, const {bs}* b,
    long long d, float eps) {{
  __shared__ float sh[32];
  const {xs}* xr = x + (long long)blockIdx.x * d;
  {os}* yr = out + (long long)blockIdx.x * d;
  {loads}
  {body}
}}
"#,
        round = round_fn(od),
    )
}

#[allow(clippy::too_many_arguments)]
fn rope(
    inputs: &[ArrayData],
    out: &OutSpec,
    dims: usize,
    traditional: bool,
    base: f32,
    scale: f32,
    freqs: bool,
) -> Outs {
    let mut x = inputs[0].clone();
    let nd = x.shape.len();
    if nd - 1 > MAX_DIMS {
        match row_major(&x)? {
            Some(c) => x = c,
            None => return Ok(None),
        }
    }
    let Some(offsets) = row_major(&inputs[1])? else {
        return Ok(None);
    };
    let (result, out_ptr) = fresh(&out.shape, out.dtype)?;
    let (l, d) = (x.shape[nd - 2], x.shape[nd - 1]);
    let n_rows = x.size().checked_div(d).unwrap_or(0);
    let half = dims / 2;
    let per_row = half + (d - dims);
    let work = n_rows * per_row;
    if work == 0 {
        return Ok(Some(vec![result]));
    }
    // A copy of strided freqs must live until the launch is queued.
    let freqs_data = if freqs {
        match row_major(&inputs[2])? {
            Some(f) => Some(f),
            None => return Ok(None),
        }
    } else {
        None
    };
    let freqs_ptr = match &freqs_data {
        Some(f) => input_ptr(f)?,
        None => 0,
    };
    // The leading axes (all but the features), outermost first.
    let mut words = [0i64; 2 * MAX_DIMS + 1];
    for a in 0..nd - 1 {
        words[a] = x.shape[a] as i64;
        words[MAX_DIMS + a] = x.strides[a] as i64;
    }
    words[2 * MAX_DIMS] = (nd - 1) as i64;
    let lead: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let per_first: usize = x.shape[1..nd - 1].iter().product();
    let xs = storage_type(x.dtype).unwrap_or("void");
    let os = storage_type(out.dtype).unwrap_or("void");
    let key = format!(
        "fast-rope|{:?}|{:?}|{dims}|{traditional}|{freqs}",
        x.dtype, out.dtype
    );
    let lx = |v: &str| load(x.dtype, v, "float");
    let f = function_for(
        &key,
        || {
            format!(
                r#"{HEADER}
struct umx_lead {{ long long shape[{MAX_DIMS}]; long long strides[{MAX_DIMS}]; long long ndim; }};
extern "C" __global__ void umx_rope({os}* out, const {xs}* x, const int* offsets,
    const float* freqs, long long work, long long l, long long d, long long per_first,
    int n_off, float scale, float k, long long last, umx_lead ld) {{
  const long long half = {half}, dims = {dims}, per_row = half + (d - dims);
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < work;
       t += (long long)gridDim.x * blockDim.x) {{
    long long r = t / per_row, i = t % per_row;
    long long base = 0, rest = r;
    for (int a = (int)ld.ndim - 1; a >= 0; a--) {{
      base += (rest % ld.shape[a]) * ld.strides[a];
      rest /= ld.shape[a];
    }}
    {os}* yr = out + r * d;
    if (i < half) {{
      int off = n_off == 1 ? offsets[0] : offsets[r / per_first];
      float pos = ((float)off + (float)(r % l)) * scale;
      float inv = {inv};
      float s, c;
      sincosf(pos * inv, &s, &c);
      long long a = {a}, b = {b};
      float xa = {xa}, xb = {xb};
      yr[a] = {ya};
      yr[b] = {yb};
    }} else {{
      long long j = dims + (i - half);
      yr[j] = {yj};
    }}
  }}
}}
"#,
                inv = if freqs {
                    "1.0f / freqs[i]"
                } else {
                    "expf((float)i * k)"
                },
                a = if traditional { "2 * i" } else { "i" },
                b = if traditional { "2 * i + 1" } else { "i + half" },
                xa = lx("x[base + a * last]"),
                xb = lx("x[base + b * last]"),
                ya = store(out.dtype, "xa * c - xb * s"),
                yb = store(out.dtype, "xa * s + xb * c"),
                yj = store(out.dtype, &lx("x[base + j * last]")),
            )
        },
        "umx_rope",
    )?;
    let g = gpu()?;
    let threads = 256u32;
    let blocks = work
        .div_ceil(threads as usize)
        .min(g.sm_count as usize * 32) as u32;
    let k = if freqs { 0.0 } else { -base.ln() / half as f32 };
    let mut args = Args::default();
    args.push(out_ptr)
        .push(input_ptr(&x)?)
        .push(input_ptr(&offsets)?)
        .push(freqs_ptr)
        .push(work as i64)
        .push(l as i64)
        .push(d as i64)
        .push(per_first.max(1) as i64)
        .push(offsets.size() as i32)
        .push(scale)
        .push(k)
        .push(x.strides[nd - 1] as i64);
    args.push_bytes(&lead);
    launch(f, blocks, threads, 0, &mut args.pointers())?;
    Ok(Some(vec![result]))
}

/// A rotary embedding's parameters (as `FastOp::Rope`'s).
struct Rotation {
    dims: usize,
    traditional: bool,
    base: f32,
    scale: f32,
    freqs: bool,
}

/// `fast::rope_cache_write`: a thread per feature of each head row of `qkv`; query heads go
/// to a fresh output, key and value heads into the caches (updated in place when they are
/// their buffers' last handles, as a scatter's input is), the rotations computed as the rope
/// kernel computes them. Rows past the capacity are skipped and recorded as an index error.
fn rope_cache_write(
    inputs: &[ArrayData],
    outputs: &[OutSpec],
    heads: usize,
    kv_heads: usize,
    rot: &Rotation,
) -> Outs {
    let [qkv, offset, keys, values, rest @ ..] = inputs else {
        return Ok(None);
    };
    let (Some(qkv), Some(offset)) = (row_major(qkv)?, row_major(offset)?) else {
        return Ok(None);
    };
    let freqs = match (rot.freqs, rest.first()) {
        (true, Some(f)) => match row_major(f)? {
            Some(f) => Some(f),
            None => return Ok(None),
        },
        (true, None) => return Ok(None),
        (false, _) => None,
    };
    let Some(q_spec) = outputs.first() else {
        return Ok(None);
    };
    let Some((keys, kp)) = super::indexing::writable_copy(keys)? else {
        return Ok(None);
    };
    let Some((values, vp)) = super::indexing::writable_copy(values)? else {
        return Ok(None);
    };
    let (q, qp) = fresh(&q_spec.shape, q_spec.dtype)?;
    let (b, l) = (qkv.shape[0], qkv.shape[1]);
    let (capacity, d) = (keys.shape[2], keys.shape[3]);
    let work = b * l * (heads + 2 * kv_heads) * d;
    if work == 0 {
        return Ok(Some(vec![q, keys, values]));
    }
    let dtype = qkv.dtype;
    let (dims, half) = (rot.dims, rot.dims / 2);
    let key = format!(
        "fast-rope-cache|{dtype:?}|{dims}|{}|{}",
        rot.traditional, rot.freqs
    );
    let f = function_for(&key, || rope_cache_source(dtype, rot), "umx_rope_cache")?;
    let g = gpu()?;
    let threads = 256u32;
    let blocks = work
        .div_ceil(threads as usize)
        .min(g.sm_count as usize * 32) as u32;
    let k = if rot.freqs {
        0.0
    } else {
        -rot.base.ln() / half as f32
    };
    let freqs_ptr = match &freqs {
        Some(f) => input_ptr(f)?,
        None => 0,
    };
    let err = super::indexing::error_block(true)?;
    let mut args = Args::default();
    args.push(qp)
        .push(kp)
        .push(vp)
        .push(input_ptr(&qkv)?)
        .push(input_ptr(&offset)?)
        .push(freqs_ptr)
        .push(work as i64)
        .push(l as i64)
        .push(capacity as i64)
        .push(d as i64)
        .push(heads as i64)
        .push(kv_heads as i64)
        .push(rot.scale)
        .push(k)
        .push(err);
    launch(f, blocks, threads, 0, &mut args.pointers())?;
    Ok(Some(vec![q, keys, values]))
}

/// `fast::linear_rope_cache_write`: the matrix-vector kernel's rope form where every feature
/// rotates and the operands fit it (one kernel); else the product, then
/// [`rope_cache_write`]'s kernel.
fn linear_rope_cache_write(
    inputs: &[ArrayData],
    outputs: &[OutSpec],
    heads: usize,
    kv_heads: usize,
    rot: &Rotation,
) -> Outs {
    let [x, w, rest @ ..] = inputs else {
        return Ok(None);
    };
    let [offset, keys, values, ..] = rest else {
        return Ok(None);
    };
    let (b, l) = (x.shape[0], x.shape[1]);
    let (capacity, d) = (keys.shape[2], keys.shape[3]);
    if rot.dims == d {
        let (Some(offset), Some(q_spec)) = (row_major(offset)?, outputs.first()) else {
            return Ok(None);
        };
        let freqs = match (rot.freqs, rest.get(3)) {
            (true, Some(f)) => row_major(f)?,
            _ => None,
        };
        if rot.freqs == freqs.is_some() {
            // Whether the kernel fits is known before anything is copied or launched.
            let x = row_major(x)?;
            let w = row_major(w)?;
            if let (Some(x), Some(w)) = (x, w)
                && super::gemv::rope_fits(&x, &w)?
            {
                let Some((keys, kp)) = super::indexing::writable_copy(keys)? else {
                    return Ok(None);
                };
                let Some((values, vp)) = super::indexing::writable_copy(values)? else {
                    return Ok(None);
                };
                let (q, qp) = fresh(&q_spec.shape, q_spec.dtype)?;
                let half = d / 2;
                let launch = super::gemv::RopeLaunch {
                    form: super::gemv::RopeForm {
                        d,
                        traditional: rot.traditional,
                        freqs: rot.freqs,
                    },
                    q: qp,
                    keys: kp,
                    values: vp,
                    offset: input_ptr(&offset)?,
                    freqs: freqs.as_ref().map_or(Ok(0), input_ptr)?,
                    err: super::indexing::error_block(true)?,
                    heads,
                    kv_heads,
                    l,
                    cap: capacity,
                    scale: rot.scale,
                    k: if rot.freqs {
                        0.0
                    } else {
                        -rot.base.ln() / half as f32
                    },
                };
                super::gemv::rope(&x, &w, &launch)?;
                return Ok(Some(vec![q, keys, values]));
            }
        }
    }
    // The product (w viewed as its transpose), then the rope and cache kernel.
    let mut wt = w.clone();
    wt.shape.swap(0, 1);
    wt.strides.swap(0, 1);
    let spec = OutSpec {
        shape: vec![b, l, wt.shape[1]],
        dtype: x.dtype,
    };
    let op = umx_core::primitives::MatmulOp::Matmul;
    let Some(mut qkv) = super::matmul::eval(&op, &[x.clone(), wt], &[spec])? else {
        return Ok(None);
    };
    let mut args = vec![qkv.remove(0)];
    args.extend(rest.iter().cloned());
    rope_cache_write(&args, outputs, heads, kv_heads, rot)
}

/// The source of `umx_rope_cache` for `dtype` and `rot` (see [`rope_cache_write`]).
fn rope_cache_source(dtype: Dtype, rot: &Rotation) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    let (dims, half) = (rot.dims, rot.dims / 2);
    let lx = |v: &str| load(dtype, v, "float");
    format!(
        r#"{HEADER}{flag}
extern "C" __global__ void umx_rope_cache({st}* q, {st}* keys, {st}* values, const {st}* qkv,
    const int* offset, const float* freqs, long long work, long long l, long long cap,
    long long d, long long heads, long long kv_heads, float scale, float k, umx_err* err) {{
  const long long half = {half}, dims = {dims}, all = heads + 2 * kv_heads;
  int off = offset[0];
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < work;
       t += (long long)gridDim.x * blockDim.x) {{
    long long i = t % d, row = t / d;
    long long h = row % all, bl = row / all, li = bl % l, bi = bl / l;
    long long at = (long long)off + li;
    const {st}* x = qkv + row * d;
    {st}* y;
    if (h < heads) {{
      y = q + ((bi * heads + h) * l + li) * d;
    }} else {{
      if (at < 0 || at >= cap) {{
if (i == 0) umx_flag(err, {code}, 2, at, cap);
continue;
      }}
      y = h < heads + kv_heads ? keys + ((bi * kv_heads + h - heads) * cap + at) * d
                       : values + ((bi * kv_heads + h - heads - kv_heads) * cap + at) * d;
      if (h >= heads + kv_heads) {{
y[i] = x[i];
continue;
      }}
    }}
    if (i < half) {{
      float pos = ((float)off + (float)li) * scale;
      float inv = {inv};
      float s, c;
      sincosf(pos * inv, &s, &c);
      long long a = {a}, b = {b};
      float xa = {xa}, xb = {xb};
      y[a] = {ya};
      y[b] = {yb};
    }} else if (i < half + (d - dims)) {{
      long long j = dims + (i - half);
      y[j] = x[j];
    }}
  }}
}}
"#,
        flag = super::indexing::ERROR_FLAG,
        code = super::indexing::error_code("rope_cache_write"),
        inv = if rot.freqs {
            "1.0f / freqs[i]"
        } else {
            "expf((float)i * k)"
        },
        a = if rot.traditional { "2 * i" } else { "i" },
        b = if rot.traditional {
            "2 * i + 1"
        } else {
            "i + half"
        },
        xa = lx("x[a]"),
        xb = lx("x[b]"),
        ya = store(dtype, "xa * c - xb * s"),
        yb = store(dtype, "xa * s + xb * c"),
    )
}

/// Strides (in elements) of a 4-d operand, for the attention kernels.
fn strides4(a: &ArrayData) -> [i64; 4] {
    [
        a.strides[0] as i64,
        a.strides[1] as i64,
        a.strides[2] as i64,
        a.strides[3] as i64,
    ]
}

/// `a` with unit stride along its last axis (a copy when it has not).
fn unit_last(a: &ArrayData) -> Result<Option<ArrayData>> {
    if a.shape[3] <= 1 || a.strides[3] == 1 {
        return Ok(Some(a.clone()));
    }
    super::contiguous(a, a.dtype)
}

fn attention(
    inputs: &[ArrayData],
    out: &OutSpec,
    scale: f32,
    causal: bool,
    mask: bool,
    sinks: bool,
) -> Outs {
    let (Some(q), Some(k), Some(v)) = (
        unit_last(&inputs[0])?,
        unit_last(&inputs[1])?,
        unit_last(&inputs[2])?,
    ) else {
        return Ok(None);
    };
    let [b, hq, lq, d] = q.shape[..] else {
        return Err(Error::Device("attention: queries must be 4-d".into()));
    };
    let (hk, lk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    if d > 256 || dv > 256 || hk == 0 {
        return Ok(None);
    }
    if !mask
        && !sinks
        && let Some(done) = flash(&q, &k, &v, out, scale, causal, false)?
    {
        return Ok(Some(done));
    }
    let m = mask.then(|| &inputs[3]);
    let s = if sinks {
        match row_major(&inputs[3 + mask as usize])? {
            Some(s) => Some(s),
            None => return Ok(None),
        }
    } else {
        None
    };
    let (result, out_ptr) = fresh(&out.shape, out.dtype)?;
    let n_rows = b * hq * lq;
    if n_rows == 0 || dv == 0 {
        return Ok(Some(vec![result]));
    }
    let group = hq / hk;
    // Rows of one key head: `group` heads times `lq` queries, in blocks of up to ATTN_ROWS.
    let rows_per_kh = group * lq;
    let vec = vector_width(&q, &k, &v)?;
    let most = if vec.is_some() {
        VECTOR_ROWS
    } else {
        ATTN_ROWS
    };
    let r = rows_per_kh.min(most);
    let row_blocks = rows_per_kh.div_ceil(r);
    let g = gpu()?;
    let base_blocks = b * hk * row_blocks;
    // Split the keys so the card has a few blocks per SM, each over at least 32 keys: a
    // warp of the general kernel keeps only two keys in flight, so long splits wait on
    // memory (one split of 1152 keys took 210 us in a decoding step, 36 splits 17 us); the
    // vectorised kernel keeps more in flight and takes two blocks per SM. The merge reads
    // the splits in parallel.
    let want = match vec {
        Some(_) => (2 * g.sm_count as usize).div_ceil(base_blocks.max(1)),
        None => (4 * g.sm_count as usize).div_ceil(base_blocks.max(1)),
    };
    let splits = want.clamp(1, lk.div_ceil(32).max(1)).min(256);
    let chunk = lk.div_ceil(splits).max(1);
    let splits = lk.div_ceil(chunk).max(1);

    let qs = storage_type(q.dtype).unwrap_or("void");
    let ks = storage_type(k.dtype).unwrap_or("void");
    let vs = storage_type(v.dtype).unwrap_or("void");
    let os = storage_type(out.dtype).unwrap_or("void");
    let ms = m.map_or("float", |m| storage_type(m.dtype).unwrap_or("void"));
    let ss = s
        .as_ref()
        .map_or("float", |s| storage_type(s.dtype).unwrap_or("void"));
    let md = m.map_or(Dtype::Float32, |m| m.dtype);
    let sd = s.as_ref().map_or(Dtype::Float32, |s| s.dtype);
    let dpl = d.div_ceil(32).max(1);
    let dvpl = dv.div_ceil(32);
    // More warps a block hide more latency; the block's partial sums must fit shared memory.
    let warps = match vec {
        Some(_) => VECTOR_WARPS,
        None if dv <= 128 => 8,
        None => ATTN_WARPS,
    };
    // Keys a warp loads at once. Four (more registers) and other shapes of the block (2 or 4
    // rows, 16 or 32 warps, longer splits) were no faster in a decoding step on the H100.
    let keys = 2;
    let key = format!(
        "fast-attn|{:?}|{:?}|{:?}|{:?}|{md:?}|{sd:?}|{d}|{dv}|{r}|{causal}|{mask}|{sinks}|{warps}|{keys}|{vec:?}",
        q.dtype, k.dtype, v.dtype, out.dtype
    );
    let mask_term = if mask {
        if md == Dtype::Bool {
            "ok = ok && (mrow[rr][j * ms3] != 0);".to_string()
        } else {
            format!("sc += {};", load(md, "mrow[rr][j * ms3]", "float"))
        }
    } else {
        String::new()
    };
    let sink_load = load(sd, "sinks[h]", "float");
    let make = || {
        format!(
            r#"{HEADER}{INF}
#define R {r}
#define KEYS {keys}
#define WARPS {warps}
#define D {d}
#define DV {dv}
#define DPL {dpl}
#define DVPL {dvpl}
struct umx_s4 {{ long long s[4]; }};
/* Merges running (m, l) pairs: the weight of a part with maximum `m` against `M`. */
UMX_FN float umx_w(float m, float M) {{ return m == -INFINITY ? 0.f : expf(m - M); }}
extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_attn({os}* out, float* part, const {qs}* q, const {ks}* k,
    const {vs}* v, const {ms}* mk, const {ss}* sinks, long long hq, long long hk, long long lq,
    long long lk, long long group, long long row_blocks, long long chunk, int splits,
    float scale, long long ms3, umx_s4 qst, umx_s4 kst, umx_s4 vst, umx_s4 mst) {{
  __shared__ float sh_m[WARPS][R], sh_l[WARPS][R], sh_acc[WARPS][R][DV];
  long long blk = blockIdx.x;
  int split = (int)(blk % splits); blk /= splits;
  long long rb = blk % row_blocks; blk /= row_blocks;
  long long kh = blk % hk, bi = blk / hk;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float qr[R][DPL];
  long long seen[R];
  long long hrow[R];
  const {ms}* mrow[R];
  bool live[R];
  long long jend = 0;
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    long long g = rb * R + rr;
    live[rr] = g < group * lq;
    long long h = kh * group + (live[rr] ? g / lq : 0), i = live[rr] ? g % lq : 0;
    hrow[rr] = (bi * hq + h) * lq + i;
    const {qs}* qp = q + bi * qst.s[0] + h * qst.s[1] + i * qst.s[2];
    #pragma unroll
    for (int t = 0; t < DPL; t++) {{
      int c = lane + 32 * t;
      qr[rr][t] = (live[rr] && c < D) ? {lq_} * scale : 0.f;
    }}
    seen[rr] = {seen};
    if (!live[rr]) seen[rr] = 0;
    if (seen[rr] > jend) jend = seen[rr];
    mrow[rr] = mk ? mk + bi * mst.s[0] + h * mst.s[1] + i * mst.s[2] : 0;
  }}
  long long j0 = (long long)split * chunk, j1 = min(jend, j0 + chunk);
  float mx[R], l[R], acc[R][DVPL];
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    mx[rr] = -INFINITY; l[rr] = 0.f;
    #pragma unroll
    for (int t = 0; t < DVPL; t++) acc[rr][t] = 0.f;
  }}
  /* KEYS keys per step: all their loads are in flight before any is used. */
  for (long long j2 = j0 + warp; j2 < j1; j2 += KEYS * WARPS) {{
   float kv2[KEYS][DPL], vv2[KEYS][DVPL];
   #pragma unroll
   for (int u = 0; u < KEYS; u++) {{
    long long j = j2 + u * WARPS;
    bool ok = j < j1;
    const {ks}* kp = k + bi * kst.s[0] + kh * kst.s[1] + j * kst.s[2];
    const {vs}* vp = v + bi * vst.s[0] + kh * vst.s[1] + j * vst.s[2];
    #pragma unroll
    for (int t = 0; t < DPL; t++) {{
      int c = lane + 32 * t;
      kv2[u][t] = (ok && c < D) ? {lk_} : 0.f;
    }}
    #pragma unroll
    for (int t = 0; t < DVPL; t++) {{
      int c = lane + 32 * t;
      vv2[u][t] = (ok && c < DV) ? {lv_} : 0.f;
    }}
   }}
   #pragma unroll
   for (int u = 0; u < KEYS; u++) {{
    long long j = j2 + u * WARPS;
    if (j < j1) {{
    /* Every row's score first, their shuffles interleaved, then branch-free updates: the
       rows' dependency chains overlap instead of running one after another. */
    float scs[R];
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float sc = 0.f;
      #pragma unroll
      for (int t = 0; t < DPL; t++) sc += qr[rr][t] * kv2[u][t];
      scs[rr] = sc;
    }}
    #pragma unroll
    for (int o = 16; o > 0; o /= 2) {{
      #pragma unroll
      for (int rr = 0; rr < R; rr++) scs[rr] += __shfl_xor_sync(0xffffffffu, scs[rr], o);
    }}
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float sc = scs[rr];
      bool ok = j < seen[rr];
      {mask_term}
      sc = ok ? sc : -INFINITY;
      float nm = fmaxf(mx[rr], sc);
      float corr = umx_w(mx[rr], nm), p = sc == -INFINITY ? 0.f : expf(sc - nm);
      l[rr] = l[rr] * corr + p;
      #pragma unroll
      for (int t = 0; t < DVPL; t++) acc[rr][t] = acc[rr][t] * corr + p * vv2[u][t];
      mx[rr] = nm;
    }}
    }}
   }}
  }}
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    if (lane == 0) {{ sh_m[warp][rr] = mx[rr]; sh_l[warp][rr] = l[rr]; }}
    #pragma unroll
    for (int t = 0; t < DVPL; t++) {{
      int c = lane + 32 * t;
      if (c < DV) sh_acc[warp][rr][c] = acc[rr][t];
    }}
  }}
  __syncthreads();
  for (int idx = threadIdx.x; idx < R * DV; idx += blockDim.x) {{
    int rr = idx / DV, c = idx % DV;
    if (!live[rr]) continue;
    float M = -INFINITY;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) M = fmaxf(M, sh_m[w][rr]);
    float L = 0.f, A = 0.f;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) {{
      float wt = umx_w(sh_m[w][rr], M);
      L += sh_l[w][rr] * wt;
      A += sh_acc[w][rr][c] * wt;
    }}
    long long row = hrow[rr];
{finish}  }}
}}
{merge}
"#,
            lq_ = load(q.dtype, "qp[c]", "float"),
            lk_ = load(k.dtype, "kp[c]", "float"),
            lv_ = load(v.dtype, "vp[c]", "float"),
            seen = if causal {
                "min(lk, max(0LL, i + lk - lq + 1))"
            } else {
                "lk"
            },
            finish = finish_source(&sink_load, out.dtype, false),
            merge = merge_source(os, ss, dv, &sink_load, out.dtype, false),
        )
    };
    let make = || match vec {
        Some(vec) => vector_source(&VectorAttention {
            dtype: q.dtype,
            out: out.dtype,
            mask: m.map(|m| m.dtype),
            sinks: sd,
            r,
            d,
            vec,
            warps,
            causal,
        }),
        None => make(),
    };
    let f = function_for(&key, make, "umx_attn")?;
    let scratch = if splits > 1 {
        Some(crate::storage::output(n_rows * splits * (dv + 2) * 4)?)
    } else {
        None
    };
    let part_ptr = scratch.as_ref().map_or(0, |s| s.1);
    let m_ptr = match m {
        Some(m) => input_ptr(m)?,
        None => 0,
    };
    let s_ptr = match &s {
        Some(s) => input_ptr(s)?,
        None => 0,
    };
    let s4 = |a: [i64; 4]| -> Vec<u8> { a.iter().flat_map(|w| w.to_le_bytes()).collect() };
    let mst = m.map_or([0; 4], strides4);
    let mut args = Args::default();
    args.push(out_ptr)
        .push(part_ptr)
        .push(input_ptr(&q)?)
        .push(input_ptr(&k)?)
        .push(input_ptr(&v)?)
        .push(m_ptr)
        .push(s_ptr)
        .push(hq as i64)
        .push(hk as i64)
        .push(lq as i64)
        .push(lk as i64)
        .push(group as i64)
        .push(row_blocks as i64)
        .push(chunk as i64)
        .push(splits as i32)
        .push(scale)
        .push(mst[3]);
    args.push_bytes(&s4(strides4(&q)))
        .push_bytes(&s4(strides4(&k)))
        .push_bytes(&s4(strides4(&v)))
        .push_bytes(&s4(mst));
    let blocks = base_blocks * splits;
    // With profiling on, each kernel's own time too (inside the primitive's).
    let start = crate::profile::mark()?;
    launch(
        f,
        blocks as u32,
        (warps * 32) as u32,
        0,
        &mut args.pointers(),
    )?;
    if start.is_some() {
        let attr = |a| {
            let mut v = 0i32;
            // SAFETY: a loaded function and one out-parameter.
            unsafe { cudarc::driver::sys::cuFuncGetAttribute(&mut v, a, f) };
            v
        };
        use cudarc::driver::sys::CUfunction_attribute::*;
        let label = format!(
            " attention: {blocks} blocks over {splits} splits; {} registers, {} B local, {} B shared",
            attr(CU_FUNC_ATTRIBUTE_NUM_REGS),
            attr(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
            attr(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
        );
        crate::profile::span(label, start)?;
    }
    if splits > 1 {
        let start = crate::profile::mark()?;
        // The merge kernel is in the same source (so the same module).
        let merge = function_for(&format!("{key}|merge"), make, "umx_attn_merge")?;
        let mut args = Args::default();
        args.push(out_ptr)
            .push(part_ptr)
            .push(s_ptr)
            .push(n_rows as i64)
            .push(hq as i64)
            .push(lq as i64)
            .push(splits as i32);
        let threads = dv.next_multiple_of(32).clamp(32, 1024) as u32;
        let blocks = n_rows.min(g.sm_count as usize * 16) as u32;
        launch(merge, blocks, threads, 0, &mut args.pointers())?;
        crate::profile::span(format!(" attention merge: {blocks} blocks"), start)?;
    }
    // The scratch goes back to the pool; the stream orders its reuse after these launches.
    drop(scratch);
    Ok(Some(vec![result]))
}

/// Warps of a block of the vectorised decoding kernel.
const VECTOR_WARPS: usize = 4;
/// Query rows a block of the vectorised decoding kernel serves: each lane holds a vector of
/// every row's query and sums (eight rows of bfloat16 took all 255 registers and spilled).
const VECTOR_ROWS: usize = 4;

/// The elements of one 16-byte vector when queries, keys and values share a dtype, their
/// head dims are equal and split over a power of two of lanes in 16-byte vectors, and every
/// row starts 16-byte aligned: the vectorised decoding kernel's case.
fn vector_width(q: &ArrayData, k: &ArrayData, v: &ArrayData) -> Result<Option<usize>> {
    let dt = q.dtype;
    if k.dtype != dt
        || v.dtype != dt
        || !matches!(dt, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
    {
        return Ok(None);
    }
    let (d, dv) = (q.shape[3], v.shape[3]);
    let vec = 16 / dt.size();
    if d != dv || d % vec != 0 || !(d / vec).is_power_of_two() || d / vec > 32 {
        return Ok(None);
    }
    for a in [q, k, v] {
        let p = input_ptr(a)?;
        let bytes = |s: isize| (s * dt.size() as isize) % 16 == 0;
        if p % 16 != 0 || !a.strides[..3].iter().all(|&s| bytes(s)) {
            return Ok(None);
        }
    }
    Ok(Some(vec))
}

/// What the vectorised decoding kernel's source depends on.
struct VectorAttention {
    dtype: Dtype,
    out: Dtype,
    mask: Option<Dtype>,
    sinks: Dtype,
    r: usize,
    d: usize,
    vec: usize,
    warps: usize,
    causal: bool,
}

/// The decoding attention kernel for 16-byte rows (see [`vector_width`]), with the same
/// parameters as the general one: a key row is split over `d / vec` lanes, one 16-byte vector
/// each, so a warp reads `32 / (d / vec)` keys per load and each lane keeps `KIF` keys' loads
/// in flight; the scores reduce over the key's lanes only, and one running maximum covers a
/// step's keys (one rescaling a step, not one a key). The lane groups' partial sums meet in
/// shared memory. Its dot products and weighted sums are written as fused multiply-adds
/// (`fmaf`: umx compiles kernels with `--fmad=false`, so nothing is contracted unless the
/// source says so): fewer instructions in a kernel whose time is its warps' instruction
/// chains (a TinyLlama decoding step, with the matrix-vector kernel's, 1.120 -> 1.106 ms on
/// the H100).
fn vector_source(a: &VectorAttention) -> String {
    let t = storage_type(a.dtype).unwrap_or("void");
    let os = storage_type(a.out).unwrap_or("void");
    let ms = a
        .mask
        .map_or("float", |m| storage_type(m).unwrap_or("void"));
    let ss = storage_type(a.sinks).unwrap_or("void");
    let unpack = match a.dtype {
        Dtype::Bfloat16 => {
            "const unsigned int* w = (const unsigned int*)&x;\n  #pragma unroll\n  for (int i = 0; i < 4; i++) { f[2 * i] = __uint_as_float(w[i] << 16); f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }"
        }
        Dtype::Float16 => {
            "const unsigned int* w = (const unsigned int*)&x;\n  #pragma unroll\n  for (int i = 0; i < 4; i++) { f[2 * i] = umx_h2f((unsigned short)(w[i] & 0xffffu)); f[2 * i + 1] = umx_h2f((unsigned short)(w[i] >> 16)); }"
        }
        _ => {
            "f[0] = __uint_as_float(x.x); f[1] = __uint_as_float(x.y); f[2] = __uint_as_float(x.z); f[3] = __uint_as_float(x.w);"
        }
    };
    // A float mask adds natural logits: base 2 like the scores.
    let mask_term = match a.mask {
        Some(Dtype::Bool) => "ok = ok && (mrow[rr][(j0 + j) * ms3] != 0);".to_string(),
        Some(md) => format!(
            "if (ok) s += {} * 1.4426950408889634f;",
            load(md, "mrow[rr][(j0 + j) * ms3]", "float")
        ),
        None => String::new(),
    };
    // Fewer keys in flight when the rows' registers are many.
    let kif = if a.r * a.vec >= 64 { 2 } else { 4 };
    let sink_load = load(a.sinks, "sinks[h]", "float");
    let merge = merge_source(os, ss, a.d, &sink_load, a.out, true);
    let seen = if a.causal {
        "min(lk, max(0LL, i + lk - lq + 1))"
    } else {
        "lk"
    };
    let finish = finish_source(&sink_load, a.out, true);
    let (r, d, vec, warps) = (a.r, a.d, a.vec, a.warps);
    format!(
        r#"{HEADER}{INF}
#define R {r}
#define D {d}
#define DV {d}
#define VEC {vec}
#define LPK (D / VEC)
#define GPW (32 / LPK)
#define WARPS {warps}
#define G (WARPS * GPW)
#define KIF {kif}
struct umx_s4 {{ long long s[4]; }};
UMX_FN float umx_ex2(float x) {{ float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }}
/* Merges running (m, l) pairs of base-2 logits: the weight of a part with maximum `m`
   against `M`. */
UMX_FN float umx_w(float m, float M) {{ return m == -INFINITY ? 0.f : umx_ex2(m - M); }}
struct alignas(16) umx_u4 {{ unsigned int x, y, z, w; }};
UMX_FN void umx_unpack(umx_u4 x, float* f) {{
  {unpack}
}}
extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_attn({os}* out, float* part, const {t}* q, const {t}* k,
    const {t}* v, const {ms}* mk, const {ss}* sinks, long long hq, long long hk, long long lq,
    long long lk, long long group, long long row_blocks, long long chunk, int splits,
    float scale, long long ms3, umx_s4 qst, umx_s4 kst, umx_s4 vst, umx_s4 mst) {{
  __shared__ float sh_m[G][R], sh_l[G][R], sh_acc[G][R][D];
  long long blk = blockIdx.x;
  int split = (int)(blk % splits); blk /= splits;
  long long rb = blk % row_blocks; blk /= row_blocks;
  long long kh = blk % hk, bi = blk / hk;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int sub = lane % LPK, gid = warp * GPW + lane / LPK;
  float qr[R][VEC];
  long long seen[R];
  const {ms}* mrow[R];
  long long jend = 0;
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    long long g = rb * R + rr;
    bool live = g < group * lq;
    long long h = kh * group + (live ? g / lq : 0), i = live ? g % lq : 0;
    umx_unpack(*(const umx_u4*)(q + bi * qst.s[0] + h * qst.s[1] + i * qst.s[2] + sub * VEC), qr[rr]);
    /* Scores as base-2 logits: exp(x) = 2^(x log2 e). */
    #pragma unroll
    for (int e = 0; e < VEC; e++) qr[rr][e] *= scale * 1.4426950408889634f;
    seen[rr] = live ? {seen} : 0;
    if (seen[rr] > jend) jend = seen[rr];
    mrow[rr] = mk ? mk + bi * mst.s[0] + h * mst.s[1] + i * mst.s[2] : 0;
  }}
  /* Keys of this split counted from its first (32-bit offsets in the loop). */
  long long j0 = (long long)split * chunk, j1 = min(jend, j0 + chunk);
  int n = (int)max(0LL, j1 - j0), lim[R];
  float mx[R], l[R], acc[R][VEC];
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    lim[rr] = (int)max(0LL, min(seen[rr], j1) - j0);
    mx[rr] = -INFINITY; l[rr] = 0.f;
    #pragma unroll
    for (int e = 0; e < VEC; e++) acc[rr][e] = 0.f;
  }}
  const {t}* kb = k + bi * kst.s[0] + kh * kst.s[1] + j0 * kst.s[2] + sub * VEC;
  const {t}* vb = v + bi * vst.s[0] + kh * vst.s[1] + j0 * vst.s[2] + sub * VEC;
  for (int jb = 0; jb < n; jb += G * KIF) {{
    umx_u4 kv[KIF], vv[KIF];
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{
      int j = jb + gid + u * G;
      if (j < n) {{
        kv[u] = *(const umx_u4*)(kb + j * kst.s[2]);
        vv[u] = *(const umx_u4*)(vb + j * vst.s[2]);
      }} else {{
        kv[u] = umx_u4{{0u, 0u, 0u, 0u}};
        vv[u] = kv[u];
      }}
    }}
    /* Every lane takes part in the shuffles (keys past the end score zero, then -inf). */
    float sc[KIF][R];
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{
      float kf[VEC];
      umx_unpack(kv[u], kf);
      #pragma unroll
      for (int rr = 0; rr < R; rr++) {{
        float s = 0.f;
        #pragma unroll
        for (int e = 0; e < VEC; e++) s = fmaf(qr[rr][e], kf[e], s);
        sc[u][rr] = s;
      }}
    }}
    #pragma unroll
    for (int o = LPK / 2; o > 0; o /= 2) {{
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        #pragma unroll
        for (int rr = 0; rr < R; rr++) sc[u][rr] += __shfl_xor_sync(0xffffffffu, sc[u][rr], o);
      }}
    }}
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float nm = mx[rr];
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        int j = jb + gid + u * G;
        float s = sc[u][rr];
        bool ok = j < lim[rr];
        {mask_term}
        sc[u][rr] = ok ? s : -INFINITY;
        nm = fmaxf(nm, sc[u][rr]);
      }}
      /* With every score so far masked, any finite reference keeps the weights zero. */
      float ref = nm == -INFINITY ? 0.f : nm;
      float corr = umx_ex2(mx[rr] - ref);
      l[rr] *= corr;
      #pragma unroll
      for (int e = 0; e < VEC; e++) acc[rr][e] *= corr;
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        float p = umx_ex2(sc[u][rr] - ref);
        sc[u][rr] = p;
        l[rr] += p;
      }}
      mx[rr] = nm;
    }}
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{
      float vf[VEC];
      umx_unpack(vv[u], vf);
      #pragma unroll
      for (int rr = 0; rr < R; rr++) {{
        #pragma unroll
        for (int e = 0; e < VEC; e++) acc[rr][e] = fmaf(sc[u][rr], vf[e], acc[rr][e]);
      }}
    }}
  }}
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    if (sub == 0) {{ sh_m[gid][rr] = mx[rr]; sh_l[gid][rr] = l[rr]; }}
    #pragma unroll
    for (int e = 0; e < VEC; e++) sh_acc[gid][rr][sub * VEC + e] = acc[rr][e];
  }}
  __syncthreads();
  for (int idx = threadIdx.x; idx < R * D; idx += blockDim.x) {{
    int rr = idx / D, c = idx % D;
    long long g = rb * R + rr;
    if (g >= group * lq) continue;
    long long row = (bi * hq + kh * group + g / lq) * lq + g % lq;
    float M = -INFINITY;
    #pragma unroll
    for (int w = 0; w < G; w++) M = fmaxf(M, sh_m[w][rr]);
    float L = 0.f, A = 0.f;
    #pragma unroll
    for (int w = 0; w < G; w++) {{
      float wt = umx_w(sh_m[w][rr], M);
      L = fmaf(sh_l[w][rr], wt, L);
      A = fmaf(sh_acc[w][rr][c], wt, A);
    }}
{finish}  }}
}}
{merge}
"#
    )
}

/// The end of both decoding kernels, for output column `c` of row `row` once the block's
/// running maximum `M`, weight sum `L` and weighted value `A` are combined: with one split,
/// the sink joins and the output is written; else the partial result goes to `part` for the
/// merge. With `log2`, `M` is a base-2 logit (the vectorised kernel's).
fn finish_source(sink_load: &str, out: Dtype, log2: bool) -> String {
    let store_y = store(out, "y");
    let (exp, sink_scale) = if log2 {
        ("umx_ex2", " * 1.4426950408889634f")
    } else {
        ("expf", "")
    };
    format!(
        r#"    if (splits == 1) {{
      if (sinks) {{
        long long h = (row / lq) % hq;
        float sk = {sink_load}{sink_scale};
        float M2 = fmaxf(M, sk);
        float wt = umx_w(M, M2);
        L = L * wt + {exp}(sk - M2);
        A *= wt;
      }}
      float y = A / L;
      out[row * DV + c] = {store_y};
    }} else {{
      float* pp = part + (row * splits + split) * (DV + 2);
      if (c == 0) {{ pp[0] = M; pp[1] = L; }}
      pp[2 + c] = A;
    }}
"#
    )
}

/// The kernel merging the key splits' partial results of one row (running maximum, weight
/// sum, weighted values): a thread per output column, one pass over the splits sixteen at a
/// time with all their loads in flight, merged online (each group of splits rescales what
/// came before to its new maximum). With `log2`, the partial maxima are base-2 logits (the
/// vectorised kernel's), and a sink's natural logit is converted.
fn merge_source(os: &str, ss: &str, dv: usize, sink_load: &str, out: Dtype, log2: bool) -> String {
    let store_y = store(out, "y");
    let (exp, sink_scale) = if log2 {
        ("umx_ex2", "1.4426950408889634f")
    } else {
        ("expf", "1.f")
    };
    format!(
        r#"
/* The weight of a part with maximum `m` against the reference `M` (0 for an empty part). */
UMX_FN float umx_mw(float m, float M) {{ return m == -INFINITY ? 0.f : {exp}(m - M); }}
extern "C" __global__ void umx_attn_merge({os}* out, const float* part, const {ss}* sinks,
    long long rows, long long hq, long long lq, int splits) {{
  const int W = {dv} + 2;
  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {{
    const float* pp = part + row * splits * W;
    long long h = (row / lq) % hq;
    for (int c = threadIdx.x; c < {dv}; c += blockDim.x) {{
      float M = -INFINITY, L = 0.f, A = 0.f;
      for (int s0 = 0; s0 < splits; s0 += 16) {{
        float mv[16], lv[16], av[16];
#pragma unroll
        for (int u = 0; u < 16; u++) {{
          bool in = s0 + u < splits;
          const float* ps = pp + (s0 + u) * W;
          mv[u] = in ? ps[0] : -INFINITY;
          lv[u] = in ? ps[1] : 0.f;
          av[u] = in ? ps[2 + c] : 0.f;
        }}
        float nM = M;
#pragma unroll
        for (int u = 0; u < 16; u++) nM = fmaxf(nM, mv[u]);
        float ref = nM == -INFINITY ? 0.f : nM;
        float k = umx_mw(M, ref);
        L *= k;
        A *= k;
#pragma unroll
        for (int u = 0; u < 16; u++) {{
          float w = umx_mw(mv[u], ref);
          L += lv[u] * w;
          A += av[u] * w;
        }}
        M = nM;
      }}
      if (sinks) {{
        float sk = {sink_load} * {sink_scale};
        float nM = fmaxf(M, sk);
        float k = umx_mw(M, nM);
        L = L * k + {exp}(sk - nM);
        A *= k;
      }}
      float y = A / L;
      out[row * {dv} + c] = {store_y};
    }}
  }}
}}
"#
    )
}

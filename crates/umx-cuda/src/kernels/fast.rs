//! The fast primitives (`umx_core::fast`) on the GPU.
//!
//! - Rows (rms_norm, layer_norm, softmax): one block per row. The row is loaded once into
//!   registers with 16-byte vector loads (the norms keep it in its stored form, which for
//!   2-byte dtypes halves the registers and lets more rows share an SM: rms_norm went from
//!   2250 to 2405 GB/s on an H200), reduced with warp shuffles and a shared-memory step, and
//!   written once: one read and one write of the data. Rows too long for registers are read
//!   again from the cache for each pass.
//! - Rope: a thread per feature pair (and per passed-through feature), any input strides.
//! - Attention for short query blocks (decoding), with masks or sinks: `attention.rs`.
//! - SwiGLU of a few rows (`swiglu_linear`), a decoding step's q/k/v product with its rope
//!   and cache writes (`linear_rope_cache_write`), each with an RMS norm before it: the
//!   matrix-vector kernel (`gemv.rs`); their quantized forms, the quantized kernels
//!   (`quantized.rs`).
//! - Attention for longer query blocks in 16-bit floats: flash attention (`flash.rs`).
//!
//! Everything computes in float32 and rounds once, as the CPU kernels and the fallback do.

use super::flash::{flash, flash_backward};
use super::source::{Args, HEADER, ROTATE, load, storage_type, store};
use super::{first_out, row_major};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr};
use umx_core::device::OutSpec;
use umx_core::primitives::{FastOp, Projection};
use umx_core::{ArrayData, Dtype, Result};

type Outs = Result<Option<Vec<ArrayData>>>;

/// Leading axes a strided rope input may have (more: copied first).
const MAX_DIMS: usize = 8;

pub fn eval(op: &FastOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    if let FastOp::CudaKernel(k) = op {
        return super::custom::eval(k, inputs);
    }
    let out = first_out(op.name(), outputs)?;
    // A packed weight is uint32: the quantized kernels check their operands.
    if !quantized(op) && (!inputs.iter().all(|a| supported(a.dtype)) || !supported(out.dtype)) {
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
        FastOp::RopeCacheWrite { .. } => rope_cache(op, inputs, outputs, None),
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
        } => super::attention::attention(inputs, out, scale, causal, mask, sinks),
        FastOp::AttentionVjp { scale, causal } => flash_backward(inputs, scale, causal),
        FastOp::Linear => match inputs {
            [x, w] => linear(x, w, outputs),
            _ => Ok(None),
        },
        FastOp::SwigluLinear => match inputs {
            [x, w] => Ok(super::gemv::swiglu(x, w, &out.shape, None)?.map(|y| vec![y])),
            _ => Ok(None),
        },
        FastOp::SwigluQuantizedLinear { group_size, bits } => {
            super::quantized::swiglu(inputs, group_size, bits, out)
        }
        FastOp::QuantizedLinearAdd { group_size, bits } => {
            super::quantized::linear_add(inputs, group_size, bits, out)
        }
        FastOp::CudaKernel(_) => Ok(None),
        FastOp::NormPrologue { eps, ref op } => norm_prologue(eps, op, inputs, outputs),
    }
}

/// Whether `op` takes a quantized weight.
fn quantized(op: &FastOp) -> bool {
    match op {
        FastOp::SwigluQuantizedLinear { .. }
        | FastOp::QuantizedLinearAdd { .. }
        | FastOp::RopeCacheWrite {
            project: Projection::Quantized { .. },
            ..
        } => true,
        FastOp::NormPrologue { op, .. } => quantized(op),
        _ => false,
    }
}

/// [`FastOp::NormPrologue`]: in the matrix-vector kernel's pass where it takes the op and the
/// norm's weight (its lanes sum the row's squares as they take it into the products:
/// `gemv.rs`'s norm form), else the norm's kernel and then the op.
fn norm_prologue(eps: f32, op: &FastOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let (Some((weight, rest)), Some(out)) = (inputs.split_last(), outputs.first()) else {
        return Ok(None);
    };
    let norm = super::gemv::Norm { weight, eps };
    match (op, rest) {
        (FastOp::SwigluLinear, [x, w]) => {
            if let Some(y) = super::gemv::swiglu(x, w, &out.shape, Some(&norm))? {
                return Ok(Some(vec![y]));
            }
        }
        (
            FastOp::RopeCacheWrite {
                project: Projection::Linear,
                ..
            },
            _,
        ) => {
            return rope_cache(op, rest, outputs, Some(&norm));
        }
        (FastOp::Linear, [x, w]) => {
            if let Some(y) = super::gemv::linear(x, w, &out.shape, &norm)? {
                return Ok(Some(vec![y]));
            }
        }
        _ => {}
    }
    let Some(inner) = normalised(rest, &norm)? else {
        return Ok(None);
    };
    eval(op, &inner, outputs)
}

/// [`FastOp::Linear`]: `x @ w.T` as the matrix product of `x` and `w`'s transpose (a view),
/// which takes the matrix-vector kernel for a few rows and cuBLASLt otherwise.
fn linear(x: &ArrayData, w: &ArrayData, outputs: &[OutSpec]) -> Outs {
    if w.shape.len() != 2 {
        return Ok(None);
    }
    let mut wt = w.clone();
    wt.shape.swap(0, 1);
    wt.strides.swap(0, 1);
    let op = umx_core::primitives::MatmulOp::Matmul;
    super::matmul::eval(&op, &[x.clone(), wt], outputs)
}

/// [`FastOp::RopeCacheWrite`], with `norm` (for its projecting form) normalising `x` in the
/// product's pass.
fn rope_cache(
    op: &FastOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
    norm: Option<&super::gemv::Norm>,
) -> Outs {
    let FastOp::RopeCacheWrite {
        project,
        heads,
        kv_heads,
        dims,
        traditional,
        base,
        scale,
        freqs,
    } = *op
    else {
        return Ok(None);
    };
    let rotation = Rotation {
        dims,
        traditional,
        base,
        scale,
        freqs,
    };
    match project {
        Projection::None => match inputs {
            [qkv, rest @ ..] => rope_cache_write(qkv, rest, outputs, heads, kv_heads, &rotation),
            [] => Ok(None),
        },
        Projection::Linear => {
            linear_rope_cache_write(inputs, outputs, heads, kv_heads, &rotation, norm)
        }
        Projection::Quantized { group_size, bits } => {
            let q = Quantized { group_size, bits };
            quantized_rope_cache_write(inputs, outputs, heads, kv_heads, &rotation, q)
        }
    }
}

/// `inputs` with the first RMS-normalised by `norm` (its kernel), or `None` where that kernel
/// does not take it.
fn normalised(inputs: &[ArrayData], norm: &super::gemv::Norm) -> Result<Option<Vec<ArrayData>>> {
    let x = &inputs[0];
    let spec = OutSpec {
        shape: x.shape.clone(),
        dtype: x.dtype,
    };
    let args = [x.clone(), norm.weight.clone()];
    let Some(mut y) = rows(Row::Rms, norm.eps, &args, true, false, &spec)? else {
        return Ok(None);
    };
    let mut inner = inputs.to_vec();
    inner[0] = y.remove(0);
    Ok(Some(inner))
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
pub(super) const INF: &str = "#define INFINITY __int_as_float(0x7f800000)\n";

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
    let key = format!(
        "fast-rope|{:?}|{:?}|{dims}|{traditional}|{freqs}",
        x.dtype, out.dtype
    );
    let f = function_for(
        &key,
        || rope_source(x.dtype, out.dtype, dims, traditional, freqs),
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

/// The source of `umx_rope` (see [`rope`]): input `xd`, output `od`, `dims` rotated
/// features, neighbours paired (`traditional`) or halves, frequencies given or from the base.
fn rope_source(xd: Dtype, od: Dtype, dims: usize, traditional: bool, freqs: bool) -> String {
    let half = dims / 2;
    let xs = storage_type(xd).unwrap_or("void");
    let os = storage_type(od).unwrap_or("void");
    let lx = |v: &str| load(xd, v, "float");
    format!(
        r#"{HEADER}{ROTATE}
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
      long long a = {a}, b = {b};
      float ya, yb;
      umx_rotate({xa}, {xb}, pos * inv, &ya, &yb);
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
        ya = store(od, "ya"),
        yb = store(od, "yb"),
        yj = store(od, &lx("x[base + j * last]")),
    )
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
    qkv: &ArrayData,
    rest: &[ArrayData],
    outputs: &[OutSpec],
    heads: usize,
    kv_heads: usize,
    rot: &Rotation,
) -> Outs {
    let Some(qkv) = row_major(qkv)? else {
        return Ok(None);
    };
    let Some(CacheWrite {
        offset,
        freqs,
        q: (q, qp),
        keys: (keys, kp),
        values: (values, vp),
    }) = cache_write(rest, outputs, rot)?
    else {
        return Ok(None);
    };
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

/// The operands a rope and cache write takes besides `qkv` (or its product's inputs), and
/// its outputs, each with its device pointer.
struct CacheWrite {
    /// The int32 offset and the float32 `freqs` (where the rotation has them), row-major.
    offset: ArrayData,
    freqs: Option<ArrayData>,
    /// Fresh queries, and the caches made writable: updated in place where the op holds
    /// their buffers' last handles (`rest` is borrowed for that: see `writable_copy`), else
    /// copies.
    q: (ArrayData, u64),
    keys: (ArrayData, u64),
    values: (ArrayData, u64),
}

/// [`CacheWrite`] of `rest` (the offset, the caches, then `freqs` when the rotation has
/// them); `None` where a kernel does not take them.
fn cache_write(
    rest: &[ArrayData],
    outputs: &[OutSpec],
    rot: &Rotation,
) -> Result<Option<CacheWrite>> {
    let ([offset, keys, values, ..], Some(q_spec)) = (rest, outputs.first()) else {
        return Ok(None);
    };
    let Some(offset) = row_major(offset)? else {
        return Ok(None);
    };
    let freqs = match (rot.freqs, rest.get(3)) {
        (true, Some(f)) => match row_major(f)? {
            Some(f) => Some(f),
            None => return Ok(None),
        },
        (true, None) => return Ok(None),
        (false, _) => None,
    };
    let Some(keys) = super::indexing::writable_copy(keys)? else {
        return Ok(None);
    };
    let Some(values) = super::indexing::writable_copy(values)? else {
        return Ok(None);
    };
    Ok(Some(CacheWrite {
        offset,
        freqs,
        q: fresh(&q_spec.shape, q_spec.dtype)?,
        keys,
        values,
    }))
}

/// The launch of a projecting rope form for `rest` (as [`cache_write`] takes it) and `l`
/// positions, and the outputs it writes (queries, keys, values). `None` where the operands do
/// not fit a launch.
fn rope_launch(
    rest: &[ArrayData],
    outputs: &[OutSpec],
    heads: usize,
    kv_heads: usize,
    l: usize,
    rot: &Rotation,
) -> Result<Option<(super::gemv::RopeLaunch, Vec<ArrayData>)>> {
    let Some(CacheWrite {
        offset,
        freqs,
        q: (q, qp),
        keys: (keys, kp),
        values: (values, vp),
    }) = cache_write(rest, outputs, rot)?
    else {
        return Ok(None);
    };
    let (capacity, d) = (keys.shape[2], keys.shape[3]);
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
            -rot.base.ln() / (d / 2) as f32
        },
    };
    Ok(Some((launch, vec![q, keys, values])))
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
    norm: Option<&super::gemv::Norm>,
) -> Outs {
    let [x, w, rest @ ..] = inputs else {
        return Ok(None);
    };
    let [_, keys, ..] = rest else {
        return Ok(None);
    };
    let (b, l) = (x.shape[0], x.shape[1]);
    if rot.dims == keys.shape[3] {
        // Whether the kernel fits is known before anything is copied or launched.
        if let (Some(x), Some(w)) = (row_major(x)?, row_major(w)?)
            && super::gemv::rope_fits(&x, &w, norm)?
            && let Some((launch, outs)) = rope_launch(rest, outputs, heads, kv_heads, l, rot)?
        {
            super::gemv::rope(&x, &w, &launch, norm)?;
            return Ok(Some(outs));
        }
    }
    // The norm, the product (w viewed as its transpose), then the rope and cache kernel.
    let x = match norm {
        Some(n) => match normalised(std::slice::from_ref(x), n)? {
            Some(mut y) => y.remove(0),
            None => return Ok(None),
        },
        None => x.clone(),
    };
    let spec = OutSpec {
        shape: vec![b, l, w.shape[0]],
        dtype: x.dtype,
    };
    let Some(qkv) = linear(&x, w, &[spec])? else {
        return Ok(None);
    };
    rope_cache_write(&qkv[0], rest, outputs, heads, kv_heads, rot)
}

/// A quantized projection's format.
struct Quantized {
    group_size: usize,
    bits: usize,
}

/// `fast::quantized_linear_rope_cache_write`: the 4-bit kernel's rope form where every
/// feature rotates and it takes the operands (one kernel); else the quantized product, then
/// [`rope_cache_write`]'s kernel.
fn quantized_rope_cache_write(
    inputs: &[ArrayData],
    outputs: &[OutSpec],
    heads: usize,
    kv_heads: usize,
    rot: &Rotation,
    Quantized { group_size, bits }: Quantized,
) -> Outs {
    let [x, w, _, _, rest @ ..] = inputs else {
        return Ok(None);
    };
    let [_, keys, ..] = rest else {
        return Ok(None);
    };
    let (b, l) = (x.shape[0], x.shape[1]);
    if rot.dims == keys.shape[3]
        && let Some(ops) = super::quantized::rope_operands(&inputs[..4], bits)?
        && let Some((launch, outs)) = rope_launch(rest, outputs, heads, kv_heads, l, rot)?
    {
        super::quantized::rope(&ops, group_size, &launch)?;
        return Ok(Some(outs));
    }
    let op = umx_core::primitives::QuantOp::QuantizedMatmul {
        transpose: true,
        group_size,
        bits,
    };
    let spec = OutSpec {
        shape: vec![b, l, w.shape[0]],
        dtype: x.dtype,
    };
    let Some(qkv) = super::quantized::eval(&op, &inputs[..4], &[spec])? else {
        return Ok(None);
    };
    rope_cache_write(&qkv[0], rest, outputs, heads, kv_heads, rot)
}

/// The source of `umx_rope_cache` for `dtype` and `rot` (see [`rope_cache_write`]).
fn rope_cache_source(dtype: Dtype, rot: &Rotation) -> String {
    let st = storage_type(dtype).unwrap_or("void");
    let (dims, half) = (rot.dims, rot.dims / 2);
    let lx = |v: &str| load(dtype, v, "float");
    format!(
        r#"{HEADER}{ROTATE}{flag}
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
      long long a = {a}, b = {b};
      float ya, yb;
      umx_rotate({xa}, {xb}, pos * inv, &ya, &yb);
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
        ya = store(dtype, "ya"),
        yb = store(dtype, "yb"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rope kernels' sources (the rope op's and `rope_cache_write`'s, every dtype, halves
    /// and neighbours, frequencies given or from the base, whole and partial rotation) have
    /// balanced braces and parentheses and name their kernel; with
    /// `UMX_DUMP_ROPE_SOURCES=dir` they are also written there (to compile them with NVRTC
    /// where no GPU is at hand).
    #[test]
    fn rope_sources_are_well_formed() {
        let dump = std::env::var("UMX_DUMP_ROPE_SOURCES").ok();
        let mut i = 0;
        for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
            for (traditional, freqs, dims) in [(false, false, 64), (true, true, 32)] {
                let rot = Rotation {
                    dims,
                    traditional,
                    base: 1e4,
                    scale: 1.0,
                    freqs,
                };
                for (name, src) in [
                    (
                        "umx_rope(",
                        rope_source(dtype, dtype, dims, traditional, freqs),
                    ),
                    ("umx_rope_cache(", rope_cache_source(dtype, &rot)),
                ] {
                    let count = |c: char| src.chars().filter(|&x| x == c).count();
                    assert_eq!(count('{'), count('}'), "{name} {i}");
                    assert_eq!(count('('), count(')'), "{name} {i}");
                    assert!(src.contains(name), "{name} {i}");
                    if let Some(dir) = &dump {
                        std::fs::write(format!("{dir}/rope_{i}.cu"), &src).unwrap();
                    }
                    i += 1;
                }
            }
        }
    }
}

//! Reductions: sum, prod, max, min, mean, all, any over any axes.
//!
//! Every reduction becomes one of two shapes over a contiguous input: rows `(outer, K)` where
//! the reduced axes are the trailing ones (one block per row, or several per row plus a second
//! pass when there are few long rows, as for a reduction over everything: warp shuffles, then
//! shared memory across warps, 16-byte loads where aligned), or columns `(outer, K, inner)`
//! where they sit before kept axes (one thread per output, coalesced over `inner`). Reduced
//! axes that are not one run are first gathered to the end by a transposing copy.
//!
//! Accumulation follows the CPU kernels: float16 and bfloat16 in float32, small integers in
//! int32/uint32 for sum and prod (MLX's output dtypes), NaN propagating through max and min,
//! and the mean as the sum times `1/n`. Arg-reductions are still on the fallback.

use super::contiguous;
use super::source::{Args, HEADER, grid_for, load, storage_type, store};
use crate::compile::{function, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::codegen::{PRELUDE, c_compute_type};
use umx_core::primitives::reduce::{ReduceKind, ReduceOp};
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

const THREADS: u32 = 256;
/// Elements one block of a split row reduces (before the second pass combines the parts).
const SPLIT_CHUNK: usize = 1 << 16;

/// Combines two accumulator values (C expressions); the flag says float semantics.
type Comb = fn(&str, &str, bool) -> String;

/// The accumulator dtype and the C pieces of one reduction.
struct Red {
    acc: Dtype,
    /// Values load as their truth (all/any): 0.5 is true, not 0.
    truthy: bool,
    init: String,
    /// Combines `a` and `b` (C expressions) into one accumulator value.
    comb: Comb,
}

fn plan(kind: ReduceKind, x: Dtype) -> Option<Red> {
    use Dtype::*;
    if x == Complex64 {
        return None;
    }
    let acc = match kind {
        ReduceKind::All | ReduceKind::Any => Int32,
        ReduceKind::Max | ReduceKind::Min => match x {
            // Shuffles move 32- and 64-bit values: widen small types (order is kept).
            Bool | Int8 | Int16 => Int32,
            Uint8 | Uint16 => Uint32,
            Float16 | Bfloat16 => Float32,
            d => d,
        },
        ReduceKind::Mean if !x.is_inexact() => Float32,
        _ => kind.accumulate_dtype(x),
    };
    let float = acc.is_float();
    let t = c_compute_type(acc)?;
    let (lowest, highest) = match acc {
        Float32 => (
            format!("(-{})", c_float(f64::INFINITY, Float32)),
            c_float(f64::INFINITY, Float32),
        ),
        Float64 => (
            format!("(-{})", c_float(f64::INFINITY, Float64)),
            c_float(f64::INFINITY, Float64),
        ),
        Int32 => ("(-2147483647 - 1)".into(), "2147483647".into()),
        Int64 => (
            "(-9223372036854775807LL - 1)".into(),
            "9223372036854775807LL".into(),
        ),
        Uint32 => ("0u".into(), "4294967295u".into()),
        Uint64 => ("0ull".into(), "18446744073709551615ull".into()),
        _ => return None,
    };
    let (init, comb): (String, Comb) = match kind {
        ReduceKind::Sum | ReduceKind::Mean => ("0".into(), |a, b, f| {
            if f {
                format!("({a} + {b})")
            } else {
                format!("umx_wadd({a}, {b})")
            }
        }),
        ReduceKind::Prod => ("1".into(), |a, b, f| {
            if f {
                format!("({a} * {b})")
            } else {
                format!("umx_wmul({a}, {b})")
            }
        }),
        // NaN wins: a NaN accumulator stays, a NaN value takes over.
        ReduceKind::Max => (lowest, |a, b, f| {
            if f {
                format!("(({a} > {b} || {a} != {a}) ? {a} : {b})")
            } else {
                format!("({a} > {b} ? {a} : {b})")
            }
        }),
        ReduceKind::Min => (highest, |a, b, f| {
            if f {
                format!("(({a} < {b} || {a} != {a}) ? {a} : {b})")
            } else {
                format!("({a} < {b} ? {a} : {b})")
            }
        }),
        ReduceKind::All => ("1".into(), |a, b, _| format!("({a} && {b})")),
        ReduceKind::Any => ("0".into(), |a, b, _| format!("({a} || {b})")),
    };
    let _ = float;
    Some(Red {
        acc,
        truthy: matches!(kind, ReduceKind::All | ReduceKind::Any),
        init: format!("(({t}){init})"),
        comb,
    })
}

pub fn eval(
    op: &ReduceOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let ReduceOp::Reduce { kind, axes } = op else {
        return Ok(None);
    };
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{}: {} inputs, not 1",
            op.name(),
            inputs.len()
        )));
    };
    let out = super::first_out(op.name(), outputs)?;
    if axes.iter().any(|&a| a >= x.shape.len()) {
        return Err(Error::Device(format!(
            "{}: axes {axes:?} out of range",
            op.name()
        )));
    }
    let Some(red) = plan(*kind, x.dtype) else {
        return Ok(None);
    };
    if kind.needs_values() && axes.iter().any(|&a| x.shape[a] == 0) && x.size() == 0 {
        return Ok(None); // the CPU kernel gives the error message
    }
    // Kept axes first, reduced last, as a contiguous array: when the reduced axes already form
    // one run, only a plain contiguous copy (if any) is needed.
    let nd = x.shape.len();
    let kept: Vec<usize> = (0..nd).filter(|a| !axes.contains(a)).collect();
    let run = axes.windows(2).all(|w| w[1] == w[0] + 1);
    let (data, outer, k, inner) = if run && !axes.is_empty() {
        let (a0, a1) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = x.shape[..a0].iter().product();
        let k: usize = x.shape[a0..=a1].iter().product();
        let inner: usize = x.shape[a1 + 1..].iter().product();
        (x.clone(), outer, k, inner)
    } else {
        let perm: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
        let t = ArrayData {
            shape: perm.iter().map(|&p| x.shape[p]).collect(),
            strides: perm.iter().map(|&p| x.strides[p]).collect(),
            ..x.clone()
        };
        let outer: usize = kept.iter().map(|&a| x.shape[a]).product();
        let k: usize = axes.iter().map(|&a| x.shape[a]).product();
        (t, outer, k, 1)
    };
    let data = if data.is_row_contiguous() {
        data
    } else {
        match contiguous(&data, data.dtype)? {
            Some(d) => d,
            None => return Ok(None),
        }
    };
    let n_out = outer * inner;
    if n_out != numel(&out.shape) {
        return Err(Error::Device(format!(
            "{}: output size mismatch",
            op.name()
        )));
    }
    let scale = (*kind == ReduceKind::Mean).then(|| 1.0 / k as f64);
    let g = gpu()?;
    let (buffer, out_ptr) = output(n_out * out.dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    if n_out == 0 {
        return Ok(Some(vec![result]));
    }
    let in_ptr = input_ptr(&data)?;
    if inner > 1 {
        let src = col_source(&red, data.dtype, out.dtype, scale);
        let f = function(&src, "umx_reduce_col")?;
        let mut args = Args::default();
        args.push(out_ptr)
            .push(in_ptr)
            .push(outer as i64)
            .push(k as i64)
            .push(inner as i64);
        launch(
            f,
            grid_for(n_out, THREADS, g.sm_count),
            THREADS,
            0,
            &mut args.pointers(),
        )?;
        return Ok(Some(vec![result]));
    }
    // Rows. Few long rows: split each over several blocks, then combine the parts.
    let parts = if outer < 2 * g.sm_count as usize && k > 2 * SPLIT_CHUNK {
        k.div_ceil(SPLIT_CHUNK)
            .min(8 * g.sm_count as usize / outer.max(1))
            .max(1)
    } else {
        1
    };
    let e = (16 / data.dtype.size()).max(1);
    let chunk = k.div_ceil(parts).div_ceil(e) * e;
    let aligned = in_ptr % 16 == 0 && k % e == 0;
    if parts == 1 {
        let src = row_source(&red, data.dtype, out.dtype, scale, e);
        let f = function(&src, "umx_reduce_row")?;
        let mut args = Args::default();
        args.push(out_ptr)
            .push(in_ptr)
            .push(k as i64)
            .push(chunk as i64)
            .push(1i32)
            .push(aligned as i32);
        launch(f, outer as u32, THREADS, 0, &mut args.pointers())?;
    } else {
        let acc_size = red.acc.size();
        let (scratch, scratch_ptr) = output(outer * parts * acc_size)?;
        let src1 = row_source(&red, data.dtype, red.acc, None, e);
        let f1 = function(&src1, "umx_reduce_row")?;
        let mut args = Args::default();
        args.push(scratch_ptr)
            .push(in_ptr)
            .push(k as i64)
            .push(chunk as i64)
            .push(parts as i32)
            .push(aligned as i32);
        launch(f1, (outer * parts) as u32, THREADS, 0, &mut args.pointers())?;
        let ea = (16 / acc_size).max(1);
        let src2 = row_source(&red, red.acc, out.dtype, scale, ea);
        let f2 = function(&src2, "umx_reduce_row")?;
        let mut args = Args::default();
        args.push(out_ptr)
            .push(scratch_ptr)
            .push(parts as i64)
            .push(parts as i64)
            .push(1i32)
            .push(0i32);
        launch(f2, outer as u32, THREADS, 0, &mut args.pointers())?;
        // The scratch goes back to the pool; the stream orders its reuse after this launch.
        drop(scratch);
    }
    Ok(Some(vec![result]))
}

/// A float constant as C source: infinities and NaN as bit patterns (NVRTC has no math.h, so
/// no `INFINITY`).
fn c_float(v: f64, t: Dtype) -> String {
    match (v.is_finite(), t) {
        (true, _) => format!("{v:?}"),
        (false, Dtype::Float64) => format!("__longlong_as_double({}LL)", v.to_bits() as i64),
        (false, _) => format!("__int_as_float({})", (v as f32).to_bits() as i32),
    }
}

/// Loads stored value `v` of `input` as an accumulator value.
fn load_acc(red: &Red, input: Dtype, v: &str, a: &str) -> String {
    if red.truthy {
        format!("(({a}){})", load(input, v, "bool"))
    } else {
        load(input, v, a)
    }
}

/// The final store of an accumulator: scaled for the mean, converted to the output dtype.
fn finish(red: &Red, out: Dtype, scale: Option<f64>, acc: &str) -> String {
    let t = c_compute_type(red.acc).unwrap_or("float");
    match scale {
        Some(s) => store(out, &format!("({acc} * ({t}){})", c_float(s, red.acc))),
        None => store(out, acc),
    }
}

fn row_source(red: &Red, input: Dtype, out: Dtype, scale: Option<f64>, e: usize) -> String {
    let a = c_compute_type(red.acc).unwrap_or("float");
    let is = storage_type(input).unwrap_or("void");
    let os = storage_type(out).unwrap_or("void");
    let f = red.acc.is_float();
    let comb = |x: &str, y: &str| (red.comb)(x, y, f);
    format!(
        r#"{HEADER}{PRELUDE}
extern "C" __global__ void umx_reduce_row({os}* __restrict__ out, const {is}* __restrict__ in, long long K, long long chunk, int parts, int aligned) {{
  long long r = blockIdx.x / parts;
  long long p = blockIdx.x % parts;
  const {is}* row = in + r * K;
  long long lo = p * chunk, hi = lo + chunk < K ? lo + chunk : K;
  {a} acc = {init};
  if (aligned) {{
    const umx_pack<{is}, {e}>* v = (const umx_pack<{is}, {e}>*)row;
    for (long long j = lo / {e} + threadIdx.x; j < hi / {e}; j += blockDim.x) {{
      umx_pack<{is}, {e}> q = v[j];
      #pragma unroll
      for (int k = 0; k < {e}; k++) {{ {a} x = {lq}; acc = {c1}; }}
    }}
  }} else {{
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {{ {a} x = {lr}; acc = {c1}; }}
  }}
  for (int off = 16; off > 0; off >>= 1) {{ {a} o = __shfl_down_sync(0xffffffffu, acc, off); acc = {c2}; }}
  __shared__ {a} warps[32];
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) warps[w] = acc;
  __syncthreads();
  if (w == 0) {{
    acc = lane < (int)(blockDim.x >> 5) ? warps[lane] : {init};
    for (int off = 16; off > 0; off >>= 1) {{ {a} o = __shfl_down_sync(0xffffffffu, acc, off); acc = {c2}; }}
    if (lane == 0) out[blockIdx.x] = {fin};
  }}
}}
"#,
        init = red.init,
        lq = load_acc(red, input, "q.v[k]", a),
        lr = load_acc(red, input, "row[i]", a),
        c1 = comb("acc", "x"),
        c2 = comb("acc", "o"),
        fin = finish(red, out, scale, "acc"),
    )
}

fn col_source(red: &Red, input: Dtype, out: Dtype, scale: Option<f64>) -> String {
    let a = c_compute_type(red.acc).unwrap_or("float");
    let is = storage_type(input).unwrap_or("void");
    let os = storage_type(out).unwrap_or("void");
    let f = red.acc.is_float();
    format!(
        r#"{HEADER}{PRELUDE}
extern "C" __global__ void umx_reduce_col({os}* __restrict__ out, const {is}* __restrict__ in, long long outer, long long K, long long inner) {{
  long long step = (long long)gridDim.x * blockDim.x;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < outer * inner; t += step) {{
    long long o = t / inner, i = t % inner;
    const {is}* p = in + o * K * inner + i;
    {a} acc = {init};
    for (long long k = 0; k < K; k++) {{ {a} x = {lp}; acc = {c}; }}
    out[t] = {fin};
  }}
}}
"#,
        init = red.init,
        lp = load_acc(red, input, "p[k * inner]", a),
        c = (red.comb)("acc", "x", f),
        fin = finish(red, out, scale, "acc"),
    )
}

//! Scans along one axis: cumsum, cumprod, cummax, cummin, logcumsumexp (inclusive or not,
//! forward or reversed).
//!
//! The input (made row-major first) is viewed as (outer, len, inner) around the axis. With
//! `inner == 1` one block scans each row in tiles of 256 elements (warp shuffles, then the warp
//! totals, then a carry into the next tile); otherwise one thread runs down each column, the
//! threads of a warp reading adjacent columns. Small integers and bool accumulate widened to
//! 32 bits, which gives the same wrapped sums and products and the same order; float16 and
//! bfloat16 accumulate in float32 (the CPU's rules). Float sums are added in another order
//! than the CPU's running sum, so they agree to rounding, not bit for bit.

use super::contiguous;
use super::first_out;
use super::source::{Args, HEADER, load, storage_type, store};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::BinaryOp;
use umx_core::primitives::codegen::{PRELUDE, c_compute_type};
use umx_core::primitives::scan::{ScanKind, ScanOp};
use umx_core::shape::row_major_strides;
use umx_core::{ArrayData, Dtype, Error, Result};

const TILE: u32 = 256;

pub fn eval(
    op: &ScanOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let ScanOp::Scan {
        kind,
        axis,
        reverse,
        inclusive,
    } = *op;
    let name = kind.name();
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{name}: {} inputs, not 1",
            inputs.len()
        )));
    };
    let out = first_out(name, outputs)?;
    if axis >= x.shape.len().max(1) || x.shape != out.shape {
        return Err(Error::Device(format!(
            "{name}: output {:?} does not fit input {:?} scanned along axis {axis}",
            out.shape, x.shape
        )));
    }
    if x.dtype == Dtype::Complex64 || out.dtype == Dtype::Complex64 {
        return Ok(None);
    }
    // The accumulator: the CPU's, with small integers and bool widened for the shuffles.
    let acc = match kind.accumulate_dtype(x.dtype) {
        Dtype::Bool | Dtype::Int8 | Dtype::Int16 => Dtype::Int32,
        Dtype::Uint8 | Dtype::Uint16 => Dtype::Uint32,
        d => d,
    };
    let float = acc.is_float();
    if kind == ScanKind::LogAddExp && !float {
        return Ok(None);
    }
    let Some(at) = c_compute_type(acc) else {
        return Ok(None);
    };
    let comb = match kind {
        ScanKind::Sum => BinaryOp::Add,
        ScanKind::Prod => BinaryOp::Multiply,
        ScanKind::Max => BinaryOp::Maximum,
        ScanKind::Min => BinaryOp::Minimum,
        ScanKind::LogAddExp => BinaryOp::LogAddExp,
    };
    let Some(comb_expr) = comb.c_expr(acc, "a", "b") else {
        return Ok(None);
    };
    let init = identity(kind, kind.output_dtype(x.dtype), at);

    let Some(x) = (if x.is_row_contiguous() {
        Some(x.clone())
    } else {
        contiguous(x, x.dtype)?
    }) else {
        return Ok(None);
    };
    let n = x.size();
    let (buffer, ptr) = output(n * out.dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    if n == 0 {
        return Ok(Some(vec![result]));
    }
    let outer: usize = x.shape[..axis].iter().product();
    let len = x.shape.get(axis).copied().unwrap_or(1);
    let inner: usize = x.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let (xs, os) = (
        storage_type(x.dtype).unwrap_or("void"),
        storage_type(out.dtype).unwrap_or("void"),
    );
    let value = load(x.dtype, "x[at]", at);
    let result_of = |v: &str| store(out.dtype, v);
    let rows = inner == 1;
    let key = format!(
        "scan|{:?}|{:?}|{:?}|{reverse}|{inclusive}|{rows}",
        kind, x.dtype, out.dtype
    );
    let f = function_for(
        &key,
        || {
            let head = format!(
                "{HEADER}{PRELUDE}\n__device__ __forceinline__ {at} umx_comb({at} a, {at} b) {{ return {comb_expr}; }}\n"
            );
            let pos = if reverse { "(len - 1 - i)" } else { "i" };
            if rows {
                format!(
                    r#"{head}
extern "C" __global__ void umx_scan(const {xs}* __restrict__ x, {os}* __restrict__ out, long long outer, long long len) {{
  __shared__ {at} warp_total[{TILE} / 32];
  __shared__ {at} tile[{TILE}];
  int t = threadIdx.x, lane = t % 32, w = t / 32;
  for (long long r = blockIdx.x; r < outer; r += gridDim.x) {{
    const {xs}* xr = x + r * len;
    {os}* yr = out + r * len;
    {at} carry = {init};
    for (long long i0 = 0; i0 < len; i0 += {TILE}) {{
      long long i = i0 + t;
      long long at = {pos};
      {at} v = i < len ? {value} : {init};
      /* inclusive scan within the warp */
      for (int d = 1; d < 32; d *= 2) {{
        {at} o = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v = umx_comb(o, v);
      }}
      if (lane == 31) warp_total[w] = v;
      __syncthreads();
      if (w == 0) {{
        {at} s = lane < {TILE} / 32 ? warp_total[lane] : {init};
        for (int d = 1; d < 32; d *= 2) {{
          {at} o = __shfl_up_sync(0xffffffffu, s, d);
          if (lane >= d) s = umx_comb(o, s);
        }}
        if (lane < {TILE} / 32) warp_total[lane] = s;
      }}
      __syncthreads();
      {at} before = w > 0 ? umx_comb(carry, warp_total[w - 1]) : carry;
      {at} incl = umx_comb(before, v);
      tile[t] = incl;
      __syncthreads();
      if (i < len) {{
        {at} r_ = {inclusive} ? incl : (t > 0 ? tile[t - 1] : carry);
        yr[{pos_out}] = {store_r};
      }}
      carry = tile[{TILE} - 1];
      __syncthreads();
    }}
  }}
}}
"#,
                    init = init,
                    pos_out = if reverse { "len - 1 - i" } else { "i" },
                    store_r = result_of("r_"),
                    value = value.replace("x[at]", "xr[at]"),
                )
            } else {
                format!(
                    r#"{head}
extern "C" __global__ void umx_scan(const {xs}* __restrict__ x, {os}* __restrict__ out, long long outer, long long len, long long inner) {{
  long long cols = outer * inner;
  long long step = (long long)gridDim.x * blockDim.x;
  for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += step) {{
    long long base = (c / inner) * len * inner + c % inner;
    {at} acc = {init};
    for (long long i = 0; i < len; i++) {{
      long long at = base + {pos} * inner;
      {at} v = {value};
      if ({inclusive}) {{ acc = umx_comb(acc, v); out[at] = {store_acc}; }}
      else {{ out[at] = {store_acc}; acc = umx_comb(acc, v); }}
    }}
  }}
}}
"#,
                    store_acc = result_of("acc"),
                )
            }
        },
        "umx_scan",
    )?;
    let g = gpu()?;
    let mut args = Args::default();
    args.push(input_ptr(&x)?)
        .push(ptr)
        .push(outer as i64)
        .push(len as i64);
    if rows {
        let blocks = outer.min(g.sm_count as usize * 16).max(1) as u32;
        launch(f, blocks, TILE, 0, &mut args.pointers())?;
    } else {
        args.push(inner as i64);
        let cols = outer * inner;
        let blocks = cols.div_ceil(256).min(g.sm_count as usize * 16).max(1) as u32;
        launch(f, blocks, 256, 0, &mut args.pointers())?;
    }
    Ok(Some(vec![result]))
}

/// The scan's starting value as a C expression of the accumulator type `at`: the identity of
/// the output dtype (so an exclusive scan's first element is what the CPU gives).
fn identity(kind: ScanKind, dtype: Dtype, at: &str) -> String {
    use Dtype::*;
    let v = match kind {
        ScanKind::Sum => "0".to_string(),
        ScanKind::Prod => "1".to_string(),
        ScanKind::LogAddExp => "(-__int_as_float(0x7f800000))".to_string(),
        ScanKind::Max | ScanKind::Min => {
            let max = kind == ScanKind::Max;
            match dtype {
                Float16 | Bfloat16 | Float32 if max => "(-__int_as_float(0x7f800000))".into(),
                Float16 | Bfloat16 | Float32 => "__int_as_float(0x7f800000)".into(),
                Float64 if max => "(-__longlong_as_double(0x7ff0000000000000LL))".into(),
                Float64 => "__longlong_as_double(0x7ff0000000000000LL)".into(),
                Bool => (if max { "0" } else { "1" }).into(),
                Int8 => (if max { "-128" } else { "127" }).into(),
                Int16 => (if max { "-32768" } else { "32767" }).into(),
                Int32 => (if max {
                    "(-2147483647 - 1)"
                } else {
                    "2147483647"
                })
                .into(),
                Int64 => (if max {
                    "(-9223372036854775807LL - 1)"
                } else {
                    "9223372036854775807LL"
                })
                .into(),
                Uint8 => (if max { "0u" } else { "255u" }).into(),
                Uint16 => (if max { "0u" } else { "65535u" }).into(),
                Uint32 => (if max { "0u" } else { "4294967295u" }).into(),
                Uint64 => (if max {
                    "0ull"
                } else {
                    "18446744073709551615ull"
                })
                .into(),
                Complex64 => "0".into(),
            }
        }
    };
    format!("(({at}){v})")
}

//! Element-wise kernels: unary, binary and ternary primitives and casts, generated from the
//! scalar expressions in `umx_core::primitives::codegen` (the same table fused code will use).
//!
//! One generated kernel per (expression, dtypes, layout): contiguous operands take a path with
//! 16-byte vector loads and stores when every pointer is aligned for them; anything else
//! (broadcasts, transposes, slices) takes a general strided path over up to [`MAX_DIMS`] axes
//! after merging the axes that can be merged. A one-element operand still on the host is
//! passed by value as a kernel argument instead of being uploaded (the weak scalars of
//! `x * 2.0`); one already on the device (a learning rate computed there) is read by every
//! thread and keeps the contiguous path.

use super::source::{
    Args, HEADER, complex_compute_type, complex_prelude, complex_storage_type, complex_store,
    grid_for, load,
};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::borrow::Cow;
use umx_core::primitives::codegen::PRELUDE;
use umx_core::primitives::{BinaryOp, UnaryOp};
use umx_core::shape::{broadcast_strides, is_row_contiguous, numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

/// Most axes the strided path takes (after merging); more go to the CPU fallback.
pub const MAX_DIMS: usize = 8;
/// Most inputs of one kernel (a fused program's; the single ops have at most 3).
pub const MAX_INPUTS: usize = 16;
/// Threads per block and vectors each thread of the contiguous path loads before it computes.
/// On the H100 (eager (x*2+5)/3 over 2^28 float32, three kernels): 128 threads with one
/// 16-byte vector each took 2.139 ms, 256 with four 2.161 ms, 256 with eight 2.196 ms (torch
/// 2.145 in the same run). On the H200, whose memory is faster, one vector left bandwidth
/// unused: the compiled chain took 0.639 ms at 128 x 1, 0.504 at 256 x 2, 0.510 at 128 x 4,
/// 0.518 at 256 x 8, 0.595 at 512 x 1 (jax.jit 0.52; 2026-11-27).
const THREADS: u32 = 256;
const UNROLL: usize = 2;

/// An operand as the kernel sees it.
enum Operand<'a> {
    /// A device array viewed with the output's shape (strides in elements, 0 on broadcast
    /// axes; borrowed when the array already has the output's shape). `scalar`: it has one
    /// element (a learning rate, a bias correction computed on the device), which the
    /// contiguous kernel reads once per thread.
    Array {
        ptr: u64,
        strides: Cow<'a, [isize]>,
        scalar: bool,
    },
    /// One stored element, passed by value.
    Value(Vec<u8>),
}

/// Computes `expr` (over `x0`, `x1`, `x2`: input `i` loaded as the C type of `compute[i]`)
/// for every element of `out_shape`, stored as `out_dtype`. Returns `None` when the dtypes or
/// the layout are outside what the generator handles (the caller falls back to the CPU).
pub(crate) fn run(
    inputs: &[ArrayData],
    compute: &[Dtype],
    expr: &str,
    out_shape: &[usize],
    out_dtype: Dtype,
) -> Result<Option<ArrayData>> {
    Ok(run_program(inputs, compute, "", &[(expr, out_dtype)], out_shape)?.map(|mut o| o.remove(0)))
}

/// [`run`] with statements before the result: `stmts` (C statements over the loaded inputs
/// `x0`, `x1`, ..., declaring temporaries) run for each element, then each output's
/// expression is stored (`outs`: expression and dtype, one output array each, all of
/// `out_shape`). This is how a fused program becomes one kernel.
pub(crate) fn run_program(
    inputs: &[ArrayData],
    compute: &[Dtype],
    stmts: &str,
    outs: &[(&str, Dtype)],
    out_shape: &[usize],
) -> Result<Option<Vec<ArrayData>>> {
    if inputs.len() > MAX_INPUTS || inputs.len() != compute.len() || outs.is_empty() {
        return Ok(None);
    }
    if outs.iter().any(|(_, d)| complex_storage_type(*d).is_none()) {
        return Ok(None);
    }
    for (x, &c) in inputs.iter().zip(compute) {
        if complex_storage_type(x.dtype).is_none() || complex_compute_type(c).is_none() {
            return Ok(None);
        }
    }
    let n = numel(out_shape);
    let mut results = Vec::with_capacity(outs.len());
    let mut out_ptrs = Vec::with_capacity(outs.len());
    for &(_, dtype) in outs {
        let (buffer, ptr) = output(n * dtype.size())?;
        out_ptrs.push(ptr);
        results.push(ArrayData {
            buffer: std::sync::Arc::new(buffer),
            shape: out_shape.to_vec(),
            dtype,
            strides: row_major_strides(out_shape),
            offset: 0,
        });
    }
    if n == 0 {
        return Ok(Some(results));
    }
    let mut operands = Vec::with_capacity(inputs.len());
    for x in inputs {
        if x.shape.len() > out_shape.len() {
            return Err(Error::Device(format!(
                "element-wise: an input of {} axes for an output of {}",
                x.shape.len(),
                out_shape.len()
            )));
        }
        if x.size() == 1 && x.buffer.residency().device.is_none() {
            let size = x.dtype.size();
            let at = x.offset as usize * size;
            let bytes = x.buffer.host_bytes()?;
            let v = bytes.get(at..at + size).ok_or_else(|| {
                Error::Device("element-wise: a scalar operand out of its buffer".into())
            })?;
            operands.push(Operand::Value(v.to_vec()));
        } else {
            let strides = if x.shape == out_shape {
                Cow::Borrowed(&x.strides[..])
            } else {
                Cow::Owned(broadcast_strides(&x.shape, &x.strides, out_shape))
            };
            operands.push(Operand::Array {
                ptr: input_ptr(x)?,
                strides,
                scalar: x.size() == 1,
            });
        }
    }
    let contiguous = operands.iter().all(|o| match o {
        Operand::Array {
            strides, scalar, ..
        } => *scalar || is_row_contiguous(out_shape, strides),
        Operand::Value(_) => true,
    });
    let g = gpu()?;
    let mut args = Args::default();
    for &p in &out_ptrs {
        args.push(p);
    }
    for o in &operands {
        match o {
            Operand::Array { ptr, .. } => args.push(*ptr),
            Operand::Value(v) => args.push_bytes(v),
        };
    }
    args.push(n as i64);
    let widest = inputs
        .iter()
        .zip(&operands)
        .filter(|(_, o)| matches!(o, Operand::Array { scalar: false, .. }))
        .map(|(x, _)| x.dtype.size())
        .chain(outs.iter().map(|(_, d)| d.size()))
        .max()
        .unwrap_or(1);
    let per_thread = (16 / widest).max(1);
    let kinds = operands.iter().map(|o| match o {
        Operand::Value(_) => 'v',
        Operand::Array { scalar: true, .. } => 's',
        Operand::Array { .. } => 'a',
    });
    let key = program_key(inputs, compute, kinds, stmts, outs, contiguous);
    let (f, work) = if contiguous {
        let aligned = out_ptrs.iter().all(|p| p % 16 == 0)
            && operands.iter().all(|o| match o {
                Operand::Array {
                    ptr, scalar: false, ..
                } => ptr % 16 == 0,
                _ => true,
            });
        args.push(aligned as i32);
        let f = function_for(
            &key,
            || source(inputs, compute, &operands, stmts, outs, Some(per_thread)),
            "umx_elementwise",
        )?;
        (f, n.div_ceil(per_thread))
    } else {
        let Some(dims) = merged_dims(out_shape, &operands) else {
            return Ok(None);
        };
        args.push_bytes(&dims);
        let f = function_for(
            &key,
            || source(inputs, compute, &operands, stmts, outs, None),
            "umx_elementwise",
        )?;
        (f, n)
    };
    // The contiguous path gives each thread one round of UNROLL vectors (a grid as large as
    // the work: on the H100 this moved 2980 GB/s where 16 blocks per SM looping over the
    // array moved 2832); the strided path loops over the array from a grid that fills the card.
    let grid = if contiguous {
        work.div_ceil(THREADS as usize * UNROLL)
            .clamp(1, i32::MAX as usize) as u32
    } else {
        grid_for(work, THREADS, g.sm_count)
    };
    launch(f, grid, THREADS, 0, &mut args.pointers())?;
    Ok(Some(results))
}

/// What a generated kernel's source depends on, for the kernel lookup: the statements, the
/// layout, each output's expression and dtype, and each input's dtype, compute dtype and
/// kind (`kinds`: `v` passed by value, `s` a one-element device array, `a` an array).
pub(crate) fn program_key(
    inputs: &[ArrayData],
    compute: &[Dtype],
    kinds: impl Iterator<Item = char>,
    stmts: &str,
    outs: &[(&str, Dtype)],
    contiguous: bool,
) -> String {
    // Pieces pushed, not formatted: this runs on every element-wise dispatch.
    let mut key = String::with_capacity(64 + stmts.len());
    key.push_str("ew|");
    key.push_str(stmts);
    key.push_str(if contiguous { "|c" } else { "|s" });
    for (expr, dtype) in outs {
        key.push('|');
        key.push_str(expr);
        key.push('>');
        key.push_str(dtype.name());
    }
    for ((x, c), kind) in inputs.iter().zip(compute).zip(kinds) {
        key.push('|');
        key.push_str(x.dtype.name());
        key.push('>');
        key.push_str(c.name());
        key.push(kind);
    }
    key
}

/// The kernel's source. `per_thread` is `Some(elements per vector)` for the contiguous kernel.
fn source(
    inputs: &[ArrayData],
    compute: &[Dtype],
    operands: &[Operand],
    stmts: &str,
    outs: &[(&str, Dtype)],
    per_thread: Option<usize>,
) -> String {
    let out_s = |d: Dtype| complex_storage_type(d).unwrap_or("void");
    let mut params = String::new();
    for (k, (_, d)) in outs.iter().enumerate() {
        let sep = if k == 0 { "" } else { ", " };
        params += &format!("{sep}{}* __restrict__ out{k}", out_s(*d));
    }
    let mut loads_at = String::new(); // for index i (contiguous) or offsets o0.. (strided)
    let mut k = 0; // array operands so far
    for (i, ((x, &c), o)) in inputs.iter().zip(compute).zip(operands).enumerate() {
        let s = complex_storage_type(x.dtype).unwrap_or("void");
        let ct = complex_compute_type(c).unwrap_or("void");
        match o {
            Operand::Array { scalar, .. } => {
                params += &format!(", const {s}* __restrict__ in{i}");
                let at = match per_thread {
                    Some(_) if *scalar => "0".to_string(),
                    Some(_) => "i".to_string(),
                    None => format!("o{k}"),
                };
                loads_at += &format!(
                    "    {ct} x{i} = {};\n",
                    load(x.dtype, &format!("in{i}[{at}]"), ct)
                );
                k += 1;
            }
            Operand::Value(_) => {
                params += &format!(", {s} v{i}");
                loads_at += &format!("    {ct} x{i} = {};\n", load(x.dtype, &format!("v{i}"), ct));
            }
        }
    }
    let stores: String = outs
        .iter()
        .enumerate()
        .map(|(k, (expr, d))| format!("    out{k}[i] = {};\n", complex_store(*d, expr)))
        .collect();
    let body = format!("{loads_at}{stmts}{stores}");
    let complex = inputs
        .iter()
        .map(|x| x.dtype)
        .chain(compute.iter().copied())
        .chain(outs.iter().map(|(_, d)| *d))
        .any(|d| d == Dtype::Complex64);
    let mut src = format!("{HEADER}{PRELUDE}{}\n", complex_prelude(complex));
    match per_thread {
        Some(e) => {
            // Vector path: each thread moves `e` elements of every array with one wide load.
            let mut vdecl = String::new();
            let mut vloads = String::new();
            let mut vbody = String::new();
            for (i, (x, o)) in inputs.iter().zip(operands).enumerate() {
                if let Operand::Array { scalar: false, .. } = o {
                    let s = complex_storage_type(x.dtype).unwrap_or("void");
                    vdecl += &format!("    umx_pack<{s}, {e}> p{i}[{UNROLL}];\n");
                    vloads += &format!(
                        "        if (j < nv) p{i}[u] = ((const umx_pack<{s}, {e}>*)in{i})[j];\n"
                    );
                }
            }
            for (i, ((x, &c), o)) in inputs.iter().zip(compute).zip(operands).enumerate() {
                let ct = complex_compute_type(c).unwrap_or("void");
                let v = match o {
                    Operand::Array { scalar: true, .. } => format!("in{i}[0]"),
                    Operand::Array { .. } => format!("p{i}[u].v[k]"),
                    Operand::Value(_) => format!("v{i}"),
                };
                vbody += &format!("        {ct} x{i} = {};\n", load(x.dtype, &v, ct));
            }
            vbody += stmts;
            let mut rdecl = String::new();
            let mut rstore = String::new();
            for (k, (expr, d)) in outs.iter().enumerate() {
                let os = out_s(*d);
                rdecl += &format!("        umx_pack<{os}, {e}> r{k};\n");
                vbody += &format!("          r{k}.v[k] = {};\n", complex_store(*d, expr));
                rstore += &format!("        ((umx_pack<{os}, {e}>*)out{k})[j] = r{k};\n");
            }
            src += &format!(
                r#"
extern "C" __global__ void umx_elementwise({params}, long long n, int aligned) {{
  long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  long long step = (long long)gridDim.x * blockDim.x;
  long long done = 0;
  if (aligned) {{
    long long nv = n / {e};
{vdecl}    for (long long j0 = tid; j0 < nv; j0 += step * {UNROLL}) {{
      // Every load of the round in flight before the first use.
      #pragma unroll
      for (int u = 0; u < {UNROLL}; u++) {{
        long long j = j0 + u * step;
{vloads}      }}
      #pragma unroll
      for (int u = 0; u < {UNROLL}; u++) {{
        long long j = j0 + u * step;
        if (j >= nv) break;
{rdecl}        #pragma unroll
        for (int k = 0; k < {e}; k++) {{
{vbody}        }}
{rstore}
      }}
    }}
    done = nv * {e};
  }}
  for (long long i = done + tid; i < n; i += step) {{
{body}  }}
}}
"#
            );
        }
        None => {
            let narr = operands
                .iter()
                .filter(|o| matches!(o, Operand::Array { .. }))
                .count();
            let offs: String = (0..narr).map(|k| format!("long long o{k} = 0; ")).collect();
            let step: String = (0..narr)
                .map(|k| format!("o{k} += c * d.strides[{k}][a]; "))
                .collect();
            src += &format!(
                r#"
struct umx_dims {{ long long shape[{MAX_DIMS}]; long long strides[{MAX_INPUTS}][{MAX_DIMS}]; int ndim; }};
extern "C" __global__ void umx_elementwise({params}, long long n, umx_dims d) {{
  long long step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {{
    {offs}
    long long rest = i;
    for (int a = d.ndim - 1; a >= 0; a--) {{
      long long c = rest % d.shape[a];
      rest /= d.shape[a];
      {step}
    }}
{body}  }}
}}
"#
            );
        }
    }
    src
}

/// The strided path's `umx_dims` argument: the output shape with adjacent axes merged where
/// every array operand allows it, and each array operand's strides. `None` past `MAX_DIMS`.
fn merged_dims(shape: &[usize], operands: &[Operand]) -> Option<Vec<u8>> {
    let strides: Vec<&[isize]> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Array { strides, .. } => Some(&strides[..]),
            Operand::Value(_) => None,
        })
        .collect();
    // Drop axes of size 1, then merge axis a into the kept axis before it when every operand
    // steps over it contiguously.
    let mut dims: Vec<(usize, Vec<isize>)> = Vec::new();
    for a in 0..shape.len() {
        if shape[a] == 1 {
            continue;
        }
        let st: Vec<isize> = strides.iter().map(|s| s[a]).collect();
        if let Some((pn, ps)) = dims.last_mut()
            && ps
                .iter()
                .zip(&st)
                .all(|(&p, &s)| p == s * shape[a] as isize)
        {
            *pn *= shape[a];
            *ps = st;
            continue;
        }
        dims.push((shape[a], st));
    }
    if dims.len() > MAX_DIMS {
        return None;
    }
    let mut words = vec![0i64; MAX_DIMS + MAX_INPUTS * MAX_DIMS + 1];
    for (a, (n, st)) in dims.iter().enumerate() {
        words[a] = *n as i64;
        for (k, &s) in st.iter().enumerate() {
            words[MAX_DIMS + k * MAX_DIMS + a] = s as i64;
        }
    }
    words[MAX_DIMS + MAX_INPUTS * MAX_DIMS] = dims.len() as i64;
    Some(words.iter().flat_map(|w| w.to_le_bytes()).collect())
}

// ---------------------------------------------------------------------------------------------
// complex64 expressions

/// A unary op on a complex64 value `x`, as an expression of the output's compute type
/// (`out`: complex64, float32 for `abs`/`real`/`imag`, bool for predicates), with
/// `num_complex`'s formulas. `None` for the ops left to the CPU (the inverse trigonometric
/// and hyperbolic functions).
pub fn complex_unary(op: &UnaryOp, out: Dtype, x: &str) -> Option<String> {
    use UnaryOp::*;
    if out == Dtype::Bool {
        return Some(match op {
            IsNan => format!("(isnan({x}.re) || isnan({x}.im))"),
            IsInf => format!("(isinf({x}.re) || isinf({x}.im))"),
            IsPosInf => format!("({x}.re == umx_finf() && {x}.im == 0.0f)"),
            IsNegInf => format!("({x}.re == -umx_finf() && {x}.im == 0.0f)"),
            IsFinite => format!("(isfinite({x}.re) && isfinite({x}.im))"),
            LogicalNot => format!("({x}.re == 0.0f && {x}.im == 0.0f)"),
            _ => return None,
        });
    }
    if out != Dtype::Complex64 {
        return Some(match op {
            Abs => format!("umx_cabs({x})"),
            Imag => format!("{x}.im"),
            _ => format!("{x}.re"),
        });
    }
    let one = "umx_c64(1.0f, 0.0f)";
    Some(match op {
        Negative => format!("(-{x})"),
        Sign => format!("umx_csign({x})"),
        Sqrt => format!("umx_csqrt({x})"),
        Rsqrt => format!("({one} / umx_csqrt({x}))"),
        Square => format!("({x} * {x})"),
        Reciprocal => format!("({one} / {x})"),
        Exp => format!("umx_cexp({x})"),
        Log => format!("umx_clog({x})"),
        Expm1 => format!("(umx_cexp({x}) - {one})"),
        Log1p => format!("umx_clog({x} + {one})"),
        Log2 => format!("umx_clogb({x}, 0.6931471805599453f)"),
        Log10 => format!("umx_clogb({x}, 2.302585092994046f)"),
        Sin => format!("umx_c64(sinf({x}.re) * coshf({x}.im), cosf({x}.re) * sinhf({x}.im))"),
        Cos => format!("umx_c64(cosf({x}.re) * coshf({x}.im), -sinf({x}.re) * sinhf({x}.im))"),
        Tan => format!("umx_ctan({x})"),
        Sinh => format!("umx_c64(sinhf({x}.re) * cosf({x}.im), coshf({x}.re) * sinf({x}.im))"),
        Cosh => format!("umx_c64(coshf({x}.re) * cosf({x}.im), sinhf({x}.re) * sinf({x}.im))"),
        Tanh => format!("umx_ctanh({x})"),
        // Applied to both parts, as the CPU does.
        Round { .. } | Degrees | Radians | NanToNum { .. } => {
            let re = op.c_expr(Dtype::Float32, &format!("{x}.re"))?;
            let im = op.c_expr(Dtype::Float32, &format!("{x}.im"))?;
            format!("umx_c64({re}, {im})")
        }
        Conj => format!("umx_c64({x}.re, -{x}.im)"),
        Abs => format!("umx_c64(umx_cabs({x}), 0.0f)"),
        Real => format!("umx_c64({x}.re, 0.0f)"),
        Imag => format!("umx_c64({x}.im, 0.0f)"),
        _ => return None,
    })
}

/// A binary op on complex64 values, or `None` for the ops left to the CPU.
pub fn complex_binary(op: &BinaryOp, a: &str, b: &str) -> Option<String> {
    use BinaryOp::*;
    Some(match op {
        Add => format!("({a} + {b})"),
        Subtract => format!("({a} - {b})"),
        Multiply => format!("({a} * {b})"),
        Divide => format!("({a} / {b})"),
        Equal => format!("({a} == {b})"),
        NotEqual => format!("({a} != {b})"),
        _ => return None,
    })
}

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
    let Some(p) = prepare(inputs, compute, stmts, outs, out_shape)? else {
        return Ok(None);
    };
    if p.n > 0 && !p.launch()? {
        return Ok(None);
    }
    Ok(Some(p.results))
}

/// An element-wise program's launch, prepared: its outputs allocated and its operands laid
/// out, for one kernel of its own ([`run_program`]) or a member of a group ([`run_group`]).
pub(crate) struct Prepared<'a> {
    /// The program's outputs (allocated, not yet computed).
    pub results: Vec<ArrayData>,
    out_ptrs: Vec<u64>,
    operands: Vec<Operand<'a>>,
    inputs: &'a [ArrayData],
    compute: &'a [Dtype],
    stmts: &'a str,
    outs: &'a [(&'a str, Dtype)],
    out_shape: &'a [usize],
    /// Elements of the output.
    pub n: usize,
    /// Whether every operand is contiguous (or one element): the vector path.
    pub contiguous: bool,
    per_thread: usize,
}

/// Allocates the outputs of `stmts`/`outs` over `inputs` and lays out the operands; `None`
/// when the dtypes are outside what the generator handles.
pub(crate) fn prepare<'a>(
    inputs: &'a [ArrayData],
    compute: &'a [Dtype],
    stmts: &'a str,
    outs: &'a [(&'a str, Dtype)],
    out_shape: &'a [usize],
) -> Result<Option<Prepared<'a>>> {
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
    let mut operands = Vec::with_capacity(inputs.len());
    if n > 0 {
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
    }
    let contiguous = operands.iter().all(|o| match o {
        Operand::Array {
            strides, scalar, ..
        } => *scalar || is_row_contiguous(out_shape, strides),
        Operand::Value(_) => true,
    });
    let widest = inputs
        .iter()
        .zip(&operands)
        .filter(|(_, o)| matches!(o, Operand::Array { scalar: false, .. }))
        .map(|(x, _)| x.dtype.size())
        .chain(outs.iter().map(|(_, d)| d.size()))
        .max()
        .unwrap_or(1);
    Ok(Some(Prepared {
        results,
        out_ptrs,
        operands,
        inputs,
        compute,
        stmts,
        outs,
        out_shape,
        n,
        contiguous,
        per_thread: (16 / widest).max(1),
    }))
}

impl Prepared<'_> {
    /// Launches the program as a kernel of its own; false when its strided layout has more
    /// axes than the kernel takes (nothing is launched).
    fn launch(&self) -> Result<bool> {
        let mut args = Args::default();
        self.push_args(&mut args);
        let grid = if self.contiguous {
            args.push(self.aligned() as i32);
            self.blocks()
        } else {
            let Some(dims) = merged_dims(self.out_shape, &self.operands) else {
                return Ok(false);
            };
            args.push_bytes(&dims);
            // The strided path loops over the array from a grid that fills the card.
            grid_for(self.n, THREADS, gpu()?.sm_count)
        };
        let f = function_for(&self.key(), || self.source(None), "umx_elementwise")?;
        launch(f, grid, THREADS, 0, &mut args.pointers())?;
        Ok(true)
    }

    /// The arguments every layout takes: the outputs, the operands, the element count.
    fn push_args(&self, args: &mut Args) {
        for &p in &self.out_ptrs {
            args.push(p);
        }
        for o in &self.operands {
            match o {
                Operand::Array { ptr, .. } => args.push(*ptr),
                Operand::Value(v) => args.push_bytes(v),
            };
        }
        args.push(self.n as i64);
    }

    /// Whether every pointer the vector path moves is aligned for 16-byte accesses.
    fn aligned(&self) -> bool {
        self.out_ptrs.iter().all(|p| p % 16 == 0)
            && self.operands.iter().all(|o| match o {
                Operand::Array {
                    ptr, scalar: false, ..
                } => ptr % 16 == 0,
                _ => true,
            })
    }

    /// Blocks of the contiguous path: each thread one round of UNROLL vectors (a grid as large
    /// as the work: on the H100 this moved 2980 GB/s where 16 blocks per SM looping over the
    /// array moved 2832).
    fn blocks(&self) -> u32 {
        self.n
            .div_ceil(self.per_thread)
            .div_ceil(THREADS as usize * UNROLL)
            .clamp(1, i32::MAX as usize) as u32
    }

    fn key(&self) -> String {
        let kinds = self.operands.iter().map(|o| match o {
            Operand::Value(_) => 'v',
            Operand::Array { scalar: true, .. } => 's',
            Operand::Array { .. } => 'a',
        });
        program_key(
            self.inputs,
            self.compute,
            kinds,
            self.stmts,
            self.outs,
            self.contiguous,
        )
    }

    /// The kernel's source, or (`member: Some(k)`) member `k`'s device function of a group.
    fn source(&self, member: Option<usize>) -> String {
        source(
            self.inputs,
            self.compute,
            &self.operands,
            self.stmts,
            self.outs,
            self.contiguous.then_some(self.per_thread),
            member,
        )
    }
}

/// Most bytes of arguments one group kernel takes (CUDA's limit is 4 KB; past it the
/// members are split over several launches).
const GROUP_ARG_BYTES: usize = 4000;

/// Runs prepared contiguous programs (an optimizer's updates of every parameter) as one
/// kernel: the grid is the members' grids one after another, and each block runs its
/// member's code. Members of no elements are skipped.
pub(crate) fn run_group(members: &[Prepared]) -> Result<()> {
    let members: Vec<&Prepared> = members.iter().filter(|m| m.n > 0).collect();
    if members.iter().any(|m| !m.contiguous) {
        return Err(Error::Device(
            "fused_group: a member is not contiguous".into(),
        ));
    }
    let mut at = 0;
    while at < members.len() {
        // As many members as the argument space and the grid allow.
        let (mut bytes, mut blocks, mut end) = (0usize, 0u64, at);
        while end < members.len() {
            let m = members[end];
            let b = 8 * (m.out_ptrs.len() + m.operands.len()) + 24;
            if end > at
                && (bytes + b > GROUP_ARG_BYTES || blocks + m.blocks() as u64 > i32::MAX as u64)
            {
                break;
            }
            bytes += b;
            blocks += m.blocks() as u64;
            end += 1;
        }
        run_group_kernel(&members[at..end])?;
        at = end;
    }
    Ok(())
}

fn run_group_kernel(members: &[&Prepared]) -> Result<()> {
    if let [one] = members {
        // One member: its own kernel.
        one.launch()?;
        return Ok(());
    }
    let mut key = String::from("group");
    let mut args = Args::default();
    let mut grid = 0u32;
    for m in members {
        key.push('#');
        key.push_str(&m.key());
        m.push_args(&mut args);
        args.push(m.aligned() as i32);
        args.push(m.blocks() as i64);
        grid += m.blocks();
    }
    let make = || {
        let complex = members.iter().any(|m| {
            m.inputs
                .iter()
                .map(|x| x.dtype)
                .chain(m.compute.iter().copied())
                .chain(m.outs.iter().map(|(_, d)| *d))
                .any(|d| d == Dtype::Complex64)
        });
        let mut src = format!("{HEADER}{PRELUDE}{}\n", complex_prelude(complex));
        let mut params = Vec::new();
        let mut body = String::from("  long long b = blockIdx.x;\n");
        for (k, m) in members.iter().enumerate() {
            src += &m.source(Some(k));
            let names = param_list(m.inputs, m.compute, &m.operands, m.outs);
            let mut call = Vec::new();
            for (ty, name) in names.into_iter().chain([
                ("long long".into(), "n".into()),
                ("int".into(), "aligned".into()),
            ]) {
                params.push(format!("{ty} m{k}_{name}"));
                call.push(format!("m{k}_{name}"));
            }
            params.push(format!("long long m{k}_blocks"));
            body += &format!(
                "  if (b < m{k}_blocks) {{ umx_member{k}({}, b, m{k}_blocks); return; }}\n  b -= m{k}_blocks;\n",
                call.join(", ")
            );
        }
        src += &format!(
            "extern \"C\" __global__ void umx_fused_group({}) {{\n{body}}}\n",
            params.join(", ")
        );
        src
    };
    let f = function_for(&key, make, "umx_fused_group")?;
    let start = crate::profile::mark()?;
    launch(f, grid, THREADS, 0, &mut args.pointers())?;
    let label = format!(" fused group: {} programs, {grid} blocks", members.len());
    crate::profile::span(label, start)
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

/// The kernel's parameters before the element count, as (C type, name): the outputs, then
/// each input (a pointer, or its value).
fn param_list(
    inputs: &[ArrayData],
    compute: &[Dtype],
    operands: &[Operand],
    outs: &[(&str, Dtype)],
) -> Vec<(String, String)> {
    let mut params = Vec::with_capacity(outs.len() + inputs.len());
    for (k, (_, d)) in outs.iter().enumerate() {
        let s = complex_storage_type(*d).unwrap_or("void");
        params.push((format!("{s}* __restrict__"), format!("out{k}")));
    }
    for (i, ((x, _), o)) in inputs.iter().zip(compute).zip(operands).enumerate() {
        let s = complex_storage_type(x.dtype).unwrap_or("void");
        params.push(match o {
            Operand::Array { .. } => (format!("const {s}* __restrict__"), format!("in{i}")),
            Operand::Value(_) => (s.to_string(), format!("v{i}")),
        });
    }
    params
}

/// The kernel's source. `per_thread` is `Some(elements per vector)` for the contiguous kernel.
fn source(
    inputs: &[ArrayData],
    compute: &[Dtype],
    operands: &[Operand],
    stmts: &str,
    outs: &[(&str, Dtype)],
    per_thread: Option<usize>,
    member: Option<usize>,
) -> String {
    let out_s = |d: Dtype| complex_storage_type(d).unwrap_or("void");
    let params: Vec<String> = param_list(inputs, compute, operands, outs)
        .into_iter()
        .map(|(ty, name)| format!("{ty} {name}"))
        .collect();
    let params = params.join(", ");
    let mut loads_at = String::new(); // for index i (contiguous) or offsets o0.. (strided)
    let mut k = 0; // array operands so far
    for (i, ((x, &c), o)) in inputs.iter().zip(compute).zip(operands).enumerate() {
        let ct = complex_compute_type(c).unwrap_or("void");
        match o {
            Operand::Array { scalar, .. } => {
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
    // A group's member is a device function of the group's kernel (which has the prelude),
    // given its block and its grid.
    let (mut src, signature, block, blocks) = match member {
        None => (
            format!("{HEADER}{PRELUDE}{}\n", complex_prelude(complex)),
            format!(
                "extern \"C\" __global__ void umx_elementwise({params}, long long n, int aligned)"
            ),
            "(long long)blockIdx.x",
            "(long long)gridDim.x",
        ),
        Some(k) => (
            String::new(),
            format!(
                "__device__ __forceinline__ void umx_member{k}({params}, long long n, int aligned, \
                 long long umx_block, long long umx_blocks)"
            ),
            "umx_block",
            "umx_blocks",
        ),
    };
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
{signature} {{
  long long tid = {block} * blockDim.x + threadIdx.x;
  long long step = {blocks} * blockDim.x;
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

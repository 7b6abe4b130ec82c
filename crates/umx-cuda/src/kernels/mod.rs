//! The GPU kernels, one file per family. Each `eval` returns `Ok(None)` for the cases it does
//! not handle yet (a dtype, a layout, an op), which the backend then runs on the CPU.

pub mod argreduce;
mod attention;
mod custom;
pub mod elementwise;
pub mod fast;
pub mod fft;
pub(crate) mod flash;
pub mod gemv;
pub mod indexing;
pub mod linalg;
pub mod matmul;
pub mod quantized;
pub mod random;
pub mod reduce;
pub mod scan;
pub mod sort;
pub mod source;

use umx_core::device::OutSpec;
use umx_core::primitives::fused::{FusedGroup, FusedOp};
use umx_core::primitives::shape::PadMode;
use umx_core::primitives::unary::UnaryClass;
use umx_core::primitives::{BinaryOp, CreationOp, Primitive, ShapeOp, TernaryOp, UnaryOp};
use umx_core::{ArrayData, Dtype, Error, Result, promote_types};

type Outs = Result<Option<Vec<ArrayData>>>;

fn first_out<'a>(name: &str, outputs: &'a [OutSpec]) -> Result<&'a OutSpec> {
    outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{name}: no output asked for")))
}

pub fn unary(op: &UnaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{}: {} inputs, not 1",
            op.name(),
            inputs.len()
        )));
    };
    let out = first_out(op.name(), outputs)?;
    let expr = match (op.class(), op) {
        (UnaryClass::Cast, _) => Some("x0".to_string()),
        _ if x.dtype == Dtype::Complex64 => elementwise::complex_unary(op, out.dtype, "x0"),
        _ if out.dtype == Dtype::Complex64 => None,
        _ => op.c_expr(x.dtype, "x0"),
    };
    let Some(expr) = expr else { return Ok(None) };
    Ok(elementwise::run(inputs, &[x.dtype], &expr, &out.shape, out.dtype)?.map(|o| vec![o]))
}

pub fn binary(op: &BinaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let [a, b] = inputs else {
        return Err(Error::Device(format!(
            "{}: {} inputs, not 2",
            op.name(),
            inputs.len()
        )));
    };
    let Some(compute) = op.compute_dtype(promote_types(a.dtype, b.dtype)) else {
        return Err(Error::Invalid(format!(
            "{}: not supported for {} and {}",
            op.name(),
            a.dtype,
            b.dtype
        )));
    };
    let parts: &[BinaryOp] = if *op == BinaryOp::DivMod {
        &[BinaryOp::FloorDivide, BinaryOp::Remainder]
    } else {
        std::slice::from_ref(op)
    };
    if parts.len() != outputs.len() {
        return Err(Error::Device(format!(
            "{}: wrong number of outputs",
            op.name()
        )));
    }
    let mut outs = Vec::with_capacity(parts.len());
    for (part, spec) in parts.iter().zip(outputs) {
        let expr = if compute == Dtype::Complex64 {
            elementwise::complex_binary(part, "x0", "x1")
        } else {
            part.c_expr(compute, "x0", "x1")
        };
        let Some(expr) = expr else {
            return Ok(None);
        };
        match elementwise::run(inputs, &[compute, compute], &expr, &spec.shape, spec.dtype)? {
            Some(o) => outs.push(o),
            None => return Ok(None),
        }
    }
    Ok(Some(outs))
}

pub fn ternary(op: &TernaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let TernaryOp::Select = op;
    let out = first_out(op.name(), outputs)?;
    if inputs.len() != 3 {
        return Err(Error::Device(format!(
            "where: {} inputs, not 3",
            inputs.len()
        )));
    }
    Ok(elementwise::run(
        inputs,
        &[Dtype::Bool, out.dtype, out.dtype],
        "(x0 ? x1 : x2)",
        &out.shape,
        out.dtype,
    )?
    .map(|o| vec![o]))
}

/// Creation ops: `full` (its value, usually a one-element host scalar passed by value, cast
/// and broadcast into a new array: no upload, no host fill), `eye` and `tri`. `arange` and
/// `linspace` stay on the host: MLX's arange is a running sum, rounded at each step, which a
/// parallel kernel would not reproduce bit for bit; they are uploaded when a kernel reads them.
pub fn creation(op: &CreationOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let out = first_out("full", outputs)?;
    match (op, inputs) {
        (CreationOp::Full, [x]) => {
            Ok(elementwise::run(inputs, &[x.dtype], "x0", &out.shape, out.dtype)?.map(|o| vec![o]))
        }
        _ if out.dtype == Dtype::Complex64 => Ok(None),
        (CreationOp::Arange { start, step }, []) => arange_int(out, *start, *step),
        (CreationOp::Linspace { start, stop }, []) => linspace(out, *start, *stop).map(Some),
        (CreationOp::Eye { k }, []) => Ok(Some(vec![matrix(out, "j - i == k", *k)?])),
        (CreationOp::Tri { k }, []) => Ok(Some(vec![matrix(out, "j <= i + k", *k)?])),
        _ => Ok(None),
    }
}

/// `arange` of an integer dtype: element `e` is `first + e * d` wrapped to the dtype, which is
/// what the CPU's running sum of wrapping adds gives (`first` and `first + d` are `start` and
/// `start + step` cast as Rust casts them). Float ranges round at each add on the CPU, a
/// sequence no parallel formula reproduces bit for bit: they stay there.
fn arange_int(out: &OutSpec, start: f64, step: f64) -> Outs {
    let cast = |v: f64| -> Option<i64> {
        Some(match out.dtype {
            Dtype::Int8 => v as i8 as i64,
            Dtype::Int16 => v as i16 as i64,
            Dtype::Int32 => v as i32 as i64,
            Dtype::Int64 => v as i64,
            Dtype::Uint8 => v as u8 as i64,
            Dtype::Uint16 => v as u16 as i64,
            Dtype::Uint32 => v as u32 as i64,
            Dtype::Uint64 => v as u64 as i64,
            _ => return None,
        })
    };
    let (Some(first), Some(next)) = (cast(start), cast(start + step)) else {
        return Ok(None);
    };
    let d = next.wrapping_sub(first);
    let n = umx_core::shape::numel(&out.shape);
    let (data, ptr) = crate::storage::fresh(&out.shape, out.dtype)?;
    if n == 0 {
        return Ok(Some(vec![data]));
    }
    let s = source::storage_type(out.dtype).unwrap_or("void");
    let f = crate::compile::function_for(
        &format!("arange|{:?}", out.dtype),
        || {
            format!(
                r#"{}
extern "C" __global__ void umx_arange({s}* out, long long n, long long first, long long d) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride)
    out[e] = ({s})((unsigned long long)first + (unsigned long long)e * (unsigned long long)d);
}}
"#,
                source::HEADER
            )
        },
        "umx_arange",
    )?;
    let g = crate::gpu::gpu()?;
    let mut args = source::Args::default();
    args.push(ptr).push(n as i64).push(first).push(d);
    let blocks = n.div_ceil(256).min(g.sm_count as usize * 8) as u32;
    crate::compile::launch(f, blocks, 256, 0, &mut args.pointers())?;
    Ok(Some(vec![data]))
}

/// `linspace`: element `e` of `n` is `(1 - t) * start + t * stop` with `t = e / (n - 1)`, in
/// float32 as the CPU computes it (no contraction: the same values bit for bit), then cast.
fn linspace(out: &OutSpec, start: f64, stop: f64) -> Result<Vec<ArrayData>> {
    let n = umx_core::shape::numel(&out.shape);
    let (data, ptr) = crate::storage::fresh(&out.shape, out.dtype)?;
    if n == 0 {
        return Ok(vec![data]);
    }
    let dtype = out.dtype;
    let s = source::storage_type(dtype).unwrap_or("void");
    let f = crate::compile::function_for(
        &format!("linspace|{dtype:?}"),
        || {
            format!(
                r#"{}
extern "C" __global__ void umx_linspace({s}* out, long long n, float start, float stop) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {{
    float v = start;
    if (n > 1) {{
      float t = (float)e / (float)(n - 1);
      v = (1.0f - t) * start + t * stop;
    }}
    out[e] = {};
  }}
}}
"#,
                source::HEADER,
                source::store(dtype, "v")
            )
        },
        "umx_linspace",
    )?;
    let g = crate::gpu::gpu()?;
    let mut args = source::Args::default();
    args.push(ptr)
        .push(n as i64)
        .push(start as f32)
        .push(stop as f32);
    let blocks = n.div_ceil(256).min(g.sm_count as usize * 8) as u32;
    crate::compile::launch(f, blocks, 256, 0, &mut args.pointers())?;
    Ok(vec![data])
}

/// A 2-D array of ones where `cond` (over row `i`, column `j` and `k`) holds, zeros elsewhere.
fn matrix(out: &OutSpec, cond: &str, k: i64) -> Result<ArrayData> {
    let n = umx_core::shape::numel(&out.shape);
    let (buffer, ptr) = crate::storage::output(n * out.dtype.size())?;
    let data = ArrayData {
        buffer: std::sync::Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: umx_core::shape::row_major_strides(&out.shape),
        offset: 0,
    };
    let cols = out.shape.last().copied().unwrap_or(1).max(1) as i64;
    if n == 0 {
        return Ok(data);
    }
    let s = source::storage_type(out.dtype).unwrap_or("void");
    let (one, zero) = (source::store(out.dtype, "1"), source::store(out.dtype, "0"));
    let f = crate::compile::function_for(
        &format!("matrix|{:?}|{cond}", out.dtype),
        || {
            format!(
                r#"{}
extern "C" __global__ void umx_matrix({s}* out, long long n, long long cols, long long k) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {{
    long long i = e / cols, j = e % cols;
    out[e] = ({cond}) ? {one} : {zero};
  }}
}}
"#,
                source::HEADER
            )
        },
        "umx_matrix",
    )?;
    let g = crate::gpu::gpu()?;
    let mut args = source::Args::default();
    args.push(ptr).push(n as i64).push(cols).push(k);
    crate::compile::launch(
        f,
        source::grid_for(n, 256, g.sm_count),
        256,
        0,
        &mut args.pointers(),
    )?;
    Ok(data)
}

/// A row-major contiguous copy of `x` on the device (with a cast when `dtype` differs).
pub fn contiguous(x: &ArrayData, dtype: Dtype) -> Result<Option<ArrayData>> {
    elementwise::run(std::slice::from_ref(x), &[x.dtype], "x0", &x.shape, dtype)
}

/// Raises kernel `f`'s dynamic shared memory limit to `bytes` (needed above 48 KB); `what`
/// names the op in the error.
pub(crate) fn set_shared(
    f: cudarc::driver::sys::CUfunction,
    bytes: usize,
    what: &str,
) -> Result<()> {
    // SAFETY: a loaded function; raising its dynamic shared memory limit to what it is given.
    unsafe {
        cudarc::driver::result::function::set_function_attribute(
            f,
            cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes as i32,
        )
    }
    .map_err(|e| crate::gpu::driver_err(&format!("{what}: shared memory"), e))
}

/// `x` as one row-major run on the device: itself when it is one, else a copy.
pub(crate) fn row_major(x: &ArrayData) -> Result<Option<ArrayData>> {
    if x.is_row_contiguous() || umx_core::shape::is_row_contiguous(&x.shape, &x.strides) {
        return Ok(Some(x.clone()));
    }
    contiguous(x, x.dtype)
}

/// The shape primitives that move data: copies (and casts), and reshapes of views that cannot
/// be restrided, concatenation, padding, and `as_strided` and `view` of an input that is not
/// one row-major run. The views themselves need no kernel (the CPU backend's view code only
/// computes strides).
pub fn shape(op: &ShapeOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let out = first_out(op.name(), outputs)?;
    match (op, inputs) {
        (ShapeOp::Copy, [x]) => Ok(contiguous(x, out.dtype)?.map(|o| vec![o])),
        (ShapeOp::Concatenate { axis }, xs) => {
            Ok(indexing::concatenate(xs, *axis, out)?.map(|o| vec![o]))
        }
        (
            ShapeOp::Pad {
                low,
                mode: PadMode::Constant,
                ..
            },
            [x, v],
        ) => Ok(indexing::pad_constant(x, v, low, out)?.map(|o| vec![o])),
        (
            ShapeOp::Pad {
                low,
                mode: PadMode::Edge,
                ..
            },
            [x],
        ) => Ok(indexing::pad_edge(x, low, out)?.map(|o| vec![o])),
        (ShapeOp::AsStrided { .. }, [x]) => as_strided(op, x, outputs),
        (ShapeOp::View { dtype }, [x]) => view(x, *dtype, out),
        _ => Ok(None),
    }
}

/// `view`: `x`'s bytes (row-major, copied into one run first when they are not) read as
/// `dtype`, as the CPU does: the same buffer when the offset allows, else a copy; bools are
/// normalised (a nonzero byte is true).
fn view(x: &ArrayData, dtype: Dtype, spec: &OutSpec) -> Outs {
    let Some(x) = row_major(x)? else {
        return Ok(None);
    };
    let (isize_, osize) = (x.dtype.size(), dtype.size());
    let nbytes = x.size() * isize_;
    if umx_core::shape::numel(&spec.shape) * osize != nbytes {
        return Err(Error::Device(
            "view: the output does not hold the input's bytes".into(),
        ));
    }
    let byte_offset = x.offset as usize * isize_;
    let bytes = ArrayData {
        shape: vec![nbytes],
        strides: vec![1],
        dtype: Dtype::Uint8,
        offset: byte_offset as isize,
        ..x.clone()
    };
    let relabel = |d: ArrayData, offset: isize| ArrayData {
        shape: spec.shape.clone(),
        strides: umx_core::shape::row_major_strides(&spec.shape),
        dtype,
        offset,
        ..d
    };
    if dtype == Dtype::Bool {
        return Ok(
            elementwise::run(&[bytes], &[Dtype::Uint8], "x0", &[nbytes], Dtype::Bool)?
                .map(|b| vec![relabel(b, 0)]),
        );
    }
    if !byte_offset.is_multiple_of(osize) {
        return Ok(contiguous(&bytes, Dtype::Uint8)?.map(|b| vec![relabel(b, 0)]));
    }
    Ok(Some(vec![relabel(x, (byte_offset / osize) as isize)]))
}

/// `as_strided`: the input made one row-major run on the GPU when it is not, then the CPU
/// kernel, which for such an input only computes the strides (and checks the view stays
/// inside the buffer), leaving the bytes on the device.
fn as_strided(op: &ShapeOp, x: &ArrayData, outputs: &[OutSpec]) -> Outs {
    let Some(x) = row_major(x)? else {
        return Ok(None);
    };
    umx_cpu::kernels::shape::eval(op, vec![x], outputs).map(Some)
}

/// A fused element-wise program (what `compile` makes of an element-wise chain) as one
/// generated kernel: each instruction becomes a C statement over the loaded inputs and the
/// earlier instructions, rounded to its dtype as the unfused op would store it, so the result
/// equals the unfused chain's. Programs with an instruction the generator has no expression
/// for run on the CPU fallback.
pub fn fused(op: &FusedOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let out = first_out("fused", outputs)?;
    if inputs.len() > elementwise::MAX_INPUTS
        || out.dtype == Dtype::Complex64
        || inputs.iter().any(|x| x.dtype == Dtype::Complex64)
    {
        return Ok(None);
    }
    let Some(stmts) = fused_statements(op, inputs)? else {
        return Ok(None);
    };
    let last = format!("t{}", op.program.len().saturating_sub(1));
    let compute: Vec<Dtype> = inputs.iter().map(|x| x.dtype).collect();
    let Some(r) = &op.reduce else {
        // Every output: the last instruction, then the extra ones, each stored as its dtype.
        let names: Vec<(String, Dtype)> = op
            .output_instrs()
            .into_iter()
            .map(|i| (format!("t{i}"), op.program[i].dtype))
            .collect();
        let outs: Vec<(&str, Dtype)> = names.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        return elementwise::run_program(inputs, &compute, &stmts, &outs, &out.shape);
    };
    // A reduction prologue: one pass where the layout allows it, else the program's result
    // stored and reduced.
    let mut shape: Vec<usize> = Vec::new();
    for x in inputs {
        shape = umx_core::shape::broadcast_shapes("fused", &shape, &x.shape)?;
    }
    // Kept values (the program's last instruction, also an output) are stored by the one pass
    // only over rows, where it reads and writes in 16-byte vectors; a column reduction's pass
    // (a thread per output, an element at a time) took 28-30 us to compute, store and sum a
    // GELU backward over 1024 x 4096 on an H200, and storing the values, then summing them,
    // made the compiled MLP step 13 us faster.
    let last_instr = op.program.len().saturating_sub(1);
    let over_rows = r.axes.last() == Some(&(shape.len().saturating_sub(1)));
    let one_pass = match op.extra[..] {
        [] => Some(None),
        [i] if i == last_instr && over_rows => Some(Some(op.program_dtype())),
        _ => None,
    };
    if let Some(keep) = one_pass {
        let values = reduce::Values {
            inputs: inputs.to_vec(),
            stmts: stmts.clone(),
            value: last.clone(),
            dtype: op.program_dtype(),
            shape: shape.clone(),
        };
        if let Some(o) = reduce::eval_fused(r.kind, &r.axes, values, out, keep)? {
            return Ok(Some(o));
        }
    }
    // The values reduced, then the extra outputs other than those (each stored once).
    let mut instrs = vec![last_instr];
    for &i in &op.extra {
        if !instrs.contains(&i) {
            instrs.push(i);
        }
    }
    let names: Vec<(String, Dtype)> = instrs
        .iter()
        .map(|&i| (format!("t{i}"), op.program[i].dtype))
        .collect();
    let outs: Vec<(&str, Dtype)> = names.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let Some(full) = elementwise::run_program(inputs, &compute, &stmts, &outs, &shape)? else {
        return Ok(None);
    };
    let kept: Vec<ArrayData> = op
        .extra
        .iter()
        .filter_map(|i| instrs.iter().position(|j| j == i).map(|k| full[k].clone()))
        .collect();
    let mut full = full;
    full.truncate(1);
    let reduce = umx_core::primitives::reduce::ReduceOp::Reduce {
        kind: r.kind,
        axes: r.axes.clone(),
    };
    let first = std::slice::from_ref(out);
    let mut reduced = match reduce::eval(&reduce, &full, first)? {
        Some(o) => o,
        // The CPU fallback would redo the whole program: reduce the stored result there.
        None => crate::fallback::eval(&Primitive::Reduce(reduce), full, first)?,
    };
    reduced.extend(kept);
    Ok(Some(reduced))
}

/// A group of fused element-wise programs (`compile`'s grouping of an optimizer's updates):
/// one kernel for all of them when every member's operands are contiguous (or single
/// elements), else each member on its own, as [`fused`] (or the CPU fallback) runs it.
pub fn fused_group(op: &FusedGroup, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    struct Member {
        inputs: Vec<ArrayData>,
        compute: Vec<Dtype>,
        stmts: String,
        names: Vec<(String, Dtype)>,
        shape: Vec<usize>,
    }
    // What each member's kernel needs, when the generator takes it.
    let mut members = Vec::with_capacity(op.members.len());
    for (m, picked, _) in op.split(inputs) {
        let simple = m.op.reduce.is_none()
            && picked.len() <= elementwise::MAX_INPUTS
            && picked.iter().all(|x| x.dtype != Dtype::Complex64)
            && m.op.program.iter().all(|i| i.dtype != Dtype::Complex64);
        let stmts = if simple {
            fused_statements(&m.op, &picked)?
        } else {
            None
        };
        let Some(stmts) = stmts else {
            members.clear();
            break;
        };
        let mut shape: Vec<usize> = Vec::new();
        for x in &picked {
            shape = umx_core::shape::broadcast_shapes("fused_group", &shape, &x.shape)?;
        }
        members.push(Member {
            compute: picked.iter().map(|x| x.dtype).collect(),
            inputs: picked,
            stmts,
            names: m
                .op
                .output_instrs()
                .into_iter()
                .map(|i| (format!("t{i}"), m.op.program[i].dtype))
                .collect(),
            shape,
        });
    }
    if members.len() == op.members.len() {
        let outs: Vec<Vec<(&str, Dtype)>> = members
            .iter()
            .map(|m| m.names.iter().map(|(n, d)| (n.as_str(), *d)).collect())
            .collect();
        let mut prepared = Vec::with_capacity(members.len());
        for (m, outs) in members.iter().zip(&outs) {
            match elementwise::prepare(&m.inputs, &m.compute, &m.stmts, outs, &m.shape)? {
                Some(p) if p.contiguous || p.n == 0 => prepared.push(p),
                _ => break,
            }
        }
        if prepared.len() == members.len() {
            elementwise::run_group(&prepared)?;
            return Ok(Some(prepared.into_iter().flat_map(|p| p.results).collect()));
        }
    }
    // Each member on its own.
    let mut results = Vec::with_capacity(outputs.len());
    for (m, picked, range) in op.split(inputs) {
        let specs = &outputs[range];
        let outs = match fused(&m.op, &picked, specs)? {
            Some(o) => o,
            None => crate::fallback::eval(&Primitive::Fused(m.op.clone()), picked, specs)?,
        };
        results.extend(outs);
    }
    Ok(Some(results))
}

/// The C statements of a fused program: `t{k}` is instruction `k`'s value in the compute type
/// of its dtype. `None` when an instruction has no C expression.
fn fused_statements(op: &FusedOp, inputs: &[ArrayData]) -> Result<Option<String>> {
    use umx_core::primitives::codegen::c_compute_type;
    use umx_core::primitives::fused::FusedArg;
    let program = &op.program;
    let arg = |a: &FusedArg| -> Result<(String, Dtype)> {
        match *a {
            FusedArg::Input(i) if i < inputs.len() => Ok((format!("x{i}"), inputs[i].dtype)),
            FusedArg::Instr(k) if k < program.len() => Ok((format!("t{k}"), program[k].dtype)),
            other => Err(Error::Device(format!(
                "fused: operand {other:?} out of range"
            ))),
        }
    };
    let mut stmts = String::new();
    for (k, ins) in program.iter().enumerate() {
        let Some(ct) = c_compute_type(ins.dtype) else {
            return Ok(None);
        };
        let args = ins.args.iter().map(arg).collect::<Result<Vec<_>>>()?;
        let expr = match (&ins.prim, args.as_slice()) {
            (Primitive::Unary(u), [(a, at)]) => match u.class() {
                UnaryClass::Cast => Some(a.clone()),
                _ => u.c_expr(*at, a),
            },
            (Primitive::Binary(b), [(a, at), (c, bt)]) if *b != BinaryOp::DivMod => {
                match b.compute_dtype(promote_types(*at, *bt)) {
                    Some(compute) => match c_compute_type(compute) {
                        Some(cc) => b.c_expr(
                            compute,
                            &format!("(({cc})({a}))"),
                            &format!("(({cc})({c}))"),
                        ),
                        None => None,
                    },
                    None => None,
                }
            }
            (Primitive::Ternary(TernaryOp::Select), [(c, _), (a, _), (b, _)]) => {
                Some(format!("(((bool)({c})) ? (({ct})({a})) : (({ct})({b})))"))
            }
            _ => {
                return Err(Error::Device(format!(
                    "fused: instruction {k} ({}) with {} operands",
                    ins.prim.name(),
                    args.len()
                )));
            }
        };
        let Some(expr) = expr else { return Ok(None) };
        // The value as the unfused op would have stored it, back in the compute type.
        let stored = source::load(ins.dtype, &source::store(ins.dtype, &expr), ct);
        stmts += &format!("    {ct} t{k} = {stored};\n");
    }
    Ok(Some(stmts))
}

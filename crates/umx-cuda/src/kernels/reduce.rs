//! Reductions: sum, prod, max, min, mean, all, any over any axes.
//!
//! Every reduction becomes one of two shapes over a contiguous input: rows `(outer, K)` where
//! the reduced axes are the trailing ones (one block per row, or several per row plus a second
//! pass when there are few long rows, as for a reduction over everything: warp shuffles, then
//! shared memory across warps, 16-byte loads where aligned), or columns `(outer, K, inner)`
//! where they sit before kept axes (a block per 256 adjacent outputs, a thread each with
//! eight rows' loads in flight, coalesced over `inner`; long columns split into parts and a
//! second pass). Reduced
//! axes that are not one run are first gathered to the end by a transposing copy.
//!
//! Accumulation follows the CPU kernels: float16 and bfloat16 in float32, small integers in
//! int32/uint32 for sum and prod (MLX's output dtypes), NaN propagating through max and min,
//! and the mean as the sum times `1/n`. Arg-reductions are still on the fallback.

use super::contiguous;
use super::source::{
    Args, HEADER, complex_compute_type, complex_prelude, complex_storage_type, complex_store, load,
};
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
/// Vectors each thread of a row reduction loads before it accumulates (loads in flight).
const UNROLL: usize = 4;
/// Elements one block of a split row reduces (before the second pass combines the parts),
/// and the most blocks per SM a split makes. Many small blocks keep more loads in flight: on
/// the H100, sum(x*y) over 2^28 took 0.695 ms this way and 0.739 ms with 8 blocks per SM of
/// 2^16 elements.
const SPLIT_CHUNK: usize = 1 << 14;
const SPLIT_BLOCKS_PER_SM: usize = 128;
/// Fewest rows one part of a split column reduction takes (two rounds of loads).
const COL_MIN_PART: usize = 16;
/// Columns one block of a column reduction takes: a thread each, so a block reads this
/// many adjacent values of a row (1 KB of float32). The kernel before, whose blocks read a
/// warp's 128 bytes of each row, summed 1024 x 4096 columns at a third of an H100's
/// bandwidth (15.6 us under `ncu`).
const COL_TILE: usize = THREADS as usize;
/// Rows each thread of a column reduction loads before it accumulates (loads in flight).
const COL_UNROLL: usize = 8;
/// Outputs one block of a column reduction's second pass combines: a warp's worth, each
/// summed over its parts by THREADS / SPLIT_OUTPUTS threads at once.
const SPLIT_OUTPUTS: usize = 32;

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
    if x == Complex64 && !matches!(kind, ReduceKind::All | ReduceKind::Any) {
        // complex64 in the element-wise kernels' pair type: sums, products, and max/min
        // ordered by real part, then imaginary part, as the CPU's (`a` wins where the CPU's
        // tuple comparison says so). Truth tests take the general path below (a value is
        // true when either part is nonzero).
        let inf = "__int_as_float(0x7f800000)";
        let (init, comb): (String, Comb) = match kind {
            ReduceKind::Sum | ReduceKind::Mean => {
                ("((umx_c64)0)".into(), |a, b, _| format!("({a} + {b})"))
            }
            ReduceKind::Prod => ("((umx_c64)1)".into(), |a, b, _| format!("({a} * {b})")),
            ReduceKind::Max => (format!("umx_c64(-{inf}, -{inf})"), |a, b, _| {
                format!(
                    "umx_cpick({a}, {b}, ({a}.re != {b}.re ? {a}.re > {b}.re : {a}.im > {b}.im))"
                )
            }),
            ReduceKind::Min => (format!("umx_c64({inf}, {inf})"), |a, b, _| {
                format!(
                    "umx_cpick({a}, {b}, ({a}.re != {b}.re ? {a}.re < {b}.re : {a}.im < {b}.im))"
                )
            }),
            _ => return None,
        };
        return Some(Red {
            acc: Complex64,
            truthy: false,
            init,
            comb,
        });
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
    let values = Values::single(data);
    launch_reduce(*kind, &red, &values, (outer, k, inner), out, None).map(Some)
}

/// What a reduction kernel reduces: row-major contiguous inputs of one shape, and the C
/// statements that make each value from them (`x0`, `x1`, ... loaded in their compute types)
/// ending in `value`, of `dtype`'s compute type.
pub(crate) struct Values {
    pub inputs: Vec<ArrayData>,
    pub stmts: String,
    pub value: String,
    pub dtype: Dtype,
    /// The values' shape: every input's, but single elements' (which broadcast).
    pub shape: Vec<usize>,
}

impl Values {
    /// One input's elements as they are.
    fn single(x: ArrayData) -> Values {
        Values {
            dtype: x.dtype,
            shape: x.shape.clone(),
            inputs: vec![x],
            stmts: String::new(),
            value: "x0".into(),
        }
    }
}

/// A reduction whose values a fused program computes from its inputs (a reduction prologue),
/// and with `keep` those values too, stored as that dtype in a second output of the
/// program's shape (in the same pass). `None` when the layout does not allow one pass: an
/// input is neither one element nor a row-major array of the program's shape on the device,
/// or the reduced axes are not one run. The caller then stores the program's result and
/// reduces it.
pub(crate) fn eval_fused(
    kind: ReduceKind,
    axes: &[usize],
    values: Values,
    out: &OutSpec,
    keep: Option<Dtype>,
) -> Result<Option<Vec<ArrayData>>> {
    let shape = values.shape.clone();
    let run = !axes.is_empty()
        && axes.windows(2).all(|w| w[1] == w[0] + 1)
        && axes.iter().all(|&a| a < shape.len());
    // Each input of the program's shape, row-major from its offset, or one element (a
    // constant of the program: read where it is).
    let layout_ok = values.inputs.iter().all(|x| {
        if x.size() == 1 {
            // On the host too: passed by value.
            x.shape.len() <= shape.len()
        } else {
            x.shape == shape
                && umx_core::shape::is_row_contiguous(&x.shape, &x.strides)
                && x.buffer.residency().device.is_some()
        }
    });
    if !run || !layout_ok || numel(&shape) == 0 {
        return Ok(None);
    }
    let Some(red) = plan(kind, values.dtype) else {
        return Ok(None);
    };
    let (a0, a1) = (axes[0], axes[axes.len() - 1]);
    let outer: usize = shape[..a0].iter().product();
    let k: usize = shape[a0..=a1].iter().product();
    let inner: usize = shape[a1 + 1..].iter().product();
    launch_reduce(kind, &red, &values, (outer, k, inner), out, keep).map(Some)
}

/// Launches the reduction of `values` laid out as `(outer, k, inner)`, reducing `k`: the
/// reduced output, then with `keep` the values themselves as that dtype.
fn launch_reduce(
    kind: ReduceKind,
    red: &Red,
    values: &Values,
    (outer, k, inner): (usize, usize, usize),
    out: &OutSpec,
    keep: Option<Dtype>,
) -> Result<Vec<ArrayData>> {
    let n_out = outer * inner;
    if n_out != numel(&out.shape) {
        return Err(Error::Device(format!(
            "{}: output size mismatch",
            kind.name()
        )));
    }
    let scale = (kind == ReduceKind::Mean).then(|| 1.0 / k as f64);
    let g = gpu()?;
    let (buffer, out_ptr) = output(n_out * out.dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    let mut results = vec![result];
    // The kept values, row-major.
    let keep_ptr = match keep {
        Some(d) => {
            let (b, ptr) = output(outer * k * inner * d.size())?;
            results.push(ArrayData {
                buffer: Arc::new(b),
                shape: values.shape.clone(),
                dtype: d,
                strides: row_major_strides(&values.shape),
                offset: 0,
            });
            Some(ptr)
        }
        None => None,
    };
    if n_out == 0 {
        return Ok(results);
    }
    // The inputs: device addresses, and single elements still on the host by value.
    let ins = values
        .inputs
        .iter()
        .map(|x| match host_single(x, &values.shape)? {
            Some(bytes) => Ok(In::Value(bytes)),
            None => Ok(In::Ptr(input_ptr(x)?)),
        })
        .collect::<Result<Vec<In>>>()?;
    let ptrs: Vec<u64> = ins
        .iter()
        .map(|i| if let In::Ptr(p) = i { *p } else { 0 })
        .collect();
    // The first pass's parameters after its output: the kept values' pointer, the inputs.
    let with_inputs = |args: &mut Args| {
        if let Some(p) = keep_ptr {
            args.push(p);
        }
        push_inputs(args, &ins);
    };
    if inner > 1 {
        // Columns. Too few outputs to fill the card: split the reduced axis into parts (a
        // block per COL_TILE outputs and part), then reduce the parts the same way. The parts are
        // as many as fit the card's resident blocks in one wave (a second wave of a few
        // blocks would double the time: a bias gradient of 1024 x 4096 took 12 us in two
        // waves of 1152 blocks on an H200).
        let resident = g.sm_count as usize * 2048 / THREADS as usize;
        let col = |src: String,
                   out_ptr: u64,
                   kept: Option<u64>,
                   ins: &[In],
                   (outer, k, inner, chunk): (usize, usize, usize, usize),
                   parts: usize|
         -> Result<()> {
            let f = function(&src, "umx_reduce_col")?;
            let tiles = (outer * inner).div_ceil(COL_TILE);
            let mut args = Args::default();
            args.push(out_ptr);
            if let Some(p) = kept {
                args.push(p);
            }
            push_inputs(&mut args, ins);
            args.push(outer as i64)
                .push(k as i64)
                .push(inner as i64)
                .push(chunk as i64)
                .push(tiles as i64);
            let blocks = u32::try_from(tiles * parts).map_err(|_| {
                Error::Device(format!("{}: {n_out} outputs are too many", kind.name()))
            })?;
            launch(f, blocks, THREADS, 0, &mut args.pointers())
        };
        let parts = (resident / n_out.div_ceil(COL_TILE))
            .min(k / COL_MIN_PART)
            .max(1);
        let chunk = k.div_ceil(parts);
        let parts = k.div_ceil(chunk.max(1)).max(1);
        let pro = values.prologue(keep);
        if parts == 1 {
            let src = col_source(red, &pro, out.dtype, scale);
            col(src, out_ptr, keep_ptr, &ins, (outer, k, inner, k), 1)?;
        } else {
            let (scratch, scratch_ptr) = output(parts * n_out * red.acc.size())?;
            let src1 = col_source(red, &pro, red.acc, None);
            col(
                src1,
                scratch_ptr,
                keep_ptr,
                &ins,
                (outer, k, inner, chunk),
                parts,
            )?;
            if red.acc == Dtype::Complex64 {
                let src2 = col_source(red, &Prologue::partials(red), out.dtype, scale);
                col(
                    src2,
                    out_ptr,
                    None,
                    &[In::Ptr(scratch_ptr)],
                    (1, parts, n_out, parts),
                    1,
                )?;
            } else {
                // The parts of each output summed by several threads at once (a thread per
                // output summed its parts one after another: 6 us for 66 parts of 4096
                // outputs on an H200, its loads waiting on each other).
                let src2 = col_split_source(red, out.dtype, scale);
                let f = function(&src2, "umx_reduce_col_split")?;
                let mut args = Args::default();
                args.push(out_ptr)
                    .push(scratch_ptr)
                    .push(parts as i64)
                    .push(n_out as i64);
                let blocks = u32::try_from(n_out.div_ceil(SPLIT_OUTPUTS)).map_err(|_| {
                    Error::Device(format!("{}: {n_out} outputs are too many", kind.name()))
                })?;
                launch(f, blocks, THREADS, 0, &mut args.pointers())?;
            }
            // Back to the pool; the stream orders its reuse after these launches.
            drop(scratch);
        }
        return Ok(results);
    }
    // Rows. Few long rows: split each over several blocks, then combine the parts.
    let parts = if outer < 2 * g.sm_count as usize && k > 2 * SPLIT_CHUNK {
        k.div_ceil(SPLIT_CHUNK)
            .min(SPLIT_BLOCKS_PER_SM * g.sm_count as usize / outer.max(1))
            .max(1)
    } else {
        1
    };
    // Vectors of the inputs read a row at a time (single elements are read as they are).
    let rows_read: Vec<(usize, &ArrayData)> = values
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, x)| !is_single(x, &values.shape))
        .collect();
    let widest = rows_read
        .iter()
        .map(|(_, x)| x.dtype.size())
        .max()
        .unwrap_or(1);
    let e = (16 / widest).max(1);
    let chunk = k.div_ceil(parts).div_ceil(e) * e;
    let aligned = rows_read.iter().all(|&(i, _)| ptrs[i].is_multiple_of(16)) && k.is_multiple_of(e);
    let pro = values.prologue(keep);
    if parts == 1 {
        let src = row_source(red, &pro, out.dtype, scale, e);
        let f = function(&src, "umx_reduce_row")?;
        let mut args = Args::default();
        args.push(out_ptr);
        with_inputs(&mut args);
        args.push(k as i64)
            .push(chunk as i64)
            .push(1i32)
            .push(aligned as i32);
        launch(f, outer as u32, THREADS, 0, &mut args.pointers())?;
    } else {
        let acc_size = red.acc.size();
        let (scratch, scratch_ptr) = output(outer * parts * acc_size)?;
        let src1 = row_source(red, &pro, red.acc, None, e);
        let f1 = function(&src1, "umx_reduce_row")?;
        let mut args = Args::default();
        args.push(scratch_ptr);
        with_inputs(&mut args);
        args.push(k as i64)
            .push(chunk as i64)
            .push(parts as i32)
            .push(aligned as i32);
        launch(f1, (outer * parts) as u32, THREADS, 0, &mut args.pointers())?;
        // The parts combine as plain accumulator values.
        let ea = (16 / acc_size).max(1);
        let src2 = row_source(red, &Prologue::partials(red), out.dtype, scale, ea);
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
    Ok(results)
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

fn stype(d: Dtype) -> &'static str {
    complex_storage_type(d).unwrap_or("void")
}

/// The accumulator's (or an input's) compute type, `float` for none.
fn ctype(d: Dtype) -> &'static str {
    complex_compute_type(d).unwrap_or("float")
}

/// What every reduction kernel's source starts with (the complex type where it is used).
fn headers(red: &Red, v: &Prologue) -> String {
    let complex = red.acc == Dtype::Complex64 || v.dtypes.contains(&Dtype::Complex64);
    format!("{HEADER}{PRELUDE}{}", complex_prelude(complex))
}

/// The final store of an accumulator: scaled for the mean, converted to the output dtype.
fn finish(red: &Red, out: Dtype, scale: Option<f64>, acc: &str) -> String {
    let t = ctype(red.acc);
    let scale_t = if red.acc == Dtype::Complex64 {
        Dtype::Float32
    } else {
        red.acc
    };
    match scale {
        Some(s) => complex_store(out, &format!("({acc} * ({t}){})", c_float(s, scale_t))),
        None => complex_store(out, acc),
    }
}

/// The kernel parameters of the inputs (`in0`, `in1`, ...).
fn input_params(v: &Prologue) -> String {
    v.dtypes
        .iter()
        .enumerate()
        .map(|(i, &d)| match v.single[i] {
            Single::Value => format!(", {} v{i}", stype(d)),
            _ => format!(", const {}* __restrict__ in{i}", stype(d)),
        })
        .collect()
}

/// C statements making the accumulator value `x` from the stored inputs, where input `i`'s
/// element is `at(i)`: each input loaded in its compute type, the prologue's statements (and
/// the value stored at `st[idx]` when the prologue keeps its values), and the value converted
/// (to its truth for all/any: 0.5 is true, not 0).
fn value_of(red: &Red, pro: &Prologue, at: &dyn Fn(usize) -> String, idx: &str) -> String {
    let a = ctype(red.acc);
    let mut s = String::new();
    for (i, &d) in pro.dtypes.iter().enumerate() {
        let ct = ctype(d);
        let from = match pro.single[i] {
            Single::No => at(i),
            Single::Device => format!("in{i}[0]"),
            Single::Value => format!("v{i}"),
        };
        s += &format!("{ct} x{i} = {}; ", load(d, &from, ct));
    }
    s += pro.stmts;
    if let Some(d) = pro.keep {
        s += &format!(" st[{idx}] = {};", complex_store(d, pro.value));
    }
    if red.truthy {
        s += &format!("{a} x = (({a})((bool)({})));", pro.value);
    } else {
        s += &format!("{a} x = (({a})({}));", pro.value);
    }
    s
}

/// How a reduction kernel reads an input.
#[derive(Clone, Copy, PartialEq)]
enum Single {
    /// An element per value.
    No,
    /// One element on the device.
    Device,
    /// One element passed by value.
    Value,
}

/// What the source generators need of [`Values`]: the inputs' dtypes, the statements and the
/// value, and the dtype the values are kept in (a second output, `st`).
struct Prologue<'a> {
    dtypes: Vec<Dtype>,
    /// Which inputs are one element: on the device (read at `in{i}[0]` for every value), or
    /// passed by value (`v{i}`).
    single: Vec<Single>,
    stmts: &'a str,
    value: &'a str,
    keep: Option<Dtype>,
}

impl Prologue<'static> {
    /// A second pass's values: the first pass's partial accumulators.
    fn partials(red: &Red) -> Prologue<'static> {
        Prologue {
            dtypes: vec![red.acc],
            single: vec![Single::No],
            stmts: "",
            value: "x0",
            keep: None,
        }
    }
}

impl Values {
    fn prologue(&self, keep: Option<Dtype>) -> Prologue<'_> {
        Prologue {
            dtypes: self.inputs.iter().map(|x| x.dtype).collect(),
            single: self
                .inputs
                .iter()
                .map(
                    |x| match (is_single(x, &self.shape), x.buffer.residency().device) {
                        (false, _) => Single::No,
                        (true, Some(_)) => Single::Device,
                        (true, None) => Single::Value,
                    },
                )
                .collect(),
            stmts: &self.stmts,
            value: &self.value,
            keep,
        }
    }
}

/// Whether an input is one element that broadcasts over values of `shape`.
fn is_single(x: &ArrayData, shape: &[usize]) -> bool {
    x.size() == 1 && numel(shape) != 1
}

/// A single element still on the host (a program's constant): its bytes, passed by value
/// (as the element-wise kernels pass them) rather than uploaded.
fn host_single(x: &ArrayData, shape: &[usize]) -> Result<Option<Vec<u8>>> {
    if !is_single(x, shape) || x.buffer.residency().device.is_some() {
        return Ok(None);
    }
    let size = x.dtype.size();
    let at = x.offset as usize * size;
    let bytes = x.buffer.host_bytes()?;
    bytes
        .get(at..at + size)
        .map(|b| Some(b.to_vec()))
        .ok_or_else(|| Error::Device("reduce: a single element out of its buffer".into()))
}

/// A reduction kernel's input argument: a device address, or an element by value.
enum In {
    Ptr(u64),
    Value(Vec<u8>),
}

fn push_inputs(args: &mut Args, ins: &[In]) {
    for i in ins {
        match i {
            In::Ptr(p) => args.push(*p),
            In::Value(b) => args.push_bytes(b),
        };
    }
}

/// The kernel parameter of the kept values, after the output (none when not kept).
fn keep_param(v: &Prologue) -> String {
    v.keep.map_or(String::new(), |d| {
        format!(", {}* __restrict__ st", stype(d))
    })
}

fn row_source(red: &Red, v: &Prologue, out: Dtype, scale: Option<f64>, e: usize) -> String {
    let a = ctype(red.acc);
    let os = stype(out);
    let f = red.acc.is_float();
    let comb = |x: &str, y: &str| (red.comb)(x, y, f);
    let params = input_params(v);
    let packs: String = v
        .dtypes
        .iter()
        .enumerate()
        .filter(|&(i, _)| v.single[i] == Single::No)
        .map(|(i, &d)| {
            let is = stype(d);
            format!("if (j < hv) q{i}[u] = ((const umx_pack<{is}, {e}>*)(in{i} + r * K))[j]; ")
        })
        .collect();
    let decls: String = v
        .dtypes
        .iter()
        .enumerate()
        .filter(|&(i, _)| v.single[i] == Single::No)
        .map(|(i, &d)| {
            let is = stype(d);
            format!("umx_pack<{is}, {e}> q{i}[{UNROLL}]; ")
        })
        .collect();
    let from_packs = value_of(
        red,
        v,
        &|i| format!("q{i}[u].v[k]"),
        &format!("r * K + (j0 + u * blockDim.x) * {e} + k"),
    );
    let from_rows = value_of(red, v, &|i| format!("in{i}[r * K + idx]"), "r * K + idx");
    let keep = keep_param(v);
    format!(
        r#"{headers}
extern "C" __global__ void umx_reduce_row({os}* __restrict__ out{keep}{params}, long long K, long long chunk, int parts, int aligned) {{
  long long r = blockIdx.x / parts;
  long long p = blockIdx.x % parts;
  long long lo = p * chunk, hi = lo + chunk < K ? lo + chunk : K;
  {a} acc = {init};
  if (aligned) {{
    long long hv = hi / {e};
    {decls}
    for (long long j0 = lo / {e} + threadIdx.x; j0 < hv; j0 += blockDim.x * {UNROLL}) {{
      // Every load of the round in flight before the first use.
      #pragma unroll
      for (int u = 0; u < {UNROLL}; u++) {{ long long j = j0 + u * blockDim.x; {packs}}}
      #pragma unroll
      for (int u = 0; u < {UNROLL}; u++) {{
        if (j0 + u * blockDim.x >= hv) break;
        #pragma unroll
        for (int k = 0; k < {e}; k++) {{ {from_packs} acc = {c1}; }}
      }}
    }}
  }} else {{
    for (long long idx = lo + threadIdx.x; idx < hi; idx += blockDim.x) {{ {from_rows} acc = {c1}; }}
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
        headers = headers(red, v),
        init = red.init,
        c1 = comb("acc", "x"),
        c2 = comb("acc", "o"),
        fin = finish(red, out, scale, "acc"),
    )
}

/// The second pass of a column reduction: `K` parts of `n` outputs (`in0[k * n + t]`, plain
/// accumulator values), a block per SPLIT_OUTPUTS adjacent outputs, each warp taking every
/// eighth part of them (a warp reads 128 adjacent bytes of a part), combined in shared memory.
fn col_split_source(red: &Red, out: Dtype, scale: Option<f64>) -> String {
    let a = ctype(red.acc);
    let os = stype(out);
    let f = red.acc.is_float();
    let comb = |x: &str, y: &str| (red.comb)(x, y, f);
    let ways = THREADS as usize / SPLIT_OUTPUTS;
    let v = Prologue::partials(red);
    format!(
        r#"{headers}
extern "C" __global__ void __launch_bounds__({threads}) umx_reduce_col_split({os}* __restrict__ out, const {acc_s}* __restrict__ in0, long long K, long long n) {{
  int lane = threadIdx.x % {outs}, way = threadIdx.x / {outs};
  long long t = (long long)blockIdx.x * {outs} + lane;
  {a} acc = {init};
  if (t < n) {{
    for (long long k = way; k < K; k += {ways}) {{ {a} x = in0[k * n + t]; acc = {c}; }}
  }}
  __shared__ {a} sh[{ways}][{outs}];
  sh[way][lane] = acc;
  __syncthreads();
  if (way == 0 && t < n) {{
    for (int w = 1; w < {ways}; w++) {{ {a} x = sh[w][lane]; acc = {c}; }}
    out[t] = {fin};
  }}
}}
"#,
        headers = headers(red, &v),
        threads = THREADS,
        acc_s = stype(red.acc),
        outs = SPLIT_OUTPUTS,
        init = red.init,
        c = comb("acc", "x"),
        fin = finish(red, out, scale, "acc"),
    )
}

fn col_source(red: &Red, v: &Prologue, out: Dtype, scale: Option<f64>) -> String {
    let a = ctype(red.acc);
    let os = stype(out);
    let f = red.acc.is_float();
    let params = input_params(v);
    let comb = |x: &str, y: &str| (red.comb)(x, y, f);
    // COL_UNROLL rows at once, each into its own accumulator, so their loads are in flight
    // together.
    let unrolled: String = (0..COL_UNROLL)
        .map(|u| {
            let at = |i: usize| format!("in{i}[base + (k + {u}) * inner]");
            format!(
                "{{ {} acc{u} = {}; }} ",
                value_of(red, v, &at, &format!("base + (k + {u}) * inner")),
                comb(&format!("acc{u}"), "x")
            )
        })
        .collect();
    let one = value_of(
        red,
        v,
        &|i| format!("in{i}[base + k * inner]"),
        "base + k * inner",
    );
    let keep = keep_param(v);
    let accs: String = (0..COL_UNROLL)
        .map(|u| format!("{a} acc{u} = {init}; ", init = red.init))
        .collect();
    let merge: String = (1..COL_UNROLL)
        .map(|u| format!("acc0 = {}; ", comb("acc0", &format!("acc{u}"))))
        .collect();
    format!(
        r#"{headers}
/* Block b = part * tiles + tile reduces rows [part * chunk, (part + 1) * chunk) of the
   {tile} outputs tile * {tile} + threadIdx.x into out[part * outer * inner + output], a
   thread per output, {unroll} rows at a time: the block reads adjacent values of a row. */
extern "C" __global__ void __launch_bounds__({threads}) umx_reduce_col({os}* __restrict__ out{keep}{params}, long long outer, long long K, long long inner, long long chunk, long long tiles) {{
  long long part = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  long long k0 = part * chunk, k1 = k0 + chunk < K ? k0 + chunk : K;
  long long n = outer * inner;
  long long t = tile * {tile} + threadIdx.x;
  if (t >= n) return;
  {accs}
  long long o = t / inner, i = t % inner;
  long long base = o * K * inner + i;
  long long k = k0;
  for (; k + {last} < k1; k += {unroll}) {{ {unrolled} }}
  for (; k < k1; k++) {{ {one} acc0 = {c}; }}
  {merge}
  out[part * n + t] = {fin};
}}
"#,
        headers = headers(red, v),
        threads = THREADS,
        tile = COL_TILE,
        unroll = COL_UNROLL,
        last = COL_UNROLL - 1,
        c = comb("acc0", "x"),
        fin = finish(red, out, scale, "acc0"),
    )
}

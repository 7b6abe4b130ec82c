//! CPU kernels of the binary primitives.
//!
//! One generic loop ([`map2`]) serves every op: the op's scalar semantics come from
//! `umx_core::primitives::binary` as a closure, and the loop picks a path by layout:
//! - the output is iterated as rows of the innermost (collapsed) dimension; each operand's row
//!   is a contiguous slice, a scalar (stride 0) or a strided run, and the row loops over
//!   slices and scalars are plain iterator zips that LLVM vectorises;
//! - contiguous-contiguous, contiguous-scalar and scalar-contiguous inputs collapse to one row,
//!   which is split into chunks across rayon threads above `PARALLEL_THRESHOLD` elements;
//! - a uniquely owned, contiguous input of the output's size and dtype is donated: the output
//!   is written into its buffer, so a chain like `(x * 2 + 5) / 3` allocates once.
//!
//! Inputs whose dtype differs from the compute dtype are converted first; float16 and bfloat16
//! are computed in float32 and rounded once.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use half::{bf16, f16};
use num_complex::Complex32;
use rayon::prelude::*;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::BinaryOp;
use umx_core::primitives::binary::{
    Arithmetic, BinaryKind, Bitwise, Compare, FloatMath, logical_and, logical_or,
};
use umx_core::shape::{broadcast_strides, numel};
use umx_core::{ArrayData, Dtype, Element, Error, Result, dispatch_dtype, promote_types};

/// Evaluates a binary primitive on two inputs.
pub fn eval(op: &BinaryOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let name = op.name();
    let [a, b]: [ArrayData; 2] = inputs
        .try_into()
        .map_err(|v: Vec<ArrayData>| Error::Device(format!("{name}: {} inputs, not 2", v.len())))?;
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{name}: no output asked for")))?;
    let compute = op
        .compute_dtype(promote_types(a.dtype, b.dtype))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{name}: not supported for {} and {}",
                a.dtype, b.dtype
            ))
        })?;
    let a = cast(a, compute)?;
    let b = cast(b, compute)?;
    let shape = &out.shape[..];
    if *op == BinaryOp::DivMod {
        let q = arithmetic(&BinaryOp::FloorDivide, a.clone(), b.clone(), shape)?;
        let r = arithmetic(&BinaryOp::Remainder, a, b, shape)?;
        return Ok(vec![q, r]);
    }
    let result = match op.kind() {
        BinaryKind::Arithmetic => arithmetic(op, a, b, shape)?,
        BinaryKind::FloatMath => float_math(op, a, b, shape)?,
        BinaryKind::Comparison => comparison(op, a, b, shape)?,
        BinaryKind::Logical => {
            let f = match op {
                BinaryOp::LogicalAnd => logical_and,
                _ => logical_or,
            };
            map2_same::<bool, _>(a, b, shape, f)?
        }
        BinaryKind::Bitwise => bitwise(op, a, b, shape)?,
    };
    Ok(vec![result])
}

/// Storage types and the type they compute in: float16/bfloat16 widen to float32.
trait Lane: Element {
    type C: Copy + Send + Sync;
    fn load(self) -> Self::C;
    fn store(c: Self::C) -> Self;
}

macro_rules! lane_identity {
    ($($t:ty),*) => {$(
        impl Lane for $t {
            type C = $t;
            #[inline(always)]
            fn load(self) -> $t { self }
            #[inline(always)]
            fn store(c: $t) -> $t { c }
        }
    )*};
}
lane_identity!(
    bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, Complex32
);

impl Lane for f16 {
    type C = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn store(c: f32) -> f16 {
        f16::from_f32(c)
    }
}
impl Lane for bf16 {
    type C = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn store(c: f32) -> bf16 {
        bf16::from_f32(c)
    }
}

fn unsupported(op: &BinaryOp, dtype: Dtype) -> Error {
    Error::Invalid(format!("{}: not supported for {dtype}", op.name()))
}

/// Runs `$f::<T>(args)` with `T` the storage type of `$dtype`, for the dtypes listed.
macro_rules! dispatch {
    ($dtype:expr, $op:expr, $f:ident $args:tt, [$($d:ident => $t:ty),*]) => {
        match $dtype {
            $(Dtype::$d => $f::<$t> $args,)*
            other => Err(unsupported($op, other)),
        }
    };
}

fn arithmetic(op: &BinaryOp, a: ArrayData, b: ArrayData, shape: &[usize]) -> Result<ArrayData> {
    if a.dtype == Dtype::Complex64 {
        return arithmetic_complex(op, a, b, shape);
    }
    dispatch!(a.dtype, op, arithmetic_t(op, a, b, shape), [
        Bool => bool, Uint8 => u8, Uint16 => u16, Uint32 => u32, Uint64 => u64,
        Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64,
        Float16 => f16, Bfloat16 => bf16, Float32 => f32, Float64 => f64
    ])
}

fn arithmetic_t<T: Lane>(
    op: &BinaryOp,
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
) -> Result<ArrayData>
where
    T::C: Arithmetic,
{
    macro_rules! go {
        ($m:ident) => {
            map2_same::<T, _>(a, b, shape, |x: T, y: T| {
                T::store(Arithmetic::$m(x.load(), y.load()))
            })
        };
    }
    match op {
        BinaryOp::Add => go!(add),
        BinaryOp::Subtract => go!(subtract),
        BinaryOp::Multiply => go!(multiply),
        BinaryOp::Divide => go!(divide),
        BinaryOp::FloorDivide => go!(floor_divide),
        BinaryOp::Remainder => go!(remainder),
        BinaryOp::Power => go!(power),
        BinaryOp::Maximum => go!(maximum),
        BinaryOp::Minimum => go!(minimum),
        _ => Err(unsupported(op, T::DTYPE)),
    }
}

fn arithmetic_complex(
    op: &BinaryOp,
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
) -> Result<ArrayData> {
    type C = Complex32;
    match op {
        BinaryOp::Add => map2_same::<C, _>(a, b, shape, Arithmetic::add),
        BinaryOp::Subtract => map2_same::<C, _>(a, b, shape, Arithmetic::subtract),
        BinaryOp::Multiply => map2_same::<C, _>(a, b, shape, Arithmetic::multiply),
        BinaryOp::Divide => map2_same::<C, _>(a, b, shape, Arithmetic::divide),
        _ => Err(unsupported(op, Dtype::Complex64)),
    }
}

fn float_math(op: &BinaryOp, a: ArrayData, b: ArrayData, shape: &[usize]) -> Result<ArrayData> {
    dispatch!(a.dtype, op, float_math_t(op, a, b, shape), [
        Float16 => f16, Bfloat16 => bf16, Float32 => f32, Float64 => f64
    ])
}

fn float_math_t<T: Lane>(
    op: &BinaryOp,
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
) -> Result<ArrayData>
where
    T::C: FloatMath,
{
    macro_rules! go {
        ($m:ident) => {
            map2_same::<T, _>(a, b, shape, |x: T, y: T| {
                T::store(FloatMath::$m(x.load(), y.load()))
            })
        };
    }
    match op {
        BinaryOp::ArcTan2 => go!(arctan2),
        BinaryOp::LogAddExp => go!(logaddexp),
        _ => Err(unsupported(op, T::DTYPE)),
    }
}

fn comparison(op: &BinaryOp, a: ArrayData, b: ArrayData, shape: &[usize]) -> Result<ArrayData> {
    if let BinaryOp::IsClose {
        rtol,
        atol,
        equal_nan,
    } = *op
    {
        return dispatch!(a.dtype, op, is_close_t(a, b, shape, rtol, atol, equal_nan), [
            Float16 => f16, Bfloat16 => bf16, Float32 => f32, Float64 => f64
        ]);
    }
    if a.dtype == Dtype::Complex64 {
        type C = Complex32;
        return match op {
            BinaryOp::Equal | BinaryOp::NaNEqual => {
                map2::<C, bool, _>(a, b, shape, |x: C, y: C| x == y)
            }
            BinaryOp::NotEqual => map2::<C, bool, _>(a, b, shape, |x: C, y: C| x != y),
            _ => Err(unsupported(op, Dtype::Complex64)),
        };
    }
    dispatch!(a.dtype, op, comparison_t(op, a, b, shape), [
        Bool => bool, Uint8 => u8, Uint16 => u16, Uint32 => u32, Uint64 => u64,
        Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64,
        Float16 => f16, Bfloat16 => bf16, Float32 => f32, Float64 => f64
    ])
}

fn comparison_t<T: Lane>(
    op: &BinaryOp,
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
) -> Result<ArrayData>
where
    T::C: Compare,
{
    macro_rules! go {
        ($m:ident) => {
            map2::<T, bool, _>(a, b, shape, |x: T, y: T| Compare::$m(x.load(), y.load()))
        };
    }
    match op {
        BinaryOp::Equal => go!(equal),
        BinaryOp::NaNEqual => go!(nan_equal),
        BinaryOp::NotEqual => go!(not_equal),
        BinaryOp::Less => go!(less),
        BinaryOp::LessEqual => go!(less_equal),
        BinaryOp::Greater => go!(greater),
        BinaryOp::GreaterEqual => go!(greater_equal),
        _ => Err(unsupported(op, T::DTYPE)),
    }
}

fn is_close_t<T: Lane>(
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
    rtol: f64,
    atol: f64,
    equal_nan: bool,
) -> Result<ArrayData>
where
    T::C: FloatMath,
{
    map2::<T, bool, _>(a, b, shape, move |x: T, y: T| {
        x.load().is_close(y.load(), rtol, atol, equal_nan)
    })
}

fn bitwise(op: &BinaryOp, a: ArrayData, b: ArrayData, shape: &[usize]) -> Result<ArrayData> {
    dispatch!(a.dtype, op, bitwise_t(op, a, b, shape), [
        Bool => bool, Uint8 => u8, Uint16 => u16, Uint32 => u32, Uint64 => u64,
        Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64
    ])
}

fn bitwise_t<T: Lane>(
    op: &BinaryOp,
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
) -> Result<ArrayData>
where
    T::C: Bitwise,
{
    macro_rules! go {
        ($m:ident) => {
            map2_same::<T, _>(a, b, shape, |x: T, y: T| {
                T::store(Bitwise::$m(x.load(), y.load()))
            })
        };
    }
    match op {
        BinaryOp::BitwiseAnd => go!(bitwise_and),
        BinaryOp::BitwiseOr => go!(bitwise_or),
        BinaryOp::BitwiseXor => go!(bitwise_xor),
        BinaryOp::LeftShift => go!(left_shift),
        BinaryOp::RightShift => go!(right_shift),
        _ => Err(unsupported(op, T::DTYPE)),
    }
}

/// `data` converted to `dtype` (C++ `static_cast` semantics), keeping its shape; the data
/// itself when it already has that dtype.
fn cast(data: ArrayData, dtype: Dtype) -> Result<ArrayData> {
    if data.dtype == dtype {
        return Ok(data);
    }
    dispatch_dtype!(data.dtype, S => dispatch_dtype!(dtype, D => {
        let n = data.size();
        let mut buf = alloc::<D>(n)?;
        let dst = buf.as_mut_slice::<D>();
        if let Some(src) = data.contiguous_slice::<S>() {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s.cast::<D>();
            }
        } else {
            let src = data.buffer.as_slice::<S>();
            let mut k = 0;
            data.for_each_index(|i| {
                dst[k] = src[i].cast::<D>();
                k += 1;
            });
        }
        Ok(ArrayData::contiguous(buf, &data.shape, dtype))
    }))
}

/// How one operand is read along a row of the output.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    /// Contiguous: one element per output element.
    Slice(&'a [T]),
    /// Broadcast along the row.
    Scalar(T),
    /// Any other stride (elements; may be negative).
    Strided {
        base: &'a [T],
        start: isize,
        stride: isize,
    },
}

impl<'a, T: Copy> Src<'a, T> {
    /// The operand for output elements `[from, from + len)` of a row that starts at `start`.
    fn sub(self, from: usize, len: usize) -> Src<'a, T> {
        match self {
            Src::Slice(s) => Src::Slice(&s[from..from + len]),
            Src::Strided {
                base,
                start,
                stride,
            } => Src::Strided {
                base,
                start: start + from as isize * stride,
                stride,
            },
            Src::Scalar(v) => Src::Scalar(v),
        }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> T {
        match *self {
            Src::Slice(s) => s[i],
            Src::Scalar(v) => v,
            Src::Strided {
                base,
                start,
                stride,
            } => base[(start + i as isize * stride) as usize],
        }
    }
}

/// Writes `out[i] = f(a[i], b[i])` for one row. The slice and scalar cases are separate plain
/// loops so that each vectorises.
#[inline(always)]
fn fill_row<T: Copy, O, F: Fn(T, T) -> O>(out: &mut [O], a: Src<T>, b: Src<T>, f: &F) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        (Src::Slice(a), Src::Scalar(y)) => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        (Src::Scalar(x), Src::Slice(b)) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        (a, b) => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(a.get(i), b.get(i));
            }
        }
    }
}

/// Like [`fill_row`] when one operand lives in `out` itself (`left`: it is the left operand).
#[inline(always)]
fn fill_row_in_place<T: Copy, F: Fn(T, T) -> T>(out: &mut [T], other: Src<T>, left: bool, f: &F) {
    match (other, left) {
        (Src::Slice(b), true) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(*o, y);
            }
        }
        (Src::Slice(a), false) => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, *o);
            }
        }
        (Src::Scalar(y), true) => {
            for o in out.iter_mut() {
                *o = f(*o, y);
            }
        }
        (Src::Scalar(x), false) => {
            for o in out.iter_mut() {
                *o = f(x, *o);
            }
        }
        (other, left) => {
            for (i, o) in out.iter_mut().enumerate() {
                let v = other.get(i);
                *o = if left { f(*o, v) } else { f(v, *o) };
            }
        }
    }
}

/// The output's dims with the operands' strides, after dropping size-1 dims and merging dims
/// that are contiguous in both operands. Always at least one dim.
fn collapse(shape: &[usize], sa: &[isize], sb: &[isize]) -> (Vec<usize>, Vec<isize>, Vec<isize>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut ca: Vec<isize> = Vec::new();
    let mut cb: Vec<isize> = Vec::new();
    for i in 0..shape.len() {
        let d = shape[i];
        if d == 1 {
            continue;
        }
        if let Some(last) = dims.len().checked_sub(1) {
            // Merge when stepping the outer dim equals stepping the inner one d times... in
            // row-major order the previous dim is outer: its stride must be inner stride * d.
            if ca[last] == sa[i] * d as isize && cb[last] == sb[i] * d as isize {
                dims[last] *= d;
                ca[last] = sa[i];
                cb[last] = sb[i];
                continue;
            }
        }
        dims.push(d);
        ca.push(sa[i]);
        cb.push(sb[i]);
    }
    if dims.is_empty() {
        return (vec![1], vec![0], vec![0]);
    }
    (dims, ca, cb)
}

/// Position of row `row` (of the outer dims `dims[..nd-1]`) in each operand.
fn row_start(row: usize, dims: &[usize], sa: &[isize], sb: &[isize]) -> (isize, isize) {
    let (mut pa, mut pb) = (0isize, 0isize);
    let mut rem = row;
    for d in (0..dims.len() - 1).rev() {
        let i = (rem % dims[d]) as isize;
        rem /= dims[d];
        pa += i * sa[d];
        pb += i * sb[d];
    }
    (pa, pb)
}

/// One operand's view of a row: where the row starts in `base`, and its stride.
fn row_src<T: Copy>(base: &[T], start: isize, stride: isize, len: usize) -> Src<'_, T> {
    match stride {
        0 => Src::Scalar(base[start as usize]),
        1 => Src::Slice(&base[start as usize..start as usize + len]),
        _ => Src::Strided {
            base,
            start,
            stride,
        },
    }
}

/// Strides of both operands broadcast to `shape`, collapsed (see [`collapse`]).
struct Plan {
    dims: Vec<usize>,
    sa: Vec<isize>,
    sb: Vec<isize>,
    inner: usize,
    rows: usize,
}

fn plan(a: &ArrayData, b: &ArrayData, shape: &[usize]) -> Plan {
    let sa = broadcast_strides(&a.shape, &a.strides, shape);
    let sb = broadcast_strides(&b.shape, &b.strides, shape);
    let (dims, sa, sb) = collapse(shape, &sa, &sb);
    let inner = *dims.last().unwrap_or(&1);
    let rows = numel(shape) / inner.max(1);
    Plan {
        dims,
        sa,
        sb,
        inner,
        rows,
    }
}

/// The generic element-wise loop: `out = f(a, b)` broadcast to `shape`, in a new buffer.
fn map2<A: Element, O: Element, F>(
    a: ArrayData,
    b: ArrayData,
    shape: &[usize],
    f: F,
) -> Result<ArrayData>
where
    F: Fn(A, A) -> O + Sync + Send,
{
    let n = numel(shape);
    let mut buf = alloc::<O>(n)?;
    if n > 0 {
        let p = plan(&a, &b, shape);
        let out = buf.as_mut_slice::<O>();
        let (xa, xb) = (a.buffer.as_slice::<A>(), b.buffer.as_slice::<A>());
        let (ia, ib) = (*p.sa.last().unwrap_or(&0), *p.sb.last().unwrap_or(&0));
        let (oa, ob) = (a.offset, b.offset);
        run_rows(out, p.inner, p.rows, |row, from, part| {
            let (pa, pb) = row_start(row, &p.dims, &p.sa, &p.sb);
            let len = part.len();
            let src_a = row_src(xa, oa + pa, ia, p.inner).sub(from, len);
            let src_b = row_src(xb, ob + pb, ib, p.inner).sub(from, len);
            fill_row(part, src_a, src_b, &f);
        });
    }
    Ok(ArrayData::contiguous(buf, shape, O::DTYPE))
}

/// [`map2`] for ops whose output dtype is their inputs': writes into the buffer of an input
/// that is contiguous, not broadcast, exactly the output's size and held by nothing else
/// (buffer donation), else into a new buffer.
fn map2_same<T: Element, F>(
    mut a: ArrayData,
    mut b: ArrayData,
    shape: &[usize],
    f: F,
) -> Result<ArrayData>
where
    F: Fn(T, T) -> T + Sync + Send,
{
    let n = numel(shape);
    let donatable = |d: &mut ArrayData| {
        n > 0
            && d.size() == n
            && d.is_row_contiguous()
            && d.buffer.len_of(d.dtype) == n
            && Arc::get_mut(&mut d.buffer).is_some()
    };
    let left = if donatable(&mut a) {
        true
    } else if donatable(&mut b) {
        false
    } else {
        return map2(a, b, shape, f);
    };
    let p = plan(&a, &b, shape);
    let (mut donor, other) = if left { (a, b) } else { (b, a) };
    let so = if left { &p.sb } else { &p.sa };
    let io = *so.last().unwrap_or(&0);
    let xo = other.buffer.as_slice::<T>();
    let buf = Arc::get_mut(&mut donor.buffer)
        .ok_or_else(|| Error::Device("binary: a donated buffer was shared".into()))?;
    let out = buf.as_mut_slice::<T>();
    run_rows(out, p.inner, p.rows, |row, from, part| {
        let (_, po) = row_start(row, &p.dims, so, so);
        let src = row_src(xo, other.offset + po, io, p.inner).sub(from, part.len());
        fill_row_in_place(part, src, left, &f);
    });
    Ok(ArrayData {
        buffer: donor.buffer,
        shape: shape.to_vec(),
        dtype: T::DTYPE,
        strides: umx_core::shape::row_major_strides(shape),
        offset: 0,
    })
}

/// Calls `body(row, from, out_part)` over the output, where `out_part` is the part of row
/// `row` starting at column `from`: whole rows in parallel chunks when there are many rows,
/// else chunks of the single long row (above `PARALLEL_THRESHOLD` elements, in parallel).
fn run_rows<O: Send, B>(out: &mut [O], inner: usize, rows: usize, body: B)
where
    B: Fn(usize, usize, &mut [O]) + Sync + Send,
{
    let n = out.len();
    if n < PARALLEL_THRESHOLD {
        for (row, chunk) in out.chunks_mut(inner).enumerate() {
            body(row, 0, chunk);
        }
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    if rows >= threads * 4 {
        // Whole rows per task.
        let rows_per = rows.div_ceil(threads * 4);
        out.par_chunks_mut(rows_per * inner)
            .enumerate()
            .for_each(|(t, part)| {
                for (k, chunk) in part.chunks_mut(inner).enumerate() {
                    body(t * rows_per + k, 0, chunk);
                }
            });
    } else {
        // Few long rows: split each row into column chunks.
        let per = (inner.div_ceil(threads * 4))
            .max(PARALLEL_THRESHOLD / 4)
            .min(inner);
        let chunks_per_row = inner.div_ceil(per);
        out.par_chunks_mut(inner).enumerate().for_each(|(row, r)| {
            if chunks_per_row == 1 {
                body(row, 0, r);
            } else {
                r.par_chunks_mut(per)
                    .enumerate()
                    .for_each(|(c, part)| body(row, c * per, part));
            }
        });
    }
}

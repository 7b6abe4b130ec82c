//! CPU kernels of the indexing primitives. Slices and diagonals are views (the input's buffer
//! with new strides and offset); gathers copy contiguous inner runs where the layout allows;
//! scatters write into a copy of the input (or into the input's own buffer when it is donated)
//! in row-major order of the indices, so repeated indices behave deterministically.
//!
//! Index values are read from arrays only here: each is wrapped once if negative and checked,
//! and an index still out of range is an error naming the op, never an out-of-bounds access.

use crate::strided::{PARALLEL_THRESHOLD, contiguous};
use rayon::prelude::*;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::indexing::{IndexOp, ScatterMode};
use umx_core::shape::{broadcast_many, broadcast_strides, numel, row_major_strides};
use umx_core::{
    ArrayData, Buffer, Complex32, Dtype, Element, Error, Result, bf16, dispatch_dtype, f16,
};

pub fn eval(op: &IndexOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device(format!("cpu: {op:?} has no output")))?;
    let mut inputs = inputs;
    let want = match op {
        IndexOp::Slice { .. }
        | IndexOp::Diagonal { .. }
        | IndexOp::DiagMatrix { .. }
        | IndexOp::Triangle { .. } => 1,
        IndexOp::SliceUpdate { .. } | IndexOp::Take { .. } | IndexOp::TakeAlongAxis { .. } => 2,
        IndexOp::PutAlongAxis { .. } => 3,
        IndexOp::Gather { axes, .. } => 1 + axes.len(),
        IndexOp::Scatter { axes, .. } => 2 + axes.len(),
    };
    if inputs.len() != want {
        return Err(Error::Device(format!(
            "cpu: {op:?} got {} inputs, expected {want}",
            inputs.len()
        )));
    }
    let a = inputs.remove(0);
    let result = match op {
        IndexOp::Slice { start, step } => slice_view(a, start, step, &out.shape),
        IndexOp::Diagonal {
            offset,
            axis1,
            axis2,
        } => diagonal_view(a, *offset, *axis1, *axis2, &out.shape),
        IndexOp::SliceUpdate {
            start,
            step,
            shape,
            mode,
        } => slice_update(a, &inputs[0], start, step, shape, *mode),
        IndexOp::Take { axis } => take(a, &inputs[0], *axis, &out.shape),
        IndexOp::TakeAlongAxis { axis } => take_along_axis(a, &inputs[0], *axis, &out.shape),
        IndexOp::PutAlongAxis { axis, mode } => {
            put_along_axis(a, &inputs[0], &inputs[1], *axis, *mode)
        }
        IndexOp::Gather { axes, slice_sizes } => gather(a, &inputs, axes, slice_sizes, &out.shape),
        IndexOp::Scatter { axes, mode } => {
            let updates = inputs
                .pop()
                .ok_or_else(|| Error::Device("scatter: no updates".into()))?;
            scatter(a, &inputs, &updates, axes, *mode)
        }
        IndexOp::DiagMatrix { k } => diag_matrix(a, *k, &out.shape),
        IndexOp::Triangle { k, upper } => triangle(a, *k, *upper),
    }?;
    Ok(vec![result])
}

// ---------------------------------------------------------------------------------------------
// Views

fn slice_view(a: ArrayData, start: &[usize], step: &[i64], shape: &[usize]) -> Result<ArrayData> {
    let mut offset = a.offset;
    let mut strides = a.strides.clone();
    if numel(shape) > 0 {
        for d in 0..shape.len() {
            offset += start[d] as isize * a.strides[d];
            strides[d] = a.strides[d] * step[d] as isize;
        }
    }
    Ok(ArrayData {
        buffer: a.buffer,
        shape: shape.to_vec(),
        dtype: a.dtype,
        strides,
        offset,
    })
}

fn diagonal_view(
    a: ArrayData,
    k: i64,
    ax1: usize,
    ax2: usize,
    shape: &[usize],
) -> Result<ArrayData> {
    let mut strides: Vec<isize> = (0..a.shape.len())
        .filter(|&d| d != ax1 && d != ax2)
        .map(|d| a.strides[d])
        .collect();
    strides.push(a.strides[ax1] + a.strides[ax2]);
    let mut offset = a.offset;
    if numel(shape) > 0 {
        offset += if k >= 0 {
            k as isize * a.strides[ax2]
        } else {
            -k as isize * a.strides[ax1]
        };
    }
    Ok(ArrayData {
        buffer: a.buffer,
        shape: shape.to_vec(),
        dtype: a.dtype,
        strides,
        offset,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A fresh output buffer for `n` elements of `T`. Bool buffers start zeroed, so a recycled
/// buffer never shows a byte other than 0 or 1 through a `bool` slice.
fn alloc_out<T: Element>(n: usize) -> Result<Buffer> {
    let bytes = n * std::mem::size_of::<T>();
    if T::DTYPE == Dtype::Bool {
        Buffer::zeroed(bytes)
    } else {
        Buffer::uninit(bytes)
    }
}

/// `a` as a row-major contiguous array whose buffer this kernel owns: `a`'s own buffer when it
/// is donated (contiguous, whole, and held by nobody else), else a copy.
fn owned_copy(a: ArrayData) -> Result<ArrayData> {
    let mut c = contiguous(a)?;
    if Arc::get_mut(&mut c.buffer).is_none() {
        c = dispatch_dtype!(c.dtype, T => {
            let n = c.size();
            let mut buf = alloc_out::<T>(n)?;
            buf.as_mut_slice::<T>()[..n].copy_from_slice(&c.buffer.as_slice::<T>()[..n]);
            ArrayData::contiguous(buf, &c.shape, c.dtype)
        });
    }
    Ok(c)
}

fn owned_slice<T: Element>(c: &mut ArrayData) -> Result<&mut [T]> {
    Arc::get_mut(&mut c.buffer)
        .map(|b| b.as_mut_slice::<T>())
        .ok_or_else(|| Error::Device("cpu: an owned output buffer is shared".into()))
}

/// `d` cast to `dtype` (static_cast semantics), row-major contiguous; `d` itself when it has
/// that dtype already.
fn cast_to(d: &ArrayData, dtype: Dtype) -> Result<ArrayData> {
    if d.dtype == dtype {
        return Ok(d.clone());
    }
    dispatch_dtype!(d.dtype, S => dispatch_dtype!(dtype, T => {
        let src = d.buffer.as_slice::<S>();
        let mut buf = alloc_out::<T>(d.size())?;
        let dst = buf.as_mut_slice::<T>();
        let mut k = 0;
        d.for_each_index(|i| {
            dst[k] = src[i].cast::<T>();
            k += 1;
        });
        Ok(ArrayData::contiguous(buf, &d.shape, dtype))
    }))
}

/// A view of `d` broadcast to `target` (right-aligned, NumPy's rule; leading 1s of `d` beyond
/// `target`'s rank are dropped).
fn broadcast_view(d: &ArrayData, target: &[usize]) -> Result<ArrayData> {
    let extra = d.shape.len().saturating_sub(target.len());
    if d.shape[..extra].iter().any(|&s| s != 1) {
        return Err(Error::Device(format!(
            "cpu: shape {:?} does not broadcast to {target:?}",
            d.shape
        )));
    }
    let shape = &d.shape[extra..];
    let strides = &d.strides[extra..];
    let off = target.len() - shape.len();
    for (i, &s) in shape.iter().enumerate() {
        if s != 1 && s != target[off + i] {
            return Err(Error::Device(format!(
                "cpu: shape {:?} does not broadcast to {target:?}",
                d.shape
            )));
        }
    }
    Ok(ArrayData {
        buffer: d.buffer.clone(),
        shape: target.to_vec(),
        dtype: d.dtype,
        strides: broadcast_strides(shape, strides, target),
        offset: d.offset,
    })
}

/// The index values of `idx` broadcast to `shape`, in row-major order, each wrapped once if
/// negative and checked to start a window of `window` elements inside an axis of size `dim`.
fn index_values(
    op: &str,
    idx: &ArrayData,
    shape: &[usize],
    dim: usize,
    window: usize,
    axis: usize,
) -> Result<Vec<usize>> {
    if !idx.dtype.is_integer() || idx.dtype == Dtype::Bool {
        return Err(Error::Invalid(format!(
            "{op}: indices must be integers, not {}",
            idx.dtype
        )));
    }
    let view = broadcast_view(idx, shape)?;
    let n = dim as i64;
    let limit = n - window as i64;
    let mut out = Vec::with_capacity(numel(shape));
    let mut bad = None;
    dispatch_dtype!(idx.dtype, T => {
        let src = view.buffer.as_slice::<T>();
        view.for_each_index(|i| {
            let v = src[i].to_i64();
            let w = if v < 0 { v.wrapping_add(n) } else { v };
            if w < 0 || w > limit {
                bad.get_or_insert(v);
                out.push(0);
            } else {
                out.push(w as usize);
            }
        });
    });
    if let Some(v) = bad {
        return Err(Error::Index(format!(
            "{op}: index {v} is out of range for axis {axis} of size {dim}"
        )));
    }
    Ok(out)
}

/// Calls `f(pos_a, pos_b)` for every element of `shape` in row-major order, where the
/// positions walk two layouts (offset + strides) in lockstep. The last axis is the inner loop.
fn walk2(
    shape: &[usize],
    (oa, sa): (isize, &[isize]),
    (ob, sb): (isize, &[isize]),
    mut f: impl FnMut(isize, isize),
) {
    let n = numel(shape);
    if n == 0 {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(oa, ob);
        return;
    }
    let inner = shape[nd - 1];
    let (ia, ib) = (sa[nd - 1], sb[nd - 1]);
    let mut idx = vec![0usize; nd - 1];
    let (mut pa, mut pb) = (oa, ob);
    for _ in 0..n / inner {
        for k in 0..inner as isize {
            f(pa + k * ia, pb + k * ib);
        }
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            pa += sa[d];
            pb += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            pa -= sa[d] * shape[d] as isize;
            pb -= sb[d] * shape[d] as isize;
            idx[d] = 0;
        }
    }
}

/// The combining function of a scatter mode, per element type.
trait Combine: Element {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
}

macro_rules! combine_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            fn max(self, o: Self) -> Self { Ord::max(self, o) }
            fn min(self, o: Self) -> Self { Ord::min(self, o) }
        }
    )*};
}
combine_int!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! combine_float {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self + o }
            fn mul(self, o: Self) -> Self { self * o }
            fn max(self, o: Self) -> Self { if self.is_nan() || self > o { self } else { o } }
            fn min(self, o: Self) -> Self { if self.is_nan() || self < o { self } else { o } }
        }
    )*};
}
combine_float!(f32, f64);

/// Half types compute in float32 and round once.
macro_rules! combine_half {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() + o.to_f32()) }
            fn mul(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() * o.to_f32()) }
            fn max(self, o: Self) -> Self { if self.is_nan() || self > o { self } else { o } }
            fn min(self, o: Self) -> Self { if self.is_nan() || self < o { self } else { o } }
        }
    )*};
}
combine_half!(f16, bf16);

impl Combine for bool {
    fn add(self, o: Self) -> Self {
        self | o
    }
    fn mul(self, o: Self) -> Self {
        self & o
    }
    fn max(self, o: Self) -> Self {
        self | o
    }
    fn min(self, o: Self) -> Self {
        self & o
    }
}

/// Complex values order lexicographically (real part, then imaginary), as MLX does.
impl Combine for Complex32 {
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn max(self, o: Self) -> Self {
        if (self.re, self.im) > (o.re, o.im) {
            self
        } else {
            o
        }
    }
    fn min(self, o: Self) -> Self {
        if (self.re, self.im) < (o.re, o.im) {
            self
        } else {
            o
        }
    }
}

/// Runs `$body` with `$f` bound to the combining closure `(old, update) -> new` of `$mode`,
/// monomorphised per mode so the inner loops inline it.
macro_rules! with_mode {
    ($mode:expr, $T:ty, $f:ident => $body:expr) => {
        match $mode {
            ScatterMode::Assign => {
                let $f = |_old: $T, u: $T| u;
                $body
            }
            ScatterMode::Add => {
                let $f = |old: $T, u: $T| Combine::add(old, u);
                $body
            }
            ScatterMode::Prod => {
                let $f = |old: $T, u: $T| Combine::mul(old, u);
                $body
            }
            ScatterMode::Max => {
                let $f = |old: $T, u: $T| Combine::max(old, u);
                $body
            }
            ScatterMode::Min => {
                let $f = |old: $T, u: $T| Combine::min(old, u);
                $body
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Slice update

fn slice_update(
    a: ArrayData,
    update: &ArrayData,
    start: &[usize],
    step: &[i64],
    shape: &[usize],
    mode: ScatterMode,
) -> Result<ArrayData> {
    let mut out = owned_copy(a)?;
    if numel(shape) == 0 {
        return Ok(out);
    }
    let upd = broadcast_view(&cast_to(update, out.dtype)?, shape)?;
    let rm = row_major_strides(&out.shape);
    let region_strides: Vec<isize> = rm.iter().zip(step).map(|(&s, &k)| s * k as isize).collect();
    let region_offset: isize = rm.iter().zip(start).map(|(&s, &k)| s * k as isize).sum();
    dispatch_dtype!(out.dtype, T => {
        let src = upd.buffer.as_slice::<T>();
        let dst = owned_slice::<T>(&mut out)?;
        with_mode!(mode, T, f => walk2(
            shape,
            (region_offset, &region_strides),
            (upd.offset, &upd.strides),
            |po, pu| {
                let o = &mut dst[po as usize];
                *o = f(*o, src[pu as usize]);
            },
        ));
    });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Gathers

/// `out[p, j, q] = src[p, idx[j], q]` for `p < pre`, `q < post`, over a contiguous `src` with
/// `dim` positions on the taken axis. Rows of `post` elements are copied whole.
fn take_rows<T: Element>(
    src: &[T],
    idx: &[usize],
    pre: usize,
    dim: usize,
    post: usize,
    dst: &mut [T],
) {
    let nidx = idx.len();
    let row = |k: usize, out: &mut [T]| {
        let (p, j) = (k / nidx, k % nidx);
        let from = (p * dim + idx[j]) * post;
        out.copy_from_slice(&src[from..from + post]);
    };
    if post == 0 || nidx == 0 || pre == 0 {
        return;
    }
    if dst.len() >= PARALLEL_THRESHOLD {
        let rows_per_chunk = (4096 / post).max(1);
        dst.par_chunks_mut(rows_per_chunk * post)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (r, out) in chunk.chunks_mut(post).enumerate() {
                    row(c * rows_per_chunk + r, out);
                }
            });
    } else {
        for (k, out) in dst.chunks_mut(post).enumerate() {
            row(k, out);
        }
    }
}

fn take(a: ArrayData, idx: &ArrayData, axis: Option<usize>, shape: &[usize]) -> Result<ArrayData> {
    let a = contiguous(a)?;
    let (pre, dim, post, ax) = match axis {
        None => (1, a.size(), 1, 0),
        Some(ax) => (
            numel(&a.shape[..ax]),
            a.shape[ax],
            numel(&a.shape[ax + 1..]),
            ax,
        ),
    };
    let n = numel(shape);
    let values = index_values("take", idx, &idx.shape, dim, 1, ax)?;
    dispatch_dtype!(a.dtype, T => {
        let mut buf = alloc_out::<T>(n)?;
        let src = &a.buffer.as_slice::<T>()[a.offset as usize..];
        take_rows(src, &values, pre, dim, post, &mut buf.as_mut_slice::<T>()[..n]);
        Ok(ArrayData::contiguous(buf, shape, a.dtype))
    })
}

fn take_along_axis(
    a: ArrayData,
    idx: &ArrayData,
    axis: usize,
    shape: &[usize],
) -> Result<ArrayData> {
    let values = index_values("take_along_axis", idx, shape, a.shape[axis], 1, axis)?;
    let axis_stride = a.strides[axis];
    // Walk `a` broadcast to the output with the taken axis held still; the index moves on it.
    let mut a_shape = a.shape.clone();
    a_shape[axis] = 1;
    let mut walk_strides = broadcast_strides(&a_shape, &a.strides, shape);
    walk_strides[axis] = 0;
    let n = numel(shape);
    let rm = row_major_strides(shape);
    dispatch_dtype!(a.dtype, T => {
        let mut buf = alloc_out::<T>(n)?;
        let dst = &mut buf.as_mut_slice::<T>()[..n];
        let src = a.buffer.as_slice::<T>();
        walk2(shape, (a.offset, &walk_strides), (0, &rm), |pa, k| {
            let k = k as usize;
            dst[k] = src[(pa + values[k] as isize * axis_stride) as usize];
        });
        Ok(ArrayData::contiguous(buf, shape, a.dtype))
    })
}

/// Copies the window of `shape` starting at `base` of `src` (with `strides`) to `dst` in
/// row-major order; runs along a unit-stride last axis are copied whole.
fn copy_window<T: Element>(
    src: &[T],
    base: isize,
    shape: &[usize],
    strides: &[isize],
    dst: &mut [T],
) {
    let nd = shape.len();
    if nd > 0 && strides[nd - 1] == 1 && shape[nd - 1] > 1 {
        let inner = shape[nd - 1];
        let outer_shape = &shape[..nd - 1];
        let mut rows = dst.chunks_mut(inner);
        let zeros = vec![0; nd - 1];
        walk2(
            outer_shape,
            (base, &strides[..nd - 1]),
            (0, &zeros),
            |p, _| {
                if let Some(row) = rows.next() {
                    let p = p as usize;
                    row.copy_from_slice(&src[p..p + inner]);
                }
            },
        );
        return;
    }
    let mut k = 0;
    walk2(shape, (base, strides), (0, &vec![0; nd]), |p, _| {
        dst[k] = src[p as usize];
        k += 1;
    });
}

fn gather(
    a: ArrayData,
    indices: &[ArrayData],
    axes: &[usize],
    slice_sizes: &[usize],
    out_shape: &[usize],
) -> Result<ArrayData> {
    let b_shape = &out_shape[..out_shape.len() - slice_sizes.len()];
    let nb = numel(b_shape);
    let window = numel(slice_sizes);
    let n = numel(out_shape);
    let lists = indices
        .iter()
        .zip(axes)
        .map(|(idx, &ax)| index_values("gather", idx, b_shape, a.shape[ax], slice_sizes[ax], ax))
        .collect::<Result<Vec<_>>>()?;
    let base = |b: usize| -> isize {
        a.offset
            + lists
                .iter()
                .zip(axes)
                .map(|(l, &ax)| l[b] as isize * a.strides[ax])
                .sum::<isize>()
    };
    dispatch_dtype!(a.dtype, T => {
        let mut buf = alloc_out::<T>(n)?;
        let dst = &mut buf.as_mut_slice::<T>()[..n];
        let src = a.buffer.as_slice::<T>();
        if window > 0 && nb > 0 {
            if n >= PARALLEL_THRESHOLD {
                let per = (4096 / window).max(1);
                dst.par_chunks_mut(per * window).enumerate().for_each(|(c, chunk)| {
                    for (r, out) in chunk.chunks_mut(window).enumerate() {
                        copy_window(src, base(c * per + r), slice_sizes, &a.strides, out);
                    }
                });
            } else {
                for (b, out) in dst.chunks_mut(window).enumerate() {
                    copy_window(src, base(b), slice_sizes, &a.strides, out);
                }
            }
        }
        Ok(ArrayData::contiguous(buf, out_shape, a.dtype))
    })
}

// ---------------------------------------------------------------------------------------------
// Scatters

fn scatter(
    a: ArrayData,
    indices: &[ArrayData],
    updates: &ArrayData,
    axes: &[usize],
    mode: ScatterMode,
) -> Result<ArrayData> {
    let mut out = owned_copy(a)?;
    let nd = out.shape.len();
    let b_len = updates.shape.len().saturating_sub(nd);
    let (b_shape, window_shape) = updates.shape.split_at(b_len);
    let window = numel(window_shape);
    let nb = numel(b_shape);
    if window == 0 || nb == 0 {
        return Ok(out);
    }
    let op = mode.op_name();
    let lists = indices
        .iter()
        .zip(axes)
        .map(|(idx, &ax)| index_values(op, idx, b_shape, out.shape[ax], window_shape[ax], ax))
        .collect::<Result<Vec<_>>>()?;
    let upd = contiguous(cast_to(updates, out.dtype)?)?;
    let rm = row_major_strides(&out.shape);
    let zeros = vec![0isize; nd];
    dispatch_dtype!(out.dtype, T => {
        let src = &upd.buffer.as_slice::<T>()[upd.offset as usize..];
        let dst = owned_slice::<T>(&mut out)?;
        with_mode!(mode, T, f => {
            for b in 0..nb {
                let base: isize = lists.iter().zip(axes).map(|(l, &ax)| l[b] as isize * rm[ax]).sum();
                let u = &src[b * window..(b + 1) * window];
                let mut k = 0;
                walk2(window_shape, (base, &rm), (0, &zeros), |p, _| {
                    let o = &mut dst[p as usize];
                    *o = f(*o, u[k]);
                    k += 1;
                });
            }
        });
    });
    Ok(out)
}

fn put_along_axis(
    a: ArrayData,
    idx: &ArrayData,
    values: &ArrayData,
    axis: usize,
    mode: ScatterMode,
) -> Result<ArrayData> {
    let mut out = owned_copy(a)?;
    if out.size() == 0 {
        return Ok(out);
    }
    let nd = out.shape.len();
    let extra = values.shape.len().saturating_sub(nd);
    let vshape = &values.shape[extra..];
    let b = broadcast_many("put_along_axis", &[&idx.shape, vshape])?;
    let mut shape = out.shape.clone();
    shape[axis] = b[axis];
    let op = match mode {
        ScatterMode::Assign => "put_along_axis",
        _ => "scatter_add_axis",
    };
    let list = index_values(op, idx, &shape, out.shape[axis], 1, axis)?;
    let vals = broadcast_view(&cast_to(values, out.dtype)?, &shape)?;
    let rm = row_major_strides(&out.shape);
    let axis_stride = rm[axis];
    let mut walk = rm.clone();
    walk[axis] = 0;
    dispatch_dtype!(out.dtype, T => {
        let src = vals.buffer.as_slice::<T>();
        let dst = owned_slice::<T>(&mut out)?;
        with_mode!(mode, T, f => {
            let mut k = 0;
            walk2(&shape, (0, &walk), (vals.offset, &vals.strides), |po, pv| {
                let o = &mut dst[(po + list[k] as isize * axis_stride) as usize];
                *o = f(*o, src[pv as usize]);
                k += 1;
            });
        });
    });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Diagonal matrices and triangles

fn diag_matrix(v: ArrayData, k: i64, shape: &[usize]) -> Result<ArrayData> {
    let n = shape.first().copied().unwrap_or(0);
    let (r0, c0) = if k >= 0 {
        (0, k as usize)
    } else {
        (k.unsigned_abs() as usize, 0)
    };
    dispatch_dtype!(v.dtype, T => {
        let mut buf = Buffer::zeroed(n * n * std::mem::size_of::<T>())?;
        let dst = buf.as_mut_slice::<T>();
        let src = v.buffer.as_slice::<T>();
        let mut i = 0;
        v.for_each_index(|p| {
            dst[(r0 + i) * n + c0 + i] = src[p];
            i += 1;
        });
        Ok(ArrayData::contiguous(buf, shape, v.dtype))
    })
}

fn triangle(a: ArrayData, k: i64, upper: bool) -> Result<ArrayData> {
    let mut out = owned_copy(a)?;
    let nd = out.shape.len();
    let (rows, cols) = (out.shape[nd - 2], out.shape[nd - 1]);
    if rows * cols == 0 {
        return Ok(out);
    }
    // Row i keeps columns j with j - i <= k (tril) or j - i >= k (triu); the rest become 0.
    let n = rows * cols * numel(&out.shape[..nd - 2]);
    let zero_range = move |i: usize| -> (usize, usize) {
        let clamp = |j: i64| j.clamp(0, cols as i64) as usize;
        if upper {
            (0, clamp(i as i64 + k))
        } else {
            (clamp(i as i64 + k + 1), cols)
        }
    };
    dispatch_dtype!(out.dtype, T => {
        let dst = owned_slice::<T>(&mut out)?;
        let fill = |m: &mut [T]| {
            for (i, row) in m.chunks_mut(cols).enumerate() {
                let (lo, hi) = zero_range(i);
                if lo < hi {
                    row[lo..hi].fill(T::default());
                }
            }
        };
        if n >= PARALLEL_THRESHOLD {
            dst[..n].par_chunks_mut(rows * cols).for_each(fill);
        } else {
            dst[..n].chunks_mut(rows * cols).for_each(fill);
        }
    });
    Ok(out)
}

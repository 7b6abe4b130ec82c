//! CPU kernels of the sort primitives.
//!
//! Every sort primitive but `SearchSorted` works lane by lane (a lane is the 1-D slice of the
//! input along the axis). The output is written lane-major: lane after lane, each lane
//! contiguous, and handed back as a strided view with the input's logical shape. So a lane is
//! read once from any input layout, sorted in place in the output, and never copied again;
//! lanes are spread over rayon threads when the work is large.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::SortOp;
use umx_core::primitives::sort::SortKey;
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Element, Error, Result, Strides, dispatch_dtype};

pub fn eval(
    op: &SortOp,
    mut inputs: Vec<ArrayData>,
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    if let (Some(x), SortOp::Sort { axis } | SortOp::Partition { axis, .. }) =
        (inputs.first_mut(), op)
    {
        let done = dispatch_dtype!(x.dtype, T => match *op {
            SortOp::Partition { kth, .. } => in_place::<T>(x, *axis, |lane| {
                if kth < lane.len() {
                    lane.select_nth_unstable_by(kth, T::sort_cmp);
                }
            }),
            _ => in_place::<T>(x, *axis, |lane| lane.sort_unstable_by(T::sort_cmp)),
        });
        if done {
            return Ok(inputs);
        }
    }
    let (Some(x), Some(out)) = (inputs.first(), outputs.first()) else {
        return Err(Error::Device(format!(
            "cpu: {} needs an input and an output",
            op.name()
        )));
    };
    // The ops check these; a primitive built by hand must not reach a panicking index.
    let n = |axis: usize| x.shape.get(axis).copied().unwrap_or(0);
    match *op {
        SortOp::Partition { axis, kth } | SortOp::ArgPartition { axis, kth }
            if kth >= n(axis) && x.size() > 0 =>
        {
            return Err(Error::Invalid(format!(
                "{}: kth {kth} is out of range for axis {axis}",
                op.name()
            )));
        }
        SortOp::TopK { axis, k } if k > n(axis) => {
            return Err(Error::Invalid(format!(
                "topk: k {k} is larger than axis {axis}"
            )));
        }
        _ => {}
    }
    let data = match *op {
        SortOp::Sort { axis } => dispatch_dtype!(x.dtype, T => lanes::<T, T, ()>(
        x, axis, out, || (), |_, lane, out| {
            lane.copy_to(out);
            out.sort_unstable_by(T::sort_cmp);
        })),
        SortOp::ArgSort { axis } => dispatch_dtype!(x.dtype, T => lanes::<T, u32, _>(
        x, axis, out, Vec::new, |pairs, lane, out| {
            lane.pairs_into(pairs);
            pairs.sort_by(|a, b| a.0.sort_cmp(&b.0));
            for (o, p) in out.iter_mut().zip(pairs.iter()) {
                *o = p.1;
            }
        })),
        SortOp::Partition { axis, kth } => dispatch_dtype!(x.dtype, T => lanes::<T, T, ()>(
        x, axis, out, || (), |_, lane, out| {
            lane.copy_to(out);
            out.select_nth_unstable_by(kth, T::sort_cmp);
        })),
        SortOp::ArgPartition { axis, kth } => dispatch_dtype!(x.dtype, T => lanes::<T, u32, _>(
        x, axis, out, Vec::new, |pairs, lane, out| {
            lane.pairs_into(pairs);
            pairs.select_nth_unstable_by(kth, |a, b| a.0.sort_cmp(&b.0));
            for (o, p) in out.iter_mut().zip(pairs.iter()) {
                *o = p.1;
            }
        })),
        SortOp::TopK { axis, k } => dispatch_dtype!(x.dtype, T => lanes::<T, T, _>(
        x, axis, out, Vec::new, |vals: &mut Vec<T>, lane, out| {
            vals.clear();
            vals.extend((0..lane.n).map(|i| lane.get(i)));
            let first = lane.n - k;
            if first > 0 && k > 0 {
                vals.select_nth_unstable_by(first, T::sort_cmp);
            }
            let top = &mut vals[first..];
            top.sort_unstable_by(T::sort_cmp);
            out.copy_from_slice(top);
        })),
        SortOp::SearchSorted { right } => {
            let v = inputs
                .get(1)
                .ok_or_else(|| Error::Device("cpu: searchsorted needs two inputs".into()))?;
            dispatch_dtype!(x.dtype, T => search_sorted::<T>(x, v, right, out))
        }
    }?;
    Ok(vec![data])
}

/// Runs `f` on every lane of `x` in place, when `x` is a row-contiguous buffer no one else
/// holds and its lanes are its rows (buffer donation). Returns whether it did.
fn in_place<T: Element>(x: &mut ArrayData, axis: usize, f: impl Fn(&mut [T]) + Sync) -> bool {
    let n = x.shape.get(axis).copied().unwrap_or(1);
    let size = x.size();
    if axis + 1 != x.shape.len() || n == 0 || !x.is_row_contiguous() {
        return false;
    }
    let Some(buf) = Arc::get_mut(&mut x.buffer) else {
        return false;
    };
    if buf.len_of(x.dtype) != size {
        return false;
    }
    let data = buf.as_mut_slice::<T>();
    if size * n.max(2).ilog2() as usize >= PARALLEL_THRESHOLD {
        let min_lanes = (PARALLEL_THRESHOLD / n).max(1);
        data.par_chunks_mut(n).with_min_len(min_lanes).for_each(&f);
    } else {
        data.chunks_mut(n).for_each(&f);
    }
    true
}

/// One lane of an input: `n` elements `stride` apart from `base` in `src`.
struct Lane<'a, T> {
    src: &'a [T],
    base: isize,
    stride: isize,
    n: usize,
}

impl<T: Element> Lane<'_, T> {
    #[inline(always)]
    fn get(&self, i: usize) -> T {
        self.src[(self.base + i as isize * self.stride) as usize]
    }

    fn copy_to(&self, dst: &mut [T]) {
        if self.stride == 1 {
            let start = self.base as usize;
            dst.copy_from_slice(&self.src[start..start + self.n]);
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = self.get(i);
            }
        }
    }

    /// Fills `pairs` with (element, index in the lane).
    fn pairs_into(&self, pairs: &mut Vec<(T, u32)>) {
        pairs.clear();
        pairs.extend((0..self.n).map(|i| (self.get(i), i as u32)));
    }
}

/// Runs `f(scratch, lane, out_lane)` for every lane of `x` along `axis`, with an output of
/// `out.shape` whose lanes along `axis` are `out.shape[axis]` long. `scratch` is per thread.
fn lanes<T, U, S>(
    x: &ArrayData,
    axis: usize,
    out: &OutSpec,
    scratch: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, Lane<'_, T>, &mut [U]) + Sync + Send,
) -> Result<ArrayData>
where
    T: Element + SortKey,
    U: Element,
{
    let n = x.shape.get(axis).copied().unwrap_or(1);
    let out_len = out.shape.get(axis).copied().unwrap_or(1);
    let total = numel(&out.shape);
    let mut buf = alloc::<U>(total)?;
    if total == 0 {
        return Ok(ArrayData::contiguous(buf, &out.shape, out.dtype));
    }

    // The lanes are indexed row-major over the other axes.
    let mut outer_shape = x.shape.clone();
    let mut outer_strides = x.strides.clone();
    let stride = if axis < x.shape.len() {
        outer_shape.remove(axis);
        outer_strides.remove(axis)
    } else {
        1
    };
    let src = x.buffer.as_slice::<T>();
    let lane_at = |l: usize| {
        let mut rem = l;
        let mut base = x.offset;
        for d in (0..outer_shape.len()).rev() {
            base += (rem % outer_shape[d]) as isize * outer_strides[d];
            rem /= outer_shape[d];
        }
        Lane {
            src,
            base,
            stride,
            n,
        }
    };

    let dst = buf.as_mut_slice::<U>();
    if total * n.max(2).ilog2() as usize >= PARALLEL_THRESHOLD {
        let min_lanes = (PARALLEL_THRESHOLD / n.max(1)).max(1);
        dst.par_chunks_mut(out_len)
            .enumerate()
            .with_min_len(min_lanes)
            .for_each_init(&scratch, |s, (l, o)| f(s, lane_at(l), o));
    } else {
        let mut s = scratch();
        for (l, o) in dst.chunks_mut(out_len).enumerate() {
            f(&mut s, lane_at(l), o);
        }
    }

    Ok(ArrayData {
        buffer: Arc::new(buf),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: lane_major_strides(&out.shape, axis),
        offset: 0,
    })
}

/// Strides of an array stored lane after lane along `axis` (the axis is the fastest-moving
/// one in memory, the others row-major around it).
fn lane_major_strides(shape: &[usize], axis: usize) -> Strides {
    if axis >= shape.len() {
        return row_major_strides(shape);
    }
    let len = shape[axis] as isize;
    let mut outer = shape.to_vec();
    outer.remove(axis);
    let mut strides: Strides = row_major_strides(&outer).iter().map(|s| s * len).collect();
    strides.insert(axis, 1);
    strides
}

/// NumPy's `searchsorted` of every element of `v` in the sorted 1-D `a`.
fn search_sorted<T: Element + SortKey>(
    a: &ArrayData,
    v: &ArrayData,
    right: bool,
    out: &OutSpec,
) -> Result<ArrayData> {
    let sorted = a.to_contiguous_vec::<T>();
    let values = v.to_contiguous_vec::<T>();
    let mut buf = alloc::<u32>(values.len())?;
    let find = |x: &T| -> u32 {
        let pos = if right {
            sorted.partition_point(|s| s.sort_cmp(x) != Ordering::Greater)
        } else {
            sorted.partition_point(|s| s.sort_cmp(x) == Ordering::Less)
        };
        pos as u32
    };
    let dst = buf.as_mut_slice::<u32>();
    if values.len() * sorted.len().max(2).ilog2() as usize >= PARALLEL_THRESHOLD {
        dst.par_iter_mut()
            .zip(values.par_iter())
            .for_each(|(o, x)| *o = find(x));
    } else {
        for (o, x) in dst.iter_mut().zip(&values) {
            *o = find(x);
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
}

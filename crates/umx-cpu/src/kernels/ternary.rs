//! CPU kernels of the ternary primitives (`where`).
//!
//! Inputs broadcast to the output inside the kernel. Fast path: every input is either the
//! output's shape and contiguous, or a single element (the common `where(mask, x, 0.0)`),
//! looped over slices (rayon above [`PARALLEL_THRESHOLD`]), writing over `x`'s or `y`'s buffer
//! when nothing else holds it. General path: a strided walk over the output's indices.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::TernaryOp;
use umx_core::shape::{broadcast_strides, is_row_contiguous, numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Element, Error, Result, dispatch_dtype};

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

pub fn eval(op: &TernaryOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let name = op.name();
    let [c, x, y]: [ArrayData; 3] = inputs
        .try_into()
        .map_err(|v: Vec<ArrayData>| Error::Device(format!("{name}: {} inputs, not 3", v.len())))?;
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{name}: no output")))?;
    if c.dtype != Dtype::Bool || x.dtype != out.dtype || y.dtype != out.dtype {
        return Err(Error::Device(format!(
            "{name}: inputs of {}, {} and {} for an output of {}",
            c.dtype, x.dtype, y.dtype, out.dtype
        )));
    }
    let result = dispatch_dtype!(out.dtype, T => select::<T>(*op, c, x, y, &out.shape))?;
    Ok(vec![result])
}

/// One input of the fast path: the output's shape in a contiguous slice, or one element.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

impl<'a, T: Element> Src<'a, T> {
    fn of(d: &'a ArrayData, shape: &[usize]) -> Option<Src<'a, T>> {
        if d.size() == 1 {
            let off = usize::try_from(d.offset).ok()?;
            return d.buffer.as_slice::<T>().get(off).map(|&v| Src::Scalar(v));
        }
        if d.shape[..] != shape[..] {
            return None;
        }
        d.contiguous_slice::<T>().map(Src::Slice)
    }

    #[inline(always)]
    fn get(&self, i: usize) -> T {
        match self {
            Src::Slice(s) => s[i],
            Src::Scalar(v) => *v,
        }
    }

    fn sub(&self, start: usize, len: usize) -> Src<'a, T> {
        match self {
            Src::Slice(s) => Src::Slice(&s[start..start + len]),
            Src::Scalar(v) => Src::Scalar(*v),
        }
    }
}

/// Whether `d`'s buffer can take the output in place.
fn donatable(d: &ArrayData, shape: &[usize]) -> bool {
    d.shape[..] == shape[..]
        && d.offset == 0
        && is_row_contiguous(&d.shape, &d.strides)
        && d.buffer.len_of(d.dtype) == numel(shape)
}

fn select<T: Element>(
    op: TernaryOp,
    c: ArrayData,
    mut x: ArrayData,
    mut y: ArrayData,
    shape: &[usize],
) -> Result<ArrayData> {
    let n = numel(shape);
    let Some(cs) = Src::<bool>::of(&c, shape) else {
        return general::<T>(op, &c, &x, &y, shape);
    };
    // Donation: write over x, keeping it where cond holds, or over y.
    let ys = Src::<T>::of(&y, shape);
    if ys
        .and_then(|ys| blend_into(&mut x, cs, ys, true, shape))
        .is_some()
    {
        return Ok(row_major(x, shape));
    }
    let xs = Src::<T>::of(&x, shape);
    if xs
        .and_then(|xs| blend_into(&mut y, cs, xs, false, shape))
        .is_some()
    {
        return Ok(row_major(y, shape));
    }
    let (Some(xs), Some(ys)) = (Src::<T>::of(&x, shape), Src::<T>::of(&y, shape)) else {
        return general::<T>(op, &c, &x, &y, shape);
    };
    let mut buf = alloc::<T>(n)?;
    run_chunks(&mut buf.as_mut_slice::<T>()[..n], |start, d| {
        let len = d.len();
        let (cs, xs, ys) = (cs.sub(start, len), xs.sub(start, len), ys.sub(start, len));
        for (i, o) in d.iter_mut().enumerate() {
            *o = op.select(cs.get(i), xs.get(i), ys.get(i));
        }
    });
    Ok(ArrayData::contiguous(buf, shape, T::DTYPE))
}

/// Blends into `dst`'s buffer when it can take the output in place; `None` when it cannot.
fn blend_into<T: Element>(
    dst: &mut ArrayData,
    cond: Src<bool>,
    other: Src<T>,
    keep_when: bool,
    shape: &[usize],
) -> Option<()> {
    if !donatable(dst, shape) {
        return None;
    }
    let n = numel(shape);
    let buf = Arc::get_mut(&mut dst.buffer)?;
    blend(&mut buf.as_mut_slice::<T>()[..n], cond, other, keep_when);
    Some(())
}

/// In place: `dst[i] = other[i]` where `cond[i] != keep_when`.
fn blend<T: Element>(dst: &mut [T], cond: Src<bool>, other: Src<T>, keep_when: bool) {
    run_chunks(dst, |start, d| {
        let (cs, os) = (cond.sub(start, d.len()), other.sub(start, d.len()));
        for (i, o) in d.iter_mut().enumerate() {
            if cs.get(i) != keep_when {
                *o = os.get(i);
            }
        }
    });
}

/// A donated input as the row-major output.
fn row_major(mut d: ArrayData, shape: &[usize]) -> ArrayData {
    d.shape = shape.to_vec();
    d.strides = row_major_strides(shape);
    d.offset = 0;
    d
}

/// Runs `f(start, chunk)` over `dst` in chunks, on rayon when large.
fn run_chunks<T: Element>(dst: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if dst.len() >= PARALLEL_THRESHOLD {
        dst.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, d)| f(k * CHUNK, d));
    } else {
        f(0, dst);
    }
}

/// Any layouts: walk the output's indices, each input through its broadcast strides.
fn general<T: Element>(
    op: TernaryOp,
    c: &ArrayData,
    x: &ArrayData,
    y: &ArrayData,
    shape: &[usize],
) -> Result<ArrayData> {
    let n = numel(shape);
    let mut buf = alloc::<T>(n)?;
    if n > 0 {
        let dst = &mut buf.as_mut_slice::<T>()[..n];
        let (cb, xb, yb) = (
            c.buffer.as_slice::<bool>(),
            x.buffer.as_slice::<T>(),
            y.buffer.as_slice::<T>(),
        );
        let st = [
            broadcast_strides(&c.shape, &c.strides, shape),
            broadcast_strides(&x.shape, &x.strides, shape),
            broadcast_strides(&y.shape, &y.strides, shape),
        ];
        let nd = shape.len();
        let mut idx = vec![0usize; nd];
        let mut pos = [c.offset, x.offset, y.offset];
        for o in dst.iter_mut() {
            *o = op.select(
                cb[pos[0] as usize],
                xb[pos[1] as usize],
                yb[pos[2] as usize],
            );
            for d in (0..nd).rev() {
                idx[d] += 1;
                for (p, s) in pos.iter_mut().zip(&st) {
                    *p += s[d];
                }
                if idx[d] < shape[d] {
                    break;
                }
                for (p, s) in pos.iter_mut().zip(&st) {
                    *p -= s[d] * shape[d] as isize;
                }
                idx[d] = 0;
            }
        }
    }
    Ok(ArrayData::contiguous(buf, shape, T::DTYPE))
}

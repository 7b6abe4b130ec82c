//! CPU kernels of the creation primitives.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::CreationOp;
use umx_core::primitives::creation::linspace_value;
use umx_core::shape::broadcast_strides;
use umx_core::{ArrayData, Element, Error, Result, dispatch_dtype};

pub fn eval(
    op: &CreationOp,
    inputs: Vec<ArrayData>,
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device("creation: no output".into()))?;
    let data = match op {
        CreationOp::Arange { start, step } => {
            dispatch_dtype!(out.dtype, T => arange::<T>(*start, *step, out))
        }
        CreationOp::Linspace { start, stop } => {
            dispatch_dtype!(out.dtype, T => linspace::<T>(*start, *stop, out))
        }
        CreationOp::Full => {
            let x = inputs
                .into_iter()
                .next()
                .ok_or_else(|| Error::Device("full: no input".into()))?;
            full(x, out)
        }
        CreationOp::Eye { k } => {
            let k = *k;
            dispatch_dtype!(out.dtype, T => matrix::<T>(out, move |i, j| j as i64 - i as i64 == k))
        }
        CreationOp::Tri { k } => {
            let k = *k;
            dispatch_dtype!(out.dtype, T => matrix::<T>(out, move |i, j| j as i64 <= i as i64 + k))
        }
    }?;
    Ok(vec![data])
}

/// MLX's arange: the running sum of `next - start` in `T` (so float results carry the same
/// rounding as MLX's, not NumPy's `start + i * step`).
fn arange<T: Element>(start: f64, step: f64, out: &OutSpec) -> Result<ArrayData> {
    let n = out.shape.iter().product();
    let mut buf = alloc::<T>(n)?;
    let first = T::from_f64(start);
    let next = T::from_f64(start + step);
    let dst = buf.as_mut_slice::<T>();
    if T::DTYPE.is_inexact() {
        // Float dtypes: add in float32 (float16/bfloat16 round after each add, as their C++
        // operators do); float64 in float64.
        if T::DTYPE == umx_core::Dtype::Float64 {
            let (mut v, d) = (first.to_f64(), next.to_f64() - first.to_f64());
            for x in dst.iter_mut() {
                *x = T::from_f64(v);
                v += d;
            }
        } else {
            let f = first.to_f64() as f32;
            let d = T::from_f64((next.to_f64() as f32 - f) as f64).to_f64() as f32;
            let mut v = f;
            for x in dst.iter_mut() {
                *x = T::from_f64(v as f64);
                v = T::from_f64((v + d) as f64).to_f64() as f32;
            }
        }
    } else {
        // Integers: wrapping adds in i64 then the cast to T, as C++ unsigned/signed adds wrap.
        let (f, d) = (first.to_i64(), next.to_i64().wrapping_sub(first.to_i64()));
        let mut v = f;
        for x in dst.iter_mut() {
            *x = T::from_i64(v);
            v = T::from_i64(v.wrapping_add(d)).to_i64();
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, T::DTYPE))
}

fn linspace<T: Element>(start: f64, stop: f64, out: &OutSpec) -> Result<ArrayData> {
    let n: usize = out.shape.iter().product();
    let mut buf = alloc::<T>(n)?;
    for (i, x) in buf.as_mut_slice::<T>().iter_mut().enumerate() {
        *x = T::from_f64(linspace_value(start, stop, i, n) as f64);
    }
    Ok(ArrayData::contiguous(buf, &out.shape, T::DTYPE))
}

/// An `(n, m)` matrix of ones where `one(i, j)` holds, zeros elsewhere.
fn matrix<T: Element>(
    out: &OutSpec,
    one: impl Fn(usize, usize) -> bool + Sync,
) -> Result<ArrayData> {
    let (n, m) = match out.shape[..] {
        [n, m] => (n, m),
        _ => return Err(Error::Device("eye/tri: the output must be 2-d".into())),
    };
    let mut buf = alloc::<T>(n * m)?;
    let (zero, unit) = (T::from_i64(0), T::from_i64(1));
    let fill_row = |i: usize, row: &mut [T]| {
        for (j, x) in row.iter_mut().enumerate() {
            *x = if one(i, j) { unit } else { zero };
        }
    };
    let dst = buf.as_mut_slice::<T>();
    if m > 0 {
        if n * m > PARALLEL_THRESHOLD {
            dst.par_chunks_mut(m)
                .enumerate()
                .for_each(|(i, row)| fill_row(i, row));
        } else {
            dst.chunks_mut(m)
                .enumerate()
                .for_each(|(i, row)| fill_row(i, row));
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, T::DTYPE))
}

/// Broadcasts `x` (cast to the output dtype) into a new contiguous array.
fn full(x: ArrayData, out: &OutSpec) -> Result<ArrayData> {
    let n: usize = out.shape.iter().product();
    dispatch_dtype!(out.dtype, T => {
        let mut buf = alloc::<T>(n)?;
        dispatch_dtype!(x.dtype, S => fill_from::<S, T>(&x, &out.shape, buf.as_mut_slice::<T>()));
        Ok::<ArrayData, Error>(ArrayData::contiguous(buf, &out.shape, T::DTYPE))
    })
}

fn fill_from<S: Element, T: Element>(x: &ArrayData, shape: &[usize], dst: &mut [T]) {
    let src = x.buffer.as_slice::<S>();
    if x.size() == 1 {
        let v: T = src[x.offset as usize].cast::<T>();
        if dst.len() > PARALLEL_THRESHOLD {
            dst.par_iter_mut().for_each(|d| *d = v);
        } else {
            dst.fill(v);
        }
        return;
    }
    let view = ArrayData {
        buffer: x.buffer.clone(),
        shape: shape.to_vec(),
        dtype: x.dtype,
        strides: broadcast_strides(&x.shape, &x.strides, shape),
        offset: x.offset,
    };
    let mut k = 0;
    view.for_each_index(|i| {
        dst[k] = src[i].cast::<T>();
        k += 1;
    });
}

//! Sorting ops: sort, argsort, partition, argpartition, topk, searchsorted, median.
//!
//! Elements are ordered as NumPy orders them (see [`SortKey`](crate::primitives::sort::SortKey)):
//! NaNs last, float16/bfloat16 by value, complex numbers by real then imaginary part. An
//! `axis` of `None` works on the flattened array, as MLX's `axis=None`.

use crate::primitives::{Primitive, SortOp};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Array, Axes, Dtype, Element, IntoArray, Result, bail, ops};

/// The array and axis an op works on: `None` flattens the array first.
fn lanes_of(op: &str, a: &Array, axis: Option<i64>) -> Result<(Array, usize)> {
    match axis {
        None => Ok((flatten_all(a)?, 0)),
        Some(ax) => {
            if a.ndim() == 0 {
                bail!("{op}: axis {ax} is out of range for an array of 0 dimensions (shape ())");
            }
            Ok((a.clone(), normalize_axis(op, ax, a.ndim())?))
        }
    }
}

/// `a` as a 1-D array.
fn flatten_all(a: &Array) -> Result<Array> {
    if a.ndim() == 1 {
        return Ok(a.clone());
    }
    crate::ops::reshape(a, &[a.size() as i64])
}

fn node(op: SortOp, inputs: Vec<Array>) -> Result<Array> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
    let spec = op.output(&shapes, inputs[0].dtype());
    Array::from_primitive(Primitive::Sort(op), inputs, spec.shape, spec.dtype)
}

/// A sorted copy of `a` along `axis` (`None`: of the flattened array). NaNs sort last.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[3.0f32, f32::NAN, 1.0, 2.0], &[2, 2])?;
/// assert_eq!(ops::sort(&a, -1)?.to_vec::<f32>()?[2..], [1.0, 2.0]);
/// assert_eq!(ops::sort(&a, None)?.to_vec::<f32>()?[..3], [1.0, 2.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn sort(a: &Array, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, axis) = lanes_of("sort", a, axis.into())?;
    node(SortOp::Sort { axis }, vec![x])
}

/// The uint32 indices that sort `a` along `axis` (`None`: the flattened array). The sort is
/// stable: equal elements keep their order.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[2i32, 1, 2, 0], &[4])?;
/// assert_eq!(ops::argsort(&a, 0)?.to_vec::<u32>()?, [3, 1, 0, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn argsort(a: &Array, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, axis) = lanes_of("argsort", a, axis.into())?;
    node(SortOp::ArgSort { axis }, vec![x])
}

fn check_kth(op: &str, x: &Array, kth: i64, axis: usize) -> Result<usize> {
    let n = x.shape()[axis] as i64;
    let k = if kth < 0 { kth + n } else { kth };
    if k < 0 || k >= n {
        bail!(
            "{op}: kth {kth} is out of range for axis {axis} of size {n} (shape {})",
            fmt_shape(x.shape())
        );
    }
    Ok(k as usize)
}

/// A copy of `a` partitioned along `axis` (`None`: the flattened array): the element at
/// position `kth` (negative counts from the end) is the one a sort would put there, the ones
/// before it are not larger, the ones after it not smaller; within each side the order is
/// unspecified.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[5i32, 1, 4, 2, 3], &[5])?;
/// let p = ops::partition(&a, 2, 0)?.to_vec::<i32>()?;
/// assert_eq!(p[2], 3);
/// assert!(p[..2].iter().all(|&v| v < 3) && p[3..].iter().all(|&v| v > 3));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn partition(a: &Array, kth: i64, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, axis) = lanes_of("partition", a, axis.into())?;
    let kth = check_kth("partition", &x, kth, axis)?;
    node(SortOp::Partition { axis, kth }, vec![x])
}

/// The uint32 indices that partition `a` along `axis` as [`partition`] does.
pub fn argpartition(a: &Array, kth: i64, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, axis) = lanes_of("argpartition", a, axis.into())?;
    let kth = check_kth("argpartition", &x, kth, axis)?;
    node(SortOp::ArgPartition { axis, kth }, vec![x])
}

/// The `k` largest elements of `a` along `axis` (`None`: of the flattened array).
///
/// MLX leaves their order unspecified; umx returns them sorted ascending, so
/// `topk(a, k, axis)` equals the last `k` elements of `sort(a, axis)`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[5.0f32, 1.0, 4.0, 2.0, 3.0], &[5])?;
/// assert_eq!(ops::topk(&a, 2, -1)?.to_vec::<f32>()?, [4.0, 5.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn topk(a: &Array, k: usize, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, axis) = lanes_of("topk", a, axis.into())?;
    let n = x.shape()[axis];
    if k > n {
        bail!(
            "topk: k={k} is larger than axis {axis} of size {n} (shape {})",
            fmt_shape(x.shape())
        );
    }
    node(SortOp::TopK { axis, k }, vec![x])
}

/// NumPy's `searchsorted` (MLX has none): for every element of `v`, the index at which it
/// would go into the sorted 1-D array `a` to keep it sorted: before the equal elements
/// (`side = "left"`) or after them (`"right"`). Gives uint32 indices (MLX's index dtype) of
/// `v`'s shape. `a` and `v` are compared in their promoted dtype, in the sort order (NaNs
/// last); `a` must already be sorted in it.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 2, 3], &[4])?;
/// assert_eq!(ops::searchsorted(&a, 2, "left")?.item::<u32>()?, 1);
/// assert_eq!(ops::searchsorted(&a, 2, "right")?.item::<u32>()?, 3);
/// assert_eq!(ops::searchsorted(&a, 2.5, "left")?.item::<u32>()?, 3);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn searchsorted(a: &Array, v: impl IntoArray, side: &str) -> Result<Array> {
    let v = v.into_array();
    a.check()?;
    v.check()?;
    let right = match side {
        "left" => false,
        "right" => true,
        other => bail!("searchsorted: side must be \"left\" or \"right\", not {other:?}"),
    };
    if a.ndim() != 1 {
        bail!(
            "searchsorted: the sorted array must be 1-D, not of shape {}",
            fmt_shape(a.shape())
        );
    }
    let dtype = crate::ops::result_type(a, &v);
    let v = if v.is_weak() && v.dtype() != dtype {
        // A Rust scalar takes the compute dtype directly (integers as integers).
        if v.dtype().is_integer() || v.dtype() == Dtype::Bool {
            let x = v.item::<i64>()?;
            crate::dispatch_dtype!(dtype, T => Array::scalar(T::from_i64(x)))
        } else {
            Array::full_scalar(v.item::<f64>()?, dtype)
        }
    } else {
        crate::ops::astype(&v, dtype)?
    };
    let a = crate::ops::astype(a, dtype)?;
    node(SortOp::SearchSorted { right }, vec![a, v])
}

/// The median over `axes` (MLX's `mx.median`; `None`: over all axes), with the reduced axes
/// kept as size 1 when `keepdims`. Integer and bool inputs give float32; floats keep their
/// dtype. For an even count it is the mean of the two middle elements.
///
/// As in MLX it is the middle of a sort, and NaNs sort last: a lane with NaNs gives the
/// median of its sorted elements rather than NaN (NumPy gives NaN).
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[3i32, 1, 2, 10, 40, 20], &[2, 3])?;
/// assert_eq!(ops::median(&a, 1, false)?.to_vec::<f32>()?, [2.0, 20.0]);
/// assert_eq!(ops::median(&a, None, false)?.item::<f32>()?, 6.5);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn median(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    a.check()?;
    let axes = axes.into().resolve("median", a.ndim())?;
    let dtype = a.dtype().to_inexact();
    let m: usize = axes.iter().map(|&i| a.shape()[i]).product();
    if m == 0 {
        bail!(
            "median: cannot take the median over an empty axis (shape {}, axes {axes:?})",
            fmt_shape(a.shape())
        );
    }
    // The reduced axes moved last and flattened into one, then sorted.
    let kept: Vec<usize> = (0..a.ndim()).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<i64> = kept.iter().chain(&axes).map(|&i| i as i64).collect();
    let mut lanes_shape: Vec<i64> = kept.iter().map(|&i| a.shape()[i] as i64).collect();
    lanes_shape.push(m as i64);
    let x = ops::reshape(&ops::transpose(a, perm)?, &lanes_shape)?;
    let sorted = sort(&x, -1)?;
    let mid = |i: usize| -> Result<Array> {
        let parts = ops::split(&sorted, [i, i + 1], -1)?;
        ops::astype(&ops::squeeze(&parts[1], -1)?, dtype)
    };
    let mut out = mid(m / 2)?;
    if m.is_multiple_of(2) {
        out = ops::multiply(ops::add(&out, mid(m / 2 - 1)?)?, 0.5)?;
    }
    if keepdims {
        let axes: Vec<i64> = axes.iter().map(|&i| i as i64).collect();
        out = ops::expand_dims(&out, axes)?;
    }
    Ok(out)
}

impl Array {
    /// [`sort`] along `axis` (`None`: flattened).
    pub fn sort(&self, axis: impl Into<Option<i64>>) -> Result<Array> {
        sort(self, axis)
    }
    /// [`argsort`] along `axis` (`None`: flattened).
    pub fn argsort(&self, axis: impl Into<Option<i64>>) -> Result<Array> {
        argsort(self, axis)
    }
    /// [`median`] over `axes`.
    pub fn median(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
        median(self, axes, keepdims)
    }
    /// [`topk`]: the `k` largest along `axis`, ascending.
    pub fn topk(&self, k: usize, axis: impl Into<Option<i64>>) -> Result<Array> {
        topk(self, k, axis)
    }
}

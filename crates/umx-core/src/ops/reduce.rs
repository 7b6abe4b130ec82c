//! Reductions: `sum`, `prod`, `max`, `min`, `mean`, `all`, `any`, `argmax`, `argmin`, and the
//! reductions built from them (`var`, `std`, `logsumexp`, `softmax`, `count_nonzero`).
//!
//! Result dtypes follow MLX: sums and products of bool and integers of 32 bits or less give
//! int32 (unsigned: uint32); means of integers give float32; `max`/`min` keep the dtype;
//! `all`/`any` give bool; `argmax`/`argmin` give uint32. Float16 and bfloat16 accumulate in
//! float32 and round once.

use crate::primitives::Primitive;
use crate::primitives::reduce::{
    ArgReduceKind, ReduceKind, ReduceOp, reduced_shape, squeezed_shape,
};
use crate::shape::{Axes, fmt_shape, normalize_axis, numel};
use crate::{Array, Dtype, Result, bail};

/// A reduction node. Its output is written contiguously, so it carries the final shape
/// (reduced axes kept as 1 or dropped) directly.
fn reduce_op(kind: ReduceKind, a: &Array, axes: Axes, keepdims: bool) -> Result<Array> {
    let name = kind.name();
    a.check()?;
    let axes = axes.resolve(name, a.ndim())?;
    let shape = a.shape();
    if kind.needs_values() {
        let n: usize = axes.iter().map(|&i| shape[i]).product();
        let out_n: usize = (0..shape.len())
            .filter(|i| !axes.contains(i))
            .map(|i| shape[i])
            .product();
        if n == 0 && out_n > 0 {
            bail!(
                "{name}: cannot reduce an empty axis of an array of shape {} (axes {axes:?}): it has no identity",
                fmt_shape(shape)
            );
        }
    }
    let out_shape = if keepdims {
        reduced_shape(shape, &axes)
    } else {
        squeezed_shape(shape, &axes)
    };
    Array::from_primitive(
        Primitive::Reduce(ReduceOp::Reduce { kind, axes }),
        vec![a.clone()],
        out_shape,
        kind.output_dtype(a.dtype()),
    )
}

/// Sum over `axes` (`None` = all). Bool and small integers sum into int32 (unsigned: uint32).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::sum(&a, None, false)?.item::<f32>()?, 10.0);
/// assert_eq!(ops::sum(&a, 0, false)?.to_vec::<f32>()?, vec![4.0, 6.0]);
/// assert_eq!(ops::sum(&a, -1, true)?.shape(), &[2, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn sum(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Sum, a, axes.into(), keepdims)
}

/// Product over `axes` (`None` = all); dtypes as [`sum`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[4])?;
/// assert_eq!(ops::prod(&a, None, false)?.item::<i32>()?, 24);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn prod(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Prod, a, axes.into(), keepdims)
}

/// Largest value over `axes` (`None` = all); NaN wins. An empty axis is an error.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 5.0, 3.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::max(&a, 1, false)?.to_vec::<f32>()?, vec![5.0, 4.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn max(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Max, a, axes.into(), keepdims)
}

/// Smallest value over `axes` (`None` = all); NaN wins. An empty axis is an error.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 5.0, 3.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::min(&a, None, false)?.item::<f32>()?, 1.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn min(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Min, a, axes.into(), keepdims)
}

/// Mean over `axes` (`None` = all); integers give float32. The mean of nothing is NaN.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2])?;
/// assert_eq!(ops::mean(&a, 0, false)?.to_vec::<f32>()?, vec![2.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn mean(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Mean, a, axes.into(), keepdims)
}

/// Whether every element over `axes` is nonzero (`None` = all); bool result.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[true, false, true, true], &[2, 2])?;
/// assert_eq!(ops::all(&a, 1, false)?.to_vec::<bool>()?, vec![false, true]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn all(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::All, a, axes.into(), keepdims)
}

/// Whether any element over `axes` is nonzero (`None` = all); bool result.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[0.0f32, 0.0, 0.0, 2.0], &[2, 2])?;
/// assert_eq!(ops::any(&a, 1, false)?.to_vec::<bool>()?, vec![false, true]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn any(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    reduce_op(ReduceKind::Any, a, axes.into(), keepdims)
}

fn arg_reduce_op(
    kind: ArgReduceKind,
    a: &Array,
    axis: Option<i64>,
    keepdims: bool,
) -> Result<Array> {
    let name = kind.name();
    a.check()?;
    if a.dtype().is_complex() {
        bail!(
            "{name}: complex64 arrays have no order (shape {})",
            fmt_shape(a.shape())
        );
    }
    if a.size() == 0 {
        bail!(
            "{name}: cannot reduce an empty array of shape {}",
            fmt_shape(a.shape())
        );
    }
    let Some(axis) = axis else {
        // Over the flattened array.
        let flat = crate::ops::shape::reshape(a, &[-1])?;
        let r = arg_reduce_op(kind, &flat, Some(0), false)?;
        return if keepdims {
            crate::ops::shape::reshape(&r, &vec![1; a.ndim()])
        } else {
            Ok(r)
        };
    };
    let ax = normalize_axis(name, axis, a.ndim())?;
    let out_shape = if keepdims {
        reduced_shape(a.shape(), &[ax])
    } else {
        squeezed_shape(a.shape(), &[ax])
    };
    Array::from_primitive(
        Primitive::Reduce(ReduceOp::ArgReduce { kind, axis: ax }),
        vec![a.clone()],
        out_shape,
        Dtype::Uint32,
    )
}

/// Index (uint32) of the largest value along `axis` (`None`: of the flattened array). Ties and
/// NaNs give the first index, as NumPy.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 5.0, 7.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::argmax(&a, Some(1), false)?.to_vec::<u32>()?, vec![1, 0]);
/// assert_eq!(ops::argmax(&a, None, false)?.item::<u32>()?, 2);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn argmax(a: &Array, axis: Option<i64>, keepdims: bool) -> Result<Array> {
    arg_reduce_op(ArgReduceKind::ArgMax, a, axis, keepdims)
}

/// Index (uint32) of the smallest value along `axis` (`None`: of the flattened array).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 5.0, 7.0, 0.0], &[2, 2])?;
/// assert_eq!(ops::argmin(&a, Some(0), false)?.to_vec::<u32>()?, vec![0, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn argmin(a: &Array, axis: Option<i64>, keepdims: bool) -> Result<Array> {
    arg_reduce_op(ArgReduceKind::ArgMin, a, axis, keepdims)
}

/// The dtype composite reductions compute in (float32 for integers and 16-bit floats, so they
/// round once at the end) and the dtype they return (MLX's: floats keep theirs, integers give
/// float32).
fn compute_dtypes(a: &Array) -> (Dtype, Dtype) {
    let out = a.dtype().to_inexact();
    let compute = match out {
        Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
        d => d,
    };
    (compute, out)
}

/// Fails, naming `op`, when `axes` reduce an empty axis into a non-empty result.
fn check_nonempty(op: &str, a: &Array, axes: &[usize]) -> Result<()> {
    let shape = a.shape();
    let n: usize = axes.iter().map(|&i| shape[i]).product();
    let out_n: usize = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .product();
    if n == 0 && out_n > 0 {
        bail!(
            "{op}: cannot reduce an empty axis of an array of shape {} (axes {axes:?})",
            fmt_shape(shape)
        );
    }
    Ok(())
}

/// Variance over `axes` (`None` = all), dividing by `n - ddof` (NumPy's `var`). Integers give
/// float32; float16 and bfloat16 compute in float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4])?;
/// assert_eq!(ops::var(&a, None, false, 0)?.item::<f32>()?, 1.25);
/// assert!((ops::std(&a, None, false, 1)?.item::<f32>()? - 1.2909944).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn var(a: &Array, axes: impl Into<Axes>, keepdims: bool, ddof: i64) -> Result<Array> {
    a.check()?;
    let axes = axes.into().resolve("var", a.ndim())?;
    let (compute, out) = compute_dtypes(a);
    let n: usize = axes.iter().map(|&i| a.shape()[i]).product();
    let x = crate::ops::astype(a, compute)?;
    let mu = mean(&x, axes.clone(), true)?;
    let d = crate::ops::subtract(&x, &mu)?;
    let s = sum(&crate::ops::square(&d)?, axes, keepdims)?;
    // n - ddof <= 0 divides by zero: inf, or NaN for 0 / 0 (NumPy's result).
    let denom = (n as i64 - ddof).max(0) as f64;
    let v = crate::ops::divide(&s, denom)?;
    crate::ops::astype(&v, out)
}

/// Standard deviation over `axes` (`None` = all): `sqrt(var(a, axes, keepdims, ddof))`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 3.0], &[2])?;
/// assert_eq!(ops::std(&a, None, false, 0)?.item::<f32>()?, 1.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn std(a: &Array, axes: impl Into<Axes>, keepdims: bool, ddof: i64) -> Result<Array> {
    let axes = axes.into();
    // Name the op in errors about axes.
    axes.resolve("std", a.ndim())?;
    crate::ops::sqrt(&var(a, axes, keepdims, ddof)?)
}

/// `log(sum(exp(a), axes))` over `axes` (`None` = all), computed without overflow by
/// subtracting the maximum first. Integers give float32; float16 and bfloat16 compute in
/// float32. An empty axis is an error (as `max`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1000.0f32, 1000.0], &[2])?;
/// let y = ops::logsumexp(&a, None, false)?.item::<f32>()?;
/// assert!((y - (1000.0 + 2f32.ln())).abs() < 1e-3);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn logsumexp(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    a.check()?;
    let axes = axes.into().resolve("logsumexp", a.ndim())?;
    check_nonempty("logsumexp", a, &axes)?;
    if a.ndim() > 0 && axes == [a.ndim() - 1] && crate::fast::has_kernel(a.dtype()) && a.size() > 0
    {
        // One pass per row (computed in float32).
        let l = crate::fast::logsumexp_rows(a)?;
        return if keepdims {
            crate::ops::expand_dims(&l, -1)
        } else {
            Ok(l)
        };
    }
    logsumexp_composite(a, &axes, keepdims)
}

/// `logsumexp` as ordinary ops (a max, the shifted exponentials' sum, its log): the fast
/// kernel's fallback, and every reduction that is not over the last axis.
pub(crate) fn logsumexp_composite(a: &Array, axes: &[usize], keepdims: bool) -> Result<Array> {
    let axes = axes.to_vec();
    let (compute, out) = compute_dtypes(a);
    let x = crate::ops::astype(a, compute)?;
    let m = max(&x, axes.clone(), true)?;
    // An infinite maximum (all -inf, or a +inf) would give inf - inf = NaN: shift by 0 instead.
    // The shift only keeps `exp` in range, so no gradient flows through it (as in JAX's
    // `logsumexp`): the gradient is softmax(a) itself, without `max`'s gradient (a one-hot of
    // the maximum, several ops), whose terms cancel.
    let m =
        crate::transforms::stop_gradient(&crate::ops::where_(&crate::ops::isinf(&m)?, 0.0, &m)?)?;
    let e = crate::ops::exp(&crate::ops::subtract(&x, &m)?)?;
    let l = crate::ops::log(&sum(&e, axes.clone(), keepdims)?)?;
    let m = if keepdims {
        m
    } else {
        crate::ops::shape::reshape(&m, &l.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())?
    };
    crate::ops::astype(&crate::ops::add(&l, &m)?, out)
}

/// `exp(a) / sum(exp(a), axes)` over `axes` (`None` = all), computed stably by subtracting the
/// maximum first. Integers give float32. With `precise`, float16 and bfloat16 compute in
/// float32 and round once (MLX's `precise`); otherwise they compute in their own dtype (sums
/// still accumulate in float32).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 1.0, 1.0, 1.0], &[2, 2])?;
/// assert_eq!(ops::softmax(&a, -1, false)?.to_vec::<f32>()?, vec![0.5; 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn softmax(a: &Array, axes: impl Into<Axes>, precise: bool) -> Result<Array> {
    a.check()?;
    let axes = axes.into().resolve("softmax", a.ndim())?;
    let rows = a.ndim() > 0 && axes == [a.ndim() - 1];
    if rows && crate::fast::has_kernel(a.dtype()) && a.size() > 0 {
        // One pass per row (computed in float32, whatever `precise` says).
        return crate::fast::softmax_rows(a);
    }
    softmax_over(a, axes, precise)
}

/// Softmax over the last axis as ordinary ops: the fast kernel's fallback.
pub(crate) fn softmax_composite(a: &Array, precise: bool) -> Result<Array> {
    let axes = Axes::from(-1).resolve("softmax", a.ndim())?;
    softmax_over(a, axes, precise)
}

fn softmax_over(a: &Array, axes: Vec<usize>, precise: bool) -> Result<Array> {
    let (compute, out) = compute_dtypes(a);
    let compute = if precise { compute } else { out };
    let x = crate::ops::astype(a, compute)?;
    if a.size() == 0 {
        return crate::ops::astype(&x, out);
    }
    let m = max(&x, axes.clone(), true)?;
    let m = crate::ops::where_(&crate::ops::isinf(&m)?, 0.0, &m)?;
    let e = crate::ops::exp(&crate::ops::subtract(&x, &m)?)?;
    let s = sum(&e, axes, true)?;
    crate::ops::astype(&crate::ops::divide(&e, &s)?, out)
}

/// How many elements over `axes` (`None` = all) are nonzero, as int32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[0.0f32, 2.0, 0.0, -1.0], &[2, 2])?;
/// assert_eq!(ops::count_nonzero(&a, 0, false)?.to_vec::<i32>()?, vec![0, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn count_nonzero(a: &Array, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
    a.check()?;
    let axes = axes.into().resolve("count_nonzero", a.ndim())?;
    sum(&crate::ops::astype(a, Dtype::Bool)?, axes, keepdims)
}

impl Array {
    /// `sum(self, axes, false)`: see [`sum`].
    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Array> {
        sum(self, axes, false)
    }
    /// `prod(self, axes, false)`: see [`prod`].
    pub fn prod(&self, axes: impl Into<Axes>) -> Result<Array> {
        prod(self, axes, false)
    }
    /// `max(self, axes, false)`: see [`max`].
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Array> {
        max(self, axes, false)
    }
    /// `min(self, axes, false)`: see [`min`].
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Array> {
        min(self, axes, false)
    }
    /// `mean(self, axes, false)`: see [`mean`].
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Array> {
        mean(self, axes, false)
    }
    /// `all(self, axes, false)`: see [`all`].
    pub fn all(&self, axes: impl Into<Axes>) -> Result<Array> {
        all(self, axes, false)
    }
    /// `any(self, axes, false)`: see [`any`].
    pub fn any(&self, axes: impl Into<Axes>) -> Result<Array> {
        any(self, axes, false)
    }
    /// `var(self, axes, false, 0)`: see [`var`].
    pub fn var(&self, axes: impl Into<Axes>) -> Result<Array> {
        var(self, axes, false, 0)
    }
    /// `std(self, axes, false, 0)`: see [`std()`].
    pub fn std(&self, axes: impl Into<Axes>) -> Result<Array> {
        std(self, axes, false, 0)
    }
    /// `logsumexp(self, axes, false)`: see [`logsumexp`].
    pub fn logsumexp(&self, axes: impl Into<Axes>) -> Result<Array> {
        logsumexp(self, axes, false)
    }
    /// `softmax(self, axes, false)`: see [`softmax`].
    pub fn softmax(&self, axes: impl Into<Axes>) -> Result<Array> {
        softmax(self, axes, false)
    }
    /// `argmax(self, axis, false)`: see [`argmax`].
    pub fn argmax(&self, axis: Option<i64>) -> Result<Array> {
        argmax(self, axis, false)
    }
    /// `argmin(self, axis, false)`: see [`argmin`].
    pub fn argmin(&self, axis: Option<i64>) -> Result<Array> {
        argmin(self, axis, false)
    }
}

//! Indexing ops: `slice` (a view), `slice_update`, `take`, `take_along_axis`,
//! `put_along_axis`, `gather`, `scatter` and its reducing forms, `diag`, `diagonal`, `tril`,
//! `triu`, and the `x[...]`-style API: [`Index`], the [`s!`](crate::s) macro,
//! [`Array::index`], [`Array::get`] and [`Array::at`].
//!
//! Integer indices given as Rust values are checked here, at once. Index values held in arrays
//! are checked here too when the array is already evaluated, and otherwise by the kernel (an
//! error naming the op at eval): negative ones wrap once, as in NumPy and MLX, and nothing is
//! ever read or written out of bounds.

use crate::primitives::Primitive;
use crate::primitives::indexing::{IndexOp, ScatterMode};
use crate::shape::{broadcast_many, broadcast_shapes, fmt_shape, normalize_axis};
use crate::{Array, Dtype, Error, IntoArray, Result, bail};

fn index_prim(op: IndexOp) -> Primitive {
    Primitive::Indexing(op)
}

/// Python's `slice(start, stop, step).indices(n)`: the first position and the length of the
/// selection, with out-of-range bounds clamped.
fn slice_bounds(n: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> (usize, usize) {
    let n = n as i64;
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let clamp = |v: i64| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(lo, hi)
    };
    let start = start.map_or(if step > 0 { 0 } else { n - 1 }, clamp);
    let stop = stop.map_or(if step > 0 { n } else { -1 }, clamp);
    let len = if step > 0 {
        if stop > start {
            (stop - start + step - 1) / step
        } else {
            0
        }
    } else if start > stop {
        (start - stop - step - 1) / (-step)
    } else {
        0
    };
    // An empty selection may start past the end; it is never read, so park it at 0.
    let first = if len == 0 { 0 } else { start };
    (first as usize, len as usize)
}

/// Checks `start`/`stop`/`steps` against `a` and returns the normalised starts, steps and the
/// sliced shape.
fn resolve_slice(
    op: &str,
    a: &Array,
    start: &[i64],
    stop: &[i64],
    steps: &[i64],
) -> Result<(Vec<usize>, Vec<i64>, Vec<usize>)> {
    let nd = a.ndim();
    if start.len() != nd || stop.len() != nd || !(steps.is_empty() || steps.len() == nd) {
        bail!(
            "{op}: start ({}), stop ({}) and steps ({}) must each give one value per axis of the \
             array of shape {} (steps may also be empty)",
            start.len(),
            stop.len(),
            steps.len(),
            fmt_shape(a.shape())
        );
    }
    let mut first = Vec::with_capacity(nd);
    let mut step = Vec::with_capacity(nd);
    let mut shape = Vec::with_capacity(nd);
    for d in 0..nd {
        let s = if steps.is_empty() { 1 } else { steps[d] };
        if s == 0 {
            bail!("{op}: step of axis {d} is 0");
        }
        let (f, len) = slice_bounds(a.shape()[d], Some(start[d]), Some(stop[d]), s);
        first.push(f);
        step.push(s);
        shape.push(len);
    }
    Ok((first, step, shape))
}

/// The view of `a` from `start` to `stop` (exclusive) by `steps` on every axis, with Python's
/// rules: negative values count from the end, negative steps walk backwards, and out-of-range
/// bounds are clamped (an empty range gives an empty axis). `steps` may be empty (all 1).
///
/// No data is copied: the result shares `a`'s buffer.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::slice};
/// let a = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[6])?;
/// assert_eq!(slice(&a, &[1], &[5], &[2])?.to_vec::<i32>()?, vec![1, 3]);
/// assert_eq!(slice(&a, &[-1], &[-7], &[-2])?.to_vec::<i32>()?, vec![5, 3, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn slice(a: &Array, start: &[i64], stop: &[i64], steps: &[i64]) -> Result<Array> {
    a.check()?;
    let (start, step, shape) = resolve_slice("slice", a, start, stop, steps)?;
    slice_view(a, start, step, shape)
}

fn slice_view(a: &Array, start: Vec<usize>, step: Vec<i64>, shape: Vec<usize>) -> Result<Array> {
    if shape == a.shape() && step.iter().all(|&s| s == 1) {
        return Ok(a.clone());
    }
    Array::from_primitive(
        index_prim(IndexOp::Slice { start, step }),
        vec![a.clone()],
        shape,
        a.dtype(),
    )
}

/// A copy of `a` whose region `slice(a, start, stop, steps)` is replaced by `update`
/// (broadcast to the region's shape and cast to `a`'s dtype). Arrays are values: `a` itself
/// is unchanged.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::slice_update};
/// let a = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[6])?;
/// let b = slice_update(&a, &Array::scalar(9i32), &[0], &[6], &[2])?;
/// assert_eq!(b.to_vec::<i32>()?, vec![9, 1, 9, 3, 9, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn slice_update(
    a: &Array,
    update: &Array,
    start: &[i64],
    stop: &[i64],
    steps: &[i64],
) -> Result<Array> {
    a.check()?;
    update.check()?;
    let (start, step, shape) = resolve_slice("slice_update", a, start, stop, steps)?;
    slice_update_resolved(
        "slice_update",
        a,
        update,
        start,
        step,
        shape,
        ScatterMode::Assign,
    )
}

fn slice_update_resolved(
    op: &str,
    a: &Array,
    update: &Array,
    start: Vec<usize>,
    step: Vec<i64>,
    shape: Vec<usize>,
    mode: ScatterMode,
) -> Result<Array> {
    let b = broadcast_shapes(op, update.shape(), &shape).map_err(|_| {
        Error::Invalid(format!(
            "{op}: update of shape {} does not broadcast to the updated region of shape {} \
             (of an array of shape {})",
            fmt_shape(update.shape()),
            fmt_shape(&shape),
            fmt_shape(a.shape())
        ))
    })?;
    if b != shape {
        bail!(
            "{op}: update of shape {} does not broadcast to the updated region of shape {} \
             (of an array of shape {})",
            fmt_shape(update.shape()),
            fmt_shape(&shape),
            fmt_shape(a.shape())
        );
    }
    Array::from_primitive(
        index_prim(IndexOp::SliceUpdate {
            start,
            step,
            shape,
            mode,
        }),
        vec![a.clone(), update.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// Errs unless `idx` holds integers (bool is not an index type either).
fn check_index_dtype(op: &str, idx: &Array) -> Result<()> {
    idx.check()?;
    if !idx.dtype().is_integer() || idx.dtype() == Dtype::Bool {
        bail!(
            "{op}: indices must be integers, not {} (shape {})",
            idx.dtype(),
            fmt_shape(idx.shape())
        );
    }
    Ok(())
}

/// When `idx` is already evaluated, checks its values against an axis of size `dim` (after
/// wrapping negatives), so a bad index fails here rather than at eval. `window` is the size of
/// the slice taken from each position (1 for a plain index).
fn check_known_indices(
    op: &str,
    idx: &Array,
    dim: usize,
    window: usize,
    axis: usize,
) -> Result<()> {
    if !idx.is_evaluated() || idx.size() == 0 {
        return Ok(());
    }
    let dim = dim as i64;
    let limit = dim - window as i64;
    for v in idx.to_vec::<i64>()? {
        let w = if v < 0 { v + dim } else { v };
        if w < 0 || w > limit {
            return Err(Error::Index(format!(
                "{op}: index {v} is out of range for axis {axis} of size {dim}"
            )));
        }
    }
    Ok(())
}

/// Elements of `a` at `indices` along `axis`; with `axis` `None`, of `a` flattened in
/// row-major order. The result's shape is `a.shape[..axis] + indices.shape + a.shape[axis+1..]`
/// (`indices.shape` when flattened). Negative indices count from the end.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::take};
/// let a = Array::from_slice(&[10i32, 11, 12, 13, 14, 15], &[2, 3])?;
/// let i = Array::from_slice(&[2i32, -3], &[2])?;
/// assert_eq!(take(&a, &i, Some(1))?.to_vec::<i32>()?, vec![12, 10, 15, 13]);
/// assert_eq!(take(&a, &i, None)?.to_vec::<i32>()?, vec![12, 13]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn take(a: &Array, indices: &Array, axis: Option<i64>) -> Result<Array> {
    a.check()?;
    check_index_dtype("take", indices)?;
    let (axis, dim, shape) = match axis {
        None => (None, a.size(), indices.shape().to_vec()),
        Some(ax) => {
            let ax = normalize_axis("take", ax, a.ndim())?;
            let mut shape = a.shape()[..ax].to_vec();
            shape.extend_from_slice(indices.shape());
            shape.extend_from_slice(&a.shape()[ax + 1..]);
            (Some(ax), a.shape()[ax], shape)
        }
    };
    if dim == 0 && indices.size() != 0 {
        bail!(
            "take: cannot take {} indices from an empty axis (array of shape {})",
            indices.size(),
            fmt_shape(a.shape())
        );
    }
    check_known_indices("take", indices, dim, 1, axis.unwrap_or(0))?;
    Array::from_primitive(
        index_prim(IndexOp::Take { axis }),
        vec![a.clone(), indices.clone()],
        shape,
        a.dtype(),
    )
}

/// The shape an along-axis op iterates over: the broadcast of `a` and `indices` on every axis
/// but `axis`, where it is the indices' size.
fn along_axis_shape(
    op: &str,
    a: &Array,
    indices: &Array,
    axis: i64,
) -> Result<(usize, Vec<usize>)> {
    let ax = normalize_axis(op, axis, a.ndim())?;
    if indices.ndim() != a.ndim() {
        bail!(
            "{op}: indices of shape {} must have as many dimensions as the array of shape {}",
            fmt_shape(indices.shape()),
            fmt_shape(a.shape())
        );
    }
    let mut a_shape = a.shape().to_vec();
    a_shape[ax] = indices.shape()[ax];
    let shape = broadcast_shapes(op, &a_shape, indices.shape()).map_err(|_| {
        Error::Invalid(format!(
            "{op}: indices of shape {} do not broadcast with the array of shape {} off axis {ax}",
            fmt_shape(indices.shape()),
            fmt_shape(a.shape())
        ))
    })?;
    if a.shape()[ax] == 0 && indices.size() != 0 && numel_nonzero(&shape) {
        bail!(
            "{op}: cannot take indices from the empty axis {ax} of an array of shape {}",
            fmt_shape(a.shape())
        );
    }
    Ok((ax, shape))
}

fn numel_nonzero(shape: &[usize]) -> bool {
    shape.iter().all(|&d| d != 0)
}

/// `out[.., j, ..] = a[.., indices[.., j, ..], ..]` along `axis` (NumPy's `take_along_axis`):
/// `indices` has `a`'s number of dimensions and broadcasts with it on the other axes.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::take_along_axis};
/// let a = Array::from_slice(&[1.0f32, 5.0, 3.0, 9.0, 7.0, 8.0], &[2, 3])?;
/// let i = Array::from_slice(&[1i32, 0], &[2, 1])?;
/// assert_eq!(take_along_axis(&a, &i, 1)?.to_vec::<f32>()?, vec![5.0, 9.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn take_along_axis(a: &Array, indices: &Array, axis: i64) -> Result<Array> {
    a.check()?;
    check_index_dtype("take_along_axis", indices)?;
    let (ax, shape) = along_axis_shape("take_along_axis", a, indices, axis)?;
    check_known_indices("take_along_axis", indices, a.shape()[ax], 1, ax)?;
    Array::from_primitive(
        index_prim(IndexOp::TakeAlongAxis { axis: ax }),
        vec![a.clone(), indices.clone()],
        shape,
        a.dtype(),
    )
}

fn along_axis_update(
    op: &str,
    a: &Array,
    indices: &Array,
    values: &Array,
    axis: i64,
    mode: ScatterMode,
) -> Result<Array> {
    a.check()?;
    values.check()?;
    check_index_dtype(op, indices)?;
    let ax = normalize_axis(op, axis, a.ndim())?;
    if indices.ndim() != a.ndim() {
        bail!(
            "{op}: indices of shape {} must have as many dimensions as the array of shape {}",
            fmt_shape(indices.shape()),
            fmt_shape(a.shape())
        );
    }
    // Values may carry extra leading 1s (MLX squeezes them); then all three broadcast off-axis.
    let extra = values.ndim().saturating_sub(a.ndim());
    if values.shape()[..extra].iter().any(|&d| d != 1) {
        bail!(
            "{op}: values of shape {} have more dimensions than the array of shape {}",
            fmt_shape(values.shape()),
            fmt_shape(a.shape())
        );
    }
    let iter = broadcast_shapes(op, indices.shape(), &values.shape()[extra..])?;
    let mut a_like = a.shape().to_vec();
    a_like[ax] = iter[ax];
    if broadcast_shapes(op, &iter, &a_like).ok().as_deref() != Some(&a_like[..]) {
        bail!(
            "{op}: indices of shape {} and values of shape {} do not fit the array of shape {} \
             off axis {ax}",
            fmt_shape(indices.shape()),
            fmt_shape(values.shape()),
            fmt_shape(a.shape())
        );
    }
    if a.shape()[ax] == 0 && numel_nonzero(&a_like) {
        bail!(
            "{op}: cannot index the empty axis {ax} of an array of shape {}",
            fmt_shape(a.shape())
        );
    }
    check_known_indices(op, indices, a.shape()[ax], 1, ax)?;
    Array::from_primitive(
        index_prim(IndexOp::PutAlongAxis { axis: ax, mode }),
        vec![a.clone(), indices.clone(), values.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// A copy of `a` with `values` written at `indices` along `axis` (NumPy's `put_along_axis`).
/// `values` broadcasts to the indices' shape and is cast to `a`'s dtype; with repeated indices
/// the last write wins.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::put_along_axis};
/// let a = Array::from_slice(&[0i32; 6], &[2, 3])?;
/// let i = Array::from_slice(&[2i32, 0], &[2, 1])?;
/// let b = put_along_axis(&a, &i, &Array::scalar(7i32), 1)?;
/// assert_eq!(b.to_vec::<i32>()?, vec![0, 0, 7, 7, 0, 0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn put_along_axis(a: &Array, indices: &Array, values: &Array, axis: i64) -> Result<Array> {
    along_axis_update(
        "put_along_axis",
        a,
        indices,
        values,
        axis,
        ScatterMode::Assign,
    )
}

/// Like [`put_along_axis`], but adds `values` at `indices` (repeated indices accumulate).
pub fn scatter_add_axis(a: &Array, indices: &Array, values: &Array, axis: i64) -> Result<Array> {
    along_axis_update(
        "scatter_add_axis",
        a,
        indices,
        values,
        axis,
        ScatterMode::Add,
    )
}

/// Checks the index arrays and axes common to gather and scatter; returns the normalised axes
/// and the indices' broadcast shape.
fn gather_scatter_indices(
    op: &str,
    a: &Array,
    indices: &[Array],
    axes: &[i64],
) -> Result<(Vec<usize>, Vec<usize>)> {
    if indices.len() > a.ndim() {
        bail!(
            "{op}: {} index arrays for an array of shape {}",
            indices.len(),
            fmt_shape(a.shape())
        );
    }
    if indices.len() != axes.len() {
        bail!(
            "{op}: {} index arrays but {} axes ({axes:?})",
            indices.len(),
            axes.len()
        );
    }
    let mut norm = Vec::with_capacity(axes.len());
    for &ax in axes {
        let n = normalize_axis(op, ax, a.ndim())?;
        if norm.contains(&n) {
            bail!("{op}: axis {ax} is repeated in {axes:?}");
        }
        norm.push(n);
    }
    for idx in indices {
        check_index_dtype(op, idx)?;
    }
    let shapes: Vec<&[usize]> = indices.iter().map(|i| i.shape()).collect();
    let b = broadcast_many(op, &shapes)?;
    Ok((norm, b))
}

/// MLX's `gather`: for each position of the indices' broadcast shape `B`, the window of shape
/// `slice_sizes` of `a` that starts at `indices[i][b]` on `axes[i]` (and at 0 on the other
/// axes). The result has shape `B + slice_sizes`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::gather};
/// let a = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[3, 2])?;
/// let i = Array::from_slice(&[2i32, 0], &[2])?;
/// let g = gather(&a, &[i], &[0], &[1, 2])?;
/// assert_eq!(g.shape(), &[2, 1, 2]);
/// assert_eq!(g.to_vec::<i32>()?, vec![4, 5, 0, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn gather(a: &Array, indices: &[Array], axes: &[i64], slice_sizes: &[usize]) -> Result<Array> {
    a.check()?;
    let (axes, b) = gather_scatter_indices("gather", a, indices, axes)?;
    if slice_sizes.len() != a.ndim() {
        bail!(
            "gather: {} slice sizes for an array of shape {}",
            slice_sizes.len(),
            fmt_shape(a.shape())
        );
    }
    if a.size() == 0 {
        if b.iter().product::<usize>() != 0 && slice_sizes.iter().product::<usize>() != 0 {
            bail!(
                "gather: from the empty array of shape {}, either the indices or the slice \
                 must be empty",
                fmt_shape(a.shape())
            );
        }
    } else if slice_sizes.iter().zip(a.shape()).any(|(s, d)| s > d) {
        bail!(
            "gather: slice sizes {slice_sizes:?} do not fit the array of shape {}",
            fmt_shape(a.shape())
        );
    }
    for (idx, &ax) in indices.iter().zip(&axes) {
        check_known_indices("gather", idx, a.shape()[ax], slice_sizes[ax], ax)?;
    }
    let mut shape = b;
    shape.extend_from_slice(slice_sizes);
    let mut inputs = vec![a.clone()];
    inputs.extend(indices.iter().cloned());
    Array::from_primitive(
        index_prim(IndexOp::Gather {
            axes,
            slice_sizes: slice_sizes.to_vec(),
        }),
        inputs,
        shape,
        a.dtype(),
    )
}

fn scatter_mode(
    a: &Array,
    indices: &[Array],
    updates: &Array,
    axes: &[i64],
    mode: ScatterMode,
) -> Result<Array> {
    let op = mode.op_name();
    a.check()?;
    updates.check()?;
    let (axes, b) = gather_scatter_indices(op, a, indices, axes)?;
    if updates.ndim() != a.ndim() + b.len() {
        bail!(
            "{op}: updates of shape {} must have the dimensions of the indices' shape {} \
             followed by one per axis of the array of shape {}",
            fmt_shape(updates.shape()),
            fmt_shape(&b),
            fmt_shape(a.shape())
        );
    }
    let (lead, window) = updates.shape().split_at(b.len());
    if lead != &b[..] || window.iter().zip(a.shape()).any(|(w, d)| w > d) {
        bail!(
            "{op}: updates of shape {} do not fit the indices' shape {} and the array of \
             shape {}",
            fmt_shape(updates.shape()),
            fmt_shape(&b),
            fmt_shape(a.shape())
        );
    }
    for (idx, &ax) in indices.iter().zip(&axes) {
        check_known_indices(op, idx, a.shape()[ax], window[ax], ax)?;
    }
    let mut inputs = vec![a.clone()];
    inputs.extend(indices.iter().cloned());
    inputs.push(updates.clone());
    Array::from_primitive(
        index_prim(IndexOp::Scatter { axes, mode }),
        inputs,
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// MLX's `scatter`: a copy of `a` where, for each position `b` of the indices' broadcast shape
/// `B`, the window `updates[b]` is written at `indices[i][b]` on `axes[i]` (0 on the other
/// axes). `updates` has shape `B + window`, with one window dimension per axis of `a`; it is
/// cast to `a`'s dtype. With repeated indices the last write wins.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::scatter};
/// let a = Array::from_slice(&[0i32; 4], &[4])?;
/// let i = Array::from_slice(&[3i32, 1], &[2])?;
/// let u = Array::from_slice(&[7i32, 8], &[2, 1])?;
/// assert_eq!(scatter(&a, &[i], &u, &[0])?.to_vec::<i32>()?, vec![0, 8, 0, 7]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn scatter(a: &Array, indices: &[Array], updates: &Array, axes: &[i64]) -> Result<Array> {
    scatter_mode(a, indices, updates, axes, ScatterMode::Assign)
}

/// [`scatter`] that adds the updates (repeated indices accumulate).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::scatter_add};
/// let a = Array::from_slice(&[0.0f32; 3], &[3])?;
/// let i = Array::from_slice(&[1i32, 1, 2], &[3])?;
/// let u = Array::from_slice(&[1.0f32, 2.0, 5.0], &[3, 1])?;
/// assert_eq!(scatter_add(&a, &[i], &u, &[0])?.to_vec::<f32>()?, vec![0.0, 3.0, 5.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn scatter_add(a: &Array, indices: &[Array], updates: &Array, axes: &[i64]) -> Result<Array> {
    scatter_mode(a, indices, updates, axes, ScatterMode::Add)
}

/// [`scatter`] that multiplies by the updates.
pub fn scatter_prod(a: &Array, indices: &[Array], updates: &Array, axes: &[i64]) -> Result<Array> {
    scatter_mode(a, indices, updates, axes, ScatterMode::Prod)
}

/// [`scatter`] that keeps the larger of the value in place and the update.
pub fn scatter_max(a: &Array, indices: &[Array], updates: &Array, axes: &[i64]) -> Result<Array> {
    scatter_mode(a, indices, updates, axes, ScatterMode::Max)
}

/// [`scatter`] that keeps the smaller of the value in place and the update.
pub fn scatter_min(a: &Array, indices: &[Array], updates: &Array, axes: &[i64]) -> Result<Array> {
    scatter_mode(a, indices, updates, axes, ScatterMode::Min)
}

/// The `offset`-th diagonal of the plane `(axis1, axis2)` of `a`, as a view whose last axis
/// runs along the diagonal (NumPy's `diagonal`). Positive offsets are above the main diagonal.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::diagonal};
/// let a = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[2, 3])?;
/// assert_eq!(diagonal(&a, 1, 0, 1)?.to_vec::<i32>()?, vec![1, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn diagonal(a: &Array, offset: i64, axis1: i64, axis2: i64) -> Result<Array> {
    a.check()?;
    if a.ndim() < 2 {
        bail!(
            "diagonal: the array of shape {} has fewer than 2 dimensions",
            fmt_shape(a.shape())
        );
    }
    let ax1 = normalize_axis("diagonal", axis1, a.ndim())?;
    let ax2 = normalize_axis("diagonal", axis2, a.ndim())?;
    if ax1 == ax2 {
        bail!("diagonal: axis1 ({axis1}) and axis2 ({axis2}) are the same axis");
    }
    let (n1, n2) = (a.shape()[ax1] as i64, a.shape()[ax2] as i64);
    let len = if offset >= 0 {
        n1.min(n2 - offset)
    } else {
        (n1 + offset).min(n2)
    }
    .max(0) as usize;
    let mut shape: Vec<usize> = (0..a.ndim())
        .filter(|&d| d != ax1 && d != ax2)
        .map(|d| a.shape()[d])
        .collect();
    shape.push(len);
    Array::from_primitive(
        index_prim(IndexOp::Diagonal {
            offset,
            axis1: ax1,
            axis2: ax2,
        }),
        vec![a.clone()],
        shape,
        a.dtype(),
    )
}

/// The `k`-th diagonal of a 2-D array, or, from a 1-D array, the square matrix with it on the
/// `k`-th diagonal and zeros elsewhere (MLX's `diag`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::diag};
/// let v = Array::from_slice(&[1i32, 2], &[2])?;
/// assert_eq!(diag(&v, 1)?.to_vec::<i32>()?, vec![0, 1, 0, 0, 0, 2, 0, 0, 0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn diag(a: &Array, k: i64) -> Result<Array> {
    a.check()?;
    match a.ndim() {
        1 => {
            let n = a.shape()[0] + k.unsigned_abs() as usize;
            Array::from_primitive(
                index_prim(IndexOp::DiagMatrix { k }),
                vec![a.clone()],
                vec![n, n],
                a.dtype(),
            )
        }
        2 => diagonal(a, k, 0, 1),
        _ => bail!(
            "diag: the array of shape {} must be 1-D or 2-D",
            fmt_shape(a.shape())
        ),
    }
}

fn triangle(op: &str, a: &Array, k: i64, upper: bool) -> Result<Array> {
    a.check()?;
    if a.ndim() < 2 {
        bail!(
            "{op}: the array of shape {} has fewer than 2 dimensions",
            fmt_shape(a.shape())
        );
    }
    Array::from_primitive(
        index_prim(IndexOp::Triangle { k, upper }),
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// The lower triangle of the last two axes of `a`: elements on and below the `k`-th diagonal,
/// zeros above it.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops::tril};
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2])?;
/// assert_eq!(tril(&a, 0)?.to_vec::<i32>()?, vec![1, 0, 3, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn tril(a: &Array, k: i64) -> Result<Array> {
    triangle("tril", a, k, false)
}

/// The upper triangle of the last two axes of `a`: elements on and above the `k`-th diagonal,
/// zeros below it.
pub fn triu(a: &Array, k: i64) -> Result<Array> {
    triangle("triu", a, k, true)
}

// ---------------------------------------------------------------------------------------------
// `x[...]`: the index API

/// One entry of an `x[...]`-style index, as NumPy and MLX read them.
///
/// Build lists of them with the [`s!`](crate::s) macro: `s![0, 1..3, ..;-1, NewAxis, Ellipsis,
/// &idx]`. Ranges are Python slices, not Rust ranges: negative bounds count from the end and are
/// clamped, so `1..-1` drops the first and last elements.
#[derive(Clone, Debug)]
pub enum Index {
    /// One position (negative counts from the end); the axis is dropped.
    Int(i64),
    /// A Python slice `start:stop:step`; `None` takes the default for the step's direction.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    /// A new axis of size 1 (`None` / `np.newaxis`).
    NewAxis,
    /// As many full slices as the other entries leave axes (`...`).
    Ellipsis,
    /// An integer array: NumPy's advanced (gather) indexing. Several arrays broadcast together.
    Array(Array),
}

/// `s![.., NewAxis]`: a new axis of size 1 (NumPy's `None`).
#[derive(Clone, Copy, Debug)]
pub struct NewAxis;

/// `s![Ellipsis, 0]`: as many full slices as the other entries leave axes (Python's `...`).
#[derive(Clone, Copy, Debug)]
pub struct Ellipsis;

impl From<NewAxis> for Index {
    fn from(_: NewAxis) -> Index {
        Index::NewAxis
    }
}
impl From<Ellipsis> for Index {
    fn from(_: Ellipsis) -> Index {
        Index::Ellipsis
    }
}
impl From<Array> for Index {
    fn from(a: Array) -> Index {
        Index::Array(a)
    }
}
impl From<&Array> for Index {
    fn from(a: &Array) -> Index {
        Index::Array(a.clone())
    }
}
impl From<std::ops::RangeFull> for Index {
    fn from(_: std::ops::RangeFull) -> Index {
        Index::slice(None, None, None)
    }
}

/// Ranges that are Python slices: `a..b`, `a..`, `..b`, `..` (see [`Index`]).
pub trait SliceRange {
    /// The slice's start and stop.
    fn bounds(self) -> (Option<i64>, Option<i64>);
}

impl SliceRange for std::ops::RangeFull {
    fn bounds(self) -> (Option<i64>, Option<i64>) {
        (None, None)
    }
}

macro_rules! index_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Index {
            fn from(i: $t) -> Index { Index::Int(i as i64) }
        }
        impl From<std::ops::Range<$t>> for Index {
            fn from(r: std::ops::Range<$t>) -> Index { Index::stepped(r, 1) }
        }
        impl From<std::ops::RangeFrom<$t>> for Index {
            fn from(r: std::ops::RangeFrom<$t>) -> Index { Index::stepped(r, 1) }
        }
        impl From<std::ops::RangeTo<$t>> for Index {
            fn from(r: std::ops::RangeTo<$t>) -> Index { Index::stepped(r, 1) }
        }
        impl SliceRange for std::ops::Range<$t> {
            fn bounds(self) -> (Option<i64>, Option<i64>) {
                (Some(self.start as i64), Some(self.end as i64))
            }
        }
        impl SliceRange for std::ops::RangeFrom<$t> {
            fn bounds(self) -> (Option<i64>, Option<i64>) { (Some(self.start as i64), None) }
        }
        impl SliceRange for std::ops::RangeTo<$t> {
            fn bounds(self) -> (Option<i64>, Option<i64>) { (None, Some(self.end as i64)) }
        }
    )*};
}
index_from_int!(i32, i64, isize, usize, u32);

impl Index {
    /// The slice `start:stop:step` (each optional, as in Python).
    pub fn slice(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Index {
        Index::Slice { start, stop, step }
    }

    /// A range with a step: `Index::stepped(.., -1)` is Python's `::-1`.
    pub fn stepped(range: impl SliceRange, step: i64) -> Index {
        let (start, stop) = range.bounds();
        Index::Slice {
            start,
            stop,
            step: Some(step),
        }
    }
}

/// Builds an index list for [`Array::index`] and [`Array::at`], NumPy's `x[...]` in Rust.
///
/// Entries, comma separated: an integer; a range `a..b`, `a..`, `..b`, `..` (Python slice
/// bounds: negative counts from the end, out of range is clamped); a range with a step after a
/// semicolon, `..;2`, `4..1;-1`, `..;-1`; `NewAxis`; `...` or `Ellipsis`; an integer array
/// (`idx` or `&idx`) for gather indexing.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{s, Array};
/// let x = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[2, 3])?;
/// assert_eq!(x.index(s![1, ..;-1])?.to_vec::<i32>()?, vec![5, 4, 3]);
/// assert_eq!(x.index(s![.., NewAxis, 1..])?.shape(), &[2, 1, 2]);
/// assert_eq!(x.index(s![..., -1])?.to_vec::<i32>()?, vec![2, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[macro_export]
macro_rules! s {
    (@acc [$($out:expr),*]) => { [$($out),*] };
    (@acc [$($out:expr),*] NewAxis $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($out,)* $crate::ops::Index::NewAxis] $($($rest)*)?)
    };
    (@acc [$($out:expr),*] ... $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($out,)* $crate::ops::Index::Ellipsis] $($($rest)*)?)
    };
    (@acc [$($out:expr),*] Ellipsis $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($out,)* $crate::ops::Index::Ellipsis] $($($rest)*)?)
    };
    (@acc [$($out:expr),*] $e:expr ; $step:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($out,)* $crate::ops::Index::stepped($e, $step)] $($($rest)*)?)
    };
    (@acc [$($out:expr),*] $e:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($out,)* $crate::ops::Index::from($e)] $($($rest)*)?)
    };
    ($($t:tt)*) => { $crate::s!(@acc [] $($t)*) };
}

/// What one input axis gets after the index list is expanded.
enum AxisIndex {
    /// A slice: first position, step, length.
    Slice(usize, i64, usize),
    /// One position (already wrapped and checked).
    Int(usize),
    /// An integer array.
    Array(Array),
}

/// An entry of the result's layout.
#[derive(Clone, Copy, PartialEq)]
enum Item {
    /// Input axis `d`, sliced.
    Sliced(usize),
    /// A new axis of size 1.
    New,
    /// The broadcast dimensions of the advanced (array and, with arrays, integer) indices.
    Advanced,
}

/// An index list resolved against a shape: what each input axis gets and the result's layout.
struct Resolved {
    axes: Vec<AxisIndex>,
    items: Vec<Item>,
    /// Broadcast shape of the advanced indices (when there are arrays).
    adv_shape: Option<Vec<usize>>,
}

fn resolve_index(op: &str, a: &Array, indices: &[Index]) -> Result<Resolved> {
    let shape = a.shape();
    let nd = shape.len();
    let consumed = indices
        .iter()
        .filter(|i| !matches!(i, Index::NewAxis | Index::Ellipsis))
        .count();
    let ellipses = indices
        .iter()
        .filter(|i| matches!(i, Index::Ellipsis))
        .count();
    if ellipses > 1 {
        bail!("{op}: an index can have only one ellipsis, got {ellipses}");
    }
    if consumed > nd {
        bail!(
            "{op}: too many indices ({consumed}) for an array of shape {}",
            fmt_shape(shape)
        );
    }
    let has_arrays = indices.iter().any(|i| matches!(i, Index::Array(_)));
    // Expanded entries: None = full slice.
    let mut expanded: Vec<Option<&Index>> = Vec::with_capacity(nd + indices.len());
    for i in indices {
        if matches!(i, Index::Ellipsis) {
            expanded.extend(std::iter::repeat_n(None, nd - consumed));
        } else {
            expanded.push(Some(i));
        }
    }
    if ellipses == 0 {
        expanded.extend(std::iter::repeat_n(None, nd - consumed));
    }
    let mut axes = Vec::with_capacity(nd);
    let mut items = Vec::with_capacity(expanded.len());
    let mut adv_positions = Vec::new();
    let mut adv_shapes: Vec<Vec<usize>> = Vec::new();
    for e in expanded {
        let d = axes.len();
        match e {
            None => {
                items.push(Item::Sliced(d));
                axes.push(AxisIndex::Slice(0, 1, shape[d]));
            }
            Some(Index::NewAxis) => items.push(Item::New),
            Some(Index::Slice { start, stop, step }) => {
                let step = step.unwrap_or(1);
                if step == 0 {
                    bail!("{op}: slice step of axis {d} is 0");
                }
                let (first, len) = slice_bounds(shape[d], *start, *stop, step);
                items.push(Item::Sliced(d));
                axes.push(AxisIndex::Slice(first, step, len));
            }
            Some(Index::Int(i)) => {
                let n = shape[d] as i64;
                let w = if *i < 0 { i + n } else { *i };
                if w < 0 || w >= n {
                    return Err(Error::Index(format!(
                        "{op}: index {i} is out of range for axis {d} of size {n}"
                    )));
                }
                if has_arrays {
                    adv_positions.push(items.len());
                    items.push(Item::Advanced);
                    adv_shapes.push(Vec::new());
                }
                axes.push(AxisIndex::Int(w as usize));
            }
            Some(Index::Array(arr)) => {
                check_index_dtype(op, arr)?;
                check_known_indices(op, arr, shape[d], 1, d)?;
                adv_positions.push(items.len());
                items.push(Item::Advanced);
                adv_shapes.push(arr.shape().to_vec());
                axes.push(AxisIndex::Array(arr.clone()));
            }
            Some(Index::Ellipsis) => bail!("{op}: an index can have only one ellipsis"),
        }
    }
    let adv_shape = if has_arrays {
        let refs: Vec<&[usize]> = adv_shapes.iter().map(|s| &s[..]).collect();
        Some(broadcast_many(op, &refs)?)
    } else {
        None
    };
    // NumPy: adjacent advanced indices keep their place; separated ones go first.
    if !adv_positions.is_empty() {
        let adjacent = adv_positions.windows(2).all(|w| w[1] == w[0] + 1);
        let first = adv_positions[0];
        let mut placed = Vec::with_capacity(items.len());
        if !adjacent {
            placed.push(Item::Advanced);
        }
        for (k, it) in items.iter().enumerate() {
            if *it == Item::Advanced {
                if adjacent && k == first {
                    placed.push(Item::Advanced);
                }
            } else {
                placed.push(*it);
            }
        }
        items = placed;
    }
    Ok(Resolved {
        axes,
        items,
        adv_shape,
    })
}

impl Resolved {
    /// The view of `a` with every slice applied (integer and array axes kept whole, or, with
    /// `ints_as_slices`, integer axes cut to length 1).
    fn sliced_view(&self, a: &Array, ints_as_slices: bool) -> Result<Array> {
        let mut start = Vec::with_capacity(self.axes.len());
        let mut step = Vec::with_capacity(self.axes.len());
        let mut shape = Vec::with_capacity(self.axes.len());
        for (d, ax) in self.axes.iter().enumerate() {
            let (f, s, l) = match ax {
                AxisIndex::Slice(f, s, l) => (*f, *s, *l),
                AxisIndex::Int(i) if ints_as_slices => (*i, 1, 1),
                _ => (0, 1, a.shape()[d]),
            };
            start.push(f);
            step.push(s);
            shape.push(l);
        }
        slice_view(a, start, step, shape)
    }

    /// The shape of `a[...]`.
    fn result_shape(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for it in &self.items {
            match it {
                Item::Sliced(d) => match self.axes[*d] {
                    AxisIndex::Slice(_, _, l) => out.push(l),
                    _ => out.push(1),
                },
                Item::New => out.push(1),
                Item::Advanced => out.extend(self.adv_shape.iter().flatten()),
            }
        }
        out
    }
}

/// `a[indices]` with NumPy's rules (see [`Array::index`]).
pub fn index(a: &Array, indices: &[Index]) -> Result<Array> {
    a.check()?;
    let r = resolve_index("index", a, indices)?;
    let target = r.result_shape();
    let Some(adv_shape) = &r.adv_shape else {
        // Basic indexing: one strided view, then unit axes dropped (integers) or added.
        let v = r.sliced_view(a, true)?;
        return if v.shape() == &target[..] {
            Ok(v)
        } else {
            crate::ops::reshape(&v, &target.iter().map(|&d| d as i64).collect::<Vec<_>>())
        };
    };
    // Advanced indexing: slices as a view, then one gather over the array (and integer) axes.
    let v = r.sliced_view(a, false)?;
    let mut idx = Vec::new();
    let mut gather_axes = Vec::new();
    let mut sizes = v.shape().to_vec();
    for (d, ax) in r.axes.iter().enumerate() {
        match ax {
            AxisIndex::Int(i) => idx.push(Array::scalar(*i as i64)),
            AxisIndex::Array(arr) => idx.push(arr.clone()),
            AxisIndex::Slice(..) => continue,
        }
        gather_axes.push(d as i64);
        sizes[d] = 1;
    }
    let g = gather(&v, &idx, &gather_axes, &sizes)?;
    // g: adv_shape + sliced dims (1 on gathered axes). Squeeze those, then move the advanced
    // block into place and add the new axes.
    let nb = adv_shape.len();
    let squeeze_axes: Vec<i64> = gather_axes.iter().map(|&d| d + nb as i64).collect();
    let g = crate::ops::squeeze(&g, squeeze_axes)?;
    let sliced_axes: Vec<usize> = r
        .axes
        .iter()
        .enumerate()
        .filter(|(_, ax)| matches!(ax, AxisIndex::Slice(..)))
        .map(|(d, _)| d)
        .collect();
    let mut perm: Vec<i64> = Vec::with_capacity(g.ndim());
    let mut new_axes: Vec<i64> = Vec::new();
    let mut pos = 0i64;
    for it in &r.items {
        match it {
            Item::Advanced => {
                perm.extend(0..nb as i64);
                pos += nb as i64;
            }
            Item::Sliced(d) => {
                let k = sliced_axes.iter().position(|s| s == d).unwrap_or(0);
                perm.push((nb + k) as i64);
                pos += 1;
            }
            Item::New => {
                new_axes.push(pos);
                pos += 1;
            }
        }
    }
    let g = crate::ops::transpose(&g, perm)?;
    if new_axes.is_empty() {
        Ok(g)
    } else {
        crate::ops::expand_dims(&g, new_axes)
    }
}

/// `a.at[indices].<mode>(update)`: a copy of `a` with `update` combined at the indexed places.
fn index_update(
    op: &str,
    a: &Array,
    indices: &[Index],
    update: &Array,
    mode: ScatterMode,
) -> Result<Array> {
    a.check()?;
    update.check()?;
    let r = resolve_index(op, a, indices)?;
    let target = r.result_shape();
    let fits = broadcast_shapes(op, update.shape(), &target)
        .map(|b| b == target)
        .unwrap_or(false);
    if !fits {
        bail!(
            "{op}: update of shape {} does not broadcast to the indexed shape {} (of an array \
             of shape {})",
            fmt_shape(update.shape()),
            fmt_shape(&target),
            fmt_shape(a.shape())
        );
    }
    let Some(adv_shape) = &r.adv_shape else {
        // Basic indexing: one slice update of the strided region.
        let mut start = Vec::new();
        let mut step = Vec::new();
        let mut region = Vec::new();
        for ax in &r.axes {
            let (f, s, l) = match ax {
                AxisIndex::Slice(f, s, l) => (*f, *s, *l),
                AxisIndex::Int(i) => (*i, 1, 1),
                AxisIndex::Array(_) => bail!("{op}: an array index in basic indexing"),
            };
            start.push(f);
            step.push(s);
            region.push(l);
        }
        let upd = if update.shape() == &region[..] {
            update.clone()
        } else {
            let full = crate::ops::broadcast_to(update, &target)?;
            crate::ops::reshape(&full, &region.iter().map(|&d| d as i64).collect::<Vec<_>>())?
        };
        return slice_update_resolved(op, a, &upd, start, step, region, mode);
    };
    // Advanced indexing: one index array per axis, each shaped to broadcast over the result
    // layout, so the update (broadcast to that layout) scatters element by element.
    let rank = target.len();
    let mut adv_at = 0;
    let mut pos_of_sliced = vec![0usize; r.axes.len()];
    let mut p = 0;
    for it in &r.items {
        match it {
            Item::Advanced => {
                adv_at = p;
                p += adv_shape.len();
            }
            Item::Sliced(d) => {
                pos_of_sliced[*d] = p;
                p += 1;
            }
            Item::New => p += 1,
        }
    }
    let mut idx = Vec::with_capacity(r.axes.len());
    for (d, ax) in r.axes.iter().enumerate() {
        let mut shape = vec![1i64; rank];
        let arr = match ax {
            AxisIndex::Slice(f, s, l) => {
                shape[pos_of_sliced[d]] = *l as i64;
                let v: Vec<i64> = (0..*l as i64).map(|k| *f as i64 + k * s).collect();
                Array::from_slice(&v, &[*l])?
            }
            AxisIndex::Int(i) => Array::scalar(*i as i64),
            AxisIndex::Array(arr) => {
                for (k, &dim) in adv_shape.iter().enumerate() {
                    shape[adv_at + k] = dim as i64;
                }
                crate::ops::broadcast_to(arr, adv_shape)?
            }
        };
        idx.push(if arr.ndim() == 0 {
            arr
        } else {
            crate::ops::reshape(&arr, &shape)?
        });
    }
    let mut upd_shape: Vec<i64> = target.iter().map(|&d| d as i64).collect();
    upd_shape.extend(std::iter::repeat_n(1, a.ndim()));
    let upd = crate::ops::reshape(&crate::ops::broadcast_to(update, &target)?, &upd_shape)?;
    let axes: Vec<i64> = (0..a.ndim() as i64).collect();
    scatter_mode(a, &idx, &upd, &axes, mode).map_err(|e| rename(e, mode.op_name(), op))
}

/// Errors of an inner op, renamed to the op the user called.
fn rename(e: Error, inner: &str, outer: &str) -> Error {
    let fix = |m: String| match m.strip_prefix(inner) {
        Some(rest) => format!("{outer}{rest}"),
        None => m,
    };
    match e {
        Error::Invalid(m) => Error::Invalid(fix(m)),
        Error::Index(m) => Error::Index(fix(m)),
        other => other,
    }
}

/// The pending update of `a.at(indices)`: call one of its methods to get the updated copy
/// (MLX's `x.at[idx].add(v)`). With integer-array indices, repeated positions accumulate for
/// `add`, `subtract`, `multiply`, `divide`, `maximum` and `minimum`; for `set` the last wins.
pub struct At {
    array: Array,
    indices: Vec<Index>,
}

impl At {
    fn apply(&self, op: &str, v: Array, mode: ScatterMode) -> Result<Array> {
        index_update(op, &self.array, &self.indices, &v, mode)
    }

    /// `x[idx] = v`.
    pub fn set(&self, v: impl IntoArray) -> Result<Array> {
        self.apply("at.set", v.into_array(), ScatterMode::Assign)
    }
    /// `x[idx] += v`.
    pub fn add(&self, v: impl IntoArray) -> Result<Array> {
        self.apply("at.add", v.into_array(), ScatterMode::Add)
    }
    /// `x[idx] -= v`.
    pub fn subtract(&self, v: impl IntoArray) -> Result<Array> {
        let v = v.into_array();
        v.check()?;
        let v = crate::ops::astype(&v, self.array.dtype())?;
        self.apply("at.subtract", crate::ops::negative(&v)?, ScatterMode::Add)
    }
    /// `x[idx] *= v`.
    pub fn multiply(&self, v: impl IntoArray) -> Result<Array> {
        self.apply("at.multiply", v.into_array(), ScatterMode::Prod)
    }
    /// `x[idx] /= v` (a product with the reciprocal, as MLX does).
    pub fn divide(&self, v: impl IntoArray) -> Result<Array> {
        let v = v.into_array();
        v.check()?;
        let v = crate::ops::reciprocal(&v)?;
        self.apply("at.divide", v, ScatterMode::Prod)
    }
    /// `x[idx] = maximum(x[idx], v)`.
    pub fn maximum(&self, v: impl IntoArray) -> Result<Array> {
        self.apply("at.maximum", v.into_array(), ScatterMode::Max)
    }
    /// `x[idx] = minimum(x[idx], v)`.
    pub fn minimum(&self, v: impl IntoArray) -> Result<Array> {
        self.apply("at.minimum", v.into_array(), ScatterMode::Min)
    }
}

impl Array {
    /// `self[indices]` with NumPy's and MLX's rules; build `indices` with [`s!`](crate::s).
    /// Integers and slices give a view; integer arrays gather (several broadcast together; when
    /// they are not adjacent, their dimensions come first). An integer out of range is an error.
    ///
    /// ```
    /// # umx_cpu::register();
    /// use umx_core::{s, Array};
    /// let x = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[2, 3])?;
    /// let i = Array::from_slice(&[2i32, 0], &[2])?;
    /// assert_eq!(x.index(s![.., &i])?.to_vec::<i32>()?, vec![2, 0, 5, 3]);
    /// assert!(x.index(s![2]).is_err());
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn index(&self, indices: impl AsRef<[Index]>) -> Result<Array> {
        index(self, indices.as_ref())
    }

    /// The element or sub-array at integer positions: `x.get(&[0, 0])` is `x[0, 0]` (0-d when
    /// every axis is given).
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::Array;
    /// let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// assert_eq!(x.get(&[1, -1])?.item::<f32>()?, 4.0);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn get(&self, indices: &[i64]) -> Result<Array> {
        let idx: Vec<Index> = indices.iter().map(|&i| Index::Int(i)).collect();
        index(self, &idx)
    }

    /// An update of `self[indices]` that returns a new array (MLX's `x.at[idx]`): arrays are
    /// values, so `self` itself never changes.
    ///
    /// ```
    /// # umx_cpu::register();
    /// use umx_core::{s, Array};
    /// let x = Array::from_slice(&[0.0f32; 3], &[3])?;
    /// let i = Array::from_slice(&[0i32, 2, 0], &[3])?;
    /// assert_eq!(x.at(s![&i]).add(1.0)?.to_vec::<f32>()?, vec![2.0, 0.0, 1.0]);
    /// assert_eq!(x.at(s![1..]).set(5.0)?.to_vec::<f32>()?, vec![0.0, 5.0, 5.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn at(&self, indices: impl AsRef<[Index]>) -> At {
        At {
            array: self.clone(),
            indices: indices.as_ref().to_vec(),
        }
    }

    /// Elements at `indices` along `axis` (flattened for `None`); see [`take`].
    pub fn take(&self, indices: &Array, axis: Option<i64>) -> Result<Array> {
        take(self, indices, axis)
    }

    /// See [`take_along_axis`].
    pub fn take_along_axis(&self, indices: &Array, axis: i64) -> Result<Array> {
        take_along_axis(self, indices, axis)
    }

    /// See [`diagonal`].
    pub fn diagonal(&self, offset: i64, axis1: i64, axis2: i64) -> Result<Array> {
        diagonal(self, offset, axis1, axis2)
    }

    /// See [`diag`].
    pub fn diag(&self, k: i64) -> Result<Array> {
        diag(self, k)
    }
}

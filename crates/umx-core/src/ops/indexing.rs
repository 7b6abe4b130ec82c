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

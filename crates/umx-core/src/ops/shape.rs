//! Shape ops: reshape, transpose, broadcast, concatenate, split, pad, ... with MLX's names and
//! semantics. Reshape (of data whose strides allow it), transpose, broadcast_to, expand_dims,
//! squeeze, flip, as_strided, split and view give views that share the input's buffer;
//! concatenate, pad, tile, repeat and roll write new arrays.

use crate::device::OutSpec;
pub use crate::primitives::shape::PadMode;
use crate::primitives::{Primitive, ShapeOp};
use crate::shape::{fmt_shape, normalize_axis, numel};
use crate::{Array, Axes, Dtype, IntoArray, Result, bail, promote_types};

fn shape_node(op: ShapeOp, inputs: Vec<Array>, shape: Vec<usize>, dtype: Dtype) -> Result<Array> {
    Array::from_primitive(Primitive::Shape(op), inputs, shape, dtype)
}

/// Normalises `axis` against `ndim`, with the error naming `op` and the shape.
fn axis_of(op: &str, axis: i64, shape: &[usize]) -> Result<usize> {
    let n = shape.len() as i64;
    if axis < -n || axis >= n {
        bail!(
            "{op}: axis {axis} is out of range for an array of shape {}",
            fmt_shape(shape)
        );
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// A row-major contiguous copy of `a` (a no-op for data that already is one, at eval).
pub fn contiguous(a: &Array) -> Result<Array> {
    shape_node(
        ShapeOp::Copy,
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// The shape `shape` asks for, with its one `-1` inferred, for an array of `size` elements.
fn resolve_shape(op: &str, from: &[usize], shape: &[i64]) -> Result<Vec<usize>> {
    let size = numel(from);
    let mut infer = None;
    let mut known: usize = 1;
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                bail!("{op}: only one dimension can be -1, not in {shape:?}");
            }
            infer = Some(i);
        } else if d < 0 {
            bail!("{op}: negative dimension {d} in {shape:?}");
        } else {
            known = known.saturating_mul(d as usize);
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 {
            bail!(
                "{op}: cannot infer the -1 dimension of {shape:?} for an array of shape {}",
                fmt_shape(from)
            );
        }
        out[i] = size / known;
    }
    if out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(size) {
        bail!(
            "{op}: cannot reshape an array of shape {} (size {size}) into shape {shape:?}",
            fmt_shape(from)
        );
    }
    Ok(out)
}

/// The elements of `a` in row-major order with a new shape; one dimension may be `-1` (inferred).
///
/// A view when `a`'s layout allows it (always for row-contiguous data), else a copy.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3, 4, 5, 6], &[2, 3])?;
/// let b = ops::reshape(&a, &[3, -1])?;
/// assert_eq!(b.shape(), &[3, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn reshape(a: &Array, shape: &[i64]) -> Result<Array> {
    let shape = resolve_shape("reshape", a.shape(), shape)?;
    reshape_to(a, shape)
}

/// Reshape to an already checked shape of the same size.
fn reshape_to(a: &Array, shape: Vec<usize>) -> Result<Array> {
    if shape == a.shape() {
        return Ok(a.clone());
    }
    shape_node(
        ShapeOp::Reshape {
            shape: shape.clone(),
        },
        vec![a.clone()],
        shape,
        a.dtype(),
    )
}

/// Axes `start_axis..=end_axis` merged into one (MLX's `flatten`; `(0, -1)` flattens all).
/// A 0-d array becomes shape `(1,)`.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[0f32; 24], &[2, 3, 4])?;
/// assert_eq!(ops::flatten(&a, 0, -1)?.shape(), &[24]);
/// assert_eq!(ops::flatten(&a, 1, 2)?.shape(), &[2, 12]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn flatten(a: &Array, start_axis: i64, end_axis: i64) -> Result<Array> {
    if a.ndim() == 0 {
        return reshape_to(a, vec![1]);
    }
    let start = axis_of("flatten", start_axis, a.shape())?;
    let end = axis_of("flatten", end_axis, a.shape())?;
    if end < start {
        bail!(
            "flatten: start_axis {start_axis} comes after end_axis {end_axis} for shape {}",
            fmt_shape(a.shape())
        );
    }
    let s = a.shape();
    let mut shape = s[..start].to_vec();
    shape.push(numel(&s[start..=end]));
    shape.extend_from_slice(&s[end + 1..]);
    reshape_to(a, shape)
}

/// Axis `axis` split into `shape` (one entry may be `-1`), the inverse of [`flatten`].
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[0f32; 24], &[2, 12])?;
/// assert_eq!(ops::unflatten(&a, 1, &[3, -1])?.shape(), &[2, 3, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn unflatten(a: &Array, axis: i64, shape: &[i64]) -> Result<Array> {
    let ax = axis_of("unflatten", axis, a.shape())?;
    if shape.is_empty() {
        bail!("unflatten: the new shape of axis {axis} is empty");
    }
    let dims = resolve_shape("unflatten", &a.shape()[ax..=ax], shape)?;
    let mut out = a.shape()[..ax].to_vec();
    out.extend(dims);
    out.extend_from_slice(&a.shape()[ax + 1..]);
    reshape_to(a, out)
}

/// Size-1 axes removed: the given ones (each must have size 1), or all of them (`None`).
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1f32, 2.0], &[1, 2, 1])?;
/// assert_eq!(ops::squeeze(&a, None)?.shape(), &[2]);
/// assert_eq!(ops::squeeze(&a, -1)?.shape(), &[1, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn squeeze(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    let s = a.shape();
    let axes = match axes.into() {
        Axes::All => (0..s.len()).filter(|&i| s[i] == 1).collect(),
        Axes::List(l) => {
            let axes = crate::shape::normalize_axes("squeeze", &l, s.len())?;
            for &ax in &axes {
                if s[ax] != 1 {
                    bail!(
                        "squeeze: cannot squeeze axis {ax} of size {} in shape {}",
                        s[ax],
                        fmt_shape(s)
                    );
                }
            }
            axes
        }
    };
    let shape = (0..s.len())
        .filter(|i| !axes.contains(i))
        .map(|i| s[i])
        .collect();
    reshape_to(a, shape)
}

/// Size-1 axes inserted at `axes` (positions in the output, negative from its end).
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1f32, 2.0], &[2])?;
/// assert_eq!(ops::expand_dims(&a, 0)?.shape(), &[1, 2]);
/// assert_eq!(ops::expand_dims(&a, [0, -1])?.shape(), &[1, 2, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn expand_dims(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    let Axes::List(l) = axes.into() else {
        bail!("expand_dims: the axes to insert must be given");
    };
    let out_ndim = a.ndim() + l.len();
    let axes = crate::shape::normalize_axes("expand_dims", &l, out_ndim)?;
    let mut shape = a.shape().to_vec();
    for &ax in &axes {
        shape.insert(ax, 1);
    }
    reshape_to(a, shape)
}

/// Axes permuted: output axis `i` is input axis `axes[i]`; all axes reversed for `None`.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[0f32; 24], &[2, 3, 4])?;
/// assert_eq!(ops::transpose(&a, None)?.shape(), &[4, 3, 2]);
/// assert_eq!(ops::transpose(&a, [1, 0, 2])?.shape(), &[3, 2, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn transpose(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    let nd = a.ndim();
    let perm: Vec<usize> = match axes.into() {
        Axes::All => (0..nd).rev().collect(),
        Axes::List(l) => {
            if l.len() != nd {
                bail!(
                    "transpose: {} axes {l:?} given for an array of shape {}",
                    l.len(),
                    fmt_shape(a.shape())
                );
            }
            let mut perm = Vec::with_capacity(nd);
            for &ax in &l {
                let ax = normalize_axis("transpose", ax, nd)?;
                if perm.contains(&ax) {
                    bail!("transpose: axis {ax} is repeated in {l:?}");
                }
                perm.push(ax);
            }
            perm
        }
    };
    permute(a, perm)
}

fn permute(a: &Array, perm: Vec<usize>) -> Result<Array> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(a.clone());
    }
    let shape = perm.iter().map(|&p| a.shape()[p]).collect();
    shape_node(
        ShapeOp::Transpose { perm },
        vec![a.clone()],
        shape,
        a.dtype(),
    )
}

/// Axes `axis1` and `axis2` exchanged.
pub fn swapaxes(a: &Array, axis1: i64, axis2: i64) -> Result<Array> {
    let i = axis_of("swapaxes", axis1, a.shape())?;
    let j = axis_of("swapaxes", axis2, a.shape())?;
    let mut perm: Vec<usize> = (0..a.ndim()).collect();
    perm.swap(i, j);
    permute(a, perm)
}

/// Axis `source` moved to position `destination`, the others keeping their order.
pub fn moveaxis(a: &Array, source: i64, destination: i64) -> Result<Array> {
    let s = axis_of("moveaxis", source, a.shape())?;
    let d = axis_of("moveaxis", destination, a.shape())?;
    let mut perm: Vec<usize> = (0..a.ndim()).collect();
    perm.remove(s);
    perm.insert(d, s);
    permute(a, perm)
}

/// `a` broadcast to `shape` (NumPy's rule), as a view with zero strides.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1f32, 2.0, 3.0], &[3])?;
/// let b = ops::broadcast_to(&a, &[2, 3])?;
/// assert_eq!(b.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn broadcast_to(a: &Array, shape: &[usize]) -> Result<Array> {
    let s = a.shape();
    let fits = s.len() <= shape.len()
        && s.iter()
            .rev()
            .zip(shape.iter().rev())
            .all(|(&d, &t)| d == t || d == 1);
    if !fits {
        bail!(
            "broadcast_to: cannot broadcast an array of shape {} to shape {}",
            fmt_shape(s),
            fmt_shape(shape)
        );
    }
    if s == shape {
        return Ok(a.clone());
    }
    shape_node(
        ShapeOp::Broadcast {
            shape: shape.to_vec(),
        },
        vec![a.clone()],
        shape.to_vec(),
        a.dtype(),
    )
}

/// The arrays broadcast against each other to their common shape.
pub fn broadcast_arrays(arrays: &[Array]) -> Result<Vec<Array>> {
    let shapes: Vec<&[usize]> = arrays.iter().map(|a| a.shape()).collect();
    let shape = crate::shape::broadcast_many("broadcast_arrays", &shapes)?;
    arrays.iter().map(|a| broadcast_to(a, &shape)).collect()
}

/// The arrays joined along `axis`; the result has their promoted dtype. All shapes must match
/// except along `axis`. (For MLX's `axis=None`, flatten the arrays first.)
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2], &[1, 2])?;
/// let b = Array::from_slice(&[3.5f32, 4.5], &[1, 2])?;
/// let c = ops::concatenate(&[a, b], 0)?;
/// assert_eq!(c.shape(), &[2, 2]);
/// assert_eq!(c.to_vec::<f32>()?, vec![1.0, 2.0, 3.5, 4.5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn concatenate(arrays: &[Array], axis: i64) -> Result<Array> {
    let Some(first) = arrays.first() else {
        bail!("concatenate: no arrays to concatenate");
    };
    for a in arrays {
        a.check()?;
    }
    if first.ndim() == 0 {
        bail!("concatenate: 0-d arrays cannot be concatenated");
    }
    let ax = axis_of("concatenate", axis, first.shape())?;
    let mut shape = first.shape().to_vec();
    shape[ax] = 0;
    let mut dtype = first.dtype();
    for a in arrays {
        let fits = a.ndim() == shape.len()
            && (0..shape.len()).all(|i| i == ax || a.shape()[i] == shape[i]);
        if !fits {
            let all: Vec<String> = arrays.iter().map(|a| fmt_shape(a.shape())).collect();
            bail!(
                "concatenate: shapes {} do not match except along axis {axis}",
                all.join(", ")
            );
        }
        shape[ax] += a.shape()[ax];
        dtype = promote_types(dtype, a.dtype());
    }
    if arrays.len() == 1 {
        return Ok(first.clone());
    }
    shape_node(
        ShapeOp::Concatenate { axis: ax },
        arrays.to_vec(),
        shape,
        dtype,
    )
}

/// The arrays (all of one shape) stacked along a new axis `axis`.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1f32, 2.0], &[2])?;
/// assert_eq!(ops::stack(&[a.clone(), a], 1)?.shape(), &[2, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn stack(arrays: &[Array], axis: i64) -> Result<Array> {
    let Some(first) = arrays.first() else {
        bail!("stack: no arrays to stack");
    };
    if let Some(b) = arrays.iter().find(|b| b.shape() != first.shape()) {
        bail!(
            "stack: all arrays must have one shape, not {} and {}",
            fmt_shape(first.shape()),
            fmt_shape(b.shape())
        );
    }
    let nd = first.ndim() as i64 + 1;
    if axis < -nd || axis >= nd {
        bail!(
            "stack: axis {axis} is out of range for stacking arrays of shape {}",
            fmt_shape(first.shape())
        );
    }
    let expanded = arrays
        .iter()
        .map(|a| expand_dims(a, axis))
        .collect::<Result<Vec<_>>>()?;
    concatenate(&expanded, axis)
}

/// How [`split`] cuts an axis: into a number of equal sections, or at indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndicesOrSections {
    /// This many pieces of equal size (the axis size must divide evenly).
    Sections(usize),
    /// Cut before each index (Python slice semantics: negative counts from the end; indices
    /// past the end or out of order give empty pieces).
    Indices(Vec<i64>),
}

macro_rules! sections_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for IndicesOrSections {
            fn from(n: $t) -> Self { IndicesOrSections::Sections(n.max(0) as usize) }
        }
        impl From<&[$t]> for IndicesOrSections {
            fn from(a: &[$t]) -> Self { IndicesOrSections::Indices(a.iter().map(|&x| x as i64).collect()) }
        }
        impl<const N: usize> From<[$t; N]> for IndicesOrSections {
            fn from(a: [$t; N]) -> Self { IndicesOrSections::Indices(a.iter().map(|&x| x as i64).collect()) }
        }
        impl<const N: usize> From<&[$t; N]> for IndicesOrSections {
            fn from(a: &[$t; N]) -> Self { IndicesOrSections::Indices(a.iter().map(|&x| x as i64).collect()) }
        }
        impl From<Vec<$t>> for IndicesOrSections {
            fn from(a: Vec<$t>) -> Self { IndicesOrSections::Indices(a.into_iter().map(|x| x as i64).collect()) }
        }
    )*};
}
sections_from_int!(i32, i64, usize);

/// `a` cut along `axis` into equal sections (an integer) or at indices (a list), as views.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3, 4, 5, 6], &[6])?;
/// let parts = ops::split(&a, 3, 0)?;
/// assert_eq!(parts[1].to_vec::<i32>()?, vec![3, 4]);
/// let parts = ops::split(&a, [1, 4], 0)?;
/// assert_eq!(parts[2].to_vec::<i32>()?, vec![5, 6]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn split(
    a: &Array,
    indices_or_sections: impl Into<IndicesOrSections>,
    axis: i64,
) -> Result<Vec<Array>> {
    let ax = axis_of("split", axis, a.shape())?;
    let n = a.shape()[ax];
    let bounds: Vec<(usize, usize)> = match indices_or_sections.into() {
        IndicesOrSections::Sections(k) => {
            if k == 0 || !n.is_multiple_of(k) {
                bail!(
                    "split: axis {axis} of size {n} in shape {} cannot be split into {k} equal sections",
                    fmt_shape(a.shape())
                );
            }
            let len = n / k;
            (0..k).map(|i| (i * len, (i + 1) * len)).collect()
        }
        IndicesOrSections::Indices(idx) => {
            let clamp = |i: i64| -> usize {
                let i = if i < 0 { i + n as i64 } else { i };
                i.clamp(0, n as i64) as usize
            };
            let mut cuts: Vec<usize> = vec![0];
            cuts.extend(idx.iter().map(|&i| clamp(i)));
            let mut bounds = Vec::with_capacity(idx.len() + 1);
            for w in 0..cuts.len() {
                let start = cuts[w];
                let stop = if w + 1 < cuts.len() { cuts[w + 1] } else { n };
                bounds.push((start, stop.max(start)));
            }
            bounds
        }
    };
    let outputs = bounds
        .iter()
        .map(|&(s, e)| {
            let mut shape = a.shape().to_vec();
            shape[ax] = e - s;
            OutSpec {
                shape,
                dtype: a.dtype(),
            }
        })
        .collect();
    Array::from_primitive_multi(
        Primitive::Shape(ShapeOp::Split { axis: ax, bounds }),
        vec![a.clone()],
        outputs,
    )
}

/// `a` repeated `reps[i]` times along each axis (NumPy's `tile`: `reps` and the shape are
/// aligned at their ends, the shorter one padded with ones).
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2], &[2])?;
/// assert_eq!(ops::tile(&a, &[2, 2])?.to_vec::<i32>()?, vec![1, 2, 1, 2, 1, 2, 1, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn tile(a: &Array, reps: &[usize]) -> Result<Array> {
    let nd = a.ndim().max(reps.len());
    let mut shape = vec![1; nd - a.ndim()];
    shape.extend_from_slice(a.shape());
    let mut r = vec![1; nd - reps.len()];
    r.extend_from_slice(reps);
    // (d0, d1, ...) -> (1, d0, 1, d1, ...) -> broadcast (r0, d0, r1, d1, ...) -> (r0*d0, ...)
    let mut expanded = Vec::with_capacity(2 * nd);
    let mut broad = Vec::with_capacity(2 * nd);
    let mut fin = Vec::with_capacity(nd);
    for i in 0..nd {
        if r[i] != 1 {
            expanded.push(1);
            broad.push(r[i]);
        }
        expanded.push(shape[i]);
        broad.push(shape[i]);
        let Some(d) = r[i].checked_mul(shape[i]) else {
            bail!(
                "tile: {reps:?} repetitions of shape {} overflow",
                fmt_shape(a.shape())
            );
        };
        fin.push(d);
    }
    let x = reshape_to(a, expanded)?;
    let x = broadcast_to(&x, &broad)?;
    materialize(&x, fin)
}

/// A reshape of a broadcast (or other non-contiguous) view: always a fresh contiguous array.
fn materialize(x: &Array, shape: Vec<usize>) -> Result<Array> {
    if shape == x.shape() {
        return contiguous(x);
    }
    reshape_to(x, shape)
}

/// Each element repeated `repeats` times along `axis`; over the flattened array for `None`.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2])?;
/// assert_eq!(ops::repeat(&a, 2, 1)?.to_vec::<i32>()?, vec![1, 1, 2, 2, 3, 3, 4, 4]);
/// assert_eq!(ops::repeat(&a, 2, None)?.shape(), &[8]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn repeat(a: &Array, repeats: usize, axis: impl Into<Option<i64>>) -> Result<Array> {
    let (x, ax) = match axis.into() {
        None => (flatten(a, 0, -1)?, 0),
        Some(axis) => (a.clone(), axis_of("repeat", axis, a.shape())?),
    };
    let mut shape = x.shape().to_vec();
    shape.insert(ax + 1, repeats);
    let y = expand_dims(&x, (ax + 1) as i64)?;
    let y = broadcast_to(&y, &shape)?;
    shape.remove(ax + 1);
    let Some(d) = shape[ax].checked_mul(repeats) else {
        bail!(
            "repeat: {repeats} repeats of shape {} overflow",
            fmt_shape(a.shape())
        );
    };
    shape[ax] = d;
    materialize(&y, shape)
}

/// Widths of padding per axis for [`pad`]: `(before, after)`.
pub type PadWidth = (i64, i64);

/// `a` padded with `pad_width[i] = (before, after)` elements along each axis `i` (one pair
/// applies to every axis), filled with `constant_values` (mode `Constant`, converted to
/// `a`'s dtype) or with the edge values (mode `Edge`).
///
/// ```
/// # use umx_core::{Array, ops};
/// # use umx_core::ops::PadMode;
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2], &[2])?;
/// let p = ops::pad(&a, &[(1, 2)], 0, PadMode::Constant)?;
/// assert_eq!(p.to_vec::<i32>()?, vec![0, 1, 2, 0, 0]);
/// let e = ops::pad(&a, &[(1, 1)], 0, PadMode::Edge)?;
/// assert_eq!(e.to_vec::<i32>()?, vec![1, 1, 2, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn pad(
    a: &Array,
    pad_width: &[PadWidth],
    constant_values: impl IntoArray,
    mode: PadMode,
) -> Result<Array> {
    let s = a.shape();
    let nd = s.len();
    let widths: Vec<PadWidth> = match pad_width.len() {
        1 => vec![pad_width[0]; nd],
        k if k == nd => pad_width.to_vec(),
        k => bail!(
            "pad: {k} (before, after) widths given for an array of shape {}",
            fmt_shape(s)
        ),
    };
    let mut low = Vec::with_capacity(nd);
    let mut high = Vec::with_capacity(nd);
    let mut shape = Vec::with_capacity(nd);
    for (i, &(lo, hi)) in widths.iter().enumerate() {
        if lo < 0 || hi < 0 {
            bail!("pad: widths must not be negative, got ({lo}, {hi}) for axis {i}");
        }
        if mode == PadMode::Edge && s[i] == 0 && lo + hi > 0 {
            bail!(
                "pad: cannot edge-pad axis {i} of size 0 in shape {}",
                fmt_shape(s)
            );
        }
        let Some(d) = s[i].checked_add(lo as usize + hi as usize) else {
            bail!("pad: widths ({lo}, {hi}) overflow axis {i}");
        };
        low.push(lo as usize);
        high.push(hi as usize);
        shape.push(d);
    }
    let mut inputs = vec![a.clone()];
    if mode == PadMode::Constant {
        let v = constant_values.into_array();
        if v.size() != 1 {
            bail!(
                "pad: the constant value must be a scalar, not shape {}",
                fmt_shape(v.shape())
            );
        }
        inputs.push(v);
    }
    if low.iter().chain(&high).all(|&w| w == 0) {
        return Ok(a.clone());
    }
    shape_node(ShapeOp::Pad { low, high, mode }, inputs, shape, a.dtype())
}

/// Elements shifted by `shift` along `axes` (wrapping around). One shift applies to every
/// axis; otherwise one shift per axis. With `None` axes the array is rolled as if flattened
/// (by the sum of the shifts).
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3, 4, 5], &[5])?;
/// assert_eq!(ops::roll(&a, &[2], None)?.to_vec::<i32>()?, vec![4, 5, 1, 2, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn roll(a: &Array, shift: &[i64], axes: impl Into<Axes>) -> Result<Array> {
    if shift.is_empty() {
        bail!("roll: no shift given");
    }
    let l = match axes.into() {
        Axes::All => {
            let total = shift.iter().fold(0i64, |acc, &s| acc.wrapping_add(s));
            let flat = flatten(a, 0, -1)?;
            let rolled = roll(&flat, &[total], 0)?;
            return reshape_to(&rolled, a.shape().to_vec());
        }
        Axes::List(l) => l,
    };
    if shift.len() != 1 && shift.len() != l.len() {
        bail!(
            "roll: {} shifts given for {} axes {l:?}",
            shift.len(),
            l.len()
        );
    }
    let mut out = a.clone();
    for (i, &axis) in l.iter().enumerate() {
        let ax = axis_of("roll", axis, a.shape())?;
        let n = a.shape()[ax] as i64;
        if n == 0 {
            continue;
        }
        let sh = shift[if shift.len() == 1 { 0 } else { i }].rem_euclid(n);
        if sh == 0 {
            continue;
        }
        let parts = split(&out, [n - sh], ax as i64)?;
        out = concatenate(&[parts[1].clone(), parts[0].clone()], ax as i64)?;
    }
    Ok(out)
}

/// The order of the elements reversed along `axes` (all of them for `None`), as a view.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3], &[3])?;
/// assert_eq!(ops::flip(&a, None)?.to_vec::<i32>()?, vec![3, 2, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn flip(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    let axes = axes.into().resolve("flip", a.ndim())?;
    if axes.is_empty() {
        return Ok(a.clone());
    }
    shape_node(
        ShapeOp::Flip { axes },
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// A view of `a`'s elements (in row-major order) with the given shape, strides and offset,
/// in elements. Every element the view reaches must lie inside `a`.
///
/// ```
/// # use umx_core::{Array, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[4])?;
/// // Sliding windows of length 2.
/// let w = ops::as_strided(&a, &[3, 2], &[1, 1], 0)?;
/// assert_eq!(w.to_vec::<i32>()?, vec![1, 2, 2, 3, 3, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn as_strided(a: &Array, shape: &[usize], strides: &[i64], offset: usize) -> Result<Array> {
    if shape.len() != strides.len() {
        bail!(
            "as_strided: shape {} and strides {strides:?} differ in length",
            fmt_shape(shape)
        );
    }
    if numel(shape) > 0 {
        let (mut lo, mut hi) = (offset as i128, offset as i128);
        for (&d, &s) in shape.iter().zip(strides) {
            let reach = (d as i128 - 1) * s as i128;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        if lo < 0 || hi >= a.size() as i128 {
            bail!(
                "as_strided: shape {}, strides {strides:?} and offset {offset} reach elements \
                 {lo}..={hi}, outside an array of shape {} ({} elements)",
                fmt_shape(shape),
                fmt_shape(a.shape()),
                a.size()
            );
        }
    }
    let flat = reshape_to(a, vec![a.size()])?;
    shape_node(
        ShapeOp::AsStrided {
            shape: shape.to_vec(),
            strides: strides.iter().map(|&s| s as isize).collect(),
            offset,
        },
        vec![flat],
        shape.to_vec(),
        a.dtype(),
    )
}

/// The bytes of `a` reinterpreted as `dtype` (MLX's `view`): the last axis grows or shrinks by
/// the ratio of the element sizes. Viewing as bool maps every non-zero byte to `true`.
///
/// ```
/// # use umx_core::{Array, Dtype, ops};
/// # umx_cpu::register();
/// let a = Array::from_slice(&[1.0f32], &[1])?;
/// let b = ops::view(&a, Dtype::Uint16)?;
/// assert_eq!(b.shape(), &[2]);
/// assert_eq!(b.to_vec::<u16>()?, vec![0, 0x3f80]); // little-endian
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn view(a: &Array, dtype: Dtype) -> Result<Array> {
    if a.dtype() == dtype {
        return Ok(a.clone());
    }
    let (ib, ob) = (a.dtype().size(), dtype.size());
    let mut shape = a.shape().to_vec();
    match shape.last_mut() {
        None if ib != ob => bail!(
            "view: a 0-d array of {} cannot be viewed as {dtype} (sizes {ib} and {ob} differ)",
            a.dtype()
        ),
        None => {}
        Some(last) if ib < ob => {
            if (*last * ib) % ob != 0 {
                bail!(
                    "view: the last axis of shape {} ({} bytes of {}) is not a multiple of \
                     {dtype}'s {ob} bytes",
                    fmt_shape(a.shape()),
                    *last * ib,
                    a.dtype()
                );
            }
            *last = *last * ib / ob;
        }
        Some(last) => *last *= ib / ob,
    }
    shape_node(ShapeOp::View { dtype }, vec![a.clone()], shape, dtype)
}

/// `a` with at least one axis (a 0-d array becomes shape `(1,)`).
pub fn atleast_1d(a: &Array) -> Result<Array> {
    match a.ndim() {
        0 => reshape_to(a, vec![1]),
        _ => Ok(a.clone()),
    }
}

/// `a` with at least two axes: `()` -> `(1, 1)`, `(n,)` -> `(1, n)`.
pub fn atleast_2d(a: &Array) -> Result<Array> {
    match a.ndim() {
        0 => reshape_to(a, vec![1, 1]),
        1 => expand_dims(a, 0),
        _ => Ok(a.clone()),
    }
}

/// `a` with at least three axes: `()` -> `(1, 1, 1)`, `(n,)` -> `(1, n, 1)`,
/// `(m, n)` -> `(m, n, 1)` (NumPy's rule).
pub fn atleast_3d(a: &Array) -> Result<Array> {
    match a.ndim() {
        0 => reshape_to(a, vec![1, 1, 1]),
        1 => expand_dims(a, [0, 2]),
        2 => expand_dims(a, 2),
        _ => Ok(a.clone()),
    }
}

impl Array {
    /// See [`reshape`].
    pub fn reshape(&self, shape: &[i64]) -> Result<Array> {
        reshape(self, shape)
    }
    /// See [`flatten`].
    pub fn flatten(&self, start_axis: i64, end_axis: i64) -> Result<Array> {
        flatten(self, start_axis, end_axis)
    }
    /// See [`unflatten`].
    pub fn unflatten(&self, axis: i64, shape: &[i64]) -> Result<Array> {
        unflatten(self, axis, shape)
    }
    /// See [`squeeze`].
    pub fn squeeze(&self, axes: impl Into<Axes>) -> Result<Array> {
        squeeze(self, axes)
    }
    /// See [`expand_dims`].
    pub fn expand_dims(&self, axes: impl Into<Axes>) -> Result<Array> {
        expand_dims(self, axes)
    }
    /// See [`transpose`].
    pub fn transpose(&self, axes: impl Into<Axes>) -> Result<Array> {
        transpose(self, axes)
    }
    /// All axes reversed (MLX's `x.T`).
    ///
    /// ```
    /// # use umx_core::Array;
    /// # umx_cpu::register();
    /// let a = Array::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(a.t()?.to_vec::<f32>()?, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn t(&self) -> Result<Array> {
        transpose(self, Axes::All)
    }
    /// See [`swapaxes`].
    pub fn swapaxes(&self, axis1: i64, axis2: i64) -> Result<Array> {
        swapaxes(self, axis1, axis2)
    }
    /// See [`moveaxis`].
    pub fn moveaxis(&self, source: i64, destination: i64) -> Result<Array> {
        moveaxis(self, source, destination)
    }
    /// See [`broadcast_to`].
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Array> {
        broadcast_to(self, shape)
    }
    /// See [`split`].
    pub fn split(
        &self,
        indices_or_sections: impl Into<IndicesOrSections>,
        axis: i64,
    ) -> Result<Vec<Array>> {
        split(self, indices_or_sections, axis)
    }
    /// See [`flip`].
    pub fn flip(&self, axes: impl Into<Axes>) -> Result<Array> {
        flip(self, axes)
    }
    /// See [`view`].
    pub fn view(&self, dtype: Dtype) -> Result<Array> {
        view(self, dtype)
    }
    /// See [`contiguous`].
    pub fn contiguous(&self) -> Result<Array> {
        contiguous(self)
    }
}

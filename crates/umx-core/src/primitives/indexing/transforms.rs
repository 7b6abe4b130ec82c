//! vjp, jvp and vmap rules of the indexing primitives.
//!
//! The rules follow MLX's: gathers (slice, take, take_along_axis, gather, diagonal) are
//! transposed by scatter-adds into zeros, scatters (slice_update, put_along_axis, scatter) with
//! `Assign` or `Add` by a gather of the cotangent for the updates and the cotangent itself
//! (with the written places zeroed for `Assign`) for the array. Index inputs get zeros. As in
//! MLX, repeated indices of an `Assign` scatter are not told apart: every update of a place
//! gets the place's cotangent, not only the one that was written last. The `Prod`, `Max` and
//! `Min` scatters have no derivative rules (an error, as in MLX).
//!
//! Batching moves batch axes to the front and shifts the op's axes by one; batched index
//! arrays get a batch index (an `arange`) on the new front axis, so a batch is one gather or
//! scatter.

use super::{IndexOp, ScatterMode};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Dtype, Result, bail, ops};

/// A node of `op` over `inputs` with the given output.
fn node(op: IndexOp, inputs: Vec<Array>, shape: Vec<usize>, dtype: Dtype) -> Result<Array> {
    Array::from_primitive(Primitive::Indexing(op), inputs, shape, dtype)
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&d| d as i64).collect()
}

/// Errs for the scatter modes whose derivatives are not defined here (MLX has none either).
fn linear_mode(rule: &str, op: &str, mode: ScatterMode) -> Result<()> {
    match mode {
        ScatterMode::Assign | ScatterMode::Add => Ok(()),
        _ => bail!("{rule}: {op} with mode {mode:?} is not supported"),
    }
}

/// `x` with its batch axis in front; an unbatched `x` broadcast along a new front axis of `n`.
fn front_or_broadcast(x: &Array, axis: Option<usize>, n: usize) -> Result<Array> {
    Ok(all_to_front(std::slice::from_ref(x), &[axis], n)?.remove(0))
}

/// `x` (batched, axis `axis`) with its batch axis in front, padded to `rank` example
/// dimensions; an unbatched `x` as it is (it broadcasts against the batch).
fn front_padded(x: &Array, axis: Option<usize>, rank: usize) -> Result<Array> {
    match axis {
        Some(_) => pad_example_rank(&to_front(x, axis)?, rank),
        None => Ok(x.clone()),
    }
}

/// `0..n` shaped `[n, 1, .., 1]` (`rank` dimensions in all): the batch index of a gather or
/// scatter over a front batch axis.
fn batch_index(n: usize, rank: usize) -> Result<Array> {
    let r = ops::arange(0, n as i64, 1, Dtype::Int32)?;
    let mut shape = vec![1i64; rank];
    shape[0] = n as i64;
    ops::reshape(&r, &shape)
}

/// `a` scattered at `indices` (one per axis of `axes`) with `updates`, in `mode`.
fn scatter_with(
    a: &Array,
    indices: &[Array],
    updates: &Array,
    axes: &[usize],
    mode: ScatterMode,
) -> Result<Array> {
    let axes = i64s(axes);
    match mode {
        ScatterMode::Assign => ops::scatter(a, indices, updates, &axes),
        ScatterMode::Add => ops::scatter_add(a, indices, updates, &axes),
        ScatterMode::Prod => ops::scatter_prod(a, indices, updates, &axes),
        ScatterMode::Max => ops::scatter_max(a, indices, updates, &axes),
        ScatterMode::Min => ops::scatter_min(a, indices, updates, &axes),
    }
}

/// The permutation that takes the axes laid out as `others + [axis1, axis2]` back to their
/// places (`transpose` argument).
fn diagonal_back_perm(ndim: usize, axis1: usize, axis2: usize) -> Vec<i64> {
    let mut k = 0;
    (0..ndim)
        .map(|d| {
            if d == axis1 {
                ndim as i64 - 2
            } else if d == axis2 {
                ndim as i64 - 1
            } else {
                k += 1;
                k - 1
            }
        })
        .collect()
}

/// `g` (shape `lead + [len]`) placed on the `offset`-th diagonal of `[n1, n2]` matrices of
/// zeros: shape `lead + [n1, n2]`. One slice update of the flattened matrices, where a
/// diagonal is a strided run.
fn onto_diagonal(g: &Array, offset: i64, n1: usize, n2: usize) -> Result<Array> {
    let lead = &g.shape()[..g.ndim() - 1];
    let len = g.shape()[g.ndim() - 1];
    let mut flat = lead.to_vec();
    flat.push(n1 * n2);
    let z = ops::zeros(&flat, g.dtype())?;
    let empty = len == 0 || lead.contains(&0);
    let first = if empty {
        0
    } else if offset >= 0 {
        offset as usize
    } else {
        offset.unsigned_abs() as usize * n2
    };
    let mut start = vec![0; lead.len()];
    start.push(first);
    let mut step = vec![1i64; lead.len()];
    step.push(n2 as i64 + 1);
    let m = node(
        IndexOp::SliceUpdate {
            start,
            step,
            shape: g.shape().to_vec(),
            mode: ScatterMode::Assign,
        },
        vec![z, g.clone()],
        flat,
        g.dtype(),
    )?;
    let mut shape = i64s(lead);
    shape.extend([n1 as i64, n2 as i64]);
    ops::reshape(&m, &shape)
}

impl IndexOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        argnums
            .iter()
            .map(|&i| self.vjp_one(inputs, &cotangents[0], i, &outputs[0]))
            .collect()
    }

    /// The cotangent of input `i` for the output cotangent `g`.
    fn vjp_one(&self, inputs: &[Array], g: &Array, i: usize, output: &Array) -> Result<Array> {
        let a = &inputs[0];
        let dtype = g.dtype();
        match self {
            IndexOp::Slice { start, step } => {
                let z = ops::zeros(a.shape(), dtype)?;
                node(
                    IndexOp::SliceUpdate {
                        start: start.clone(),
                        step: step.clone(),
                        shape: output.shape().to_vec(),
                        mode: ScatterMode::Assign,
                    },
                    vec![z, g.clone()],
                    a.shape().to_vec(),
                    dtype,
                )
            }
            IndexOp::SliceUpdate {
                start,
                step,
                shape,
                mode,
            } => {
                linear_mode("vjp", "slice_update", *mode)?;
                match (i, mode) {
                    (0, ScatterMode::Add) => Ok(g.clone()),
                    (0, _) => node(
                        IndexOp::SliceUpdate {
                            start: start.clone(),
                            step: step.clone(),
                            shape: shape.clone(),
                            mode: ScatterMode::Assign,
                        },
                        vec![g.clone(), ops::zeros(&[], dtype)?],
                        g.shape().to_vec(),
                        dtype,
                    ),
                    _ => {
                        let s = node(
                            IndexOp::Slice {
                                start: start.clone(),
                                step: step.clone(),
                            },
                            vec![g.clone()],
                            shape.clone(),
                            dtype,
                        )?;
                        unbroadcast(&s, inputs[1].shape())
                    }
                }
            }
            IndexOp::Take { axis } => {
                if i != 0 {
                    return ops::zeros_like(&inputs[i]);
                }
                let idx = &inputs[1];
                let ni = idx.ndim();
                match axis {
                    None => {
                        let z = ops::zeros(&[a.size()], dtype)?;
                        let mut ushape = i64s(idx.shape());
                        ushape.push(1);
                        let u = ops::reshape(g, &ushape)?;
                        let s = ops::scatter_add(&z, std::slice::from_ref(idx), &u, &[0])?;
                        ops::reshape(&s, &i64s(a.shape()))
                    }
                    Some(ax) => {
                        let ax = *ax;
                        // g: pre + I + post -> I + pre + [1] + post, the updates of a
                        // scatter over the indices' shape I.
                        let perm: Vec<i64> = (ax..ax + ni)
                            .chain(0..ax)
                            .chain(ax + ni..g.ndim())
                            .map(|d| d as i64)
                            .collect();
                        let u = ops::expand_dims(&ops::transpose(g, perm)?, (ni + ax) as i64)?;
                        let z = ops::zeros(a.shape(), dtype)?;
                        ops::scatter_add(&z, std::slice::from_ref(idx), &u, &[ax as i64])
                    }
                }
            }
            IndexOp::TakeAlongAxis { axis } => {
                if i != 0 {
                    return ops::zeros_like(&inputs[i]);
                }
                let mut like = g.shape().to_vec();
                like[*axis] = a.shape()[*axis];
                if g.shape()[*axis] == 1 {
                    // One element picked along the axis (a cross-entropy's targets): each
                    // position receives at most one value, so the scatter is a comparison with
                    // the positions, element-wise (fused with what comes before and after).
                    let s = one_hot_along(&inputs[1], g, *axis, like[*axis])?;
                    return unbroadcast(&s, a.shape());
                }
                let z = ops::zeros(&like, dtype)?;
                let s = ops::scatter_add_axis(&z, &inputs[1], g, *axis as i64)?;
                unbroadcast(&s, a.shape())
            }
            IndexOp::PutAlongAxis { axis, mode } => {
                linear_mode("vjp", "put_along_axis", *mode)?;
                let (idx, values) = (&inputs[1], &inputs[2]);
                match i {
                    0 if *mode == ScatterMode::Add => Ok(g.clone()),
                    0 => node(
                        IndexOp::PutAlongAxis {
                            axis: *axis,
                            mode: ScatterMode::Assign,
                        },
                        vec![g.clone(), idx.clone(), ops::zeros(&[], dtype)?],
                        g.shape().to_vec(),
                        dtype,
                    ),
                    1 => ops::zeros_like(idx),
                    _ => {
                        // The values broadcast (after dropping extra leading 1s) to the
                        // iteration shape: the array's, with the axis as long as the
                        // broadcast of the indices and the values.
                        let extra = values.ndim().saturating_sub(a.ndim());
                        let vshape = &values.shape()[extra..];
                        let it =
                            crate::shape::broadcast_shapes("put_along_axis", idx.shape(), vshape)?;
                        let mut iter = a.shape().to_vec();
                        iter[*axis] = it[*axis];
                        let t = ops::take_along_axis(g, idx, *axis as i64)?;
                        let t = if t.shape() == &iter[..] {
                            t
                        } else {
                            ops::broadcast_to(&t, &iter)?
                        };
                        let u = unbroadcast(&t, vshape)?;
                        ops::reshape(&u, &i64s(values.shape()))
                    }
                }
            }
            IndexOp::Gather {
                axes,
                slice_sizes: _,
            } => {
                if i != 0 {
                    return ops::zeros_like(&inputs[i]);
                }
                let z = ops::zeros(a.shape(), dtype)?;
                ops::scatter_add(&z, &inputs[1..], g, &i64s(axes))
            }
            IndexOp::Scatter { axes, mode } => {
                linear_mode("vjp", "scatter", *mode)?;
                let k = axes.len();
                let idx = &inputs[1..=k];
                let updates = &inputs[k + 1];
                if i == 0 {
                    if *mode == ScatterMode::Add {
                        return Ok(g.clone());
                    }
                    let z = ops::zeros(updates.shape(), dtype)?;
                    return ops::scatter(g, idx, &z, &i64s(axes));
                }
                if i <= k {
                    return ops::zeros_like(&inputs[i]);
                }
                let nb = updates.ndim() - a.ndim();
                ops::gather(g, idx, &i64s(axes), &updates.shape()[nb..])
            }
            IndexOp::Diagonal {
                offset,
                axis1,
                axis2,
            } => {
                let (n1, n2) = (a.shape()[*axis1], a.shape()[*axis2]);
                let m = onto_diagonal(g, *offset, n1, n2)?;
                ops::transpose(&m, diagonal_back_perm(a.ndim(), *axis1, *axis2))
            }
            IndexOp::DiagMatrix { k } => ops::diagonal(g, *k, 0, 1),
            IndexOp::Triangle { .. } => {
                node(self.clone(), vec![g.clone()], g.shape().to_vec(), dtype)
            }
        }
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let out = &outputs[0];
        let t0 = || tangent_or_zeros(inputs, tangents, 0);
        // Every rule is the op itself applied to the tangents (these ops are linear in their
        // non-index inputs); index inputs keep their values.
        let same = |ins: Vec<Array>| node(self.clone(), ins, out.shape().to_vec(), out.dtype());
        let t = match self {
            IndexOp::Slice { .. }
            | IndexOp::Diagonal { .. }
            | IndexOp::DiagMatrix { .. }
            | IndexOp::Triangle { .. } => same(vec![t0()?])?,
            IndexOp::Take { .. } | IndexOp::TakeAlongAxis { .. } => {
                if tangents[0].is_none() {
                    return zeros_jvp(outputs);
                }
                same(vec![t0()?, inputs[1].clone()])?
            }
            IndexOp::Gather { .. } => {
                if tangents[0].is_none() {
                    return zeros_jvp(outputs);
                }
                let mut ins = vec![t0()?];
                ins.extend_from_slice(&inputs[1..]);
                same(ins)?
            }
            IndexOp::SliceUpdate { mode, .. } => {
                linear_mode("jvp", "slice_update", *mode)?;
                same(vec![t0()?, tangent_or_zeros(inputs, tangents, 1)?])?
            }
            IndexOp::PutAlongAxis { mode, .. } => {
                linear_mode("jvp", "put_along_axis", *mode)?;
                same(vec![
                    t0()?,
                    inputs[1].clone(),
                    tangent_or_zeros(inputs, tangents, 2)?,
                ])?
            }
            IndexOp::Scatter { axes, mode } => {
                linear_mode("jvp", "scatter", *mode)?;
                let k = axes.len();
                let mut ins = vec![t0()?];
                ins.extend_from_slice(&inputs[1..=k]);
                ins.push(tangent_or_zeros(inputs, tangents, k + 1)?);
                same(ins)?
            }
        };
        Ok(vec![t])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let n = batch_size(inputs, axes);
        let out = &outputs[0];
        let dtype = out.dtype();
        let a = &inputs[0];
        // The output shape with a front batch axis.
        let batched_shape = || {
            let mut s = vec![n];
            s.extend_from_slice(out.shape());
            s
        };
        let (o, ax) = match self {
            IndexOp::Slice { start, step } => {
                // The batch axis stays where it is, sliced whole.
                let b = axes[0].expect("the only input is batched");
                let (mut start, mut step) = (start.clone(), step.clone());
                start.insert(b, 0);
                step.insert(b, 1);
                let mut shape = out.shape().to_vec();
                shape.insert(b, n);
                (
                    node(
                        IndexOp::Slice { start, step },
                        vec![a.clone()],
                        shape,
                        dtype,
                    )?,
                    b,
                )
            }
            IndexOp::SliceUpdate {
                start,
                step,
                shape,
                mode,
            } => {
                let a_f = front_or_broadcast(a, axes[0], n)?;
                let u_f = front_padded(&inputs[1], axes[1], shape.len())?;
                let op = IndexOp::SliceUpdate {
                    start: [0].into_iter().chain(start.iter().copied()).collect(),
                    step: [1].into_iter().chain(step.iter().copied()).collect(),
                    shape: [n].into_iter().chain(shape.iter().copied()).collect(),
                    mode: *mode,
                };
                (node(op, vec![a_f, u_f], batched_shape(), dtype)?, 0)
            }
            IndexOp::Take { axis } => {
                let idx = &inputs[1];
                match (axes[0], axes[1]) {
                    (Some(_), None) => {
                        let a_f = to_front(a, axes[0])?;
                        match axis {
                            None => {
                                let flat = ops::reshape(&a_f, &[n as i64, -1])?;
                                (ops::take(&flat, idx, Some(1))?, 0)
                            }
                            Some(ax) => (ops::take(&a_f, idx, Some(*ax as i64 + 1))?, 0),
                        }
                    }
                    (None, Some(bi)) => match axis {
                        None => (ops::take(a, idx, None)?, bi),
                        Some(ax) => (ops::take(a, idx, Some(*ax as i64))?, ax + bi),
                    },
                    _ => {
                        // Both batched: one gather with a batch index on the front axis.
                        let mut a_f = to_front(a, axes[0])?;
                        let ax = match axis {
                            None => {
                                a_f = ops::reshape(&a_f, &[n as i64, -1])?;
                                0
                            }
                            Some(ax) => *ax,
                        };
                        let i_f = to_front(idx, axes[1])?;
                        let ni = idx.ndim() - 1;
                        let mut sizes = a_f.shape().to_vec();
                        sizes[0] = 1;
                        sizes[ax + 1] = 1;
                        let gth = ops::gather(
                            &a_f,
                            &[batch_index(n, ni + 1)?, i_f.clone()],
                            &[0, ax as i64 + 1],
                            &sizes,
                        )?;
                        // [n] + I + [1] + pre + [1] + post -> [n] + pre + I + post.
                        let mut shape = i64s(i_f.shape());
                        let ex = &a_f.shape()[1..];
                        shape.extend(i64s(&ex[..ax]));
                        shape.extend(i64s(&ex[ax + 1..]));
                        let r = ops::reshape(&gth, &shape)?;
                        let perm: Vec<i64> = std::iter::once(0)
                            .chain(1 + ni..1 + ni + ax)
                            .chain(1..1 + ni)
                            .chain(1 + ni + ax..shape.len())
                            .map(|d| d as i64)
                            .collect();
                        (ops::transpose(&r, perm)?, 0)
                    }
                }
            }
            IndexOp::TakeAlongAxis { axis } => {
                let lift = |x: &Array, b: Option<usize>| match b {
                    Some(_) => to_front(x, b),
                    None => ops::expand_dims(x, 0),
                };
                let a_f = lift(a, axes[0])?;
                let i_f = lift(&inputs[1], axes[1])?;
                (ops::take_along_axis(&a_f, &i_f, *axis as i64 + 1)?, 0)
            }
            IndexOp::PutAlongAxis { axis, mode } => {
                let r = out.ndim();
                let a_f = front_or_broadcast(a, axes[0], n)?;
                let i_f = match axes[1] {
                    Some(_) => to_front(&inputs[1], axes[1])?,
                    None => ops::expand_dims(&inputs[1], 0)?,
                };
                let v = &inputs[2];
                let v_rank = v.ndim() - axes[2].is_some() as usize;
                let extra = v_rank.saturating_sub(r);
                let v_f = match axes[2] {
                    Some(_) => {
                        let f = to_front(v, axes[2])?;
                        if extra > 0 {
                            let mut s = vec![n as i64];
                            s.extend(i64s(&f.shape()[1 + extra..]));
                            ops::reshape(&f, &s)?
                        } else {
                            pad_example_rank(&f, r)?
                        }
                    }
                    None if extra > 0 => ops::reshape(v, &i64s(&v.shape()[extra..]))?,
                    None => v.clone(),
                };
                let op = IndexOp::PutAlongAxis {
                    axis: axis + 1,
                    mode: *mode,
                };
                (node(op, vec![a_f, i_f, v_f], batched_shape(), dtype)?, 0)
            }
            IndexOp::Gather {
                axes: gaxes,
                slice_sizes,
            } => {
                let nb = out.ndim() - slice_sizes.len();
                let idx = &inputs[1..];
                let idx_axes = &axes[1..];
                let shifted: Vec<i64> = gaxes.iter().map(|&d| d as i64 + 1).collect();
                if idx_axes.iter().all(Option::is_none) {
                    // Only the array is batched: its batch axis is one more window axis.
                    let a_f = to_front(a, axes[0])?;
                    let mut sizes = vec![n];
                    sizes.extend_from_slice(slice_sizes);
                    (ops::gather(&a_f, idx, &shifted, &sizes)?, nb)
                } else {
                    let mut i_f = idx
                        .iter()
                        .zip(idx_axes)
                        .map(|(x, &b)| front_padded(x, b, nb))
                        .collect::<Result<Vec<_>>>()?;
                    match axes[0] {
                        None => (ops::gather(a, &i_f, &i64s(gaxes), slice_sizes)?, 0),
                        Some(_) => {
                            let a_f = to_front(a, axes[0])?;
                            i_f.insert(0, batch_index(n, nb + 1)?);
                            let mut all_axes = vec![0];
                            all_axes.extend(shifted);
                            let mut sizes = vec![1];
                            sizes.extend_from_slice(slice_sizes);
                            let gth = ops::gather(&a_f, &i_f, &all_axes, &sizes)?;
                            (ops::reshape(&gth, &i64s(&batched_shape()))?, 0)
                        }
                    }
                }
            }
            IndexOp::Scatter { axes: saxes, mode } => {
                let k = saxes.len();
                let r = out.ndim();
                let idx = &inputs[1..=k];
                let idx_axes = &axes[1..=k];
                let (u, u_ax) = (&inputs[k + 1], axes[k + 1]);
                let nb = u.ndim() - u_ax.is_some() as usize - r;
                let shifted: Vec<usize> = saxes.iter().map(|&d| d + 1).collect();
                if idx_axes.iter().all(Option::is_none) && u_ax.is_none() {
                    // Only the array is batched: every example gets the same windows, whole
                    // along the batch axis.
                    let a_f = to_front(a, axes[0])?;
                    let mut shape = u.shape().to_vec();
                    shape.insert(nb, n);
                    let u_b = ops::broadcast_to(&ops::expand_dims(u, nb as i64)?, &shape)?;
                    (scatter_with(&a_f, idx, &u_b, &shifted, *mode)?, 0)
                } else {
                    let a_f = front_or_broadcast(a, axes[0], n)?;
                    let mut i_f = vec![batch_index(n, nb + 1)?];
                    for (x, &b) in idx.iter().zip(idx_axes) {
                        i_f.push(front_padded(x, b, nb)?);
                    }
                    // Updates: [n] + B + [1] + window.
                    let u_f = match u_ax {
                        Some(_) => ops::expand_dims(&to_front(u, u_ax)?, (nb + 1) as i64)?,
                        None => {
                            let e = ops::expand_dims(u, vec![0i64, nb as i64 + 1])?;
                            let mut shape = e.shape().to_vec();
                            shape[0] = n;
                            ops::broadcast_to(&e, &shape)?
                        }
                    };
                    let mut all_axes = vec![0];
                    all_axes.extend(shifted);
                    (scatter_with(&a_f, &i_f, &u_f, &all_axes, *mode)?, 0)
                }
            }
            IndexOp::Diagonal {
                offset,
                axis1,
                axis2,
            } => {
                let a_f = to_front(a, axes[0])?;
                let d = ops::diagonal(&a_f, *offset, *axis1 as i64 + 1, *axis2 as i64 + 1)?;
                (d, 0)
            }
            IndexOp::DiagMatrix { k } => {
                // [n, m] -> [n, N, N]: the vectors on the k-th diagonals, as one slice update
                // of the flattened matrices.
                let v_f = to_front(a, axes[0])?;
                let big = out.shape()[0];
                (onto_diagonal(&v_f, *k, big, big)?, 0)
            }
            IndexOp::Triangle { .. } => {
                let b = axes[0].expect("the only input is batched");
                let (x, b) = if b + 2 >= a.ndim() {
                    (to_front(a, Some(b))?, 0)
                } else {
                    (a.clone(), b)
                };
                let shape = x.shape().to_vec();
                (node(self.clone(), vec![x], shape, dtype)?, b)
            }
        };
        Ok((vec![o], vec![Some(ax)]))
    }
}

/// `g` placed at `idx` along `axis` (of length `n`) and zero elsewhere, for indices and values
/// of length 1 along the axis: `where(positions == idx, g, 0)`, negative indices counting from
/// the end (an index out of range places nothing).
fn one_hot_along(idx: &Array, g: &Array, axis: usize, n: usize) -> Result<Array> {
    use crate::Dtype;
    let wide = match idx.dtype() {
        Dtype::Int64 | Dtype::Uint32 | Dtype::Uint64 => Dtype::Int64,
        _ if n > i32::MAX as usize => Dtype::Int64,
        _ => Dtype::Int32,
    };
    let mut at = idx.astype(wide)?;
    if idx.dtype().is_signed() {
        at = ops::where_(&ops::less(&at, 0)?, ops::add(&at, n as i64)?, &at)?;
    }
    // Indices and values have the array's dimensions (take_along_axis checks).
    let mut shape = vec![1i64; g.ndim()];
    shape[axis] = n as i64;
    let positions = ops::reshape(&ops::arange(0, n as i64, 1, wide)?, &shape)?;
    ops::where_(&ops::equal(&positions, &at)?, g, 0.0)
}
